//! `/v1/queues` over real HTTP: the exact resource shape, creating and
//! changing a queue, validation errors, and per-task-type defaults filled
//! into jobs submitted over AMQP and `POST /v1/jobs` that do not set them.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{api_call, metric_value, TestEnv, TEST_TOKEN};

async fn admin(api: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    api_call(api, method, path, Some(TEST_TOKEN), body.as_deref()).await
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn queues_have_the_documented_shape_and_validate_changes() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();

    let (status, body) = admin(api, "GET", "/v1/queues/media", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // PATCH creates a new queue; fields left out keep their defaults.
    let seeds = json!({"image": {"timeout_ms": 300000}, "video": {"timeout_ms": 3600000}});
    let (status, queue) = admin(
        api,
        "PATCH",
        "/v1/queues/media",
        Some(json!({"max_in_flight": 4, "rate_limit": 0.5, "task_defaults": seeds})),
    )
    .await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(
        keys(&queue),
        BTreeSet::from([
            "name",
            "paused",
            "max_in_flight",
            "rate_limit",
            "task_batch",
            "task_defaults",
            "counts",
            "oldest_pending_age_ms"
        ])
    );
    assert_eq!(
        keys(&queue["counts"]),
        BTreeSet::from([
            "awaiting_approval",
            "blocked",
            "pending",
            "queued",
            "running",
            "retrying",
            "failed",
            "timeout",
            "dead"
        ])
    );
    assert_eq!(
        (
            &queue["name"],
            &queue["paused"],
            &queue["max_in_flight"],
            &queue["rate_limit"]
        ),
        (&json!("media"), &json!(false), &json!(4), &json!(0.5))
    );
    assert_eq!(queue["task_defaults"], seeds);
    assert_eq!(queue["oldest_pending_age_ms"], Value::Null);

    // Pause and resume answer with the queue; the gauge follows.
    let (status, queue) = admin(api, "POST", "/v1/queues/media/pause", None).await;
    assert_eq!((status, &queue["paused"]), (200, &json!(true)));
    let (_, metrics) = env.api_get(api, "/metrics").await;
    assert_eq!(
        metric_value(&metrics, "warren_queue_paused{queue=\"media\"}"),
        Some(1.0)
    );
    let (status, queue) = admin(api, "POST", "/v1/queues/media/resume", None).await;
    assert_eq!((status, &queue["paused"]), (200, &json!(false)));

    // null clears; a merge patch keeps the other task types.
    let (status, queue) = admin(
        api,
        "PATCH",
        "/v1/queues/media",
        Some(json!({"max_in_flight": null, "task_defaults": {"video": null, "image": {"max_retries": 2}}})),
    )
    .await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(queue["max_in_flight"], Value::Null);
    assert_eq!(queue["rate_limit"], json!(0.5));
    assert_eq!(
        queue["task_defaults"],
        json!({"image": {"timeout_ms": 300000, "max_attempts": 3}})
    );

    let (status, list) = admin(api, "GET", "/v1/queues", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["media"]);

    for (path, body, what) in [
        ("/v1/queues/media", "{not json", "bad JSON"),
        (
            "/v1/queues/media",
            r#"{"max_in_flight": -1}"#,
            "negative max_in_flight",
        ),
        (
            "/v1/queues/media",
            r#"{"max_in_flight": 0}"#,
            "zero max_in_flight",
        ),
        (
            "/v1/queues/media",
            r#"{"max_in_flight": 1.5}"#,
            "fractional max_in_flight",
        ),
        ("/v1/queues/media", r#"{"rate_limit": 0}"#, "rate 0"),
        ("/v1/queues/media", r#"{"rate_limit": -2}"#, "negative rate"),
        (
            "/v1/queues/media",
            r#"{"rate_limit": "fast"}"#,
            "rate not a number",
        ),
        (
            "/v1/queues/media",
            r#"{"paused": "yes"}"#,
            "paused not a boolean",
        ),
        (
            "/v1/queues/media",
            r#"{"max_inflight": 3}"#,
            "unknown field",
        ),
        (
            "/v1/queues/media",
            r#"{"task_defaults": {"image": {"timeout": "5m"}}}"#,
            "unknown default",
        ),
        (
            "/v1/queues/media",
            r#"{"task_defaults": {"image": {"max_delay_ms": 1}}}"#,
            "defaults that do not fit",
        ),
        (
            "/v1/queues/media",
            r#"{"task_defaults": {"bad type": {}}}"#,
            "bad task type",
        ),
        ("/v1/queues/bad%20name", "{}", "bad queue name"),
    ] {
        let (status, answer) = api_call(api, "PATCH", path, Some(TEST_TOKEN), Some(body)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{what}: {answer}"
        );
    }
    for (method, path) in [
        ("GET", "/v1/queues/bad%20name"),
        ("POST", "/v1/queues/a%2Fb/pause"),
    ] {
        let (status, answer) = admin(api, method, path, None).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
    }
    // The refused changes left the queue as it was.
    let (_, queue) = admin(api, "GET", "/v1/queues/media", None).await;
    assert_eq!(
        (&queue["rate_limit"], &queue["paused"]),
        (&json!(0.5), &json!(false))
    );
    env.cleanup(&["media"]).await;
}

#[tokio::test]
async fn task_defaults_fill_only_what_a_job_leaves_unset() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();
    let _worker = env.start_worker(&["media"]);
    let store = env.store().await;
    let defaults = json!({
        "image": {"timeout_ms": 300000},
        "video": {"timeout_ms": 3600000},
        "sleep": {"timeout_ms": 300, "max_attempts": 1}
    });
    let (status, body) = admin(
        api,
        "PATCH",
        "/v1/queues/media",
        Some(json!({"task_defaults": defaults})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Over AMQP: a slow sleep without a timeout gets 300 ms and one attempt,
    // so it times out for good; one with its own timeout keeps it.
    let slow = JobSpec::new("media", "sleep", json!({"ms": 5000}));
    let mut own = JobSpec::new("media", "sleep", json!({"ms": 50}));
    own.timeout_ms = Some(10_000);
    let image = JobSpec::new("media", "image", json!({}));
    let other_queue = JobSpec::new("default", "sleep", json!({"ms": 1}));
    let ids = env.submit(vec![slow, own, image, other_queue]).await;
    let slow = env
        .wait_job(&store, ids[0], "timed out", |j| {
            j.state() == JobState::Timeout
        })
        .await;
    assert_eq!(
        (slow.timeout_ms, slow.max_attempts, slow.attempt),
        (Some(300), 1, 1)
    );
    let own = env
        .wait_job(&store, ids[1], "completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!((own.timeout_ms, own.max_attempts), (Some(10_000), 1));
    let image = store.get_job(ids[2]).await.unwrap();
    assert_eq!(
        image.timeout_ms,
        Some(300_000),
        "the seeds' 5 minutes for images"
    );
    let elsewhere = store.get_job(ids[3]).await.unwrap();
    assert_eq!(
        (elsewhere.timeout_ms, elsewhere.max_attempts),
        (None, 5),
        "other queues keep the built-ins"
    );

    // Over POST /v1/jobs: the same rules.
    let video = JobSpec::new("media", "video", json!({}));
    let mut explicit = JobSpec::new("media", "video", json!({}));
    explicit.timeout_ms = Some(60_000);
    let (video_id, explicit_id) = (video.id, explicit.id);
    let (status, body) = admin(
        api,
        "POST",
        "/v1/jobs",
        Some(json!({"v": 1, "jobs": [video, explicit]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        store.get_job(video_id).await.unwrap().timeout_ms,
        Some(3_600_000),
        "the seeds' hour for video"
    );
    assert_eq!(
        store.get_job(explicit_id).await.unwrap().timeout_ms,
        Some(60_000)
    );

    // Workflow steps get the same defaults for what they leave unset.
    let (status, body) = admin(
        api,
        "POST",
        "/v1/workflows",
        Some(json!({
            "name": "media-pipeline",
            "steps": [
                {"name": "render", "queue": "media", "type": "video"},
                {"name": "thumb", "queue": "media", "type": "image", "timeout_ms": 1000,
                 "retry": {"max_attempts": 2}, "depends_on": ["render"]},
                {"name": "nap", "queue": "media", "type": "sleep", "depends_on": ["render"]},
                {"name": "other", "queue": "default", "type": "sleep", "depends_on": ["render"]},
            ]
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let steps: Vec<(String, Option<i64>, i32)> = sqlx::query_as(
        "SELECT step_name, timeout_ms, max_attempts FROM jobs
          WHERE workflow_id = $1::uuid ORDER BY step_name",
    )
    .bind(body["id"].as_str().unwrap())
    .fetch_all(store.pool())
    .await
    .unwrap();
    let expect =
        |name: &str, timeout: Option<i64>, attempts: i32| (name.to_owned(), timeout, attempts);
    assert_eq!(
        steps,
        [
            expect("nap", Some(300), 1),
            expect("other", None, 5),
            expect("render", Some(3_600_000), 5),
            expect("thumb", Some(1_000), 2),
        ],
        "defaults fill unset fields only, on the step's own queue"
    );

    // A job whose own fields clash with the defaults is refused, saying why.
    let (status, _) = admin(
        api,
        "PATCH",
        "/v1/queues/media",
        Some(json!({"task_defaults": {"video": {"base_delay_ms": 10, "max_delay_ms": 100}}})),
    )
    .await;
    assert_eq!(status, 200);
    let mut clash = JobSpec::new("media", "video", json!({}));
    clash.retry.base_delay_ms = Some(1_000);
    let (status, body) = admin(
        api,
        "POST",
        "/v1/jobs",
        Some(json!({"v": 1, "jobs": [clash]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("defaults of queue \"media\""), "{message}");
    env.cleanup(&["media", "default"]).await;
}

/// Submits one `media`/`image` job over `POST /v1/jobs` and returns the
/// timeout it was stored with.
async fn submitted_image_timeout(api: &str, store: &warren_store::Store) -> Option<i64> {
    let job = JobSpec::new("media", "image", json!({}));
    let id = job.id;
    let (status, body) = admin(
        api,
        "POST",
        "/v1/jobs",
        Some(json!({"v": 1, "jobs": [job]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    store.get_job(id).await.unwrap().timeout_ms
}

/// Polls (up to 10 s) until a job submitted through `api` gets `expected`.
async fn until_image_timeout_is(api: &str, store: &warren_store::Store, expected: i64, why: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = submitted_image_timeout(api, store).await;
        if got == Some(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}: still {got:?} after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_defaults_change_reaches_the_cache_of_every_coordinator() {
    let mut env = TestEnv::new().await;
    let a = env.start_coordinator().await;
    let b = env.start_coordinator().await;
    let store = env.store().await;

    // B now holds "media has no defaults" in its cache.
    assert_eq!(submitted_image_timeout(&b.api_url, &store).await, None);
    assert_eq!(submitted_image_timeout(&b.api_url, &store).await, None);

    // A change through A: A applies it at once, B once it hears of it.
    let (status, body) = admin(
        &a.api_url,
        "PATCH",
        "/v1/queues/media",
        Some(json!({"task_defaults": {"image": {"timeout_ms": 300000}}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        submitted_image_timeout(&a.api_url, &store).await,
        Some(300_000),
        "the coordinator that made the change uses it for its next batch"
    );
    until_image_timeout_is(&b.api_url, &store, 300_000, "B never heard of A's change").await;

    // A change made in the table by hand is announced too.
    sqlx::query(
        "UPDATE queues SET task_defaults = '{\"image\": {\"timeout_ms\": 1000}}' WHERE name = 'media'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    until_image_timeout_is(
        &a.api_url,
        &store,
        1_000,
        "A never heard of the table's change",
    )
    .await;
    until_image_timeout_is(
        &b.api_url,
        &store,
        1_000,
        "B never heard of the table's change",
    )
    .await;
}
