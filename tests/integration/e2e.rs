//! End to end with the real binaries as processes: `warren-coordinator`,
//! `warren-worker`, the SDK example worker, and the `warren` CLI.

use std::process::Command;

use serde_json::Value;
use warren_tests::{
    binary, eventually, free_port, metric_value, ChildGuard, Cli, TestEnv, DEADLINE,
};

#[tokio::test]
async fn binaries_and_cli_run_jobs_end_to_end() {
    let env = TestEnv::new().await;
    let port = free_port();
    let api_url = format!("http://127.0.0.1:{port}");
    let mut coordinator = env.spawn_coordinator_process(&format!("127.0.0.1:{port}"), &[]);
    let metrics_port = free_port();
    let _worker = env.spawn_worker_process(
        "default",
        &[("WARREN_METRICS_ADDR", &format!("127.0.0.1:{metrics_port}"))],
    );
    let mut example = Command::new(binary("examples/custom_handler"));
    env.process_env(&mut example);
    example.env("WARREN_QUEUES", "reports");
    let _example = ChildGuard::spawn(example);
    let cli = Cli {
        env: &env,
        api_url: api_url.clone(),
    };

    eventually("coordinator healthy", DEADLINE, || async {
        cli.run(&["health"]).await.status.success().then_some(())
    })
    .await;

    let echo = cli
        .json(&[
            "submit",
            "--type",
            "echo",
            "--payload",
            r#"{"x": 1}"#,
            "--wait",
            "--json",
        ])
        .await;
    assert_eq!(
        (echo["state"].as_str(), &echo["result"]),
        (Some("completed"), &serde_json::json!({ "x": 1 }))
    );

    let flaky = cli
        .json(&[
            "submit",
            "--type",
            "flaky",
            "--payload",
            r#"{"fail_times": 1}"#,
            "--wait",
            "--json",
        ])
        .await;
    assert_eq!(
        (flaky["state"].as_str(), flaky["attempt"].as_i64()),
        (Some("completed"), Some(2))
    );

    let words = cli
        .json(&[
            "submit",
            "--queue",
            "reports",
            "--type",
            "word_count",
            "--payload",
            r#"{"text": "a b\na"}"#,
            "--wait",
            "--json",
        ])
        .await;
    assert_eq!(
        words["result"]["words"], 3,
        "the SDK example's handler ran: {words}"
    );

    let failing = cli
        .run(&[
            "submit",
            "--type",
            "exec",
            "--payload",
            r#"{"cmd": ["false"]}"#,
            "--max-attempts",
            "1",
            "--wait",
        ])
        .await;
    assert_eq!(
        failing.status.code(),
        Some(1),
        "a failed job makes --wait exit non-zero"
    );

    let gated = cli
        .json(&["submit", "--type", "echo", "--requires-approval", "--json"])
        .await;
    let id = gated[0].as_str().expect("submitted id").to_owned();
    let waiting = eventually("awaiting approval", DEADLINE, || async {
        let out = cli.run(&["status", &id, "--json"]).await;
        let job: Value = serde_json::from_slice(&out.stdout).ok()?;
        (job["state"] == "awaiting_approval").then_some(job)
    })
    .await;
    assert_eq!(waiting["attempt"], 0);
    assert!(cli.run(&["approve", &id]).await.status.success());
    eventually("approved job completed", DEADLINE, || async {
        let job: Value =
            serde_json::from_slice(&cli.run(&["status", &id, "--json"]).await.stdout).ok()?;
        (job["state"] == "completed").then_some(())
    })
    .await;
    assert_eq!(
        cli.run(&["cancel", &id]).await.status.code(),
        Some(2),
        "cancelling a completed job is a conflict"
    );

    let worker_metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let echo_done = "warren_worker_jobs_total{outcome=\"completed\",task_type=\"echo\"}";
    assert!(
        metric_value(&worker_metrics, echo_done) >= Some(2.0),
        "{worker_metrics}"
    );
    assert!(
        metric_value(&worker_metrics, "process_cpu_seconds_total").is_some()
            && metric_value(&worker_metrics, "process_resident_memory_bytes") > Some(0.0),
        "{worker_metrics}"
    );

    coordinator.signal("TERM");
    assert_eq!(
        coordinator.wait_exit(DEADLINE).await,
        Some(0),
        "coordinator stops cleanly on SIGTERM"
    );
    env.cleanup(&["default", "reports"]).await;
}
