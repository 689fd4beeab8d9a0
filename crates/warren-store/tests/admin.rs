//! Operator actions: cancel, retry, approve.

mod common;

use common::*;
use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::{JobSpec, RetryDecision};
use warren_core::JobState::{self, *};
use warren_core::{IllegalTransition, RetrySpec};
use warren_store::{Store, StoreError};

/// Cancels `id` and checks the move, its event and the finish time.
async fn cancel_from(store: &Store, id: Uuid, from: JobState, running_on: Option<&str>) {
    let moved = store
        .cancel_job(id, "alice")
        .await
        .unwrap_or_else(|e| panic!("cancel from {from}: {e}"));
    assert_eq!(
        (
            moved.transition.job_id,
            moved.transition.from,
            moved.transition.to
        ),
        (id, from, Cancelled)
    );
    assert_eq!(moved.running_on.as_deref(), running_on);
    let row = job(store, id).await;
    assert_eq!(row.state(), Cancelled);
    assert!(row.finished_at.is_some());
    let last = store.job_events(id, 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.from_state.as_deref(), last.to_state.as_str()),
        (Some(from.as_str()), "cancelled")
    );
    assert_eq!(last.detail, Some(json!({"by": "alice"})));
}

#[tokio::test]
async fn cancel_from_every_live_state() {
    let db = TestDb::new().await;
    let store = &db.store;

    let id = submit(store, spec("default")).await;
    cancel_from(store, id, Pending, None).await;

    let id = submit(store, spec("default")).await;
    dispatch(store, id).await;
    cancel_from(store, id, Queued, None).await;

    let running = start(store, spec("default"), WORKER).await;
    cancel_from(store, running.job_id, Running, Some(WORKER)).await;
    assert_eq!(job(store, running.job_id).await.attempt, 1);

    let retrying = start(store, spec("default"), WORKER).await;
    apply(store, WORKER, &[failed(retrying, RetryDecision::Retryable)]).await;
    assert_eq!(state(store, retrying.job_id).await, Retrying);
    cancel_from(store, retrying.job_id, Retrying, None).await;

    let gated = submit(
        store,
        JobSpec {
            requires_approval: true,
            ..spec("default")
        },
    )
    .await;
    cancel_from(store, gated, AwaitingApproval, None).await;

    // Workflow steps start blocked (raw insert: the store has no workflow API yet).
    let blocked = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms, retry_factor, retry_max_ms, retry_jitter)
         VALUES ($1, 'default', 'echo', 'blocked', 1, 0, 1, 0, 0)",
    )
    .bind(blocked)
    .execute(db.pool())
    .await
    .unwrap();
    cancel_from(store, blocked, Blocked, None).await;

    // Cancelling twice, or a completed job, is refused with both states named.
    let err = store.cancel_job(gated, "alice").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition(IllegalTransition {
                from: Cancelled,
                to: Cancelled
            })
        ),
        "{err:?}"
    );
    let done = start(store, spec("default"), WORKER).await;
    apply(store, WORKER, &[completed(done, json!(1))]).await;
    let before = events(store, done.job_id).await;
    let err = store.cancel_job(done.job_id, "alice").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition(IllegalTransition {
                from: Completed,
                to: Cancelled
            })
        ),
        "{err:?}"
    );
    assert_eq!(state(store, done.job_id).await, Completed);
    assert_eq!(events(store, done.job_id).await, before);

    let unknown = Uuid::now_v7();
    assert!(
        matches!(store.cancel_job(unknown, "alice").await, Err(StoreError::NotFound(x)) if x == unknown)
    );
    db.cleanup().await;
}

