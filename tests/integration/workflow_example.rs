//! The shipped example template (examples/templates/dataset-build.yaml, seed
//! 000's dataset build) is valid, stores through the API, and runs to
//! completion with the built-in `exec` handler, counts flowing downstream.

use reqwest::Method;
use serde_json::{json, Value};
use warren_tests::{api_json, step, submit_workflow, wait_workflow, TestEnv};

fn example() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/templates/dataset-build.yaml"
    );
    let text = std::fs::read_to_string(path).expect("example template");
    serde_yaml_ng::from_str(&text).expect("example template is YAML")
}

#[tokio::test]
async fn the_dataset_build_example_template_runs_to_completion() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let (status, body) = api_json(
        Method::PUT,
        &api,
        "/v1/templates/dataset-build",
        Some(&example()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let workdir = std::env::temp_dir().join(format!("warren-dataset-{}", env.namespace));
    let id = submit_workflow(
        &api,
        &json!({"template": "dataset-build", "variables": {
            "workdir": workdir.display().to_string(), "dataset": "birds", "rows": 100
        }}),
    )
    .await;
    let view = wait_workflow(&api, id, "dataset built", |v| {
        matches!(
            v["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    })
    .await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["name"], "dataset-build-birds");
    let counts: Vec<&str> = ["download", "validate", "deduplicate", "label"]
        .iter()
        .map(|name| step(&view, name)["result"]["stdout"].as_str().unwrap())
        .collect();
    // 100 rows, every 25th malformed, ids wrapping at 90.
    assert_eq!(counts, ["100", "96", "87", "87"]);
    let stored = step(&view, "store")["result"]["stdout"].as_str().unwrap();
    assert!(
        stored.starts_with("stored 87 labelled rows of birds at ")
            && stored.ends_with("(downloaded 100, valid 96, unique 87)"),
        "{stored}"
    );
    let file = std::fs::read_to_string(workdir.join("final/birds.csv")).unwrap();
    assert_eq!(file.lines().count(), 87);
    assert!(
        file.lines().all(|l| l.contains(",birds,birds-class-")),
        "{file}"
    );
    let _ = std::fs::remove_dir_all(&workdir);
    env.cleanup(&["default"]).await;
}
