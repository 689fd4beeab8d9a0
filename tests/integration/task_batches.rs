//! Several tasks per task message (`WARREN_TASK_BATCH`): jobs dispatched
//! together travel in one message, and a worker that pulls a message with
//! more tasks than it has free slots runs what it can and hands the rest
//! back to the queue, where any worker with room takes them.

use std::collections::HashSet;

use serde_json::json;
use warren_core::protocol::{decode_tasks, JobSpec, TaskMessage};
use warren_core::JobState;
use warren_store::Store;
use warren_tests::{api_call, eventually, metric_value, Tap, TestEnv, DEADLINE, TEST_TOKEN};
use warren_worker::Registry;

/// Submits `jobs` in one envelope (so intake dispatches them together, in
/// one message) and waits until each completed; returns the worker ids
/// that ran them, after checking each ran in its first attempt.
async fn run_together(env: &TestEnv, store: &Store, jobs: Vec<JobSpec>) -> HashSet<String> {
    let ids = env.submit(jobs).await;
    let mut workers = HashSet::new();
    for id in ids {
        let job = env
            .wait_job(store, id, "job completed", |j| {
                j.state() == JobState::Completed
            })
            .await;
        assert_eq!(job.attempt, 1, "job {id} ran in its first attempt");
        workers.extend(job.worker_id);
    }
    workers
}

/// Forty jobs in one envelope leave as three task messages (16, 16 and 8
/// tasks with the default `WARREN_TASK_BATCH`), in submission order, each
/// routed by the jobs' queue, and the coordinator counts three messages.
#[tokio::test]
async fn jobs_dispatched_together_share_task_messages() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let tasks_exchange = env.broker_config().names().tasks_exchange();
    let tap = Tap::bind(&env, &tasks_exchange, &["packed"]).await;

    let jobs: Vec<JobSpec> = (0..40)
        .map(|i| JobSpec::new("packed", "echo", json!({ "i": i })))
        .collect();
    let ids = env.submit(jobs).await;
    let messages = tapped_messages(&tap, 40).await;

    let sizes: Vec<usize> = messages.iter().map(|(_, tasks)| tasks.len()).collect();
    assert_eq!(sizes, vec![16, 16, 8]);
    assert!(messages.iter().all(|(key, _)| key == "packed"));
    let published: Vec<_> = messages
        .iter()
        .flat_map(|(_, tasks)| tasks.iter().map(|task| task.job_id))
        .collect();
    assert_eq!(published, ids);
    let series = "warren_task_messages_published_total{queue=\"packed\"}";
    eventually("three task messages counted", DEADLINE, || async {
        let (_, metrics) = env.api_get(&coordinator.api_url, "/metrics").await;
        (metric_value(&metrics, series) == Some(3.0)).then_some(())
    })
    .await;
    tap.close().await;
    env.cleanup(&["packed"]).await;
}

/// Takes task messages off `tap` until they carry `tasks` tasks; returns
/// each message's routing key and tasks, in the order they were published.
async fn tapped_messages(tap: &Tap, tasks: usize) -> Vec<(String, Vec<TaskMessage>)> {
    let seen = std::sync::Mutex::new(Vec::new());
    eventually(&format!("{tasks} tasks published"), DEADLINE, || async {
        let drained = tap.drain().await;
        let mut seen = seen.lock().unwrap();
        seen.extend(drained.into_iter().map(|m| {
            let carried = decode_tasks(&m.body, usize::MAX).expect("a task message");
            (m.routing_key, carried)
        }));
        let total: usize = seen.iter().map(|(_, carried)| carried.len()).sum();
        (total >= tasks).then_some(())
    })
    .await;
    seen.into_inner().unwrap()
}

/// Each task message's task count, as [`tapped_messages`] takes them.
async fn message_sizes(tap: &Tap, tasks: usize) -> Vec<usize> {
    let messages = tapped_messages(tap, tasks).await;
    messages.iter().map(|(_, carried)| carried.len()).collect()
}

/// A queue's own `task_batch` (set through the API) overrides
/// `WARREN_TASK_BATCH` for that queue alone, at once on the coordinator
/// that took the change, and `null` gives it back the default; values out
/// of range are refused.
#[tokio::test]
async fn a_queue_s_own_task_batch_caps_its_messages() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();
    let tasks_exchange = env.broker_config().names().tasks_exchange();
    let tap = Tap::bind(&env, &tasks_exchange, &["long", "short"]).await;
    let patch = |body: &'static str| {
        api_call(
            api,
            "PATCH",
            "/v1/queues/long",
            Some(TEST_TOKEN),
            Some(body),
        )
    };

    for refused in [r#"{"task_batch": 0}"#, r#"{"task_batch": 1001}"#] {
        let (status, body) = patch(refused).await;
        assert_eq!(status, 400, "{refused}: {body}");
    }
    let (status, body) = patch(r#"{"task_batch": 1}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task_batch"], 1);

    let jobs = |queue: &str| -> Vec<JobSpec> {
        (0..4)
            .map(|i| JobSpec::new(queue, "echo", json!({ "i": i })))
            .collect()
    };
    let mut both = jobs("long");
    both.extend(jobs("short"));
    env.submit(both).await;
    let mut sizes = message_sizes(&tap, 8).await;
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        vec![1, 1, 1, 1, 4],
        "long: one task a message; short: one message"
    );

    let (status, body) = patch(r#"{"task_batch": null}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["task_batch"].is_null());
    env.submit(jobs("long")).await;
    assert_eq!(message_sizes(&tap, 4).await, vec![4]);
    tap.close().await;
    env.cleanup(&["long", "short"]).await;
}

/// One worker with one slot and a message of five tasks: it runs one and
/// hands the others back, message after message, until all are done — a
/// message never waits on the slots of the worker that took it.
#[tokio::test]
async fn a_worker_with_one_slot_works_through_a_message_of_five() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let mut config = env.worker_config(&["batched"]);
    config.concurrency = 1;
    let worker = env.start_worker_with(config, Registry::with_builtins());
    let store = env.store().await;

    let jobs = (0..5)
        .map(|i| JobSpec::new("batched", "echo", json!({ "i": i })))
        .collect();
    let workers = run_together(&env, &store, jobs).await;
    assert_eq!(workers, HashSet::from([worker.worker_id.clone()]));
    assert_eq!(env.dead_letters().await, 0);
    env.cleanup(&["batched"]).await;
}

/// Eight slow tasks in one message and two workers of two slots each: the
/// worker that takes the message starts two and hands six back, and the
/// other worker runs some of them instead of waiting while the first is
/// busy.
#[tokio::test]
async fn tasks_a_busy_worker_cannot_start_go_to_one_with_free_slots() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let mut started = Vec::new();
    for _ in 0..2 {
        let mut config = env.worker_config(&["batched"]);
        config.concurrency = 2;
        started.push(env.start_worker_with(config, Registry::with_builtins()));
    }
    let store = env.store().await;

    let jobs = (0..8)
        .map(|_| JobSpec::new("batched", "sleep", json!({ "ms": 300 })))
        .collect();
    let workers = run_together(&env, &store, jobs).await;
    let expected: HashSet<String> = started.iter().map(|w| w.worker_id.clone()).collect();
    assert_eq!(
        workers, expected,
        "both workers ran some of the message's tasks"
    );
    assert_eq!(env.dead_letters().await, 0);
    env.cleanup(&["batched"]).await;
}
