//! The `warren workflow` and `warren template` commands, run as processes
//! against an in-process coordinator and worker.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use warren_tests::{binary, TestEnv, TEST_TOKEN};

async fn warren(api_url: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(binary("warren"));
    command
        .args(args)
        .env("WARREN_API_URL", api_url)
        .env("WARREN_API_TOKEN", TEST_TOKEN);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("CLI finished in time")
        .expect("run CLI")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", text(&out.stdout)))
}

#[tokio::test]
async fn the_cli_submits_follows_lists_and_recovers_workflows() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let dir = std::env::temp_dir().join(format!("warren-cli-wf-{}", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/templates/dataset-build.yaml"
    );

    let out = warren(&api, &["template", "put", example]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "stored template dataset-build version 1"
    );
    let out = warren(&api, &["template", "list"]).await;
    assert!(
        text(&out.stdout).contains("dataset-build  1"),
        "{}",
        text(&out.stdout)
    );

    // A stored template, with --var values read as their declared types.
    let workdir = format!("workdir={}", dir.join("data").display());
    let out = warren(
        &api,
        &[
            "workflow",
            "submit",
            "--template",
            "dataset-build",
            "--var",
            &workdir,
            "--var",
            "rows=50",
            "--var",
            "dataset=cats",
            "--wait",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = json(&out);
    assert_eq!(
        (done["status"].as_str(), done["percent"].as_u64()),
        (Some("completed"), Some(100))
    );
    assert_eq!(done["template"]["name"], "dataset-build");
    let out = warren(
        &api,
        &[
            "workflow",
            "submit",
            "--template",
            "dataset-build",
            "--var",
            "rows=ten",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rows"), "{}", text(&out.stderr));

    // A definition file that fails: exit 1 after --wait, then recovered.
    let marker = dir.join("ok");
    let definition = dir.join("flow.yaml");
    std::fs::write(
        &definition,
        format!(
            "name: cli-flow\nmetadata: {{team: data}}\nsteps:\n  - {{name: first, queue: default, type: echo, payload: 1}}\n  - name: second\n    queue: default\n    type: exec\n    depends_on: [first]\n    retry: {{max_attempts: 1}}\n    payload: {{cmd: [test, -f, '{}']}}\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = warren(
        &api,
        &["workflow", "submit", definition.to_str().unwrap(), "--wait"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(status.contains("status:   failed"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("second") && l.contains("failed")),
        "{status}"
    );
    let id = status
        .lines()
        .find_map(|l| l.strip_prefix("workflow: "))
        .unwrap()
        .trim()
        .to_owned();
    let out = warren(
        &api,
        &[
            "workflow",
            "list",
            "--status",
            "recoverable",
            "--meta",
            "team=data",
            "--json",
        ],
    )
    .await;
    let page = json(&out);
    assert_eq!(page["workflows"][0]["id"], id.as_str());
    let out = warren(&api, &["workflow", "pause", &id]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed workflow cannot be paused"
    );
    std::fs::write(&marker, b"").unwrap();
    let out = warren(&api, &["workflow", "recover", &id, "--from-step", "second"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("failed → running (from step second; recovery 1 of 3)"),
        "{}",
        text(&out.stdout)
    );
    let out = warren(&api, &["workflow", "watch", &id]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cli-flow · completed · 100%"),
        "{}",
        text(&out.stderr)
    );
    let out = warren(&api, &["workflow", "events", &id]).await;
    assert!(
        text(&out.stdout).contains("failed → recovering"),
        "{}",
        text(&out.stdout)
    );

    // An invalid definition is refused before anything is sent, naming the step.
    std::fs::write(&definition, r#"{"name": "bad", "steps": [{"name": "a", "queue": "default", "type": "echo", "depends_on": ["ghost"]}]}"#).unwrap();
    let out = warren(&api, &["workflow", "submit", definition.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ghost"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup(&["default"]).await;
}
