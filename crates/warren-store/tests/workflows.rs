//! The workflow schema and engine transaction, driven through the store
//! alone (no broker): the status table mirrors warren-core, steps are
//! released / skipped in dependency order with results flowing downstream,
//! and recovery, cancel, templates and listings behave.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::{JobRef, RetryDecision};
use warren_core::workflow::{WorkflowSpec, WorkflowStatus};
use warren_core::JobState;
use warren_store::{NewWorkflow, StatusFilter, Store, StoreError, WorkflowFilter};

fn workflow(spec: Value) -> NewWorkflow {
    let spec: WorkflowSpec = serde_json::from_value(spec).expect("spec parses");
    spec.validate().expect("spec is valid");
    NewWorkflow {
        id: Uuid::now_v7(),
        spec,
        template: None,
    }
}

fn diamond() -> NewWorkflow {
    workflow(json!({
        "name": "diamond",
        "metadata": {"owner": "alice", "build": 7},
        "steps": [
            {"name": "a", "queue": "default", "type": "echo", "payload": {"n": 1}},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]},
            {"name": "c", "queue": "default", "type": "echo", "depends_on": [0]},
            {"name": "d", "queue": "default", "type": "echo", "depends_on": ["b", "c"],
             "payload": {"from_b": "${steps.b.result.v}", "text": "c said ${steps.c.result.v}"}},
        ]
    }))
}

/// Largest payload + inputs the tests' engine releases.
const LIMIT: usize = 64 * 1024;

/// Evaluates until nothing is left to do.
async fn settle(store: &Store, id: Uuid) {
    for _ in 0..10 {
        if store.workflows_to_evaluate(100).await.unwrap().is_empty() {
            return;
        }
        store
            .evaluate_workflow(id, LIMIT)
            .await
            .unwrap()
            .expect("not locked");
    }
    panic!("workflow {id} kept asking for evaluation");
}

async fn status(store: &Store, id: Uuid) -> String {
    store.get_workflow(id).await.unwrap().status
}

async fn steps(store: &Store, id: Uuid) -> HashMap<String, (Uuid, JobState)> {
    store
        .workflow_steps(id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name.clone(), (s.job_id, s.state())))
        .collect()
}

/// Claims every due job and starts it.
async fn start_all(store: &Store) -> HashMap<Uuid, JobRef> {
    let claimed = store.claim_for_dispatch(1000, 10_000).await.unwrap();
    let refs: Vec<JobRef> = claimed.iter().map(|d| d.task_message().job_ref()).collect();
    let reports: Vec<_> = refs.iter().map(|r| started(*r)).collect();
    apply(store, WORKER, &reports).await;
    refs.into_iter().map(|r| (r.job_id, r)).collect()
}

#[tokio::test]
async fn workflow_transition_table_and_enum_match_core() {
    let db = TestDb::new().await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT from_status::text, to_status::text FROM workflow_transitions")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let in_db: BTreeSet<(WorkflowStatus, WorkflowStatus)> = rows
        .iter()
        .map(|(f, t)| {
            (
                WorkflowStatus::parse(f).unwrap(),
                WorkflowStatus::parse(t).unwrap(),
            )
        })
        .collect();
    let in_core: BTreeSet<_> = WorkflowStatus::transitions().collect();
    assert_eq!(in_db, in_core);
    let labels: Vec<String> =
        sqlx::query_scalar("SELECT unnest(enum_range(NULL::workflow_status))::text")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let names: Vec<&str> = WorkflowStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, names);

    // Raw SQL cannot make an illegal workflow move either.
    let wf = diamond();
    db.store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap();
    let err = sqlx::query("UPDATE workflows SET status = 'completed' WHERE id = $1")
        .bind(wf.id)
        .execute(db.pool())
        .await
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("illegal workflow transition from pending to completed"));
    db.cleanup().await;
}

