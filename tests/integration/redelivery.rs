//! A task message delivered again to the worker that began its attempt
//! (its ack lost with a dying session, or a copy published twice) is
//! settled, not run a second time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use warren_core::protocol::pack_tasks;
use warren_core::JobState;
use warren_tests::{
    counted_registry, dispatched_by_hand, eventually, free_port, metric_value, wait_consumed,
    TestEnv, DEADLINE,
};

/// How long the counted handler runs: longer than the coalesce window, so
/// a copy arriving meanwhile finds the attempt running.
const RUN: Duration = Duration::from_millis(300);

/// Scrapes `series` from the worker's metrics endpoint.
async fn worker_metric(addr: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric_value(&text, series)
}

/// Two copies of one task message arrive together (the second while the
/// attempt runs), a third after the job completed: the handler runs once,
/// every copy is acknowledged and counted.
#[tokio::test]
async fn copies_of_an_attempt_begun_here_are_settled_without_running() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let (registry, runs) = counted_registry(RUN);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut config = env.worker_config(&["copies"]);
    config.metrics_addr = Some(metrics_addr.parse().expect("address"));
    let worker = env.start_worker_with(config, registry);
    let store = env.store().await;
    let queue = env.broker_config().names().task_queue("copies");
    let session = warren_broker::Session::connect(&env.broker_config())
        .await
        .expect("connect");
    wait_consumed(&session, &queue).await;

    let task = dispatched_by_hand(&store, "copies", "counted", json!(null)).await;
    let body = pack_tasks(std::slice::from_ref(&task), |_| 1, usize::MAX)
        .pop()
        .expect("one message")
        .body;
    env.publish_raw_all("", &queue, &[body.clone(), body.clone()])
        .await;
    let job = env
        .wait_job(&store, task.job_id, "completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(job.attempt, 1, "completed in the dispatched attempt");
    let duplicates = "warren_worker_duplicate_tasks_total";
    eventually("the second copy counted", DEADLINE, || async {
        (worker_metric(&metrics_addr, duplicates).await? >= 1.0).then_some(())
    })
    .await;

    env.publish_raw("", &queue, &body).await;
    eventually("the late copy counted", DEADLINE, || async {
        (worker_metric(&metrics_addr, duplicates).await? >= 2.0).then_some(())
    })
    .await;
    assert_eq!(
        worker_metric(&metrics_addr, duplicates).await,
        Some(2.0),
        "two copies"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");

    // Stopped, the worker's connection closes: a copy it left
    // unacknowledged would be ready again.
    worker.stop.cancel();
    worker.done.await.expect("worker stops");
    let stats = session.queue_stats(&queue).await.expect("stats");
    assert_eq!(stats.messages, 0, "every copy was acknowledged");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    session.close().await;
    assert_eq!(env.dead_letters().await, 0);
    env.cleanup(&["copies"]).await;
}
