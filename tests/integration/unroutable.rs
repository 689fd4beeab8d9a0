//! A message the broker would route to no queue is refused rather than
//! confirmed and dropped: a submission made while the submit queue is gone
//! (say it expired under `WARREN_QUEUE_EXPIRES` while no coordinator was
//! up) fails instead of counting as accepted, and goes through again once
//! the topology is declared again; a worker's reports while the reports
//! queue is gone wait until the coordinator has declared it again.

use lapin::options::ExchangeDeleteOptions;
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use uuid::Uuid;
use warren_broker::{BrokerError, Names, Session};
use warren_client::{ClientError, Submitter};
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_store::Store;
use warren_tests::TestEnv;

/// Deletes one of the namespace's queues (`which` names it) over a new
/// session, returned for later inspection.
async fn delete_queue(env: &TestEnv, which: impl Fn(&Names) -> String) -> Session {
    let session = Session::connect(&env.broker_config())
        .await
        .expect("connect");
    let queue = which(session.names());
    session
        .delete_queue(&queue)
        .await
        .expect("delete the queue");
    session
}

#[tokio::test]
async fn a_submission_that_reaches_no_queue_is_refused_not_lost() {
    let env = TestEnv::new().await;
    let submitter = Submitter::connect_with(env.broker_config())
        .await
        .expect("connect");
    let session = delete_queue(&env, |names| names.submit_queue()).await;

    let err = submitter
        .submit(JobSpec::new("default", "echo", json!({})))
        .await
        .expect_err("a submission nothing holds is not accepted");
    assert!(
        matches!(err, ClientError::Broker(BrokerError::Unroutable { .. })),
        "{err}"
    );

    // A new connection declares the topology again and is taken.
    let again = Submitter::connect_with(env.broker_config())
        .await
        .expect("reconnect");
    again
        .submit(JobSpec::new("default", "echo", json!({})))
        .await
        .expect("accepted once the queue exists again");
    let stats = session
        .queue_stats(&session.names().submit_queue())
        .await
        .expect("submit queue stats");
    assert_eq!(
        stats.messages, 1,
        "the accepted submission waits in the queue"
    );
    session.close().await;
    again.close().await;
    submitter.close().await;
    env.cleanup(&[]).await;
}

/// Deletes the namespace's reports exchange: a worker's next publish to
/// it makes the broker close the worker's publishing channel.
async fn delete_reports_exchange(env: &TestEnv) {
    let connection = Connection::connect(&env.amqp_url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let exchange = env.broker_config().names().reports_exchange();
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete the reports exchange");
    let _ = connection.close(200, "done".into()).await;
}

/// Waits until job `id` completed and asserts it did in its first attempt.
async fn completed_in_first_attempt(env: &TestEnv, store: &Store, id: Uuid) {
    let job = env
        .wait_job(store, id, "the job completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(job.attempt, 1, "completed on its first attempt");
}

/// A submitter whose first job, on "default", completed.
async fn submitter_with_one_job_done(env: &TestEnv, store: &Store) -> Submitter {
    let submitter = Submitter::connect_with(env.broker_config())
        .await
        .expect("connect");
    let first = submitter
        .submit(JobSpec::new("default", "echo", json!({})))
        .await
        .expect("submit");
    env.wait_job(store, first, "the first job completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    submitter
}

/// The reports queue deleted under a running coordinator and worker: the
/// coordinator's consumer is cancelled, its session ends and the next one
/// declares the queue again; the worker's reports, refused as unroutable
/// meanwhile, are published again until they land, and the job completes.
/// The second job goes through a submitter connected before the deletion,
/// so that nothing but the coordinator declares the queue again.
#[tokio::test]
async fn reports_sent_while_the_reports_queue_is_gone_land_once_it_is_back() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let submitter = submitter_with_one_job_done(&env, &store).await;

    let session = delete_queue(&env, |names| names.reports_queue()).await;
    let second = submitter
        .submit(JobSpec::new("default", "echo", json!({})))
        .await
        .expect("submit");
    // Its reports waited for the queue instead of vanishing, which would
    // have left the job looking never started, to be dispatched and run
    // again once its dispatch timed out.
    completed_in_first_attempt(&env, &store, second).await;
    let dispatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND to_state = 'queued'",
    )
    .bind(second)
    .fetch_one(store.pool())
    .await
    .expect("count dispatches");
    assert_eq!(dispatches, 1, "dispatched once");
    session.close().await;
    submitter.close().await;
    env.cleanup(&["default"]).await;
}

/// The reports exchange deleted under a running worker: its next report is
/// a publish to an exchange that does not exist, which the broker answers
/// by closing the worker's publishing channel (the connection stays up).
/// The worker notices, reconnects (declaring the exchange again) and
/// publishes the report again, and the job completes in its first attempt.
#[tokio::test]
async fn a_worker_whose_publishing_channel_the_broker_closed_reconnects_and_reports() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    // Connected before the deletion: a new submitter would declare the
    // exchange again.
    let submitter = submitter_with_one_job_done(&env, &store).await;

    delete_reports_exchange(&env).await;

    let second = submitter
        .submit(JobSpec::new("default", "echo", json!({})))
        .await
        .expect("submit");
    completed_in_first_attempt(&env, &store, second).await;
    submitter.close().await;
    env.cleanup(&["default"]).await;
}

/// The reports exchange deleted while a worker drains at shutdown with one
/// job still running: its heartbeat or final report makes the broker close
/// the publishing channel. The worker connects again (declaring the
/// exchange) and sends the report, and the job completes in its first
/// attempt; the report used to be dropped, leaving the job to time out.
#[tokio::test]
async fn a_draining_worker_whose_publishing_channel_closes_still_reports() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let submitter = submitter_with_one_job_done(&env, &store).await;
    let long = submitter
        .submit(JobSpec::new("default", "sleep", json!({ "ms": 1_500 })))
        .await
        .expect("submit");
    env.wait_job(&store, long, "the long job running", |j| {
        j.state() == JobState::Running
    })
    .await;

    worker.stop.cancel();
    delete_reports_exchange(&env).await;
    completed_in_first_attempt(&env, &store, long).await;
    worker.done.await.expect("worker stops");
    submitter.close().await;
    env.cleanup(&["default"]).await;
}
