//! Applying worker reports (start, completion, progress): guarded, batched
//! transitions; stale reports are counted and change nothing.

mod common;

use common::*;
use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::{JobRef, RetryDecision};
use warren_core::JobState::*;

#[tokio::test]
async fn started_then_completed() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let job = dispatch(store, id).await.task_message().job_ref();

    let out = apply(store, WORKER, &[started(job)]).await;
    assert_eq!(moves(&out.transitions), vec![(id, Queued, Running, 1)]);
    assert!(out.stale.is_empty());
    assert_eq!(out.transitions[0].queue, "default");
    assert_eq!(out.transitions[0].task_type, "echo");
    let row = common::job(store, id).await;
    assert_eq!(
        (row.state(), row.attempt, row.worker_id.as_deref()),
        (Running, 1, Some(WORKER))
    );
    assert!(row.started_at.is_some() && row.finished_at.is_none());

    // A duplicate Started is stale.
    let out = apply(store, WORKER, &[started(job)]).await;
    assert!(out.transitions.is_empty());
    assert_eq!(out.stale, vec!["started"]);

    let out = apply(store, WORKER, &[completed(job, json!({"answer": 42}))]).await;
    assert_eq!(moves(&out.transitions), vec![(id, Running, Completed, 1)]);
    assert!(out.stale.is_empty());
    assert!(!out.step_ended, "no workflow to wake for a plain job");
    let row = common::job(store, id).await;
    assert_eq!(row.state(), Completed);
    assert_eq!(row.result, Some(json!({"answer": 42})));
    assert_eq!(row.progress, Some(100.0));
    assert!(row.finished_at.is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn duplicate_started_in_one_batch_is_stale() {
    // A redelivered Started batched with the original is a duplicate like any
    // other: counted stale once, applied once.
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let job = dispatch(store, id).await.task_message().job_ref();
    let out = apply(store, WORKER, &[started(job), started(job)]).await;
    assert_eq!(moves(&out.transitions), vec![(id, Queued, Running, 1)]);
    assert_eq!(out.stale, vec!["started"]);

    let id = submit(store, spec("default")).await;
    let job = dispatch(store, id).await.task_message().job_ref();
    let out = apply(
        store,
        WORKER,
        &[started(job), started(job), completed(job, json!(1))],
    )
    .await;
    assert_eq!(
        moves(&out.transitions),
        vec![(id, Queued, Running, 1), (id, Running, Completed, 1)]
    );
    assert_eq!(out.stale, vec!["started"]);
    assert_eq!(events(store, id).await.len(), 4);
    db.cleanup().await;
}

#[tokio::test]
async fn duplicate_completions_are_stale() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = start(store, spec("default"), WORKER).await;
    let id = job.job_id;

    let result = json!({"n": 1});
    let out = apply(
        store,
        WORKER,
        &[
            completed(job, result.clone()),
            completed(job, result.clone()),
        ],
    )
    .await;
    assert_eq!(moves(&out.transitions), vec![(id, Running, Completed, 1)]);
    assert_eq!(out.stale, vec!["completed"]);
    let events_after = events(store, id).await;
    assert_eq!(events_after.len(), 4);

    let out = apply(store, WORKER, &[completed(job, json!({"n": 2}))]).await;
    assert!(out.transitions.is_empty());
    assert_eq!(out.stale, vec!["completed"]);
    let row = common::job(store, id).await;
    assert_eq!((row.state(), row.result), (Completed, Some(result)));
    assert_eq!(events(store, id).await, events_after);
    db.cleanup().await;
}

