//! A coordinator process killed (SIGKILL) in the middle of a workflow, twice:
//! its successor continues the workflow where it was. An execution ledger
//! kept outside the database shows that no step started before its parents
//! finished and that no step ran or completed twice.

use std::collections::HashMap;

use serde_json::{json, Value};
use uuid::Uuid;
use warren_tests::{
    eventually, free_port, submit_workflow, wait_healthy, ChildGuard, TestEnv, DEADLINE,
};

/// The pipeline: one root, a fan-out of three, a join, and a tail.
const STEPS: [(&str, &[&str]); 7] = [
    ("download", &[]),
    ("validate_a", &["download"]),
    ("validate_b", &["download"]),
    ("validate_c", &["download"]),
    ("deduplicate", &["validate_a", "validate_b", "validate_c"]),
    ("label", &["deduplicate"]),
    ("store", &["label"]),
];

fn spec(ledger: &std::path::Path) -> Value {
    let steps: Vec<Value> = STEPS
        .iter()
        .map(|(name, deps)| {
            let script = format!(
                "echo start-{name} >> {l}; sleep 0.4; echo end-{name} >> {l}",
                l = ledger.display()
            );
            json!({"name": name, "queue": "default", "type": "exec", "depends_on": deps,
                   "payload": {"cmd": ["sh", "-c", script]}})
        })
        .collect();
    json!({"name": "restartable", "steps": steps})
}

async fn completed_steps(env: &TestEnv, id: Uuid) -> i64 {
    let store = env.store().await;
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE workflow_id = $1 AND state = 'completed'",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .unwrap_or(0);
    store.pool().close().await;
    n
}

async fn start_coordinator(env: &TestEnv) -> (ChildGuard, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = env.spawn_coordinator_process(&addr, &[]);
    let api = format!("http://{addr}");
    wait_healthy(&api).await;
    (child, api)
}

#[tokio::test]
async fn a_killed_coordinator_s_successor_finishes_the_workflow_in_order_and_once() {
    let mut env = TestEnv::new().await;
    let ledger = std::env::temp_dir().join(format!("warren-wf-ledger-{}", env.namespace));
    let _ = std::fs::remove_file(&ledger);
    let (mut coordinator, api) = start_coordinator(&env).await;
    env.start_worker(&["default"]);
    let id = submit_workflow(&api, &spec(&ledger)).await;

    // Kill it once the fan-out is under way, and again at the join.
    let mut api = api;
    for threshold in [1, 4] {
        eventually("progress before the kill", DEADLINE, || async {
            (completed_steps(&env, id).await >= threshold).then_some(())
        })
        .await;
        coordinator.signal("KILL");
        coordinator.wait_exit(DEADLINE).await;
        (coordinator, api) = start_coordinator(&env).await;
    }
    let view = warren_tests::wait_workflow(&api, id, "workflow finished after the kills", |v| {
        v["status"] != "running" && v["status"] != "pending"
    })
    .await;
    assert_eq!(view["status"], "completed", "{view}");

    let text = std::fs::read_to_string(&ledger).expect("ledger");
    let lines: Vec<&str> = text.lines().collect();
    let position = |line: &str| lines.iter().position(|l| *l == line);
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in &lines {
        *runs.entry(line).or_default() += 1;
    }
    for (name, deps) in STEPS {
        let start = format!("start-{name}");
        let end = format!("end-{name}");
        assert_eq!(
            runs.get(start.as_str()),
            Some(&1),
            "{name} started exactly once:\n{text}"
        );
        assert_eq!(
            runs.get(end.as_str()),
            Some(&1),
            "{name} finished exactly once:\n{text}"
        );
        for dep in deps {
            assert!(
                position(&format!("end-{dep}")) < position(&start),
                "{name} started before {dep} finished:\n{text}"
            );
        }
    }
    let store = env.store().await;
    let completions: Vec<i64> = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.to_state = 'completed')
           FROM jobs j WHERE j.workflow_id = $1",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        completions,
        vec![1; STEPS.len()],
        "each step completed once, no extra rows"
    );
    drop(coordinator);
    let _ = std::fs::remove_file(&ledger);
    env.cleanup(&["default"]).await;
}
