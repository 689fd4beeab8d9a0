//! `warren queue ...` (the real binary) against a coordinator: set limits
//! and task defaults, pause, show, list, resume; bad values and the
//! read-only token are refused.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use warren_tests::{binary, TestEnv, TEST_READ_TOKEN, TEST_TOKEN};

async fn warren(api_url: &str, token: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(binary("warren"));
    command
        .args(args)
        .env("WARREN_API_URL", api_url)
        .env("WARREN_API_TOKEN", token);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("CLI finished in time")
        .expect("run CLI")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_queue_commands_change_and_show_a_queue() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();
    let run = |args: &'static [&'static str]| warren(api, TEST_TOKEN, args);

    let set = run(&[
        "queue",
        "set",
        "media",
        "--max-in-flight",
        "3",
        "--rate-limit",
        "2.5",
        "--task-batch",
        "1",
        "--default-timeout",
        "image=5m",
        "--default-timeout",
        "video=1h",
        "--default-max-retries",
        "video=2",
    ])
    .await;
    assert!(set.status.success(), "{}", stderr(&set));
    let text = stdout(&set);
    for expected in [
        "max in flight: 3",
        "rate limit:    2.5/s",
        "task batch:    1 a message",
        "image  5m",
        "video  1h       3",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let pause = run(&["queue", "pause", "media"]).await;
    assert!(pause.status.success(), "{}", stderr(&pause));
    assert!(
        stdout(&pause).contains("dispatch:      paused"),
        "{}",
        stdout(&pause)
    );

    let show = run(&["queue", "show", "media", "--json"]).await;
    assert!(show.status.success(), "{}", stderr(&show));
    let queue: Value = serde_json::from_slice(&show.stdout).expect("JSON");
    assert_eq!(
        (
            &queue["paused"],
            &queue["max_in_flight"],
            &queue["rate_limit"]
        ),
        (&json!(true), &json!(3), &json!(2.5))
    );
    assert_eq!(
        queue["task_defaults"],
        json!({"image": {"timeout_ms": 300000}, "video": {"timeout_ms": 3600000, "max_attempts": 3}})
    );

    let list = run(&["queue", "list"]).await;
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(text.starts_with("QUEUE  DISPATCH"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("media  paused  ")),
        "{text}"
    );

    let cleared = run(&[
        "queue",
        "set",
        "media",
        "--rate-limit",
        "none",
        "--task-batch",
        "none",
    ])
    .await;
    assert!(cleared.status.success(), "{}", stderr(&cleared));
    let resume = run(&["queue", "resume", "media", "--json"]).await;
    let queue: Value = serde_json::from_slice(&resume.stdout).expect("JSON");
    assert_eq!(
        (&queue["paused"], &queue["rate_limit"], &queue["task_batch"]),
        (&json!(false), &Value::Null, &Value::Null)
    );

    // Refusals: a bad value (before any request), an unknown queue (exit 3),
    // the read-only token on a change.
    let bad = run(&["queue", "set", "media", "--rate-limit", "0"]).await;
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap usage error: {}",
        stderr(&bad)
    );
    let missing = run(&["queue", "show", "nope"]).await;
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    let reader = warren(api, TEST_READ_TOKEN, &["queue", "pause", "media"]).await;
    assert_eq!(reader.status.code(), Some(1));
    assert!(
        stderr(&reader).contains("read-only token"),
        "{}",
        stderr(&reader)
    );
    let reader = warren(api, TEST_READ_TOKEN, &["queue", "list", "--json"]).await;
    assert!(
        reader.status.success(),
        "the read-only token may list: {}",
        stderr(&reader)
    );
    env.cleanup(&["media"]).await;
}
