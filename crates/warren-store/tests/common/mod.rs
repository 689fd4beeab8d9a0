//! Shared helpers for the store's integration tests: a fresh database per
//! test (dropped at the end), job specs, dispatch and report builders.

#![allow(dead_code)] // Each test binary uses a different subset.

use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;
use warren_core::protocol::{Failure, JobRef, JobSpec, Report, RetryDecision};
use warren_core::JobState;
use warren_store::{DispatchedJob, JobRow, ReportOutcome, Store, StoreConfig, Transition};

/// Server URL without a database; `WARREN_TEST_PG` overrides it.
pub(crate) fn base_url() -> String {
    std::env::var("WARREN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

/// A migrated database of its own for one test. Call [`TestDb::cleanup`] at
/// the end; a test that panics before that still drops its database (Drop).
pub(crate) struct TestDb {
    /// The store under test.
    pub(crate) store: Store,
    name: Option<String>,
}

impl TestDb {
    /// Creates `warren_test_<uuid>` and applies the migrations.
    pub(crate) async fn new() -> TestDb {
        let name = format!("warren_test_{}", Uuid::new_v4().simple());
        let config = StoreConfig {
            url: format!("{}/{name}", base_url()),
            max_connections: 5,
        };
        let store = Store::connect_and_migrate(&config)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        TestDb {
            store,
            name: Some(name),
        }
    }

    /// The database's URL (to connect a second store to it).
    pub(crate) fn url(&self) -> String {
        format!(
            "{}/{}",
            base_url(),
            self.name.as_deref().expect("not cleaned up")
        )
    }

    /// The pool, for raw SQL in tests.
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    /// Closes the pool and drops the database.
    pub(crate) async fn cleanup(mut self) {
        let name = self.name.take().expect("cleanup runs once");
        self.store.pool().close().await;
        drop_database(&name).await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Only reached without cleanup (a failed test): drop the database
        // from a thread of its own, outside the test's runtime.
        if let Some(name) = self.name.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_database(&name));
                }
            })
            .join();
        }
    }
}

async fn drop_database(name: &str) {
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", base_url()))
        .await
        .expect("connect to the postgres database");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("drop database {name}: {e}"));
    let _ = admin.close().await;
}

/// The worker id used by most tests.
pub(crate) const WORKER: &str = "host-a-0001";

/// A job with default options on `queue`.
pub(crate) fn spec(queue: &str) -> JobSpec {
    JobSpec::new(queue, "echo", json!({ "msg": "hi" }))
}

/// Inserts jobs and returns the ids created, sorted.
pub(crate) async fn insert(store: &Store, specs: &[JobSpec]) -> Vec<Uuid> {
    for s in specs {
        s.validate().expect("test specs are valid");
    }
    let mut ids = store.insert_jobs(specs).await.expect("insert_jobs");
    ids.sort();
    ids
}

/// Inserts one job, asserting it was created.
pub(crate) async fn submit(store: &Store, spec: JobSpec) -> Uuid {
    let id = spec.id;
    assert_eq!(insert(store, &[spec]).await, vec![id], "job was created");
    id
}

/// Claims everything due, asserting that it is exactly job `id`.
pub(crate) async fn dispatch(store: &Store, id: Uuid) -> DispatchedJob {
    let mut claimed = store
        .claim_for_dispatch(1000, 10_000)
        .await
        .expect("claim_for_dispatch");
    assert_eq!(
        claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![id],
        "exactly this job was due"
    );
    claimed.pop().unwrap()
}

/// Inserts `spec`, dispatches it and reports Started from `worker`.
pub(crate) async fn start(store: &Store, spec: JobSpec, worker: &str) -> JobRef {
    let id = submit(store, spec).await;
    let job = dispatch(store, id).await.task_message().job_ref();
    let out = apply(store, worker, &[started(job)]).await;
    assert!(out.stale.is_empty(), "start was not stale: {:?}", out.stale);
    assert_eq!(state(store, id).await, JobState::Running);
    job
}

/// Applies reports from one worker.
pub(crate) async fn apply(store: &Store, worker: &str, reports: &[Report]) -> ReportOutcome {
    let batch: Vec<(&str, &Report)> = reports.iter().map(|r| (worker, r)).collect();
    store.apply_reports(&batch).await.expect("apply_reports")
}

/// `Started`.
pub(crate) fn started(job: JobRef) -> Report {
    Report::Started { job }
}

/// `Completed` with `result`.
pub(crate) fn completed(job: JobRef, result: Value) -> Report {
    Report::Completed { job, result }
}

/// `Failed` (not timed out) with the given retry decision.
pub(crate) fn failed(job: JobRef, retry: RetryDecision) -> Report {
    Report::Failed {
        job,
        failure: Failure {
            error: "boom".into(),
            retry,
            timed_out: false,
        },
    }
}

