//! Failed attempts: backoff, fatal and exhausted failures, worker timeouts,
//! retry-after hints, and reports that arrive after a cancel.

mod common;

use common::*;
use serde_json::json;
use warren_core::protocol::{Failure, JobSpec, Report, RetryDecision};
use warren_core::JobState::*;
use warren_core::RetrySpec;

#[tokio::test]
async fn retryable_failure_backs_off() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = start(store, spec("default"), WORKER).await;
    let id = job.job_id;

    let out = apply(store, WORKER, &[failed(job, RetryDecision::Retryable)]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![(id, Running, Failed, 1), (id, Failed, Retrying, 1)]
    );
    assert!(out.stale.is_empty());
    let row = common::job(store, id).await;
    assert_eq!(
        (row.state(), row.attempt, row.error.as_deref()),
        (Retrying, 1, Some("boom"))
    );
    assert_eq!(row.finished_at, None, "a retrying job is not finished");
    let wait = run_at_in(store, id).await;
    assert!(
        (0.5..=1.5).contains(&wait),
        "default base delay 1 s, got {wait}"
    );

    let evs = store.job_events(id, 0, 100).await.unwrap();
    let tail: Vec<_> = evs[3..]
        .iter()
        .map(|e| (e.from_state.as_deref(), e.to_state.as_str(), e.attempt))
        .collect();
    assert_eq!(
        tail,
        vec![
            (Some("running"), "failed", 1),
            (Some("failed"), "retrying", 1)
        ]
    );
    assert_eq!(evs[3].detail, Some(json!({"error": "boom"})));
    assert!(evs[4]
        .detail
        .as_ref()
        .and_then(|d| d.get("run_at"))
        .is_some());

    // Not due yet.
    assert!(store
        .claim_for_dispatch(10, 10_000)
        .await
        .unwrap()
        .is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn fatal_and_exhausted_failures_stay_failed() {
    let db = TestDb::new().await;
    let store = &db.store;
    let fatal = start(store, spec("default"), WORKER).await;
    let out = apply(store, WORKER, &[failed(fatal, RetryDecision::Fatal)]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![(fatal.job_id, Running, Failed, 1)]
    );
    let row = common::job(store, fatal.job_id).await;
    assert_eq!(
        (row.state(), row.attempt, row.error.as_deref()),
        (Failed, 1, Some("boom"))
    );
    assert!(row.finished_at.is_some());

    let once = JobSpec {
        retry: RetrySpec {
            max_attempts: Some(1),
            ..RetrySpec::default()
        },
        ..spec("default")
    };
    let last = start(store, once, WORKER).await;
    let out = apply(store, WORKER, &[failed(last, RetryDecision::Retryable)]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![(last.job_id, Running, Failed, 1)]
    );
    assert_eq!(state(store, last.job_id).await, Failed);

    // A duplicate failure report is stale.
    let out = apply(store, WORKER, &[failed(last, RetryDecision::Retryable)]).await;
    assert!(out.transitions.is_empty());
    assert_eq!(out.stale, vec!["failed"]);
    assert!(store
        .claim_for_dispatch(10, 10_000)
        .await
        .unwrap()
        .is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn worker_timeout_and_retry_after() {
    let db = TestDb::new().await;
    let store = &db.store;
    let slow = start(store, spec("default"), WORKER).await;
    let out = apply(store, WORKER, &[timed_out(slow)]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![
            (slow.job_id, Running, Timeout, 1),
            (slow.job_id, Timeout, Retrying, 1)
        ]
    );
    let row = common::job(store, slow.job_id).await;
    assert_eq!(
        (row.state(), row.error.as_deref()),
        (Retrying, Some("timed out"))
    );

    let later = start(store, spec("default"), WORKER).await;
    let out = apply(
        store,
        WORKER,
        &[failed(later, RetryDecision::RetryAfter { ms: 5000 })],
    )
    .await;
    assert_eq!(
        moves(&out.transitions),
        vec![
            (later.job_id, Running, Failed, 1),
            (later.job_id, Failed, Retrying, 1)
        ]
    );
    let wait = run_at_in(store, later.job_id).await;
    assert!((4.5..=5.5).contains(&wait), "retry_after 5 s, got {wait}");
    db.cleanup().await;
}

#[tokio::test]
async fn reports_after_cancel_are_stale() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = start(store, spec("default"), WORKER).await;
    store.cancel_job(job.job_id, "op").await.unwrap();
    let before = events(store, job.job_id).await;

    let out = apply(
        store,
        WORKER,
        &[
            progress(job, Some(99.0), None, None),
            completed(job, json!(1)),
            failed(job, RetryDecision::Retryable),
        ],
    )
    .await;
    assert!(out.transitions.is_empty());
    let mut stale = out.stale.clone();
    stale.sort();
    assert_eq!(stale, vec!["completed", "failed", "progress"]);
    let row = common::job(store, job.job_id).await;
    assert_eq!(
        (row.state(), row.result, row.progress),
        (Cancelled, None, None)
    );
    assert_eq!(events(store, job.job_id).await, before);

    // A cancelled job that was only queued: even a Started is stale.
    let id = submit(store, spec("default")).await;
    let queued = dispatch(store, id).await.task_message().job_ref();
    store.cancel_job(id, "op").await.unwrap();
    let out = apply(
        store,
        WORKER,
        &[started(queued), completed(queued, json!(1))],
    )
    .await;
    assert!(out.transitions.is_empty());
    assert_eq!(out.stale, vec!["started", "completed"]);
    assert_eq!(state(store, id).await, Cancelled);
    db.cleanup().await;
}

#[tokio::test]
async fn long_errors_are_truncated_on_a_char_boundary() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = start(store, spec("default"), WORKER).await;
    let error = "é".repeat(5000); // 10 000 bytes
    let report = Report::Failed {
        job,
        failure: Failure {
            error: error.clone(),
            retry: RetryDecision::Fatal,
            timed_out: false,
        },
    };
    apply(store, WORKER, &[report]).await;
    let stored = common::job(store, job.job_id).await.error.unwrap();
    assert_eq!(stored.len(), 8 * 1024);
    assert!(error.starts_with(&stored));
    db.cleanup().await;
}
