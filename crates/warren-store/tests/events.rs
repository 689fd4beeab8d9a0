//! The event stream's SQL: tail reads and their snapshots (including a
//! transaction held open and one rolled back), filtered history, and the
//! publication claim.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use warren_core::protocol::{EventKind, StreamEvent, TransitionEvent};
use warren_core::workflow::{WorkflowSpec, WorkflowStatus};
use warren_core::JobState;
use warren_store::{EventFilter, NewWorkflow, Store, TailSnapshot};

/// The job events of a read that holds only job events.
fn jobs(events: &[StreamEvent]) -> Vec<&TransitionEvent> {
    events
        .iter()
        .map(|e| e.as_job().expect("a job event"))
        .collect()
}

fn ids_of(events: &[StreamEvent]) -> Vec<i64> {
    events.iter().map(StreamEvent::id).collect()
}

/// Opens a transaction that cancels `job` (writing its event) and leaves it
/// open; returns the connection and the transaction's id.
async fn hold_cancel(db: &TestDb, job: Uuid) -> (PgConnection, u64) {
    let mut conn = PgConnection::connect(&db.url()).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .expect("begin");
    sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1")
        .bind(job)
        .execute(&mut conn)
        .await
        .expect("cancel in the open transaction");
    let xid: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut conn)
        .await
        .expect("xid");
    (conn, xid as u64)
}

/// Every event id of the database, ascending.
async fn all_ids(store: &Store) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM job_events ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("ids")
}