#[tokio::test]
async fn retry_redrives_a_dead_job() {
    let db = TestDb::new().await;
    let store = &db.store;
    let once = JobSpec {
        retry: RetrySpec {
            max_attempts: Some(1),
            ..RetrySpec::default()
        },
        ..spec("default")
    };
    let dead = start(store, once, WORKER).await;
    apply(store, WORKER, &[failed(dead, RetryDecision::Retryable)]).await;
    let row = job(store, dead.job_id).await;
    assert_eq!((row.state(), row.attempt, row.max_attempts), (Failed, 1, 1));

    let moved = store.retry_job(dead.job_id, "bob").await.unwrap();
    assert_eq!(
        (
            moved.transition.from,
            moved.transition.to,
            moved.transition.attempt
        ),
        (Failed, Retrying, 1)
    );
    assert_eq!(moved.running_on, None);
    let row = job(store, dead.job_id).await;
    assert_eq!(
        (row.state(), row.attempt, row.max_attempts, row.finished_at),
        (Retrying, 1, 2, None)
    );
    assert!(run_at_in(store, dead.job_id).await <= 0.0, "due now");
    let last = store
        .job_events(dead.job_id, 0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        last.detail.as_ref().and_then(|d| d.get("by")),
        Some(&json!("bob"))
    );

    // The second attempt runs; if it fails too the job is dead again.
    let second = dispatch(store, dead.job_id).await;
    assert_eq!(
        (
            second.attempt,
            second.max_attempts,
            second.from_state.as_str()
        ),
        (2, 2, "retrying")
    );
    let second = second.task_message().job_ref();
    let out = apply(store, WORKER, &[failed(second, RetryDecision::Retryable)]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![
            (dead.job_id, Queued, Running, 2),
            (dead.job_id, Running, Failed, 2)
        ]
    );

    // A dead timed-out job can be retried as well.
    let once = JobSpec {
        retry: RetrySpec {
            max_attempts: Some(1),
            ..RetrySpec::default()
        },
        ..spec("default")
    };
    let slow = start(store, once, WORKER).await;
    apply(store, WORKER, &[timed_out(slow)]).await;
    assert_eq!(state(store, slow.job_id).await, Timeout);
    let moved = store.retry_job(slow.job_id, "bob").await.unwrap();
    assert_eq!(
        (moved.transition.from, moved.transition.to),
        (Timeout, Retrying)
    );

    let pending = submit(store, spec("default")).await;
    let err = store.retry_job(pending, "bob").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition(IllegalTransition {
                from: Pending,
                to: Retrying
            })
        ),
        "{err:?}"
    );
    assert_eq!(state(store, pending).await, Pending);
    db.cleanup().await;
}

#[tokio::test]
async fn approve_releases_a_gated_job() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(
        store,
        JobSpec {
            requires_approval: true,
            ..spec("default")
        },
    )
    .await;
    assert!(store
        .claim_for_dispatch(10, 10_000)
        .await
        .unwrap()
        .is_empty());

    let moved = store.approve_job(id, "carol").await.unwrap();
    assert_eq!(
        (
            moved.transition.from,
            moved.transition.to,
            moved.transition.attempt
        ),
        (AwaitingApproval, Pending, 0)
    );
    assert_eq!(state(store, id).await, Pending);
    let last = store.job_events(id, 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.from_state.as_deref(), last.to_state.as_str()),
        (Some("awaiting_approval"), "pending")
    );
    assert_eq!(last.detail, Some(json!({"by": "carol"})));

    let err = store.approve_job(id, "carol").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition(IllegalTransition {
                from: Pending,
                to: Pending
            })
        ),
        "{err:?}"
    );
    assert_eq!(dispatch(store, id).await.attempt, 1);
    db.cleanup().await;
}

#[tokio::test]
async fn notes_say_who_moved_a_job_and_why() {
    let db = TestDb::new().await;
    let store = &db.store;
    let mut gated = spec("default");
    gated.requires_approval = true;
    let approved = submit(store, gated.clone()).await;
    let mut other = spec("default");
    other.requires_approval = true;
    let cancelled = submit(store, other).await;

    store
        .approve_job(
            approved,
            warren_store::MoveNote {
                by: "alice".into(),
                comment: Some("looks right".into()),
                reason: None,
            },
        )
        .await
        .unwrap();
    store
        .cancel_job(
            cancelled,
            warren_store::MoveNote {
                by: "bob".into(),
                comment: None,
                reason: Some("duplicate".into()),
            },
        )
        .await
        .unwrap();
    let last = |id| async move { store.job_events(id, 0, 100).await.unwrap().pop().unwrap() };
    assert_eq!(
        last(approved).await.detail,
        Some(json!({"by": "alice", "comment": "looks right"}))
    );
    assert_eq!(
        last(cancelled).await.detail,
        Some(json!({"by": "bob", "reason": "duplicate"}))
    );
    let note: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT transition_note FROM jobs WHERE id = $1")
            .bind(approved)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(note, None, "the note lives in the event only");
    db.cleanup().await;
}
