//! Intake, dispatch (claim order, leases, concurrency, unclaim) and the event
//! log, against a real PostgreSQL (a fresh database per test, see `common`).

mod common;

use std::collections::HashSet;

use chrono::{Duration as TimeDelta, Utc};
use common::*;
use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState::*;

#[tokio::test]
async fn insert_jobs_is_idempotent() {
    let db = TestDb::new().await;
    let store = &db.store;
    let a = JobSpec {
        priority: 7,
        timeout_ms: Some(30_000),
        metadata: json!({"team": "x"}),
        ..spec("default")
    };
    let b = spec("default");
    assert!(store.insert_jobs(&[]).await.unwrap().is_empty());
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(insert(store, &[a.clone(), b.clone()]).await, expected);
    assert_eq!(event_count(store).await, 2);

    let row = job(store, a.id).await;
    assert_eq!(
        (row.state(), row.attempt, row.priority, row.max_attempts),
        (Pending, 0, 7, 5)
    );
    assert_eq!(
        (row.queue.as_str(), row.task_type.as_str()),
        ("default", "echo")
    );
    assert_eq!(row.payload, json!({"msg": "hi"}));
    assert_eq!(row.timeout_ms, Some(30_000));
    assert_eq!(row.metadata, Some(json!({"team": "x"})));
    assert_eq!(job(store, b.id).await.metadata, None);

    // Re-publishing the same ids creates nothing and records nothing.
    assert!(insert(store, &[a.clone(), b.clone()]).await.is_empty());
    assert_eq!(event_count(store).await, 2);

    // Idempotency keys are unique per queue.
    let keyed = |queue: &str| JobSpec {
        idempotency_key: Some("order-42".into()),
        ..spec(queue)
    };
    let first = keyed("q1");
    assert_eq!(
        insert(store, std::slice::from_ref(&first)).await,
        vec![first.id]
    );
    let dup = keyed("q1");
    assert!(insert(store, std::slice::from_ref(&dup)).await.is_empty());
    assert!(matches!(
        store.get_job(dup.id).await,
        Err(warren_store::StoreError::NotFound(_))
    ));
    let other_queue = keyed("q2");
    assert_eq!(
        insert(store, std::slice::from_ref(&other_queue)).await,
        vec![other_queue.id]
    );
    // ... also within one batch.
    let (x, y) = (
        JobSpec {
            idempotency_key: Some("k".into()),
            ..spec("q3")
        },
        JobSpec {
            idempotency_key: Some("k".into()),
            ..spec("q3")
        },
    );
    assert_eq!(insert(store, &[x.clone(), y.clone()]).await, vec![x.id]);
    assert_eq!(event_count(store).await, 5);

    // Approval and delay keep a job from being dispatched.
    let gated = JobSpec {
        requires_approval: true,
        ..spec("default")
    };
    let delayed = JobSpec {
        delay_ms: Some(60_000),
        ..spec("default")
    };
    insert(store, &[gated.clone(), delayed.clone()]).await;
    let row = job(store, gated.id).await;
    assert_eq!(row.state(), AwaitingApproval);
    assert!(row.requires_approval);
    assert_eq!(
        events(store, gated.id).await,
        vec![ev(None, AwaitingApproval, 0, None)]
    );
    assert_eq!(state(store, delayed.id).await, Pending);
    let wait = run_at_in(store, delayed.id).await;
    assert!((59.0..=60.5).contains(&wait), "run_at is {wait}s away");

    // Only the immediately due jobs are claimable.
    let claimed: HashSet<Uuid> = store
        .claim_for_dispatch(100, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let due: HashSet<Uuid> = [a.id, b.id, first.id, other_queue.id, x.id].into();
    assert_eq!(claimed, due);
    assert!(store
        .claim_for_dispatch(100, 10_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(state(store, gated.id).await, AwaitingApproval);
    assert_eq!(state(store, delayed.id).await, Pending);
    db.cleanup().await;
}

#[tokio::test]
async fn claim_order_lease_and_unclaim() {
    let db = TestDb::new().await;
    let store = &db.store;
    let now = Utc::now();
    let at = |secs: i64, priority: i16| JobSpec {
        priority,
        run_at: Some(now - TimeDelta::seconds(secs)),
        ..spec("default")
    };
    let (p0, p5_late, p5_early, p9) = (at(30, 0), at(10, 5), at(20, 5), at(10, 9));
    insert(
        store,
        &[p0.clone(), p5_late.clone(), p5_early.clone(), p9.clone()],
    )
    .await;

    let first = store.claim_for_dispatch(2, 10_000).await.unwrap();
    assert_eq!(
        first.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![p9.id, p5_early.id]
    );
    let rest = store.claim_for_dispatch(10, 10_000).await.unwrap();
    assert_eq!(
        rest.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![p5_late.id, p0.id]
    );

    let mut leases = HashSet::new();
    for d in first.iter().chain(&rest) {
        assert_eq!(
            (d.attempt, d.from_state.as_str(), d.max_attempts),
            (1, "pending", 5)
        );
        assert!(leases.insert(d.lease), "leases are fresh");
        assert_eq!(lease(store, d.id).await, Some(d.lease));
        let row = job(store, d.id).await;
        assert_eq!((row.state(), row.attempt), (Queued, 1));
        assert!(row.queued_at.is_some());
        let t = d.transition();
        assert_eq!((t.from, t.to, t.attempt), (Pending, Queued, 1));
        let msg = d.task_message();
        assert_eq!(
            (msg.job_id, msg.attempt, msg.lease, msg.max_attempts),
            (d.id, 1, d.lease, 5)
        );
        assert_eq!(
            events(store, d.id).await,
            vec![
                ev(None, Pending, 0, None),
                ev(Some(Pending), Queued, 1, None)
            ]
        );
    }

    // Unclaim is guarded by the lease.
    let d = &first[0];
    assert_eq!(
        store
            .still_queued(&[(d.id, d.lease), (d.id, Uuid::new_v4())])
            .await
            .unwrap(),
        vec![(d.id, d.lease)],
        "still queued under the lease it was dispatched with, not another"
    );
    assert_eq!(store.unclaim(&[(d.id, Uuid::new_v4())]).await.unwrap(), 0);
    assert_eq!(
        (state(store, d.id).await, job(store, d.id).await.attempt),
        (Queued, 1)
    );
    assert_eq!(store.unclaim(&[(d.id, d.lease)]).await.unwrap(), 1);
    let row = job(store, d.id).await;
    assert_eq!(
        (row.state(), row.attempt, row.queued_at),
        (Pending, 0, None)
    );
    assert_eq!(lease(store, d.id).await, None);
    assert!(store
        .still_queued(&[(d.id, d.lease)])
        .await
        .unwrap()
        .is_empty());
    let evs = store.job_events(d.id, 0, 10).await.unwrap();
    assert_eq!(evs.len(), 3);
    assert_eq!(
        (
            evs[2].from_state.as_deref(),
            evs[2].to_state.as_str(),
            evs[2].attempt
        ),
        (Some("queued"), "pending", 0)
    );
    assert_eq!(evs[2].detail, Some(json!({"reason": "publish_failed"})));
    // A second unclaim with the same lease changes nothing.
    assert_eq!(store.unclaim(&[(d.id, d.lease)]).await.unwrap(), 0);

    let again = dispatch(store, d.id).await;
    assert_eq!(again.attempt, 1);
    assert_ne!(again.lease, d.lease);
    db.cleanup().await;
}

#[tokio::test]
async fn a_large_claim_is_returned_in_dispatch_order() {
    // The dispatcher publishes in the order returned, so the whole batch (not
    // only its selection) must come back by priority, then run_at. Inserted
    // lowest priority first, so physical order is the reverse of dispatch order.
    let db = TestDb::new().await;
    let store = &db.store;
    let now = Utc::now();
    let specs: Vec<JobSpec> = (0..300)
        .map(|i: i64| JobSpec {
            priority: (i / 30) as i16,
            run_at: Some(now - TimeDelta::seconds(1000 - i)),
            ..spec("default")
        })
        .collect();
    insert(store, &specs).await;
    sqlx::query("ANALYZE jobs")
        .execute(db.pool())
        .await
        .unwrap();
    let mut expected = specs.clone();
    expected.sort_by_key(|s| (std::cmp::Reverse(s.priority), s.run_at));
    let claimed = store.claim_for_dispatch(1000, 10_000).await.unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
        expected.iter().map(|s| s.id).collect::<Vec<_>>()
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_share_a_job() {
    let db = TestDb::new().await;
    let store = &db.store;
    let specs: Vec<JobSpec> = (0..100).map(|_| spec("default")).collect();
    let all: HashSet<Uuid> = insert(store, &specs).await.into_iter().collect();
    assert_eq!(all.len(), 100);

    let (a, b) = tokio::join!(
        store.claim_for_dispatch(50, 10_000),
        store.claim_for_dispatch(50, 10_000)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_ids: HashSet<Uuid> = a.iter().map(|d| d.id).collect();
    let b_ids: HashSet<Uuid> = b.iter().map(|d| d.id).collect();
    assert_eq!(
        (a_ids.len(), b_ids.len()),
        (a.len(), b.len()),
        "no job twice in one claim"
    );
    assert!(a_ids.is_disjoint(&b_ids), "no job claimed twice");
    assert_eq!(&a_ids | &b_ids, all);
    assert!(a.iter().chain(&b).all(|d| d.attempt == 1));
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'queued' AND attempt = 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(queued, 100);
    assert_eq!(event_count(store).await, 200);
    db.cleanup().await;
}

#[tokio::test]
async fn full_lifecycle_events_in_order() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let job_ref = dispatch(store, id).await.task_message().job_ref();
    apply(store, WORKER, &[started(job_ref)]).await;
    let out = apply(store, WORKER, &[completed(job_ref, json!({"ok": true}))]).await;
    assert!(out.stale.is_empty());

    let all = store.job_events(id, 0, 100).await.unwrap();
    let reduced: Vec<Ev> = all
        .iter()
        .map(|e| {
            (
                e.from_state.clone(),
                e.to_state.clone(),
                e.attempt,
                e.worker_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        reduced,
        vec![
            ev(None, Pending, 0, None),
            ev(Some(Pending), Queued, 1, None),
            ev(Some(Queued), Running, 1, Some(WORKER)),
            ev(Some(Running), Completed, 1, Some(WORKER)),
        ]
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at),
        "cursor and time increase"
    );
    assert!(all.iter().all(|e| e.job_id == id && e.detail.is_none()));

    // The cursor resumes after the last event seen; limits apply.
    let tail = store.job_events(id, all[1].id, 100).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![all[2].id, all[3].id]
    );
    assert_eq!(store.job_events(id, 0, 1).await.unwrap().len(), 1);
    assert!(store
        .job_events(id, all[3].id, 100)
        .await
        .unwrap()
        .is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn dispatch_respects_the_window_max_in_flight_and_pause_per_queue() {
    let db = TestDb::new().await;
    let store = &db.store;
    for queue in ["a", "b", "c"] {
        for _ in 0..10 {
            submit(store, spec(queue)).await;
        }
    }
    sqlx::query("UPDATE queues SET max_in_flight = 1 WHERE name = 'b'")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE queues SET paused = true WHERE name = 'c'")
        .execute(db.pool())
        .await
        .unwrap();
    let claimed = store.claim_for_dispatch(100, 3).await.unwrap();
    let count = |q: &str| claimed.iter().filter(|j| j.queue == q).count();
    assert_eq!((count("a"), count("b"), count("c")), (3, 1, 0));
    // Full windows claim nothing more until a job leaves queued/running.
    assert!(store.claim_for_dispatch(100, 3).await.unwrap().is_empty());
    let a = claimed.iter().find(|j| j.queue == "a").unwrap();
    store.cancel_job(a.id, "test").await.unwrap();
    let next = store.claim_for_dispatch(100, 3).await.unwrap();
    assert_eq!(
        next.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>(),
        vec!["a"]
    );
    db.cleanup().await;
}
