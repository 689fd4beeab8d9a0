//! Poison messages of every kind (empty, bad JSON, invalid UTF-8, unknown
//! version, wrong schema, deeply nested, oversized, an invalid job) on the
//! submit, report and task queues are dead-lettered on first delivery,
//! counted, and never stall a queue: a good job submitted after them
//! completes. Prints its figures like the rest of the fault suite.

use serde_json::json;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{eventually, metric_value, TestEnv, DEADLINE};

fn poison_bodies(limit: usize) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("malformed", b"{not json".to_vec()),
        ("invalid_utf8", vec![0xff, 0xfe, b'{', b'}']),
        ("unknown_version", br#"{"v": 99, "jobs": []}"#.to_vec()),
        ("schema", br#"{"v": 1, "jobs": "nope"}"#.to_vec()),
        (
            "malformed",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        ("oversized", vec![b' '; limit + 1]),
    ]
}

#[tokio::test]
async fn poison_submissions_reports_and_tasks_are_dead_lettered_and_the_queues_keep_flowing() {
    let mut env = TestEnv::new().await;
    let mut config = env.coordinator_config();
    config.max_payload_bytes = 64 * 1024;
    let coordinator = env.start_coordinator_with(config).await;
    let mut worker_config = env.worker_config(&["default"]);
    worker_config.max_payload_bytes = 64 * 1024;
    let _worker = env.start_worker_with(worker_config, warren_worker::Registry::with_builtins());
    let store = env.store().await;
    let names = env.broker_config().names();

    let bodies = poison_bodies(64 * 1024);
    for (_, body) in &bodies {
        env.publish_raw(
            &names.submit_exchange(),
            warren_broker::SUBMIT_ROUTING_KEY,
            body,
        )
        .await;
        env.publish_raw(
            &names.reports_exchange(),
            warren_broker::REPORT_ROUTING_KEY,
            body,
        )
        .await;
        env.publish_raw(&names.tasks_exchange(), "default", body)
            .await;
    }
    // An invalid job inside a well-formed envelope is dead-lettered too.
    let invalid = JobSpec {
        priority: 42,
        ..JobSpec::new("default", "echo", json!({}))
    };
    env.publish_raw(
        &names.submit_exchange(),
        "submit",
        &warren_core::protocol::encode(&warren_core::protocol::SubmitEnvelope::new(vec![invalid])),
    )
    .await;

    // A good job submitted after all that still completes.
    let id = env
        .submit(vec![JobSpec::new("default", "echo", json!("after poison"))])
        .await[0];
    env.wait_job(&store, id, "job after poison completed", |j| {
        j.state() == JobState::Completed
    })
    .await;

    let expected = bodies.len() as u32 * 3 + 1;
    eventually("every poison message dead-lettered", DEADLINE, || async {
        (env.dead_letters().await == expected).then_some(())
    })
    .await;
    let (_, metrics) = env.api_get(&coordinator.api_url, "/metrics").await;
    for reason in [
        "empty",
        "malformed",
        "invalid_utf8",
        "unknown_version",
        "schema",
        "oversized",
    ] {
        for source in ["submit", "reports"] {
            let series = format!(
                "warren_rejected_messages_total{{reason=\"{reason}\",source=\"{source}\"}}"
            );
            assert!(
                metric_value(&metrics, &series) >= Some(1.0),
                "{series} not counted"
            );
        }
    }
    let invalid = "warren_rejected_messages_total{reason=\"invalid_job\",source=\"submit\"}";
    assert_eq!(metric_value(&metrics, invalid), Some(1.0));
    let rejected: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("warren_rejected_messages_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "fault poison: published={expected} (kinds={} on submit, reports and tasks, plus one invalid job) \
         dead_lettered={expected} counted_by_coordinator={rejected} good_job_after=completed",
        bodies.len()
    );
    env.cleanup(&["default"]).await;
}
