//! Retries on the backoff schedule, exhaustion, manual re-drive, timeouts,
//! and checkpoints handed to the next attempt.

use serde_json::json;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::TestEnv;
use warren_worker::{HandlerError, Registry};

fn fast_retries(mut spec: JobSpec, max_attempts: u32) -> JobSpec {
    spec.retry.max_attempts = Some(max_attempts);
    spec.retry.base_delay_ms = Some(50);
    spec.retry.max_delay_ms = Some(200);
    spec
}

#[tokio::test]
async fn failing_attempts_are_retried_until_success() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let id = env
        .submit(vec![fast_retries(
            JobSpec::new("default", "flaky", json!({ "fail_times": 2 })),
            5,
        )])
        .await[0];
    let job = env
        .wait_job(&store, id, "flaky completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(job.attempt, 3);
    assert_eq!(job.result, Some(json!({ "attempt": 3 })));
    let retries: i64 = sqlx::query_scalar("SELECT count(*) FROM job_events WHERE job_id = $1 AND from_state = 'failed' AND to_state = 'retrying'")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(retries, 2);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn exhausted_jobs_stay_failed_until_a_manual_retry() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let id = env
        .submit(vec![fast_retries(
            JobSpec::new("default", "flaky", json!({ "fail_times": 2 })),
            2,
        )])
        .await[0];
    let dead = env
        .wait_job(&store, id, "flaky dead", |j| {
            j.state() == JobState::Failed && j.attempt == 2
        })
        .await;
    assert!(dead.error.unwrap().contains("fails on purpose"));

    let (status, body) = env
        .api_post(&coordinator.api_url, &format!("/v1/jobs/{id}/retry"))
        .await;
    assert_eq!(status, 200, "{body}");
    let job = env
        .wait_job(&store, id, "re-driven job completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(job.attempt, 3);

    // A completed job cannot be retried: 409 naming both states.
    let (status, body) = env
        .api_post(&coordinator.api_url, &format!("/v1/jobs/{id}/retry"))
        .await;
    assert_eq!(status, 409);
    assert!(body.contains("from completed to retrying"), "{body}");
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn fatal_errors_are_not_retried() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    // A sleep without "ms" is a fatal payload error.
    let id = env
        .submit(vec![fast_retries(
            JobSpec::new("default", "sleep", json!({})),
            5,
        )])
        .await[0];
    let job = env
        .wait_job(&store, id, "fatal failure", |j| {
            j.state() == JobState::Failed
        })
        .await;
    assert_eq!(job.attempt, 1);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn attempts_past_their_timeout_end_in_timeout() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let mut spec = fast_retries(JobSpec::new("default", "sleep", json!({ "ms": 60_000 })), 2);
    spec.timeout_ms = Some(300);
    let id = env.submit(vec![spec]).await[0];
    let job = env
        .wait_job(&store, id, "timed out twice", |j| {
            j.state() == JobState::Timeout && j.attempt == 2
        })
        .await;
    assert!(
        job.error.unwrap().contains("timed out"),
        "worker-side timeout reported"
    );
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn a_retried_attempt_resumes_from_the_last_checkpoint() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let mut registry = Registry::new();
    registry.register("resumable", |ctx, _payload| async move {
        match ctx.checkpoint() {
            None => {
                ctx.progress(40.0, "first half");
                ctx.save_checkpoint(json!({ "done_up_to": 40 }));
                Err(HandlerError::retryable("interrupted after the first half"))
            }
            Some(checkpoint) => {
                Ok(json!({ "resumed_from": checkpoint["done_up_to"], "attempt": ctx.attempt() }))
            }
        }
    });
    let config = env.worker_config(&["default"]);
    let _worker = env.start_worker_with(config, registry);
    let store = env.store().await;
    let id = env
        .submit(vec![fast_retries(
            JobSpec::new("default", "resumable", json!({})),
            3,
        )])
        .await[0];
    let job = env
        .wait_job(&store, id, "resumed job completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(
        job.result,
        Some(json!({ "resumed_from": 40, "attempt": 2 }))
    );
    assert_eq!(job.stage.as_deref(), Some("first half"));
    env.cleanup(&["default"]).await;
}

/// Each attempt saves a checkpoint and fails right after; the retry must
/// find it. Many at once, so the worker's report envelopes and the
/// coordinator's report batches overlap: a failure applied before the
/// checkpoint sent ahead of it would leave the retry without one, and the
/// job would fail on every attempt.
#[tokio::test]
async fn many_failures_each_apply_after_the_checkpoint_sent_before_them() {
    const JOBS: usize = 1000;
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let mut registry = Registry::new();
    registry.register("checkpoint_then_fail", |ctx, payload| async move {
        match ctx.checkpoint() {
            None => {
                ctx.save_checkpoint(json!({ "n": payload["n"] }));
                Err(HandlerError::retryable("fails once, after its checkpoint"))
            }
            Some(checkpoint) => Ok(checkpoint.clone()),
        }
    });
    let mut config = env.worker_config(&["default"]);
    config.concurrency = 64;
    let _worker = env.start_worker_with(config, registry);
    let store = env.store().await;
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|n| {
            let spec = JobSpec::new("default", "checkpoint_then_fail", json!({ "n": n }));
            fast_retries(spec, 2)
        })
        .collect();
    let ids = env.submit(specs).await;
    warren_tests::eventually("every job final", warren_tests::DEADLINE, || async {
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND state IN ('completed', 'failed')",
        )
        .bind(&ids)
        .fetch_one(store.pool())
        .await
        .ok()?;
        (finished as usize == JOBS).then_some(())
    })
    .await;
    let rows: Vec<(String, Option<serde_json::Value>, serde_json::Value)> =
        sqlx::query_as("SELECT state::text, result, payload FROM jobs WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(store.pool())
            .await
            .unwrap();
    let lost = rows
        .iter()
        .filter(|(state, result, payload)| {
            state != "completed" || result.as_ref() != Some(&json!({ "n": payload["n"] }))
        })
        .count();
    assert_eq!(lost, 0, "jobs whose retry did not get its checkpoint");
    env.cleanup(&["default"]).await;
}