/// `Failed` because the worker's own timeout fired (retryable).
pub(crate) fn timed_out(job: JobRef) -> Report {
    Report::Failed {
        job,
        failure: Failure {
            error: "timed out".into(),
            retry: RetryDecision::Retryable,
            timed_out: true,
        },
    }
}

/// `Progress`.
pub(crate) fn progress(
    job: JobRef,
    percent: Option<f32>,
    stage: Option<&str>,
    checkpoint: Option<Value>,
) -> Report {
    Report::Progress {
        job,
        percent,
        stage: stage.map(str::to_owned),
        checkpoint,
    }
}

/// The job as stored.
pub(crate) async fn job(store: &Store, id: Uuid) -> JobRow {
    store.get_job(id).await.expect("get_job")
}

/// The job's state.
pub(crate) async fn state(store: &Store, id: Uuid) -> JobState {
    job(store, id).await.state()
}

/// Seconds from the database's now() to the job's `run_at`.
pub(crate) async fn run_at_in(store: &Store, id: Uuid) -> f64 {
    sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (run_at - now()))::float8 FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .expect("run_at")
}

/// The job's lease column.
pub(crate) async fn lease(store: &Store, id: Uuid) -> Option<Uuid> {
    sqlx::query_scalar("SELECT lease FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .expect("lease")
}

/// An event reduced to (from, to, attempt, worker).
pub(crate) type Ev = (Option<String>, String, i32, Option<String>);

/// The job's events, in order.
pub(crate) async fn events(store: &Store, id: Uuid) -> Vec<Ev> {
    store
        .job_events(id, 0, 500)
        .await
        .expect("job_events")
        .into_iter()
        .map(|e| (e.from_state, e.to_state, e.attempt, e.worker_id))
        .collect()
}

/// Builds an expected event.
pub(crate) fn ev(from: Option<JobState>, to: JobState, attempt: i32, worker: Option<&str>) -> Ev {
    (
        from.map(|s| s.as_str().to_owned()),
        to.as_str().to_owned(),
        attempt,
        worker.map(str::to_owned),
    )
}

/// Number of rows in `job_events` (all jobs).
pub(crate) async fn event_count(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_events")
        .fetch_one(store.pool())
        .await
        .expect("count")
}

/// Transitions reduced to (job, from, to, attempt).
pub(crate) fn moves(transitions: &[Transition]) -> Vec<(Uuid, JobState, JobState, i32)> {
    transitions
        .iter()
        .map(|t| (t.job_id, t.from, t.to, t.attempt))
        .collect()
}

/// Inserts `specs` and runs every one to its end in one report batch:
/// dead (failed, fatally) when `dead(i)` is true, else completed. Returns
/// the ids in spec order. The jobs of one call share their `finished_at`.
pub(crate) async fn finish_all(
    store: &Store,
    specs: &[JobSpec],
    dead: impl Fn(usize) -> bool,
) -> Vec<Uuid> {
    insert(store, specs).await;
    let claimed = store
        .claim_for_dispatch(specs.len() as i64, 1_000_000)
        .await
        .expect("claim_for_dispatch");
    assert_eq!(claimed.len(), specs.len(), "every job was due");
    let refs: std::collections::HashMap<Uuid, JobRef> = claimed
        .iter()
        .map(|d| (d.id, d.task_message().job_ref()))
        .collect();
    let mut reports = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let job = refs[&spec.id];
        reports.push(started(job));
        reports.push(if dead(i) {
            failed(job, RetryDecision::Fatal)
        } else {
            completed(job, json!(i))
        });
    }
    let out = apply(store, WORKER, &reports).await;
    assert!(out.stale.is_empty(), "no stale report: {:?}", out.stale);
    specs.iter().map(|s| s.id).collect()
}

/// Moves the jobs' `finished_at` (and `started_at`) `seconds` into the past.
pub(crate) async fn finished_ago(store: &Store, ids: &[Uuid], seconds: f64) {
    sqlx::query(
        "UPDATE jobs SET finished_at = now() - $2 * interval '1 second',
                         started_at = LEAST(started_at, now() - $2 * interval '1 second')
          WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(seconds)
    .execute(store.pool())
    .await
    .expect("age finished jobs");
}

/// Marks the jobs as steps of `workflow` (the column exists before workflows do).
pub(crate) async fn set_workflow(store: &Store, ids: &[Uuid], workflow: Uuid) {
    sqlx::query("UPDATE jobs SET workflow_id = $2 WHERE id = ANY($1)")
        .bind(ids)
        .bind(workflow)
        .execute(store.pool())
        .await
        .expect("set workflow_id");
}
