//! Submission by message through to completion; deduplication; events.

use serde_json::json;
use warren_client::ApiClient;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{TestEnv, TEST_TOKEN};

#[tokio::test]
async fn submitted_jobs_complete_exactly_once_and_resubmission_creates_nothing() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;

    let jobs: Vec<JobSpec> = (0..50)
        .map(|i| JobSpec::new("default", "echo", json!({ "n": i })))
        .collect();
    let ids = env.submit(jobs.clone()).await;
    for (i, id) in ids.iter().enumerate() {
        let job = env
            .wait_job(&store, *id, "echo job completed", |j| {
                j.state() == JobState::Completed
            })
            .await;
        assert_eq!(job.result, Some(json!({ "n": i })));
        assert_eq!(job.attempt, 1);
    }
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM job_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        events_before,
        50 * 4,
        "created, queued, running, completed per job"
    );

    // Re-publishing the same envelope (a client retry) changes nothing.
    env.submit(jobs).await;
    let probe = env
        .submit(vec![JobSpec::new("default", "echo", json!("probe"))])
        .await[0];
    env.wait_job(&store, probe, "probe completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 51);
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM job_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(events_after, events_before + 4);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn idempotency_key_is_unique_per_queue() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["a", "b"]);
    let store = env.store().await;
    let keyed = |queue: &str| JobSpec {
        idempotency_key: Some("order-42".into()),
        ..JobSpec::new(queue, "echo", json!({}))
    };
    let first = env.submit(vec![keyed("a")]).await[0];
    let again = env.submit(vec![keyed("a")]).await[0];
    let other_queue = env.submit(vec![keyed("b")]).await[0];
    env.wait_job(&store, first, "first completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    env.wait_job(&store, other_queue, "other queue completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    assert!(
        store.get_job(again).await.is_err(),
        "a second job with the same key in the same queue must not exist"
    );
    env.cleanup(&["a", "b"]).await;
}

#[tokio::test]
async fn exec_jobs_return_output_and_non_zero_exit_fails() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let ok = JobSpec::new(
        "default",
        "exec",
        json!({ "cmd": ["sh", "-c", "echo hello; echo oops >&2"] }),
    );
    let mut bad = JobSpec::new("default", "exec", json!({ "cmd": ["sh", "-c", "exit 3"] }));
    bad.retry.max_attempts = Some(1);
    let ids = env.submit(vec![ok, bad]).await;
    let done = env
        .wait_job(&store, ids[0], "exec completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    let result = done.result.unwrap();
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["stdout"], "hello\n");
    assert_eq!(result["stderr"], "oops\n");
    let failed = env
        .wait_job(&store, ids[1], "exec failed", |j| {
            j.state() == JobState::Failed
        })
        .await;
    assert!(failed.error.unwrap().contains("exit code 3"));
    assert_eq!(failed.attempt, 1);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn job_events_record_the_whole_lifecycle_in_order() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let id = env
        .submit(vec![JobSpec::new("default", "echo", json!(1))])
        .await[0];
    env.wait_job(&store, id, "completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    let (status, body) = env
        .api_get(&coordinator.api_url, &format!("/v1/jobs/{id}/events"))
        .await;
    assert_eq!(status, 200);
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    let moves: Vec<(String, String)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from_state"].as_str().unwrap_or("-").to_owned(),
                e["to_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("-", "pending"),
        ("pending", "queued"),
        ("queued", "running"),
        ("running", "completed"),
    ];
    assert_eq!(moves, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    env.cleanup(&["default"]).await;
}

/// Submits one job to "default" (which makes the queue known) and waits
/// until it completed.
async fn first_job_of_default(env: &TestEnv, store: &warren_store::Store) -> warren_store::JobRow {
    let first = env
        .submit(vec![JobSpec::new("default", "echo", json!(0))])
        .await[0];
    env.wait_job(store, first, "first job completed", |j| {
        j.state() == JobState::Completed
    })
    .await
}

/// A job whose queue can take it at once is dispatched by the intake
/// transaction that creates it (`queued_at` is that transaction's clock,
/// equal to `created_at`); a queue seen for the first time and a delayed job
/// go through the dispatcher's claim, a later transaction.
#[tokio::test]
async fn intake_dispatches_jobs_of_a_known_queue_and_leaves_the_rest_to_the_dispatcher() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let completed = |j: &warren_store::JobRow| j.state() == JobState::Completed;

    let first = first_job_of_default(&env, &store).await;
    assert!(
        first.queued_at > Some(first.created_at),
        "a new queue's first job is claimed by the dispatcher"
    );

    let mut delayed = JobSpec::new("default", "echo", json!("later"));
    delayed.delay_ms = Some(200);
    let mut jobs: Vec<JobSpec> = (1..=20)
        .map(|i| JobSpec::new("default", "echo", json!(i)))
        .collect();
    jobs.push(delayed);
    let ids = env.submit(jobs).await;
    for (i, id) in ids.iter().enumerate() {
        let job = env.wait_job(&store, *id, "job completed", completed).await;
        let by_intake = job.queued_at == Some(job.created_at);
        assert_eq!(by_intake, i < 20, "job {i}: dispatched by intake");
        assert_eq!(job.attempt, 1);
        let events = store.job_events(*id, 0, 10).await.unwrap();
        let moves: Vec<(Option<&str>, &str, i32)> = events
            .iter()
            .map(|e| (e.from_state.as_deref(), e.to_state.as_str(), e.attempt))
            .collect();
        assert_eq!(
            moves,
            vec![
                (None, "pending", 0),
                (Some("pending"), "queued", 1),
                (Some("queued"), "running", 1),
                (Some("running"), "completed", 1),
            ],
            "job {i}: the same history either way"
        );
    }
    env.cleanup(&["default"]).await;
}

/// `POST /v1/jobs` dispatches at creation as intake does: the jobs of a
/// queue that can take them are committed as `queued` by their INSERT
/// (`queued_at` equal to `created_at`) and published, with the same history.
#[tokio::test]
async fn http_submissions_are_dispatched_by_the_insert_that_creates_them() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let completed = |j: &warren_store::JobRow| j.state() == JobState::Completed;
    // The queue becomes known with its first job.
    first_job_of_default(&env, &store).await;

    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).expect("client");
    let jobs: Vec<JobSpec> = (1..=5)
        .map(|i| JobSpec::new("default", "echo", json!(i)))
        .collect();
    let submitted = api.submit_http(jobs).await.expect("POST /v1/jobs");
    assert_eq!(submitted.created, 5);
    for id in submitted.ids {
        let job = env.wait_job(&store, id, "job completed", completed).await;
        assert_eq!(
            job.queued_at,
            Some(job.created_at),
            "dispatched at creation"
        );
        assert_eq!(job.result, Some(job.payload.clone()));
        let events = store.job_events(id, 0, 10).await.unwrap();
        let moves: Vec<(Option<&str>, &str)> = events
            .iter()
            .map(|e| (e.from_state.as_deref(), e.to_state.as_str()))
            .collect();
        assert_eq!(
            moves,
            vec![
                (None, "pending"),
                (Some("pending"), "queued"),
                (Some("queued"), "running"),
                (Some("running"), "completed"),
            ]
        );
    }
    env.cleanup(&["default"]).await;
}
