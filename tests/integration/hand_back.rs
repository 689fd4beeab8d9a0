//! A hand-back the broker will not take: the tasks a worker could not
//! start run on that worker instead of waiting in an unacknowledged
//! message nobody will ever deliver again.

use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warren_core::protocol::{pack_tasks, JobSpec, TaskMessage, PROTOCOL_VERSION};
use warren_core::JobState;
use warren_store::Store;
use warren_tests::{eventually, TestEnv, DEADLINE};
use warren_worker::Registry;

/// Creates a job of `queue` as if a coordinator had dispatched it (attempt
/// 1, a fresh lease) without publishing it, and returns its task message.
async fn dispatched_by_hand(
    store: &Store,
    queue: &str,
    task_type: &str,
    payload: Value,
) -> TaskMessage {
    // Due in an hour, so no dispatcher takes it before it is moved by hand.
    let spec = JobSpec {
        delay_ms: Some(3_600_000),
        ..JobSpec::new(queue, task_type, payload.clone())
    };
    let id = store.insert_jobs(&[spec]).await.expect("insert")[0];
    let (lease, max_attempts): (Uuid, i32) = sqlx::query_as(
        "UPDATE jobs SET state = 'queued', attempt = 1, lease = gen_random_uuid(),
                         queued_at = now(), run_at = now()
          WHERE id = $1 RETURNING lease, max_attempts",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .expect("queue by hand");
    TaskMessage {
        v: PROTOCOL_VERSION,
        job_id: id,
        attempt: 1,
        lease,
        queue: queue.to_owned(),
        task_type: task_type.to_owned(),
        payload,
        timeout_ms: None,
        max_attempts: max_attempts as u32,
        checkpoint: None,
        inputs: Map::new(),
    }
}

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
    eventually("the worker consumes its queue", DEADLINE, || async {
        let stats = session.queue_stats(&queue).await.ok()?;
        (stats.consumers > 0).then_some(())
    })
    .await;

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
