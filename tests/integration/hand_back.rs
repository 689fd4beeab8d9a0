//! A hand-back the broker will not take: the tasks a worker could not
//! start run on that worker instead of waiting in an unacknowledged
//! message nobody will ever deliver again.

use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use warren_core::protocol::pack_tasks;
use warren_core::JobState;
use warren_tests::{dispatched_by_hand, wait_consumed, TestEnv};
use warren_worker::Registry;

/// A worker with one slot takes a message of three tasks whose queue is no
/// longer bound to the tasks exchange (an operator removed the binding):
/// handing two back is unroutable, so it runs them itself, at once.
#[tokio::test]
async fn tasks_the_broker_will_not_take_back_run_on_the_worker_that_holds_them() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let mut config = env.worker_config(&["orphan"]);
    config.concurrency = 1;
    let worker = env.start_worker_with(config, Registry::with_builtins());
    let store = env.store().await;
    let names = env.broker_config().names();
    let queue = names.task_queue("orphan");
    let session = warren_broker::Session::connect(&env.broker_config())
        .await
        .expect("connect");
    wait_consumed(&session, &queue).await;

    let connection = Connection::connect(&env.amqp_url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_unbind(
            ShortString::from(queue.as_str()),
            ShortString::from(names.tasks_exchange().as_str()),
            ShortString::from("orphan"),
            FieldTable::default(),
        )
        .await
        .expect("unbind");
    let _ = connection.close(200, "done".into()).await;

    let tasks = vec![
        dispatched_by_hand(&store, "orphan", "sleep", json!({ "ms": 2_000 })).await,
        dispatched_by_hand(&store, "orphan", "echo", json!("a")).await,
        dispatched_by_hand(&store, "orphan", "echo", json!("b")).await,
    ];
    let packed = pack_tasks(&tasks, |_| tasks.len(), usize::MAX);
    assert_eq!(packed.len(), 1, "one message of three tasks");
    // The default exchange still reaches the queue by name.
    env.publish_raw("", &queue, &packed[0].body).await;

    let mut finished = Vec::new();
    for task in &tasks {
        let job = env
            .wait_job(&store, task.job_id, "completed", |j| {
                j.state() == JobState::Completed
            })
            .await;
        assert_eq!(job.attempt, 1, "ran once, in the dispatched attempt");
        finished.push(job.finished_at.expect("finished"));
    }
    assert!(
        finished[1] < finished[0] && finished[2] < finished[0],
        "the refused tasks ran beside the long one, not after it: {finished:?}"
    );
    // Stopped, the worker's connection closes: a message it left
    // unacknowledged would be ready again.
    worker.stop.cancel();
    worker.done.await.expect("worker stops");
    let stats = session.queue_stats(&queue).await.expect("stats");
    assert_eq!(stats.messages, 0, "the message was acknowledged");
    session.close().await;
    assert_eq!(env.dead_letters().await, 0);
    env.cleanup(&["orphan"]).await;
}
