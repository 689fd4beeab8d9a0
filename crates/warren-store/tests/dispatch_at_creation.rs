//! Dispatch at creation (`Store::insert_and_dispatch`): which jobs intake
//! may create directly as `queued`, what their rows and histories look like,
//! and that the schema admits no other way to create a job past `pending`.

mod common;

use common::*;
use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState::*;
use warren_store::{Inserted, QueueUpdate, Store};

const WINDOW: i64 = 10;
/// No job ids.
const NONE: Vec<Uuid> = Vec::new();

/// Inserts `specs` with the test window; returns (created, dispatched) ids, sorted.
async fn intake(store: &Store, specs: &[JobSpec]) -> (Vec<Uuid>, Vec<Uuid>) {
    let Inserted {
        mut created,
        dispatched,
    } = store
        .insert_and_dispatch(specs, WINDOW)
        .await
        .expect("insert_and_dispatch");
    let mut dispatched: Vec<Uuid> = dispatched.iter().map(|j| j.id).collect();
    created.sort();
    dispatched.sort();
    (created, dispatched)
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// Registers `queue` (dispatch at creation only serves known queues).
async fn known(store: &Store, queue: &str) {
    store
        .update_queue(queue, &QueueUpdate::default())
        .await
        .expect("update_queue");
}

#[tokio::test]
async fn a_job_dispatched_at_creation_looks_claimed_and_runs_to_completion() {
    let db = TestDb::new().await;
    let store = &db.store;
    known(store, "default").await;
    let a = JobSpec {
        timeout_ms: Some(9_000),
        ..spec("default")
    };
    let Inserted {
        created,
        dispatched,
    } = store
        .insert_and_dispatch(std::slice::from_ref(&a), WINDOW)
        .await
        .unwrap();
    assert_eq!(created, vec![a.id]);
    let [job_msg] = dispatched.as_slice() else {
        panic!("one job dispatched, got {dispatched:?}");
    };
    let message = job_msg.task_message();
    assert_eq!(
        (message.job_id, message.attempt, message.max_attempts),
        (a.id, 1, 5)
    );
    assert_eq!(
        (
            message.task_type.as_str(),
            &message.payload,
            message.timeout_ms
        ),
        ("echo", &json!({"msg": "hi"}), Some(9_000))
    );
    assert_eq!(job_msg.transition().from, Pending);

    let row = job(store, a.id).await;
    assert_eq!((row.state(), row.attempt), (Queued, 1));
    assert_eq!(lease(store, a.id).await, Some(message.lease));
    assert!(row.queued_at.is_some(), "queued_at is set");

    // The history reads as if the dispatcher had claimed it.
    let job_ref = message.job_ref();
    apply(store, WORKER, &[started(job_ref)]).await;
    apply(store, WORKER, &[completed(job_ref, json!(1))]).await;
    assert_eq!(
        events(store, a.id).await,
        vec![
            ev(None, Pending, 0, None),
            ev(Some(Pending), Queued, 1, None),
            ev(Some(Queued), Running, 1, Some(WORKER)),
            ev(Some(Running), Completed, 1, Some(WORKER)),
        ]
    );

    // The dispatcher finds nothing more to claim.
    assert!(store.claim_for_dispatch(100, 100).await.unwrap().is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn only_due_jobs_of_an_open_queue_with_room_and_no_waiting_backlog_are_dispatched() {
    let db = TestDb::new().await;
    let store = &db.store;

    // A queue seen for the first time is registered, not dispatched to.
    let first = spec("fresh");
    assert_eq!(
        intake(store, std::slice::from_ref(&first)).await,
        (vec![first.id], vec![])
    );
    assert_eq!(state(store, first.id).await, Pending);
    // Now it is known, but its pending job is due: a newcomer must not overtake it.
    let second = spec("fresh");
    assert_eq!(intake(store, std::slice::from_ref(&second)).await.1, NONE);
    dispatch_all(store, 2).await;
    // No backlog any more: the next one goes straight out.
    let third = spec("fresh");
    assert_eq!(
        intake(store, std::slice::from_ref(&third)).await.1,
        vec![third.id]
    );

    // Delayed and approval-gated jobs wait; the due one beside them goes.
    known(store, "mixed").await;
    let due = spec("mixed");
    let delayed = JobSpec {
        delay_ms: Some(60_000),
        ..spec("mixed")
    };
    let gated = JobSpec {
        requires_approval: true,
        ..spec("mixed")
    };
    let (created, dispatched) = intake(store, &[due.clone(), delayed.clone(), gated.clone()]).await;
    assert_eq!(created, sorted(vec![due.id, delayed.id, gated.id]));
    assert_eq!(dispatched, vec![due.id]);
    assert_eq!(state(store, delayed.id).await, Pending);
    assert_eq!(state(store, gated.id).await, AwaitingApproval);
    // A job waiting for its delay is not a backlog: the next due one goes too.
    let next = JobSpec {
        priority: 3,
        ..spec("mixed")
    };
    assert_eq!(
        intake(store, std::slice::from_ref(&next)).await.1,
        vec![next.id]
    );

    // The window counts what is in flight plus the whole batch.
    known(store, "narrow").await;
    let batch: Vec<JobSpec> = (0..WINDOW - 2).map(|_| spec("narrow")).collect();
    assert_eq!(intake(store, &batch).await.1.len(), batch.len());
    let over: Vec<JobSpec> = (0..3).map(|_| spec("narrow")).collect();
    assert_eq!(intake(store, &over).await.1, NONE, "8 + 3 > 10");
    let in_room: Vec<JobSpec> = (0..2).map(|_| spec("narrow")).collect();
    assert_eq!(
        intake(store, &in_room).await.1,
        NONE,
        "room for 2, but 3 are waiting"
    );

    // A window of 0 (plain insert_jobs) dispatches nothing.
    let plain = spec("default");
    known(store, "default").await;
    insert(store, std::slice::from_ref(&plain)).await;
    assert_eq!(state(store, plain.id).await, Pending);

    // Duplicates are neither created nor dispatched.
    assert_eq!(
        intake(store, std::slice::from_ref(&third)).await,
        (vec![], vec![])
    );
    db.cleanup().await;
}

#[tokio::test]
async fn paused_capped_and_rate_limited_queues_leave_new_jobs_to_the_dispatcher() {
    let db = TestDb::new().await;
    let store = &db.store;
    let updates = [
        (
            "paused",
            QueueUpdate {
                paused: Some(true),
                ..QueueUpdate::default()
            },
        ),
        (
            "capped",
            QueueUpdate {
                max_in_flight: Some(Some(100)),
                ..QueueUpdate::default()
            },
        ),
        (
            "rated",
            QueueUpdate {
                rate_limit: Some(Some(1000.0)),
                ..QueueUpdate::default()
            },
        ),
    ];
    for (queue, update) in &updates {
        store.update_queue(queue, update).await.unwrap();
        let job = spec(queue);
        assert_eq!(
            intake(store, std::slice::from_ref(&job)).await,
            (vec![job.id], vec![]),
            "{queue}"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn an_unconfirmed_dispatch_at_creation_returns_to_pending_like_a_claim() {
    let db = TestDb::new().await;
    let store = &db.store;
    known(store, "default").await;
    let a = spec("default");
    let dispatched = store
        .insert_and_dispatch(std::slice::from_ref(&a), WINDOW)
        .await
        .unwrap()
        .dispatched;
    assert_eq!(
        store.unclaim(&[(a.id, dispatched[0].lease)]).await.unwrap(),
        1
    );
    let row = job(store, a.id).await;
    assert_eq!((row.state(), row.attempt), (Pending, 0));
    assert_eq!(dispatch(store, a.id).await.attempt, 1);
    db.cleanup().await;
}

#[tokio::test]
async fn no_other_statement_may_create_a_job_past_pending() {
    let db = TestDb::new().await;
    let insert_raw = |columns: &str, values: &str| {
        format!(
            "INSERT INTO jobs (id, queue, task_type, max_attempts, retry_base_ms, retry_factor,
                               retry_max_ms, retry_jitter, {columns})
             VALUES (gen_random_uuid(), 'q', 't', 1, 0, 1, 0, 0, {values})"
        )
    };
    for (columns, values, why) in [
        ("state", "'queued'", "queued without the staged move"),
        (
            "state, event_from, attempt",
            "'queued', 'pending', 1",
            "queued without a lease",
        ),
        (
            "state, event_from, attempt, lease, queued_at",
            "'queued', 'pending', 2, gen_random_uuid(), now()",
            "queued at attempt 2",
        ),
        (
            "state, event_from",
            "'pending', 'retrying'",
            "a staged move into pending",
        ),
        ("state", "'running'", "running"),
    ] {
        let err = sqlx::query(&insert_raw(columns, values))
            .execute(db.pool())
            .await
            .expect_err(why);
        let code = err.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("23514"), "{why}: {err}");
    }
    assert_eq!(event_count(&db.store).await, 0);
    db.cleanup().await;
}

/// Claims everything due, asserting that it is `n` jobs.
async fn dispatch_all(store: &Store, n: usize) {
    let claimed = store.claim_for_dispatch(100, 100).await.unwrap();
    assert_eq!(claimed.len(), n);
}