#[tokio::test]
async fn a_diamond_runs_in_dependency_order_and_results_reach_the_join() {
    let db = TestDb::new().await;
    let store = &db.store;
    let wf = diamond();
    assert_eq!(
        store
            .insert_workflows(std::slice::from_ref(&wf))
            .await
            .unwrap(),
        vec![wf.id]
    );
    // A second submission of the same id creates nothing.
    assert!(store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(status(store, wf.id).await, "pending");
    assert!(steps(store, wf.id)
        .await
        .values()
        .all(|s| s.1 == JobState::Blocked));

    settle(store, wf.id).await;
    assert_eq!(status(store, wf.id).await, "running");
    let s = steps(store, wf.id).await;
    assert_eq!(s["a"].1, JobState::Pending);
    assert_eq!(
        (s["b"].1, s["c"].1, s["d"].1),
        (JobState::Blocked, JobState::Blocked, JobState::Blocked)
    );

    let running = start_all(store).await;
    assert_eq!(running.len(), 1);
    let out = apply(
        store,
        WORKER,
        &[completed(running[&s["a"].0], json!({"v": "A"}))],
    )
    .await;
    assert!(
        out.step_ended,
        "a step that ended wakes the workflow engine"
    );
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    assert_eq!(
        (s["b"].1, s["c"].1, s["d"].1),
        (JobState::Pending, JobState::Pending, JobState::Blocked)
    );

    let running = start_all(store).await;
    assert_eq!(running.len(), 2, "b and c run in parallel");
    apply(
        store,
        WORKER,
        &[completed(running[&s["b"].0], json!({"v": [1, 2]}))],
    )
    .await;
    settle(store, wf.id).await;
    assert_eq!(
        steps(store, wf.id).await["d"].1,
        JobState::Blocked,
        "d waits for c"
    );
    apply(
        store,
        WORKER,
        &[completed(running[&s["c"].0], json!({"v": "C"}))],
    )
    .await;
    settle(store, wf.id).await;

    let d = dispatch(store, s["d"].0).await;
    assert_eq!(d.payload, json!({"from_b": [1, 2], "text": "c said C"}));
    let task = d.task_message();
    assert_eq!(
        Value::Object(task.inputs.clone()),
        json!({"b": {"v": [1, 2]}, "c": {"v": "C"}})
    );
    apply(
        store,
        WORKER,
        &[
            started(task.job_ref()),
            completed(task.job_ref(), json!(null)),
        ],
    )
    .await;
    settle(store, wf.id).await;
    let done = store.get_workflow(wf.id).await.unwrap();
    assert_eq!(done.status, "completed");
    assert!(done.finished_at.is_some());

    let history: Vec<(Option<String>, String)> = store
        .workflow_events(wf.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.from_status, e.to_status))
        .collect();
    assert_eq!(
        history,
        vec![
            (None, "pending".into()),
            (Some("pending".into()), "running".into()),
            (Some("running".into()), "completed".into()),
        ]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_dead_step_fails_the_workflow_and_recovery_resets_what_follows() {
    let db = TestDb::new().await;
    let store = &db.store;
    let wf = workflow(json!({
        "name": "chain", "max_recovery_attempts": 1,
        "steps": [
            {"name": "a", "queue": "default", "type": "echo"},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]},
            {"name": "c", "queue": "default", "type": "echo", "depends_on": ["b"]},
            {"name": "alert", "queue": "default", "type": "echo", "depends_on": ["b"], "run_if": "any_failed"},
        ]
    }));
    store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap();
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    let running = start_all(store).await;
    apply(store, WORKER, &[completed(running[&s["a"].0], json!("a"))]).await;
    settle(store, wf.id).await;
    let running = start_all(store).await;
    // A fatal failure: no retry, the step is dead.
    apply(
        store,
        WORKER,
        &[failed(running[&s["b"].0], RetryDecision::Fatal)],
    )
    .await;
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    assert_eq!(s["c"].1, JobState::Skipped);
    assert_eq!(
        s["alert"].1,
        JobState::Pending,
        "the on-failure branch runs"
    );
    let running = start_all(store).await;
    apply(
        store,
        WORKER,
        &[completed(running[&s["alert"].0], json!("paged"))],
    )
    .await;
    settle(store, wf.id).await;
    assert_eq!(
        status(store, wf.id).await,
        "failed",
        "a handled failure still fails the workflow"
    );
    let filter = |status| WorkflowFilter {
        status: Some(status),
        limit: 10,
        ..WorkflowFilter::default()
    };
    let recoverable = store
        .list_workflows(&filter(StatusFilter::Recoverable))
        .await
        .unwrap();
    assert_eq!(
        recoverable.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![wf.id]
    );
    assert_eq!(
        (
            recoverable[0].total,
            recoverable[0].completed,
            recoverable[0].failed
        ),
        (4, 2, 1)
    );

    let err = store
        .recover_workflow(wf.id, "nope", "test")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("nope")),
        "{err}"
    );
    store.recover_workflow(wf.id, "b", "test").await.unwrap();
    let after = steps(store, wf.id).await;
    assert_eq!(after["a"], s["a"], "upstream of the recovery point is kept");
    for name in ["b", "c", "alert"] {
        assert_ne!(after[name].0, s[name].0, "{name} got a fresh job");
        assert_eq!(after[name].1, JobState::Blocked);
    }
    let old = job(store, s["b"].0).await;
    assert_eq!(
        old.state(),
        JobState::Failed,
        "the old row stays as history"
    );
    let wf_row = store.get_workflow(wf.id).await.unwrap();
    assert_eq!(
        (wf_row.status.as_str(), wf_row.recovery_attempts),
        ("running", 1)
    );

    settle(store, wf.id).await;
    let running = start_all(store).await;
    apply(
        store,
        WORKER,
        &[completed(running[&after["b"].0], json!("b"))],
    )
    .await;
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    assert_eq!(s["alert"].1, JobState::Skipped);
    let running = start_all(store).await;
    apply(
        store,
        WORKER,
        &[failed(running[&s["c"].0], RetryDecision::Fatal)],
    )
    .await;
    settle(store, wf.id).await;
    assert_eq!(status(store, wf.id).await, "failed");
    let err = store
        .recover_workflow(wf.id, "c", "test")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("1 of 1")),
        "recovery past the limit is refused: {err}"
    );
    assert!(store
        .list_workflows(&filter(StatusFilter::Recoverable))
        .await
        .unwrap()
        .is_empty());

    // Retrying the one step does not count as a recovery.
    let retried = store.retry_workflow_step(wf.id, "c", "test").await.unwrap();
    assert_eq!(
        (retried.from, retried.to),
        (JobState::Failed, JobState::Retrying)
    );
    assert_eq!(status(store, wf.id).await, "running");
    let running = start_all(store).await;
    apply(store, WORKER, &[completed(running[&s["c"].0], json!("c"))]).await;
    settle(store, wf.id).await;
    assert_eq!(status(store, wf.id).await, "completed");
    db.cleanup().await;
}

