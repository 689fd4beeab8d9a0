//! The sweeper's rescues (lost heartbeats, deadlines, lost dispatches) and
//! heartbeat reconciliation. Clocks are moved back with SQL, never slept on.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::{Heartbeat, JobRef, JobSpec};
use warren_core::JobState::*;
use warren_core::RetrySpec;
use warren_store::Store;

const OTHER: &str = "host-b-0002";

fn heartbeat(running: &[JobRef]) -> Heartbeat {
    Heartbeat {
        queues: vec!["default".into()],
        concurrency: 4,
        running: running.to_vec(),
    }
}

async fn beat(store: &Store, worker: &str, running: &[JobRef]) -> Vec<(Uuid, u32)> {
    store
        .record_heartbeat(worker, &heartbeat(running))
        .await
        .expect("record_heartbeat")
        .orphaned
}

async fn age_heartbeat(db: &TestDb, worker: &str) {
    let done = sqlx::query(
        "UPDATE workers SET last_heartbeat_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(worker)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

#[tokio::test]
async fn lost_heartbeat_times_out_and_retries() {
    let db = TestDb::new().await;
    let store = &db.store;
    let lost = start(store, spec("default"), WORKER).await;
    let alive = start(store, spec("default"), OTHER).await;
    assert!(beat(store, WORKER, &[lost]).await.is_empty());
    assert!(beat(store, OTHER, &[alive]).await.is_empty());

    // Fresh heartbeats: nothing to rescue.
    let out = store
        .rescue_lost_heartbeats(Duration::from_secs(20), 100)
        .await
        .unwrap();
    assert_eq!(
        (out.rescued, out.transitions.len(), out.cancels.len()),
        (0, 0, 0)
    );
    assert_eq!(state(store, lost.job_id).await, Running);

    age_heartbeat(&db, WORKER).await;
    let out = store
        .rescue_lost_heartbeats(Duration::from_secs(20), 100)
        .await
        .unwrap();
    assert_eq!(out.rescued, 1);
    assert_eq!(out.cancels, vec![(WORKER.to_owned(), lost.job_id, 1)]);
    assert_eq!(
        moves(&out.transitions),
        vec![
            (lost.job_id, Running, Timeout, 1),
            (lost.job_id, Timeout, Retrying, 1)
        ]
    );
    let row = job(store, lost.job_id).await;
    assert_eq!(
        (row.state(), row.attempt, row.error.as_deref()),
        (Retrying, 1, Some("worker heartbeat lost"))
    );
    let wait = run_at_in(store, lost.job_id).await;
    assert!(
        (0.5..=1.5).contains(&wait),
        "default base delay 1 s, got {wait}"
    );
    let evs = store.job_events(lost.job_id, 0, 100).await.unwrap();
    let tail: Vec<_> = evs[3..]
        .iter()
        .map(|e| (e.from_state.as_deref(), e.to_state.as_str(), e.attempt))
        .collect();
    assert_eq!(
        tail,
        vec![
            (Some("running"), "timeout", 1),
            (Some("timeout"), "retrying", 1)
        ]
    );
    assert_eq!(
        evs[3].detail,
        Some(json!({"error": "worker heartbeat lost"}))
    );

    // The other worker's job is untouched, and a second sweep finds nothing.
    assert_eq!(state(store, alive.job_id).await, Running);
    let out = store
        .rescue_lost_heartbeats(Duration::from_secs(20), 100)
        .await
        .unwrap();
    assert_eq!((out.rescued, out.transitions.len()), (0, 0));

    // The old attempt's late result is stale; the worker learns it is orphaned.
    let late = apply(store, WORKER, &[completed(lost, json!(1))]).await;
    assert_eq!(late.stale, vec!["completed"]);
    assert_eq!(beat(store, WORKER, &[lost]).await, vec![(lost.job_id, 1)]);
    db.cleanup().await;
}

#[tokio::test]
async fn exhausted_job_with_lost_heartbeat_stays_timed_out() {
    let db = TestDb::new().await;
    let store = &db.store;
    let once = JobSpec {
        retry: RetrySpec {
            max_attempts: Some(1),
            ..RetrySpec::default()
        },
        ..spec("default")
    };
    let job = start(store, once, WORKER).await;
    beat(store, WORKER, &[job]).await;
    age_heartbeat(&db, WORKER).await;
    let out = store
        .rescue_lost_heartbeats(Duration::from_secs(20), 100)
        .await
        .unwrap();
    assert_eq!(
        moves(&out.transitions),
        vec![(job.job_id, Running, Timeout, 1)]
    );
    let row = common::job(store, job.job_id).await;
    assert_eq!(row.state(), Timeout);
    assert!(row.finished_at.is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn worker_that_never_sent_a_heartbeat_is_judged_by_start_time() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = start(store, spec("default"), OTHER).await;
    let out = store
        .rescue_lost_heartbeats(Duration::from_secs(20), 100)
        .await
        .unwrap();
    assert_eq!(out.rescued, 0, "just started");
    sqlx::query("UPDATE jobs SET started_at = now() - interval '1 minute' WHERE id = $1")
        .bind(job.job_id)
        .execute(db.pool())
        .await
        .unwrap();
    let out = store
        .rescue_lost_heartbeats(Duration::from_secs(20), 100)
        .await
        .unwrap();
    assert_eq!(out.rescued, 1);
    assert_eq!(out.cancels, vec![(OTHER.to_owned(), job.job_id, 1)]);
    assert_eq!(
        moves(&out.transitions),
        vec![
            (job.job_id, Running, Timeout, 1),
            (job.job_id, Timeout, Retrying, 1)
        ]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn expired_deadline_times_out() {
    let db = TestDb::new().await;
    let store = &db.store;
    let once = RetrySpec {
        max_attempts: Some(1),
        ..RetrySpec::default()
    };
    let short = start(
        store,
        JobSpec {
            timeout_ms: Some(1),
            retry: once,
            ..spec("default")
        },
        WORKER,
    )
    .await;
    let long = start(
        store,
        JobSpec {
            timeout_ms: Some(3_600_000),
            ..spec("default")
        },
        WORKER,
    )
    .await;
    let unbounded = start(store, spec("default"), WORKER).await;
    sqlx::query("UPDATE jobs SET started_at = now() - interval '10 seconds'")
        .execute(db.pool())
        .await
        .unwrap();

    let out = store
        .expire_deadlines(Duration::from_secs(1), 100)
        .await
        .unwrap();
    assert_eq!(out.rescued, 1);
    assert_eq!(
        moves(&out.transitions),
        vec![(short.job_id, Running, Timeout, 1)]
    );
    assert_eq!(out.cancels, vec![(WORKER.to_owned(), short.job_id, 1)]);
    let row = job(store, short.job_id).await;
    assert_eq!(
        (row.state(), row.error.as_deref()),
        (Timeout, Some("execution deadline exceeded"))
    );
    assert_eq!(state(store, long.job_id).await, Running);
    assert_eq!(state(store, unbounded.job_id).await, Running);

    // Grace counts: a generous one spares a job just past its timeout.
    let retried = start(
        store,
        JobSpec {
            timeout_ms: Some(1),
            ..spec("default")
        },
        WORKER,
    )
    .await;
    sqlx::query("UPDATE jobs SET started_at = now() - interval '10 seconds' WHERE id = $1")
        .bind(retried.job_id)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        store
            .expire_deadlines(Duration::from_secs(60), 100)
            .await
            .unwrap()
            .rescued,
        0
    );
    let out = store
        .expire_deadlines(Duration::from_secs(1), 100)
        .await
        .unwrap();
    assert_eq!(
        moves(&out.transitions),
        vec![
            (retried.job_id, Running, Timeout, 1),
            (retried.job_id, Timeout, Retrying, 1)
        ]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn lost_dispatch_is_requeued() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let first = dispatch(store, id).await;
    let fresh = submit(store, spec("default")).await;
    dispatch(store, fresh).await;
    sqlx::query("UPDATE jobs SET queued_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();

    assert_eq!(
        store
            .queues_with_stale_dispatches(Duration::from_secs(60))
            .await
            .unwrap(),
        vec!["default".to_string()]
    );
    let other_queue = store
        .requeue_lost_dispatches(Duration::from_secs(60), &["elsewhere".to_string()], 100)
        .await
        .unwrap()
        .requeued;
    assert_eq!(other_queue.rescued, 0, "only the named queues are touched");
    let out = store
        .requeue_lost_dispatches(Duration::from_secs(60), &["default".to_string()], 100)
        .await
        .unwrap()
        .requeued;
    assert_eq!(out.rescued, 1);
    assert!(out.cancels.is_empty());
    assert_eq!(moves(&out.transitions), vec![(id, Queued, Pending, 0)]);
    let row = job(store, id).await;
    assert_eq!(
        (row.state(), row.attempt, row.queued_at),
        (Pending, 0, None)
    );
    assert_eq!(lease(store, id).await, None);
    assert_eq!(state(store, fresh).await, Queued);
    let evs = store.job_events(id, 0, 100).await.unwrap();
    assert_eq!(
        (
            evs[2].from_state.as_deref(),
            evs[2].to_state.as_str(),
            evs[2].attempt
        ),
        (Some("queued"), "pending", 0)
    );
    assert_eq!(evs[2].detail, Some(json!({"reason": "dispatch_timeout"})));

    let second = dispatch(store, id).await;
    assert_eq!((second.attempt, second.from_state.as_str()), (1, "pending"));
    assert_ne!(second.lease, first.lease);

    // A Started for the lost message's lease is stale; the new one is not.
    let old = first.task_message().job_ref();
    let out = apply(store, WORKER, &[started(old)]).await;
    assert_eq!(out.stale, vec!["started"]);
    let out = apply(store, WORKER, &[started(second.task_message().job_ref())]).await;
    assert_eq!(moves(&out.transitions), vec![(id, Queued, Running, 1)]);
    db.cleanup().await;
}

#[tokio::test]
async fn heartbeat_reports_orphaned_attempts() {
    let db = TestDb::new().await;
    let store = &db.store;
    let keep = start(store, spec("default"), WORKER).await;
    let cancelled = start(store, spec("default"), WORKER).await;
    let id = submit(store, spec("default")).await;
    let queued = dispatch(store, id).await.task_message().job_ref();
    store.cancel_job(cancelled.job_id, "op").await.unwrap();

    let orphaned = beat(store, WORKER, &[keep, cancelled, queued]).await;
    assert_eq!(orphaned, vec![(cancelled.job_id, 1)]);

    // An attempt the database never issued (unknown lease) is orphaned too.
    let forged = JobRef {
        lease: Uuid::new_v4(),
        ..keep
    };
    assert_eq!(beat(store, WORKER, &[forged]).await, vec![(keep.job_id, 1)]);

    let workers = store.list_workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    let w = &workers[0];
    assert_eq!(
        (w.id.as_str(), w.queues.clone(), w.concurrency, w.running),
        (WORKER, vec!["default".to_owned()], 4, 1)
    );
    assert_eq!(
        store
            .count_live_workers(Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    assert!(beat(store, WORKER, &[]).await.is_empty());
    db.cleanup().await;
}

/// Dispatches job `id`, ages its dispatch past the timeout and sweeps it.
async fn lose_dispatch(db: &TestDb, id: Uuid) -> warren_store::LostDispatches {
    dispatch(&db.store, id).await;
    sqlx::query("UPDATE jobs SET queued_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
    db.store
        .requeue_lost_dispatches(Duration::from_secs(60), &["default".to_string()], 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_attempt_whose_message_is_lost_three_times_fails_as_undeliverable() {
    let db = TestDb::new().await;
    let store = &db.store;
    let twice = JobSpec {
        retry: RetrySpec {
            max_attempts: Some(2),
            base_delay_ms: Some(0),
            jitter: Some(0.0),
            ..RetrySpec::default()
        },
        ..spec("default")
    };
    let id = submit(store, twice).await;
    for attempt in 1..=2 {
        for _ in 1..warren_store::MAX_LOST_DISPATCHES {
            let out = lose_dispatch(&db, id).await;
            assert_eq!(
                moves(&out.requeued.transitions),
                vec![(id, Queued, Pending, attempt - 1)],
                "lost, dispatched again with the same attempt"
            );
            assert_eq!(out.undeliverable.rescued, 0);
        }
        let out = lose_dispatch(&db, id).await;
        assert_eq!(out.requeued.rescued, 0);
        assert_eq!(out.undeliverable.rescued, 1);
        let mut expected = vec![(id, Queued, Failed, attempt)];
        if attempt == 1 {
            expected.push((id, Failed, Retrying, 1));
        }
        assert_eq!(moves(&out.undeliverable.transitions), expected);
        let row = job(store, id).await;
        assert_eq!(
            row.error.as_deref(),
            Some(warren_store::UNDELIVERABLE_ERROR)
        );
        assert_eq!(lease(store, id).await, None, "a late report is stale");
    }
    let row = job(store, id).await;
    assert_eq!(
        (row.state(), row.attempt),
        (Failed, 2),
        "at rest, attempts used up"
    );
    let evs = store.job_events(id, 0, 100).await.unwrap();
    let undeliverable = evs
        .iter()
        .filter(|e| {
            e.detail.as_ref().and_then(|d| d.get("reason")) == Some(&json!("undeliverable"))
        })
        .count();
    assert_eq!(undeliverable, 2, "one undeliverable failure per attempt");
    db.cleanup().await;
}
