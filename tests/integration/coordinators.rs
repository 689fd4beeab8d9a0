//! Two coordinators on one database and namespace: nothing is dispatched
//! twice for the same attempt, and stopping one loses nothing.

use serde_json::json;
use warren_core::protocol::JobSpec;
use warren_tests::{eventually, TestEnv, DEADLINE};

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
