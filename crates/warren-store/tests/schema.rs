//! The lifecycle guard in the schema: the transition table and enum mirror
//! warren-core, and no SQL path can make an illegal move.

mod common;

use std::collections::BTreeSet;

use common::*;
use uuid::Uuid;
use warren_core::JobState::{self, *};
use warren_store::{Store, StoreConfig};

#[tokio::test]
async fn transition_table_and_enum_match_core() {
    let db = TestDb::new().await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT from_state::text, to_state::text FROM job_transitions")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let in_db: BTreeSet<(JobState, JobState)> = rows
        .iter()
        .map(|(f, t)| (f.parse().unwrap(), t.parse().unwrap()))
        .collect();
    assert_eq!(in_db.len(), rows.len(), "no duplicate rows");
    let in_core: BTreeSet<(JobState, JobState)> = JobState::transitions().collect();
    assert_eq!(in_db, in_core);

    let labels: Vec<String> =
        sqlx::query_scalar("SELECT unnest(enum_range(NULL::job_state))::text")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, names);
    db.cleanup().await;
}

#[tokio::test]
async fn raw_sql_cannot_make_an_illegal_move() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;

    let err = sqlx::query("UPDATE jobs SET state = 'completed' WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap_err();
    let msg = check_violation(&err, "pending → completed");
    assert!(
        msg.contains("illegal job transition from pending to completed"),
        "{msg}"
    );
    assert_eq!(state(store, id).await, Pending);
    assert_eq!(events(store, id).await, vec![ev(None, Pending, 0, None)]);

    let bad = Uuid::now_v7();
    let err = sqlx::query(
        "INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms, retry_factor, retry_max_ms, retry_jitter)
         VALUES ($1, 'default', 'echo', 'running', 1, 0, 1, 0, 0)",
    )
    .bind(bad)
    .execute(db.pool())
    .await
    .unwrap_err();
    let msg = check_violation(&err, "INSERT as running");
    assert!(msg.contains("illegal initial job state running"), "{msg}");
    assert!(
        matches!(store.get_job(bad).await, Err(warren_store::StoreError::NotFound(x)) if x == bad)
    );
    assert!(events(store, bad).await.is_empty());

    let done = sqlx::query("UPDATE jobs SET state = 'cancelled' WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    assert_eq!(state(store, id).await, Cancelled);
    assert_eq!(
        events(store, id).await,
        vec![
            ev(None, Pending, 0, None),
            ev(Some(Pending), Cancelled, 0, None)
        ]
    );

    // Nothing leaves a terminal state, whatever the path.
    let err = sqlx::query("UPDATE jobs SET state = 'pending' WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap_err();
    check_violation(&err, "leaving a terminal state");
    assert_eq!(events(store, id).await.len(), 2);
    db.cleanup().await;
}

/// `transition_via` makes two moves in one row update (a coalesced
/// attempt's implied start): both must be legal, both are recorded, and the
/// column is cleared.
#[tokio::test]
async fn a_move_through_an_implied_state_checks_and_records_both_moves() {
    let db = TestDb::new().await;
    let store = &db.store;
    let id = submit(store, spec("default")).await;
    let job = dispatch(store, id).await;

    // queued → pending is legal, pending → completed is not.
    let msg = refused(
        &db,
        id,
        "UPDATE jobs SET state = 'completed', transition_via = 'pending' WHERE id = $1",
    )
    .await;
    assert!(
        msg.contains("illegal job transition from pending to completed"),
        "{msg}"
    );
    // Nor is queued → completed.
    let msg = refused(
        &db,
        id,
        "UPDATE jobs SET state = 'completed', transition_via = 'completed' WHERE id = $1",
    )
    .await;
    assert!(
        msg.contains("illegal job transition from queued to completed"),
        "{msg}"
    );
    // A via on an update that does not change state is refused.
    let msg = refused(
        &db,
        id,
        "UPDATE jobs SET transition_via = 'running' WHERE id = $1",
    )
    .await;
    assert!(msg.contains("does not change state"), "{msg}");
    assert_eq!(state(store, id).await, Queued);
    assert_eq!(events(store, id).await.len(), 2);

    sqlx::query(
        "UPDATE jobs SET state = 'completed', transition_via = 'running', worker_id = 'w-1',
                         transition_note = '{\"by\": \"test\"}'
          WHERE id = $1",
    )
    .bind(id)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(
        events(store, id).await,
        vec![
            ev(None, Pending, 0, None),
            ev(Some(Pending), Queued, job.attempt, None),
            ev(Some(Queued), Running, job.attempt, Some("w-1")),
            ev(Some(Running), Completed, job.attempt, Some("w-1")),
        ]
    );
    // The statement's note annotates its final move only.
    let details: Vec<Option<serde_json::Value>> = sqlx::query_scalar(
        "SELECT detail FROM job_events WHERE job_id = $1 AND id > 0 ORDER BY id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        details[2..],
        [None, Some(serde_json::json!({"by": "test"}))]
    );
    let (via, note): (Option<String>, Option<serde_json::Value>) =
        sqlx::query_as("SELECT transition_via::text, transition_note FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((via, note), (None, None), "both are NULL at rest");
    db.cleanup().await;
}

/// Events are written once per statement: one illegal row refuses the whole
/// statement and records nothing, a note belongs to the statement that set
/// it only, and a statement made of several UPDATEs of `jobs` (CTEs)
/// records every move, each job's in order.
#[tokio::test]
async fn a_statement_records_its_moves_together_or_not_at_all() {
    let db = TestDb::new().await;
    let store = &db.store;
    let a = submit(store, spec("default")).await;
    dispatch(store, a).await;
    let b = submit(store, spec("default")).await;
    dispatch(store, b).await;
    let c = submit(store, spec("default")).await;

    // c is pending: pending → running is illegal, so a and b stay queued too.
    let err = sqlx::query(
        "UPDATE jobs SET state = 'completed', transition_via = 'running' WHERE id = ANY($1)",
    )
    .bind(vec![a, b, c])
    .execute(db.pool())
    .await
    .unwrap_err();
    let msg = check_violation(&err, "completing a, b and pending c");
    assert!(
        msg.contains("illegal job transition from pending to running"),
        "{msg}"
    );
    for id in [a, b] {
        assert_eq!(state(store, id).await, Queued);
        assert_eq!(events(store, id).await.len(), 2);
    }

    sqlx::query("UPDATE jobs SET state = 'cancelled' WHERE id = $1")
        .bind(c)
        .execute(db.pool())
        .await
        .unwrap();

    // A note annotates its own move, not the next one.
    sqlx::query(
        "UPDATE jobs SET state = 'pending', transition_note = '{\"reason\": \"x\"}' WHERE id = $1",
    )
    .bind(a)
    .execute(db.pool())
    .await
    .unwrap();
    let again = dispatch(store, a).await;
    assert_eq!(again.id, a);
    let details: Vec<Option<serde_json::Value>> =
        sqlx::query_scalar("SELECT detail FROM job_events WHERE job_id = $1 ORDER BY id")
            .bind(a)
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(
        details[2..],
        [Some(serde_json::json!({"reason": "x"})), None]
    );

    // Two UPDATEs of jobs in one statement: both jobs' implied and final moves.
    sqlx::query(
        "WITH first AS (UPDATE jobs SET state = 'completed', transition_via = 'running'
                         WHERE id = $1 RETURNING id)
         UPDATE jobs SET state = 'completed', transition_via = 'running' WHERE id = $2",
    )
    .bind(a)
    .bind(b)
    .execute(db.pool())
    .await
    .unwrap();
    for id in [a, b] {
        let moves: Vec<(Option<String>, String)> = sqlx::query_as(
            "SELECT from_state::text, to_state::text FROM job_events WHERE job_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(db.pool())
        .await
        .unwrap();
        let tail: Vec<(Option<&str>, &str)> = moves[moves.len() - 2..]
            .iter()
            .map(|(f, t)| (f.as_deref(), t.as_str()))
            .collect();
        assert_eq!(
            tail,
            [(Some("queued"), "running"), (Some("running"), "completed")]
        );
        assert_eq!(state(store, id).await, Completed);
    }

    // An update that moves nothing records nothing, though the row still
    // holds its last move (staged in `event_from` / `event_via`).
    let staged: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT event_from::text, event_via::text FROM jobs WHERE id = $1")
            .bind(a)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(staged, (Some("queued".into()), Some("running".into())));
    let before = events(store, a).await.len();
    sqlx::query("UPDATE jobs SET stage = 'touched' WHERE id = ANY($1)")
        .bind(vec![a, b])
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(events(store, a).await.len(), before);
    db.cleanup().await;
}

/// Runs `sql` (binding `id`) and returns the message of the check_violation
/// it must raise.
async fn refused(db: &TestDb, id: Uuid, sql: &str) -> String {
    let err = sqlx::query(sql)
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap_err();
    check_violation(&err, sql)
}

/// The message of `err`, which must be a check_violation (SQLSTATE 23514).
fn check_violation(err: &sqlx::Error, context: &str) -> String {
    let e = err.as_database_error().expect("a database error");
    assert_eq!(e.code().as_deref(), Some("23514"), "{context}");
    e.message().to_string()
}

/// A coordinator of an older build keeps starting after a newer one applied
/// a migration it does not know (rolling upgrades).
#[tokio::test]
async fn migrations_applied_by_a_newer_build_do_not_stop_an_older_one() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from a newer build', true, '\\x00', 0)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let again = Store::connect_and_migrate(&StoreConfig {
        url: db.url(),
        max_connections: 1,
    })
    .await;
    assert!(again.is_ok(), "{:?}", again.err());
    again.unwrap().pool().close().await;
    db.cleanup().await;
}
