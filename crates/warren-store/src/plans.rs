//! The plans of the statements that update jobs by key: each must reach
//! `jobs` through its primary key only (and of the dispatcher's due-job
//! probe, through `jobs_queue_dispatch_idx` only). Checked under a generic plan (the
//! generic-plan pool's settings) on a young table that was never analyzed,
//! empty and holding a few rows, and under a generic and a custom plan on a table whose statistics say
//! every job is `completed` while thousands are in flight. (A custom plan
//! on a young table may scan it: it is planned again on every execution,
//! so it follows the table's growth.)
//!
//! A state guard written `j.state = 'queued'` failed this: the planner read
//! the batch's rows by scanning a partial index of all queued jobs (see
//! `reports.rs`). Runs against the real PostgreSQL (`WARREN_TEST_PG`).

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::dispatch::{ANY_DUE, UNCLAIM};
use crate::heartbeat::ORPHANED_ATTEMPTS;
use crate::reports::{COMPLETE_QUEUED, COMPLETE_RUNNING, RECORD_PROGRESS, START_QUEUED};
use crate::workflows::engine::{FAIL_BLOCKED, RELEASE_BLOCKED, SKIP_BLOCKED};
use crate::{Store, StoreConfig};

/// Every statement checked, by name, with the one index it may read
/// `jobs` through.
const CHECKED: [(&str, &str, &str); 10] = [
    ("start_queued", START_QUEUED, "jobs_pkey"),
    ("record_progress", RECORD_PROGRESS, "jobs_pkey"),
    ("complete_queued", COMPLETE_QUEUED, "jobs_pkey"),
    ("complete_running", COMPLETE_RUNNING, "jobs_pkey"),
    ("orphaned_attempts", ORPHANED_ATTEMPTS, "jobs_pkey"),
    ("unclaim", UNCLAIM, "jobs_pkey"),
    ("skip_blocked", SKIP_BLOCKED, "jobs_pkey"),
    ("fail_blocked", FAIL_BLOCKED, "jobs_pkey"),
    ("release_blocked", RELEASE_BLOCKED, "jobs_pkey"),
    // The dispatcher's probe: index probes per queue and priority.
    ("any_due", ANY_DUE, "jobs_queue_dispatch_idx"),
];

/// Rows in the "stale statistics" table.
const ROWS: i64 = 50_000;

fn server_url() -> String {
    std::env::var("WARREN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

/// A database of its own, migrated; dropped by [`drop_database`].
async fn migrated_database() -> (String, PgConnection) {
    let name = format!("warren_plans_{}", Uuid::new_v4().simple());
    let url = format!("{}/{name}", server_url());
    let store = Store::connect_and_migrate(&StoreConfig {
        url: url.clone(),
        max_connections: 2,
    })
    .await
    .expect("create and migrate the test database");
    store.pool().close().await;
    let conn = PgConnection::connect(&url).await.expect("connect");
    (name, conn)
}

async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("connect to postgres");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
}

/// An argument of `ty` (a parameter type of a prepared statement): an
/// array of 100 elements, so a custom plan sees a real batch.
fn argument(ty: &str) -> String {
    let element = match ty {
        "uuid[]" => "gen_random_uuid()",
        "integer[]" => "1",
        "text[]" => "'w'::text",
        "jsonb[]" => "'{}'::jsonb",
        "real[]" => "1::real",
        other => panic!("no argument for a parameter of type {other}"),
    };
    format!("array_fill({element}, ARRAY[100])")
}

/// The plan of prepared statement `name` run with batch-sized arguments.
async fn plan(conn: &mut PgConnection, name: &str, sql: &str) -> Value {
    sqlx::query(&format!("PREPARE {name} AS {sql}"))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM pg_prepared_statements, unnest(parameter_types) t WHERE name = $1",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .expect("parameter types");
    let args: Vec<String> = types.iter().map(|t| argument(t)).collect();
    let call = if args.is_empty() {
        name.to_owned()
    } else {
        format!("{name}({})", args.join(", "))
    };
    let explained: Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) EXECUTE {call}"))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("explain {name}: {e}"));
    sqlx::query(&format!("DEALLOCATE {name}"))
        .execute(&mut *conn)
        .await
        .expect("deallocate");
    explained[0]["Plan"].clone()
}

/// How each node of `plan` reads `jobs`, as "<node type> <index>"; the
/// update itself (ModifyTable) is not a read.
fn reads_of_jobs(plan: &Value, out: &mut Vec<String>) {
    let node = plan["Node Type"].as_str().unwrap_or_default();
    if plan["Relation Name"] == "jobs" && node != "ModifyTable" && node != "Bitmap Heap Scan" {
        out.push(format!(
            "{node} {}",
            plan["Index Name"].as_str().unwrap_or("(no index)")
        ));
    }
    if node == "Bitmap Heap Scan" {
        // Its index scans name the index, not the table.
        for child in plan["Plans"].as_array().into_iter().flatten() {
            out.push(format!(
                "{} {}",
                child["Node Type"].as_str().unwrap_or_default(),
                child["Index Name"].as_str().unwrap_or("(no index)")
            ));
        }
        return;
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        reads_of_jobs(child, out);
    }
}

