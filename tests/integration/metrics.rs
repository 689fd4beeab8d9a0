//! The coordinator exports every metric the issue names, with bounded labels.

use serde_json::json;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{eventually, TestEnv, DEADLINE};

#[tokio::test]
async fn coordinator_metrics_cover_the_lifecycle() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let id = env
        .submit(vec![JobSpec::new("default", "echo", json!({}))])
        .await[0];
    env.wait_job(&store, id, "completed", |j| {
        j.state() == JobState::Completed
    })
    .await;

    let metrics = eventually("gauges refreshed", DEADLINE, || async {
        let (status, body) = env.api_get(&coordinator.api_url, "/metrics").await;
        assert_eq!(status, 200);
        (body.contains("warren_jobs{queue=\"default\",state=\"pending\"} 0")
            && body.contains("warren_workers_alive 1"))
        .then_some(body)
    })
    .await;
    for expected in [
        "warren_job_transitions_total{from=\"pending\",queue=\"default\",to=\"queued\"} 1",
        "warren_job_transitions_total{from=\"queued\",queue=\"default\",to=\"running\"} 1",
        "warren_job_transitions_total{from=\"running\",queue=\"default\",to=\"completed\"} 1",
        "warren_queue_wait_seconds_count{queue=\"default\"} 1",
        "warren_run_seconds_count{queue=\"default\",task_type=\"echo\"} 1",
        "warren_jobs_submitted_total{outcome=\"created\"} 1",
        "warren_broker_connected 1",
        "warren_oldest_pending_age_seconds{queue=\"default\"} 0",
        "warren_cleanup_deleted_total{state=\"completed\"} 0",
    ] {
        assert!(
            metrics.contains(expected),
            "missing `{expected}` in\n{metrics}"
        );
    }
    for family in [
        "warren_stale_reports_total",
        "warren_rejected_messages_total",
        "warren_rescued_jobs_total",
        "process_cpu_seconds_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} counter")),
            "missing family {family}"
        );
    }
    assert!(
        metrics.contains("# TYPE process_resident_memory_bytes gauge"),
        "missing the process metrics"
    );
    assert!(
        !metrics.contains("warren_jobs{queue=\"default\",state=\"completed\"}"),
        "terminal states are not counted by the gauges"
    );
    assert!(
        !metrics.contains(&id.to_string()),
        "job ids never appear in labels"
    );
    worker.stop.cancel();
    env.cleanup(&["default"]).await;
}