#[tokio::test]
async fn a_payload_that_cannot_be_built_fails_its_step_without_running_it() {
    let db = TestDb::new().await;
    let store = &db.store;
    let wf = workflow(json!({
        "name": "refs",
        "steps": [
            {"name": "a", "queue": "default", "type": "echo"},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"],
             "payload": {"x": "${steps.a.result.missing}"}},
        ]
    }));
    store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap();
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    let running = start_all(store).await;
    apply(
        store,
        WORKER,
        &[completed(running[&s["a"].0], json!({"other": 1}))],
    )
    .await;
    settle(store, wf.id).await;
    let b = job(store, steps(store, wf.id).await["b"].0).await;
    assert_eq!((b.state(), b.attempt), (JobState::Failed, 0));
    assert!(b.error.unwrap().contains("missing"));
    assert_eq!(status(store, wf.id).await, "failed");
    db.cleanup().await;
}

#[tokio::test]
async fn cancel_stops_unfinished_steps_and_names_running_ones() {
    let db = TestDb::new().await;
    let store = &db.store;
    let wf = diamond();
    store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap();
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    start_all(store).await;
    let cancelled = store.cancel_workflow(wf.id, "test").await.unwrap();
    assert_eq!(cancelled.from, "running");
    assert_eq!(cancelled.running.len(), 1);
    assert_eq!(cancelled.running[0].0, WORKER);
    assert_eq!(cancelled.running[0].1, s["a"].0);
    assert_eq!(cancelled.transitions.len(), 4);
    assert!(steps(store, wf.id)
        .await
        .values()
        .all(|s| s.1 == JobState::Cancelled));
    assert_eq!(status(store, wf.id).await, "cancelled");
    assert!(
        store.workflows_to_evaluate(10).await.unwrap().is_empty(),
        "cancel wakes nothing"
    );
    let err = store.pause_workflow(wf.id, "test").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "illegal workflow transition from cancelled to paused"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_paused_workflow_releases_nothing_until_resumed() {
    let db = TestDb::new().await;
    let store = &db.store;
    let wf = diamond();
    store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap();
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    let running = start_all(store).await;
    assert_eq!(
        store.pause_workflow(wf.id, "test").await.unwrap(),
        "running"
    );
    apply(
        store,
        WORKER,
        &[completed(running[&s["a"].0], json!({"v": 1}))],
    )
    .await;
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    assert_eq!((s["b"].1, s["c"].1), (JobState::Blocked, JobState::Blocked));
    assert_eq!(status(store, wf.id).await, "paused");
    store.resume_workflow(wf.id, "test").await.unwrap();
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    assert_eq!((s["b"].1, s["c"].1), (JobState::Pending, JobState::Pending));
    db.cleanup().await;
}

#[tokio::test]
async fn listings_filter_by_status_name_and_metadata() {
    let db = TestDb::new().await;
    let store = &db.store;
    let first = diamond();
    let mut second = diamond();
    second.spec.name = "other".into();
    second.spec.metadata.insert("owner".into(), json!("bob"));
    store
        .insert_workflows(&[first.clone(), second.clone()])
        .await
        .unwrap();
    let ids = |rows: Vec<warren_store::WorkflowSummary>| {
        rows.into_iter().map(|w| w.id).collect::<Vec<_>>()
    };
    let mut filter = WorkflowFilter {
        limit: 10,
        ..WorkflowFilter::default()
    };
    assert_eq!(
        ids(store.list_workflows(&filter).await.unwrap()),
        vec![second.id, first.id]
    );
    filter.name = Some("diamond".into());
    assert_eq!(
        ids(store.list_workflows(&filter).await.unwrap()),
        vec![first.id]
    );
    filter.name = None;
    filter.metadata = vec![("owner".into(), "bob".into())];
    assert_eq!(
        ids(store.list_workflows(&filter).await.unwrap()),
        vec![second.id]
    );
    filter.metadata = vec![("build".into(), "7".into())];
    assert_eq!(
        ids(store.list_workflows(&filter).await.unwrap()),
        vec![second.id, first.id]
    );
    filter.metadata.clear();
    filter.status = Some(StatusFilter::Active);
    filter.limit = 1;
    let page = store.list_workflows(&filter).await.unwrap();
    assert_eq!(ids(page.clone()), vec![second.id]);
    filter.before = Some(page[0].id);
    assert_eq!(
        ids(store.list_workflows(&filter).await.unwrap()),
        vec![first.id]
    );
    filter.before = None;
    filter.status = Some(StatusFilter::Is("failed".into()));
    assert!(store.list_workflows(&filter).await.unwrap().is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn template_versions_only_grow() {
    let db = TestDb::new().await;
    let store = &db.store;
    let doc = |v: u32| json!({"name": "t", "version": v, "workflow": {"name": "t", "steps": []}});
    assert!(store.put_template("t", 1, "first", &doc(1)).await.unwrap());
    assert!(
        !store.put_template("t", 1, "first", &doc(1)).await.unwrap(),
        "same PUT again is a no-op"
    );
    assert!(store.put_template("t", 3, "third", &doc(3)).await.unwrap());
    let err = store
        .put_template("t", 2, "second", &doc(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("latest version 3")),
        "{err}"
    );
    assert_eq!(store.get_template("t", None).await.unwrap().version, 3);
    assert_eq!(
        store.get_template("t", Some(1)).await.unwrap().description,
        "first"
    );
    assert!(matches!(
        store.get_template("t", Some(2)).await,
        Err(StoreError::Missing(_))
    ));
    assert!(store.put_template("u", 1, "", &doc(1)).await.unwrap());
    let list = store.list_templates(None, 10).await.unwrap();
    let summary: Vec<(String, i32, i64)> = list
        .into_iter()
        .map(|t| (t.name, t.version, t.versions))
        .collect();
    assert_eq!(summary, vec![("t".into(), 3, 2), ("u".into(), 1, 1)]);
    assert_eq!(store.list_templates(Some("t"), 10).await.unwrap().len(), 1);
    db.cleanup().await;
}

#[tokio::test]
async fn a_step_whose_task_would_be_too_large_fails_instead_of_being_sent() {
    let db = TestDb::new().await;
    let store = &db.store;
    let wf = workflow(json!({
        "name": "big",
        "steps": [
            {"name": "a", "queue": "default", "type": "echo"},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]},
        ]
    }));
    store
        .insert_workflows(std::slice::from_ref(&wf))
        .await
        .unwrap();
    settle(store, wf.id).await;
    let s = steps(store, wf.id).await;
    let running = start_all(store).await;
    let big = "x".repeat(LIMIT);
    apply(store, WORKER, &[completed(running[&s["a"].0], json!(big))]).await;
    settle(store, wf.id).await;
    let b = job(store, s["b"].0).await;
    assert_eq!(b.state(), JobState::Failed);
    assert!(b.error.unwrap().contains("bytes a task message may carry"));
    assert_eq!(status(store, wf.id).await, "failed");
    db.cleanup().await;
}