#[tokio::test]
async fn coalesced_completion_starts_and_completes() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let job = dispatch(store, id).await.task_message().job_ref();

    let out = apply(store, WORKER, &[completed(job, json!("done"))]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![(id, Queued, Running, 1), (id, Running, Completed, 1)]
    );
    assert!(out.stale.is_empty());
    let row = common::job(store, id).await;
    assert_eq!(
        (row.state(), row.worker_id.as_deref(), row.result),
        (Completed, Some(WORKER), Some(json!("done")))
    );
    assert_eq!(
        events(store, id).await,
        vec![
            ev(None, Pending, 0, None),
            ev(Some(Pending), Queued, 1, None),
            ev(Some(Queued), Running, 1, Some(WORKER)),
            ev(Some(Running), Completed, 1, Some(WORKER)),
        ]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn wrong_lease_or_older_attempt_is_stale() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let job = dispatch(store, id).await.task_message().job_ref();

    let forged = JobRef {
        lease: Uuid::new_v4(),
        ..job
    };
    let out = apply(
        store,
        WORKER,
        &[
            started(forged),
            completed(forged, json!(1)),
            progress(forged, Some(5.0), None, None),
        ],
    )
    .await;
    assert!(out.transitions.is_empty());
    let mut stale = out.stale.clone();
    stale.sort();
    assert_eq!(stale, vec!["completed", "progress", "started"]);
    assert_eq!(state(store, id).await, Queued);
    assert_eq!(events(store, id).await.len(), 2);

    // Attempt 1 fails and is retried as attempt 2.
    apply(store, WORKER, &[started(job)]).await;
    let out = apply(store, WORKER, &[failed(job, RetryDecision::Retryable)]).await;
    assert_eq!(
        moves(&out.transitions),
        vec![(id, Running, Failed, 1), (id, Failed, Retrying, 1)]
    );
    sqlx::query("UPDATE jobs SET run_at = now() WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
    let second = dispatch(store, id).await;
    assert_eq!(second.from_state, "retrying");
    let second = second.task_message().job_ref();
    assert_eq!(second.attempt, 2);

    // Reports of attempt 1, or of attempt 1 with the new lease, are stale.
    let old_attempt_new_lease = JobRef {
        attempt: 1,
        ..second
    };
    let out = apply(
        store,
        WORKER,
        &[
            started(job),
            started(old_attempt_new_lease),
            completed(job, json!(1)),
            failed(old_attempt_new_lease, RetryDecision::Fatal),
        ],
    )
    .await;
    assert!(out.transitions.is_empty());
    let mut stale = out.stale.clone();
    stale.sort();
    assert_eq!(stale, vec!["completed", "failed", "started", "started"]);
    let row = common::job(store, id).await;
    assert_eq!((row.state(), row.attempt), (Queued, 2));

    let out = apply(store, WORKER, &[started(second)]).await;
    assert_eq!(moves(&out.transitions), vec![(id, Queued, Running, 2)]);
    db.cleanup().await;
}

#[tokio::test]
async fn progress_merges_within_a_batch() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = start(store, spec("default"), WORKER).await;
    let id = job.job_id;

    let out = apply(
        store,
        WORKER,
        &[
            progress(
                job,
                Some(10.0),
                Some("download"),
                Some(json!({"offset": 1})),
            ),
            progress(job, Some(50.0), None, None),
            progress(job, None, Some("upload"), None),
        ],
    )
    .await;
    assert!(out.transitions.is_empty() && out.stale.is_empty());
    let row = common::job(store, id).await;
    assert_eq!(
        (row.progress, row.stage.as_deref(), row.checkpoint),
        (Some(50.0), Some("upload"), Some(json!({"offset": 1})))
    );

    // A later batch keeps the fields it does not mention.
    let out = apply(
        store,
        WORKER,
        &[progress(job, None, None, Some(json!({"offset": 2})))],
    )
    .await;
    assert!(out.stale.is_empty());
    let row = common::job(store, id).await;
    assert_eq!(row.state(), Running);
    assert_eq!(
        (row.progress, row.stage.as_deref(), row.checkpoint),
        (Some(50.0), Some("upload"), Some(json!({"offset": 2})))
    );
    assert_eq!(
        events(store, id).await.len(),
        3,
        "progress is not a transition"
    );

    // Progress for a still-queued attempt (its worker coalesces Started into
    // the final report) is kept when the lease matches, and is stale otherwise.
    let queued = submit(store, spec("default")).await;
    let queued = dispatch(store, queued).await.task_message().job_ref();
    let out = apply(store, WORKER, &[progress(queued, Some(1.0), None, None)]).await;
    assert!(out.stale.is_empty() && out.transitions.is_empty());
    let row = common::job(store, queued.job_id).await;
    assert_eq!((row.state(), row.progress), (Queued, Some(1.0)));
    let impostor = JobRef {
        lease: uuid::Uuid::new_v4(),
        ..queued
    };
    let out = apply(store, WORKER, &[progress(impostor, Some(9.0), None, None)]).await;
    assert_eq!(out.stale, vec!["progress"]);
    assert_eq!(common::job(store, queued.job_id).await.progress, Some(1.0));
    db.cleanup().await;
}
