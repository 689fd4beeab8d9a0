//! When intake fails (its consumer cancelled, the connection lost), the
//! jobs its batches in flight committed as `queued` still get their task
//! messages, even while an earlier batch is held up: nothing waits for the
//! dispatch timeout.

use std::time::Duration;

use serde_json::json;
use warren_client::Submitter;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{eventually, TestEnv, DEADLINE};

/// A batch blocked on a row lock, a later one committed behind it, then
/// the submit queue deleted under the coordinator: the later batch's job
/// runs at once (the dispatch timeout is ten minutes here), and the blocked
/// one too once the lock goes.
#[tokio::test]
async fn jobs_committed_by_a_failed_intake_are_dispatched_at_once() {
    let mut env = TestEnv::new().await;
    let mut config = env.coordinator_config();
    config.dispatch_timeout = Duration::from_secs(600);
    let _coordinator = env.start_coordinator_with(config).await;
    let _worker = env.start_worker(&["salvage"]);
    let store = env.store().await;
    let submitter = Submitter::connect_with(env.broker_config())
        .await
        .expect("connect");
    // The queue's row exists (committed) before anything is held.
    let warm_up = submitter
        .submit(JobSpec::new("salvage", "echo", json!("warm-up")))
        .await
        .expect("submit the warm-up job");
    env.wait_job(&store, warm_up, "warm-up completed", |j| {
        j.state() == JobState::Completed
    })
    .await;

    // An uncommitted row with job A's id (in a queue of its own, so that
    // nothing else waits on it): intake's INSERT of A waits on it.
    let held = JobSpec::new("salvage", "echo", json!("held"));
    let mut lock = store.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms,
                           retry_factor, retry_max_ms, retry_jitter)
         VALUES ($1, 'held', 'echo', 'pending', 1, 1000, 2, 60000, 0.1)",
    )
    .bind(held.id)
    .execute(&mut *lock)
    .await
    .expect("hold job A's id");
    submitter.submit(held.clone()).await.expect("submit A");
    eventually("intake waiting on the held row", DEADLINE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(store.pool())
        .await
        .ok()?;
        (waiting > 0).then_some(())
    })
    .await;
    let later = submitter
        .submit(JobSpec::new("salvage", "echo", json!("later")))
        .await
        .expect("submit B");
    // B's batch commits while A's still waits: written, not yet landed.
    env.wait_job(&store, later, "B committed as queued", |j| {
        j.state() == JobState::Queued
    })
    .await;
    submitter.close().await;

    let session = warren_broker::Session::connect(&env.broker_config())
        .await
        .expect("connect");
    session
        .delete_queue(&session.names().submit_queue())
        .await
        .expect("delete the submit queue");
    session.close().await;

    env.wait_job(&store, later, "B completed while A is still held", |j| {
        j.state() == JobState::Completed
    })
    .await;
    lock.rollback().await.expect("release A");
    env.wait_job(&store, held.id, "A completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    for id in [held.id, later] {
        let job = store.get_job(id).await.expect("job");
        assert_eq!(job.attempt, 1, "{id} ran in its first attempt");
    }
    env.cleanup(&["salvage"]).await;
}
