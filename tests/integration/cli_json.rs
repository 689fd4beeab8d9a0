//! Every `warren` command that prints data prints parseable JSON with
//! `--json`, and a table (not JSON) without it.

use serde_json::Value;
use warren_tests::{eventually, Cli, TestEnv, DEADLINE};

#[tokio::test]
async fn every_data_command_prints_json_with_the_flag() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let cli = Cli {
        env: &env,
        api_url: coordinator.api_url.clone(),
    };

    let ids = cli
        .json(&["submit", "--type", "echo", "--count", "3", "--json"])
        .await;
    let ids: Vec<String> = ids
        .as_array()
        .expect("submit --json prints an array of ids")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    let gated = cli
        .json(&["submit", "--type", "echo", "--requires-approval", "--json"])
        .await;
    let gated = gated[0].as_str().unwrap().to_owned();
    eventually("jobs done and gated job waiting", DEADLINE, || async {
        let done = cli.json(&["list", "--state", "completed", "--json"]).await;
        let waiting = cli.json(&["status", &gated, "--json"]).await;
        (done["jobs"].as_array()?.len() == 3 && waiting["state"] == "awaiting_approval")
            .then_some(())
    })
    .await;

    let approved = cli
        .json(&[
            "approve",
            &gated,
            "--by",
            "alice",
            "--comment",
            "ok",
            "--json",
        ])
        .await;
    assert_eq!(approved["to"], "pending");
    let events = cli.json(&["events", &gated, "--json"]).await;
    let approval = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to_state"] == "pending")
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(approval["detail"]["by"], "alice");
    assert_eq!(approval["detail"]["comment"], "ok");

    let page = cli
        .json(&[
            "list",
            "--type",
            "echo",
            "--sort",
            "finished_at",
            "--limit",
            "2",
            "--json",
        ])
        .await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert!(page["next"].is_string());
    let next = page["next"].as_str().unwrap().to_owned();
    let rest = cli
        .json(&[
            "list",
            "--type",
            "echo",
            "--sort",
            "finished_at",
            "--cursor",
            &next,
            "--json",
        ])
        .await;
    assert!(!rest["jobs"].as_array().unwrap().is_empty());

    let stats: Value = cli.json(&["stats", "--json"]).await;
    assert!(stats["states"].is_object() && stats["throughput"].is_object());
    let workers = cli.json(&["workers", "--json"]).await;
    assert_eq!(workers.as_array().unwrap().len(), 1);
    let health = cli.json(&["health", "--json"]).await;
    assert_eq!(health["status"], "ok");
    let status = cli.json(&["status", &ids[0], "--json"]).await;
    assert_eq!(status["state"], "completed");
    let cleanup = cli
        .json(&[
            "cleanup",
            "--older-than",
            "1h",
            "--state",
            "completed",
            "--json",
        ])
        .await;
    assert_eq!(
        (
            cleanup["deleted_jobs"].as_u64(),
            cleanup["complete"].as_bool()
        ),
        (Some(0), Some(true))
    );
    let cancel = cli
        .run(&["cancel", &ids[0], "--reason", "late", "--json"])
        .await;
    assert_eq!(
        cancel.status.code(),
        Some(2),
        "a completed job cannot be cancelled"
    );

    // Without --json: tables and lines, not JSON.
    for args in [
        &["stats"][..],
        &["list"],
        &["workers"],
        &["health"],
        &["cleanup", "--older-than", "1h"],
    ] {
        let out = cli.run(args).await;
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "{args:?} printed JSON without --json: {text}"
        );
    }
    env.cleanup(&["default"]).await;
}
