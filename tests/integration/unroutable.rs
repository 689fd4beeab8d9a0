//! A message the broker would route to no queue is refused rather than
//! confirmed and dropped: a submission made while the submit queue is gone
//! (say it expired under `WARREN_QUEUE_EXPIRES` while no coordinator was
//! up) fails instead of counting as accepted, and goes through again once
//! the topology is declared again.

use serde_json::json;
use warren_broker::{BrokerError, Session};
use warren_client::{ClientError, Submitter};
use warren_core::protocol::JobSpec;
use warren_tests::TestEnv;

#[tokio::test]
async fn a_submission_that_reaches_no_queue_is_refused_not_lost() {
    let env = TestEnv::new().await;
    let submitter = Submitter::connect_with(env.broker_config())
        .await
        .expect("connect");
    let session = Session::connect(&env.broker_config())
        .await
        .expect("connect");
    session
        .delete_queue(&session.names().submit_queue())
        .await
        .expect("delete the submit queue");

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