/// Checks every statement under the given kinds of plan (generic or
/// not); `what` names the table. Returns what went wrong.
async fn check_all(conn: &mut PgConnection, what: &str, modes: &[bool]) -> Vec<String> {
    let mut wrong = Vec::new();
    for &generic in modes {
        let (mode, settings) = if generic {
            (
                "generic",
                "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off",
            )
        } else {
            ("custom", "RESET plan_cache_mode; RESET enable_seqscan")
        };
        sqlx::raw_sql(settings)
            .execute(&mut *conn)
            .await
            .expect("settings");
        for (name, sql, index) in CHECKED {
            let plan = plan(conn, name, sql).await;
            let mut reads = Vec::new();
            reads_of_jobs(&plan, &mut reads);
            let suffix = format!(" {index}");
            let by_key = !reads.is_empty() && reads.iter().all(|r| r.ends_with(&suffix));
            if !by_key {
                wrong.push(format!("{what}, {mode} plan, {name}: {reads:?}"));
            }
        }
    }
    wrong
}

#[tokio::test]
async fn keyed_updates_reach_jobs_by_primary_key_whatever_the_statistics() {
    let (name, mut conn) = migrated_database().await;

    // A young table, never analyzed (a new deployment, or `make bench`).
    let mut wrong = check_all(&mut conn, "never-analyzed table", &[true]).await;

    // The same with a few rows in it: the generic-plan pool opens its
    // connections as load grows, each planning afresh, so plans are also
    // made after the first jobs went in and before any ANALYZE.
    sqlx::raw_sql(
        "SET session_replication_role = replica;
         TRUNCATE jobs CASCADE;
         INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms, retry_factor,
                           retry_max_ms, retry_jitter, lease, attempt, finished_at)
         SELECT gen_random_uuid(), 'q', 't', 'completed', 3, 1000, 2, 60000, 0.1,
                gen_random_uuid(), 1, now()
           FROM generate_series(1, 50) i;
         RESET session_replication_role;",
    )
    .execute(&mut conn)
    .await
    .expect("a few rows");
    wrong.extend(check_all(&mut conn, "a few rows, never analyzed", &[true]).await);

    // Statistics taken while every job was completed, then thousands in
    // flight or blocked: the partial indexes on those states look empty.
    // Rows go in without triggers (no events, no transition checks).
    sqlx::raw_sql(&format!(
        "SET session_replication_role = replica;
         INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms, retry_factor,
                           retry_max_ms, retry_jitter, lease, attempt, finished_at)
         SELECT gen_random_uuid(), 'q' || (i % 4), 't', 'completed', 3, 1000, 2, 60000, 0.1,
                gen_random_uuid(), 1, now()
           FROM generate_series(1, {ROWS}) i;
         ANALYZE jobs;
         UPDATE jobs SET state = CASE WHEN n % 5 = 0 THEN 'queued'::job_state
                                      WHEN n % 5 = 1 THEN 'running'::job_state
                                      ELSE 'blocked'::job_state END, finished_at = NULL
           FROM (SELECT id AS nid, row_number() OVER () AS n FROM jobs LIMIT 5000) s
          WHERE id = s.nid;
         RESET session_replication_role;"
    ))
    .execute(&mut conn)
    .await
    .expect("load the table");
    wrong.extend(check_all(&mut conn, "stale statistics", &[true, false]).await);

    conn.close().await.ok();
    drop_database(&name).await;
    assert!(
        wrong.is_empty(),
        "statements that read jobs other than through their index:\n{}",
        wrong.join("\n")
    );
}

/// Every pool says `jit = off` and ends transactions left idle (see
/// `SESSION_SETTINGS` in `connect.rs`).
#[tokio::test]
async fn every_pool_carries_the_session_settings() {
    let name = format!("warren_plans_{}", Uuid::new_v4().simple());
    let store = Store::connect_and_migrate(&StoreConfig {
        url: format!("{}/{name}", server_url()),
        max_connections: 2,
    })
    .await
    .expect("create and migrate the test database");
    for (pool, which) in [(store.pool(), "main"), (store.generic(), "generic-plan")] {
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(pool)
            .await
            .expect("show jit");
        assert_eq!(jit, "off", "jit on the {which} pool");
        let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(pool)
            .await
            .expect("show idle_in_transaction_session_timeout");
        assert_eq!(idle, "1min", "idle transactions on the {which} pool");
    }
    store.pool().close().await;
    store.generic().close().await;
    drop_database(&name).await;
}
