//! Two coordinators on one database and namespace: nothing is dispatched
//! twice for the same attempt, stopping one loses nothing, and a higher
//! consumer priority keeps intake on one of them until it goes away.

use serde_json::json;
use warren_broker::Session;
use warren_core::protocol::JobSpec;
use warren_tests::{eventually, metric_value, TestEnv, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_share_the_work_without_duplicates() {
    let mut env = TestEnv::new().await;
    let first = env.start_coordinator().await;
    let _second = env.start_coordinator().await;
    let _a = env.start_worker(&["default"]);
    let _b = env.start_worker(&["default"]);
    let store = env.store().await;

    let batch = |n| {
        (0..n)
            .map(|i| JobSpec::new("default", "echo", json!({ "i": i })))
            .collect::<Vec<_>>()
    };
    env.submit(batch(300)).await;
    // Stop one coordinator mid-run (graceful: its unacked messages return to the queues).
    first.stop.cancel();
    env.submit(batch(200)).await;

    let completed = eventually("all 500 completed", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'completed'")
            .fetch_one(store.pool())
            .await
            .ok()?;
        (n == 500).then_some(n)
    })
    .await;
    assert_eq!(completed, 500);
    // Each attempt was dispatched once and completed once.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT job_id, attempt FROM job_events WHERE to_state = 'queued'
                                GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(duplicates, 0, "no attempt dispatched twice");
    let completions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_events WHERE to_state = 'completed'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(completions, 500);
    env.cleanup(&["default"]).await;
}

/// Jobs a coordinator took in through intake, read from its `/metrics`.
async fn created_by(env: &TestEnv, api_url: &str) -> f64 {
    let (status, text) = env.api_get(api_url, "/metrics").await;
    assert_eq!(status, 200);
    metric_value(&text, "warren_jobs_submitted_total{outcome=\"created\"}").unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_higher_consumer_priority_takes_intake_whole_and_the_other_takes_over() {
    let mut env = TestEnv::new().await;
    let mut config = env.coordinator_config();
    config.consumer_priority = 10;
    let primary = env.start_coordinator_with(config).await;
    let standby = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let session = Session::connect(&env.broker_config()).await.unwrap();
    let submit_queue = env.broker_config().names().submit_queue();
    eventually("both coordinators consume intake", DEADLINE, || async {
        let stats = session.queue_stats(&submit_queue).await.ok()?;
        (stats.consumers == 2).then_some(())
    })
    .await;

    // Ten envelopes: with equal priorities the broker would deal them out
    // round-robin between the two coordinators.
    for envelope in 0..10 {
        let jobs = (0..30)
            .map(|i| JobSpec::new("default", "echo", json!({ "envelope": envelope, "i": i })))
            .collect();
        env.submit(jobs).await;
    }
    let completed = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE state = 'completed'")
            .fetch_one(store.pool())
            .await
            .ok()
    };
    eventually("300 completed", DEADLINE, || async {
        (completed().await? == 300).then_some(())
    })
    .await;
    assert_eq!(created_by(&env, &primary.api_url).await, 300.0);
    assert_eq!(created_by(&env, &standby.api_url).await, 0.0);

    // The primary goes away: the standby takes intake over.
    primary.stop.cancel();
    primary.done.await.unwrap();
    env.submit(
        (0..100)
            .map(|i| JobSpec::new("default", "echo", json!({ "after": i })))
            .collect(),
    )
    .await;
    eventually("400 completed", DEADLINE, || async {
        (completed().await? == 400).then_some(())
    })
    .await;
    assert_eq!(created_by(&env, &standby.api_url).await, 100.0);
    session.close().await;
    env.cleanup(&["default"]).await;
}