/// Waits (other tests share the cluster's transactions) until a snapshot's
/// xmin reaches `bound`; returns it.
async fn snapshot_past(store: &Store, bound: u64) -> TailSnapshot {
    for _ in 0..600 {
        let now = store.event_snapshot().await.expect("snapshot");
        if now.xmin >= bound {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("xmin never reached {bound}");
}

#[tokio::test]
async fn the_tail_returns_events_in_id_order_with_their_job() {
    let db = TestDb::new().await;
    let store = &db.store;
    let a = submit(store, spec("media")).await;
    let b = submit(store, spec("default")).await;
    store.cancel_job(a, "test").await.expect("cancel");

    let tail = store.tail_events(0, 100).await.expect("tail");
    let events = jobs(&tail.events);
    let got: Vec<(Uuid, &str, Option<JobState>, JobState)> = events
        .iter()
        .map(|e| (e.job_id, e.queue.as_str(), e.from, e.to))
        .collect();
    assert_eq!(
        got,
        [
            (a, "media", None, JobState::Pending),
            (b, "default", None, JobState::Pending),
            (a, "media", Some(JobState::Pending), JobState::Cancelled),
        ]
    );
    let ids = ids_of(&tail.events);
    assert_eq!(ids, all_ids(store).await);
    assert_eq!(tail.snapshot.max_id, *ids.last().unwrap());
    assert!(tail.snapshot.xmin > 0);
    assert_eq!(events[2].detail, Some(serde_json::json!({"by": "test"})));
    assert_eq!(events[0].task_type, "echo");

    let after_first = store.tail_events(ids[0], 1).await.expect("tail");
    assert_eq!(after_first.events.len(), 1);
    assert_eq!(after_first.events[0].id(), ids[1]);
    let id_tail = store.tail_event_ids(ids[0], 100).await.expect("ids");
    assert_eq!(id_tail.events, ids[1..]);
    let empty = store.tail_events(ids[2], 100).await.expect("tail");
    assert!(empty.events.is_empty());
    assert_eq!(empty.snapshot.max_id, ids[2]);
    db.cleanup().await;
}

#[tokio::test]
async fn events_carry_their_job_and_older_events_without_it_read_it_from_the_job() {
    let db = TestDb::new().await;
    let store = &db.store;
    let a = submit(store, spec("media")).await;
    store.cancel_job(a, "test").await.expect("cancel");
    let written: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT queue, task_type FROM job_events ORDER BY id")
            .fetch_all(store.pool())
            .await
            .expect("events");
    let carried = (Some("media".to_string()), Some("echo".to_string()));
    assert_eq!(written, [carried.clone(), carried]);

    // The first event as written before migration 20261124000014.
    let first = all_ids(store).await[0];
    sqlx::query(
        "UPDATE job_events SET queue = NULL, task_type = NULL, workflow_id = NULL,
                step_name = NULL WHERE id = $1",
    )
    .bind(first)
    .execute(store.pool())
    .await
    .expect("strip the first event");
    let tail = store.tail_events(0, 100).await.expect("tail");
    let got: Vec<(&str, &str)> = jobs(&tail.events)
        .iter()
        .map(|e| (e.queue.as_str(), e.task_type.as_str()))
        .collect();
    assert_eq!(got, [("media", "echo"), ("media", "echo")]);
    let by_queue = EventFilter {
        queue: Some("media".into()),
        task_type: Some("echo".into()),
        ..EventFilter::default()
    };
    let page = store
        .events_between(&by_queue, 0, i64::MAX, 100)
        .await
        .expect("page");
    assert_eq!(ids_of(&page), all_ids(store).await);
    db.cleanup().await;
}

#[tokio::test]
async fn an_event_committed_late_is_invisible_until_then_and_its_transaction_shows_in_the_snapshot()
{
    let db = TestDb::new().await;
    let store = &db.store;
    let held = submit(store, spec("q")).await;
    let cursor = *all_ids(store).await.last().unwrap();
    let (mut conn, xid) = hold_cancel(&db, held).await;
    // A later transaction takes a higher id and commits first.
    let later = submit(store, spec("q")).await;

    let tail = store.tail_events(cursor, 100).await.expect("tail");
    assert_eq!(tail.events.len(), 1, "only the committed event is visible");
    assert_eq!(jobs(&tail.events)[0].job_id, later);
    assert!(
        tail.events[0].id() > cursor + 1,
        "the held transaction's id lies below it"
    );
    assert!(
        tail.snapshot.xmin <= xid,
        "the open transaction ({xid}) holds xmin back: {:?}",
        tail.snapshot
    );
    let bound = store.xid_bound().await.expect("bound");
    assert!(bound > xid, "a bound taken now lies above it");

    sqlx::query("COMMIT")
        .execute(&mut conn)
        .await
        .expect("commit");
    let tail = store.tail_events(cursor, 100).await.expect("tail");
    let got: Vec<(Uuid, JobState)> = jobs(&tail.events)
        .iter()
        .map(|e| (e.job_id, e.to))
        .collect();
    assert_eq!(
        got,
        [(held, JobState::Cancelled), (later, JobState::Pending)],
        "in id order: the late commit first"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn an_aborted_event_never_appears_and_its_transaction_leaves_the_snapshot() {
    let db = TestDb::new().await;
    let store = &db.store;
    let job = submit(store, spec("q")).await;
    let cursor = *all_ids(store).await.last().unwrap();
    let (mut conn, xid) = hold_cancel(&db, job).await;
    let during = store.event_snapshot().await.expect("snapshot");
    assert!(
        during.xmin <= xid,
        "the open transaction ({xid}) holds xmin back: {during:?}"
    );
    let bound = store.xid_bound().await.expect("bound");
    assert!(bound > xid);
    sqlx::query("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("rollback");
    let later = submit(store, spec("q")).await;

    let after = snapshot_past(store, bound).await;
    assert!(after.xmin > xid);
    let tail = store.tail_events(cursor, 100).await.expect("tail");
    assert_eq!(tail.events.len(), 1);
    assert_eq!(jobs(&tail.events)[0].job_id, later);
    assert!(tail.events[0].id() > cursor + 1, "the aborted id is a gap");
    db.cleanup().await;
}

#[tokio::test]
async fn history_pages_apply_every_filter_and_the_bounds() {
    let db = TestDb::new().await;
    let store = &db.store;
    let mut sleeper = spec("media");
    sleeper.task_type = "sleep".into();
    let a = submit(store, sleeper).await;
    let b = submit(store, spec("default")).await;
    store.cancel_job(b, "test").await.expect("cancel");
    let ids = all_ids(store).await;
    let everything = |filter: EventFilter| async move {
        ids_of(
            &store
                .events_between(&filter, 0, i64::MAX, 100)
                .await
                .expect("page"),
        )
    };
    assert_eq!(everything(EventFilter::default()).await, ids);
    let by_job = everything(EventFilter {
        job_id: Some(b),
        ..EventFilter::default()
    });
    assert_eq!(by_job.await, [ids[1], ids[2]]);
    let by_queue = everything(EventFilter {
        queue: Some("media".into()),
        ..EventFilter::default()
    });
    assert_eq!(by_queue.await, [ids[0]]);
    let by_type = everything(EventFilter {
        task_type: Some("echo".into()),
        ..EventFilter::default()
    });
    assert_eq!(by_type.await, [ids[1], ids[2]]);
    let by_state = everything(EventFilter {
        to_state: Some(JobState::Cancelled),
        ..EventFilter::default()
    });
    assert_eq!(by_state.await, [ids[2]]);

    let bounded = store
        .events_between(&EventFilter::default(), ids[0], ids[1], 100)
        .await
        .expect("page");
    assert_eq!(ids_of(&bounded), [ids[1]]);
    let limited = store
        .events_between(&EventFilter::default(), 0, i64::MAX, 2)
        .await
        .expect("page");
    assert_eq!(limited.len(), 2);
    let matches = EventFilter {
        job_id: Some(a),
        queue: Some("media".into()),
        ..EventFilter::default()
    };
    assert!(matches.matches(&limited[0]) && !matches.matches(&limited[1]));
    db.cleanup().await;
}

#[tokio::test]
async fn workflow_status_changes_join_the_tail_in_id_order_and_filter_by_workflow_and_kind() {
    let db = TestDb::new().await;
    let store = &db.store;
    let plain = submit(store, spec("media")).await;
    let spec: WorkflowSpec = serde_json::from_value(json!({
        "name": "pair",
        "steps": [
            {"name": "a", "queue": "default", "type": "echo"},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]},
        ]
    }))
    .expect("spec");
    let workflow = NewWorkflow {
        id: Uuid::now_v7(),
        spec,
        template: None,
    };
    store
        .insert_workflows(std::slice::from_ref(&workflow))
        .await
        .expect("insert workflow");
    store
        .evaluate_workflow(workflow.id, 64 * 1024)
        .await
        .expect("evaluate")
        .expect("not locked");
    store.cancel_job(plain, "test").await.expect("cancel");

    let job_ids = all_ids(store).await;
    let workflow_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM workflow_events ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("workflow event ids");
    let mut every_id: Vec<i64> = job_ids.iter().chain(&workflow_ids).copied().collect();
    every_id.sort_unstable();

    let tail = store.tail_events(0, 100).await.expect("tail");
    assert_eq!(ids_of(&tail.events), every_id, "one log, in id order");
    assert_eq!(tail.snapshot.max_id, *every_id.last().unwrap());
    let moves: Vec<(Uuid, &str, Option<WorkflowStatus>, WorkflowStatus)> = tail
        .events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Workflow(w) => Some((w.workflow_id, w.name.as_str(), w.from, w.to)),
            StreamEvent::Job(_) => None,
        })
        .collect();
    assert_eq!(
        moves,
        [
            (workflow.id, "pair", None, WorkflowStatus::Pending),
            (
                workflow.id,
                "pair",
                Some(WorkflowStatus::Pending),
                WorkflowStatus::Running
            ),
        ]
    );
    let id_tail = store.tail_event_ids(0, 100).await.expect("ids");
    assert_eq!(id_tail.events, every_id);
    let limited = store.tail_events(0, 3).await.expect("tail");
    assert_eq!(
        ids_of(&limited.events),
        every_id[..3],
        "the limit spans both logs"
    );

    let page = |filter: EventFilter| async move {
        store
            .events_between(&filter, 0, i64::MAX, 100)
            .await
            .expect("page")
    };
    let one_workflow = EventFilter {
        workflow_id: Some(workflow.id),
        ..EventFilter::default()
    };
    let events = page(one_workflow.clone()).await;
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| one_workflow.matches(e)));
    assert!(
        events.iter().all(|e| match e {
            StreamEvent::Job(j) => j.workflow_id == Some(workflow.id) && j.job_id != plain,
            StreamEvent::Workflow(w) => w.workflow_id == workflow.id,
        }),
        "{events:?}"
    );
    let mut steps: Vec<&str> = events
        .iter()
        .filter_map(|e| e.as_job())
        .map(|j| {
            j.step_name
                .as_deref()
                .expect("a step's event names its step")
        })
        .collect();
    steps.sort_unstable();
    steps.dedup();
    assert_eq!(steps, ["a", "b"]);
    let plain_events = every_id.len() - events.len();
    assert_eq!(
        plain_events, 2,
        "only the plain job's two events are left out"
    );

    let only_workflows = page(EventFilter {
        kind: Some(EventKind::Workflow),
        ..EventFilter::default()
    })
    .await;
    assert_eq!(ids_of(&only_workflows), workflow_ids);
    let only_jobs = page(EventFilter {
        kind: Some(EventKind::Job),
        ..EventFilter::default()
    })
    .await;
    assert_eq!(ids_of(&only_jobs), job_ids);
    let by_queue = EventFilter {
        queue: Some("default".into()),
        ..EventFilter::default()
    };
    assert!(!by_queue.wants(EventKind::Workflow));
    assert!(page(by_queue).await.iter().all(|e| e.as_job().is_some()));
    let contradiction = EventFilter {
        kind: Some(EventKind::Workflow),
        to_state: Some(JobState::Completed),
        ..EventFilter::default()
    };
    assert!(page(contradiction).await.is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn one_claim_at_a_time_and_the_cursor_persists() {
    let db = TestDb::new().await;
    let store = &db.store;
    assert_eq!(
        store.event_publication_cursor().await.expect("cursor"),
        Some(0),
        "a new database publishes from the start"
    );
    let claim = store
        .claim_event_publication()
        .await
        .expect("claim")
        .expect("free");
    assert_eq!(claim.cursor(), Some(0));
    assert!(
        store
            .claim_event_publication()
            .await
            .expect("claim")
            .is_none(),
        "a second claim skips the locked row"
    );
    claim.advance(41).await.expect("advance");
    let mut claim = store
        .claim_event_publication()
        .await
        .expect("claim")
        .expect("free again");
    assert_eq!(claim.cursor(), Some(41));
    claim.snapshot().await.expect("snapshot inside the claim");
    claim.release().await.expect("release");
    assert_eq!(
        store.event_publication_cursor().await.expect("cursor"),
        Some(41)
    );
    db.cleanup().await;
}
