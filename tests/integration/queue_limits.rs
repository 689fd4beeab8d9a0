//! Queue controls enforced by dispatch against real services: pause and
//! resume, `max_in_flight` across two coordinators and two workers, the rate
//! limit across two coordinators (checked on the database's dispatch
//! timestamps), and priority order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_store::Store;
use warren_tests::{api_call, eventually, metric_value, TestEnv, DEADLINE, TEST_TOKEN};
use warren_worker::Registry;

async fn admin(api: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let text = body.map(|b| b.to_string());
    let (status, answer) = api_call(api, method, path, Some(TEST_TOKEN), text.as_deref()).await;
    assert_eq!(status, 200, "{method} {path}: {answer}");
    answer
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn all_completed(store: &Store, ids: &[Uuid]) {
    eventually("every job completed", DEADLINE, || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND state = 'completed'",
        )
        .bind(ids)
        .fetch_one(store.pool())
        .await
        .ok()?;
        (done == ids.len() as i64).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_queue_dispatches_nothing_and_its_running_job_finishes() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;

    let running = env
        .submit(vec![JobSpec::new("default", "sleep", json!({"ms": 1500}))])
        .await[0];
    env.wait_job(&store, running, "running", |j| {
        j.state() == JobState::Running
    })
    .await;
    let queue = admin(api, "POST", "/v1/queues/default/pause", None).await;
    assert_eq!(queue["paused"], json!(true));
    let waiting = env
        .submit(
            (0..3)
                .map(|_| JobSpec::new("default", "echo", json!({})))
                .collect(),
        )
        .await;
    eventually("submissions accepted", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = ANY($1)")
            .bind(&waiting)
            .fetch_one(store.pool())
            .await
            .ok()?;
        (n == 3).then_some(())
    })
    .await;

    // The job that was running when the queue was paused finishes; the
    // dispatcher was woken by the submission and polled every 50 ms
    // meanwhile, and dispatched none of the new jobs.
    env.wait_job(&store, running, "completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    let dispatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events WHERE job_id = ANY($1) AND to_state = 'queued'",
    )
    .bind(&waiting)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(dispatched, 0, "nothing dispatched while paused");
    let queue = admin(api, "GET", "/v1/queues/default", None).await;
    assert_eq!(queue["counts"]["pending"], json!(3));
    assert!(queue["oldest_pending_age_ms"].as_i64().is_some());

    admin(api, "POST", "/v1/queues/default/resume", None).await;
    all_completed(&store, &waiting).await;
    env.cleanup(&["default"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_one_runs_one_job_at_a_time_across_coordinators_and_workers() {
    let mut env = TestEnv::new().await;
    let first = env.start_coordinator().await;
    let _second = env.start_coordinator().await;
    admin(
        &first.api_url,
        "PATCH",
        "/v1/queues/capped",
        Some(json!({"max_in_flight": 1})),
    )
    .await;

    // A handler that records how many of its executions overlap.
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for _ in 0..2 {
        let mut registry = Registry::new();
        let (now, peak) = (now.clone(), peak.clone());
        registry.register("probe", move |_, _| {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(json!({}))
            }
        });
        let config = env.worker_config(&["capped"]); // concurrency 4
        env.start_worker_with(config, registry);
    }
    let store = env.store().await;
    let ids = env
        .submit(
            (0..16)
                .map(|_| JobSpec::new("capped", "probe", json!({})))
                .collect(),
        )
        .await;
    all_completed(&store, &ids).await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "never more than one execution at once"
    );
    // The database agrees: no two attempts' run intervals overlap.
    let overlaps = count(
        &store,
        "SELECT count(*) FROM jobs a JOIN jobs b ON a.id < b.id
          WHERE a.queue = 'capped' AND b.queue = 'capped'
            AND a.queued_at < b.finished_at AND b.queued_at < a.finished_at",
    )
    .await;
    assert_eq!(
        overlaps, 0,
        "in-flight intervals (queued → finished) overlap"
    );
    env.cleanup(&["capped"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spaces_dispatches_across_two_coordinators() {
    let mut env = TestEnv::new().await;
    let first = env.start_coordinator().await;
    let second = env.start_coordinator().await;
    let (rate, burst, n) = (5.0, 5.0, 20);
    admin(
        &first.api_url,
        "PATCH",
        "/v1/queues/rated",
        Some(json!({"rate_limit": rate})),
    )
    .await;
    let _worker = env.start_worker(&["rated"]);
    let store = env.store().await;
    let ids = env
        .submit(
            (0..n)
                .map(|_| JobSpec::new("rated", "echo", json!({})))
                .collect(),
        )
        .await;
    all_completed(&store, &ids).await;

    // Dispatch times, from the database clock (each job was dispatched once).
    let times: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM queued_at)::float8 FROM jobs WHERE queue = 'rated' ORDER BY queued_at",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(times.len(), n);
    // A token bucket of `burst` refilled at `rate`/s: any window holds at
    // most burst + rate × its length dispatches.
    for i in 0..n {
        for j in i..n {
            let dispatched = (j - i + 1) as f64;
            let allowed = burst + rate * (times[j] - times[i]) + 1e-3;
            assert!(
                dispatched <= allowed,
                "{dispatched} dispatches within {:.3}s (allowed {allowed:.2})",
                times[j] - times[i]
            );
        }
    }
    let span = times[n - 1] - times[0];
    assert!(
        span >= (n as f64 - burst) / rate - 1e-3,
        "took only {span:.3}s"
    );
    assert!(
        span < (n as f64 - burst) / rate + 2.0,
        "took {span:.3}s: dispatch fell behind the rate"
    );

    let mut throttled = 0.0;
    for coordinator in [&first, &second] {
        let (_, metrics) = env.api_get(&coordinator.api_url, "/metrics").await;
        throttled += metric_value(&metrics, "warren_dispatch_throttled_total{queue=\"rated\"}")
            .unwrap_or(0.0);
    }
    assert!(throttled >= 1.0, "throttling is counted");
    env.cleanup(&["rated"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_queue_runs_its_backlog_in_priority_order() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();
    admin(api, "POST", "/v1/queues/ordered/pause", None).await;
    let mut config = env.worker_config(&["ordered"]);
    config.concurrency = 1;
    let _worker = env.start_worker_with(config, Registry::with_builtins());
    let store = env.store().await;
    let priorities = [3, 9, 0, 5, 7, 1, 8, 2, 6, 4];
    let specs: Vec<JobSpec> = priorities
        .iter()
        .map(|&p| JobSpec {
            priority: p,
            ..JobSpec::new("ordered", "echo", json!({ "p": p }))
        })
        .collect();
    let ids = env.submit(specs).await;
    eventually("backlog accepted", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE queue = 'ordered' AND state = 'pending'",
        )
        .fetch_one(store.pool())
        .await
        .ok()?;
        (n == 10).then_some(())
    })
    .await;

    admin(
        api,
        "PATCH",
        "/v1/queues/ordered",
        Some(json!({"paused": false, "max_in_flight": 1})),
    )
    .await;
    all_completed(&store, &ids).await;
    let order: Vec<i16> = sqlx::query_scalar(
        "SELECT j.priority FROM job_events e JOIN jobs j ON j.id = e.job_id
          WHERE j.queue = 'ordered' AND e.to_state = 'running' ORDER BY e.id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(order, vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    env.cleanup(&["ordered"]).await;
}
