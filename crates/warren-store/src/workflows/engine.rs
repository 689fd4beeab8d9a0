//! The engine's evaluation of one workflow, in one transaction:
//!
//! 1. lock the workflow row (`FOR UPDATE SKIP LOCKED`: a workflow another
//!    coordinator, or an operator's action, holds is left for later) and
//!    delete its wakeups — only those committed so far, so a step that ends
//!    while this runs leaves a wakeup for the next evaluation;
//! 2. a `pending` (or `recovering`) workflow becomes `running`; a failed or
//!    terminal one is left alone;
//! 3. read the current row of every step, then walk the DAG in topological
//!    order and ask [`decide`] about each `blocked` step: `Run` moves it to
//!    `pending` with its `${steps.…}` references resolved and its parents'
//!    results as `inputs`; `Skip` moves it to `skipped` (and its children see
//!    that in the same pass); a payload that cannot be built fails the step.
//!    A paused workflow gets the skips but no releases;
//! 4. once every step is finished, [`final_status`] ends the workflow (a
//!    paused one too: the steps that were running when it was paused may be
//!    the last ones).
//!
//! A step counts as finished when it is completed, skipped, cancelled, or
//! failed / timed out *at rest*: a failed attempt with attempts left moves on
//! to `retrying` in the same transaction as its failure, so a committed
//! `failed` or `timeout` row is dead (no attempts left, or a fatal error).
//!
//! The transaction sets `warren.workflow_engine`, so the engine's own moves
//! do not wake the workflow again: one pass reaches a fixed point.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;
use warren_core::workflow::{
    decide, final_status, resolve_references, Decision, IllegalWorkflowTransition, StepOutcome,
    WorkflowSpec, WorkflowStatus,
};
use warren_core::JobState;

use crate::{Store, StoreError};

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Steps moved to `pending` (the dispatcher should look).
    pub released: usize,
    /// Steps moved to `skipped`.
    pub skipped: usize,
    /// Steps failed because their payload could not be built.
    pub failed: usize,
    /// The workflow's status moves, in order.
    pub moves: Vec<(WorkflowStatus, WorkflowStatus)>,
}

#[derive(FromRow)]
struct Step {
    id: Uuid,
    step_name: String,
    state: String,
    result: Option<Value>,
}

/// How the engine sees a step's job state.
fn outcome(state: JobState) -> Option<StepOutcome> {
    match state {
        JobState::Completed => Some(StepOutcome::Succeeded),
        JobState::Failed | JobState::Timeout => Some(StepOutcome::Failed),
        JobState::Skipped => Some(StepOutcome::Skipped),
        JobState::Cancelled => Some(StepOutcome::Cancelled),
        _ => None,
    }
}

impl Store {
    /// Up to `limit` workflows with pending wakeups, oldest wakeup first.
    pub async fn workflows_to_evaluate(&self, limit: i64) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT workflow_id FROM workflow_wakeups GROUP BY workflow_id ORDER BY min(id) LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Evaluates one workflow (see the module docs). `None` when another
    /// transaction holds it; its wakeups stay for a later evaluation.
    /// `max_task_bytes` bounds a released step's payload plus inputs: a step
    /// whose task message would not fit fails instead of being dispatched
    /// (workers would dead-letter the message).
    pub async fn evaluate_workflow(
        &self,
        id: Uuid,
        max_task_bytes: usize,
    ) -> Result<Option<Evaluation>, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT set_config('warren.workflow_engine', 'on', true)")
            .execute(&mut *tx)
            .await?;
        let row: Option<(String, Value)> = sqlx::query_as(
            "SELECT status::text, spec FROM workflows WHERE id = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, spec)) = row else {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workflows WHERE id = $1)")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if exists {
                return Ok(None);
            }
            // Wakeups of a workflow that no longer exists.
            delete_wakeups(&mut tx, id).await?;
            tx.commit().await?;
            return Ok(Some(Evaluation::default()));
        };
        delete_wakeups(&mut tx, id).await?;
        let mut evaluation = Evaluation::default();
        let mut status = WorkflowStatus::parse(&status)
            .ok_or_else(|| StoreError::Config(format!("unknown workflow status {status}")))?;
        if !matches!(
            status,
            WorkflowStatus::Pending
                | WorkflowStatus::Running
                | WorkflowStatus::Recovering
                | WorkflowStatus::Paused
        ) {
            tx.commit().await?;
            return Ok(Some(evaluation));
        }
        let spec = match serde_json::from_value::<WorkflowSpec>(spec) {
            Ok(spec) => spec,
            Err(e) => {
                fail_unreadable(&mut tx, id, status, &e.to_string()).await?;
                evaluation.moves.push((status, WorkflowStatus::Failed));
                tx.commit().await?;
                return Ok(Some(evaluation));
            }
        };
        if matches!(status, WorkflowStatus::Pending | WorkflowStatus::Recovering) {
            set_status(&mut tx, id, status, WorkflowStatus::Running, None).await?;
            evaluation.moves.push((status, WorkflowStatus::Running));
            status = WorkflowStatus::Running;
        }
        let release = status == WorkflowStatus::Running;
        let limits = Limits {
            release,
            max_task_bytes,
        };
        if let Some(final_status) = advance(&mut tx, id, &spec, limits, &mut evaluation).await? {
            set_status(&mut tx, id, status, final_status, None).await?;
            evaluation.moves.push((status, final_status));
        }
        tx.commit().await?;
        Ok(Some(evaluation))
    }
}

/// What an evaluation may do.
#[derive(Clone, Copy)]
struct Limits {
    /// Whether steps may be released (not while paused).
    release: bool,
    /// Largest payload + inputs of a released step, in bytes.
    max_task_bytes: usize,
}

/// Steps 3 and 4 of the module docs; returns the final status once every
/// step is finished.
async fn advance(
    conn: &mut PgConnection,
    id: Uuid,
    spec: &WorkflowSpec,
    limits: Limits,
    evaluation: &mut Evaluation,
) -> Result<Option<WorkflowStatus>, StoreError> {
    let dag = match spec.validate() {
        Ok(dag) => dag,
        Err(e) => return Err(StoreError::Config(format!("workflow {id}: {e}"))),
    };
    let rows: Vec<Step> = sqlx::query_as(
        "SELECT id, step_name, state::text AS state, result FROM jobs
          WHERE workflow_id = $1 AND superseded_at IS NULL",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let n = spec.steps.len();
    let mut job_ids: Vec<Option<Uuid>> = vec![None; n];
    let mut states: Vec<Option<JobState>> = vec![None; n];
    let mut results: HashMap<String, Value> = HashMap::new();
    for row in rows {
        let Some(index) = dag.index_of(&row.step_name) else {
            continue;
        };
        let state: JobState = row
            .state
            .parse()
            .map_err(|e: warren_core::state::UnknownState| StoreError::Config(e.to_string()))?;
        job_ids[index] = Some(row.id);
        states[index] = Some(state);
        if state == JobState::Completed {
            results.insert(row.step_name, row.result.unwrap_or(Value::Null));
        }
    }
    let mut outcomes: Vec<Option<StepOutcome>> =
        states.iter().map(|s| s.and_then(outcome)).collect();
    let mut skip = Vec::new();
    let mut fail: Vec<(Uuid, String)> = Vec::new();
    let mut release: Vec<(Uuid, Value, Value)> = Vec::new();
    for &index in dag.topological_order() {
        let (Some(job_id), Some(JobState::Blocked)) = (job_ids[index], states[index]) else {
            continue;
        };
        let step = &spec.steps[index];
        let parents: Vec<Option<StepOutcome>> =
            dag.parents(index).iter().map(|&p| outcomes[p]).collect();
        match decide(step.run_if, &parents) {
            Decision::Wait => {}
            Decision::Run if !limits.release => {}
            Decision::Skip => {
                skip.push(job_id);
                outcomes[index] = Some(StepOutcome::Skipped);
            }
            Decision::Run => match resolve_references(&step.payload, &results) {
                Ok(payload) => {
                    let inputs: Map<String, Value> = dag
                        .parents(index)
                        .iter()
                        .map(|&p| {
                            let name = &spec.steps[p].name;
                            (
                                name.clone(),
                                results.get(name).cloned().unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    let inputs = Value::Object(inputs);
                    let size = payload.to_string().len() + inputs.to_string().len();
                    if size > limits.max_task_bytes {
                        fail.push((
                            job_id,
                            format!(
                                "its payload and inputs (its parents' results) take {size} bytes, \
                                 over the {} bytes a task message may carry",
                                limits.max_task_bytes
                            ),
                        ));
                        outcomes[index] = Some(StepOutcome::Failed);
                    } else {
                        release.push((job_id, payload, inputs));
                    }
                }
                Err(e) => {
                    fail.push((job_id, format!("cannot build the payload: {e}")));
                    outcomes[index] = Some(StepOutcome::Failed);
                }
            },
        }
    }
    let mut complete = true;
    complete &= skip_steps(conn, &skip).await? == skip.len();
    complete &= fail_steps(conn, &fail).await? == fail.len();
    complete &= release_steps(conn, &release).await? == release.len();
    evaluation.skipped = skip.len();
    evaluation.failed = fail.len();
    evaluation.released = release.len();
    if !complete || job_ids.iter().any(Option::is_none) {
        // A step changed under us (e.g. cancelled through the jobs API); its
        // own wakeup brings the workflow back for a fresh evaluation.
        return Ok(None);
    }
    Ok(final_status(&outcomes))
}

async fn delete_wakeups(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM workflow_wakeups WHERE workflow_id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the workflow, guarded by its current status.
pub(super) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    from: WorkflowStatus,
    to: WorkflowStatus,
    note: Option<Value>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE workflows SET status = $3::workflow_status, transition_note = $4,
                started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
                finished_at = CASE WHEN $3 IN ('completed', 'failed', 'cancelled') THEN now() END
          WHERE id = $1 AND status = $2::workflow_status",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(note)
    .execute(conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(IllegalWorkflowTransition { from, to }.into())
    }
}

/// A stored spec this build cannot read fails its workflow (instead of
/// being retried forever).
async fn fail_unreadable(
    conn: &mut PgConnection,
    id: Uuid,
    status: WorkflowStatus,
    error: &str,
) -> Result<(), StoreError> {
    tracing::error!(workflow = %id, error, "unreadable workflow spec; failing the workflow");
    let note = serde_json::json!({ "reason": "unreadable_spec", "error": error });
    set_status(conn, id, status, WorkflowStatus::Failed, Some(note)).await
}

/// Blocked steps (by id) to `skipped`. These three statements reach their
/// rows by primary key only: the state test is written so that no index
/// serves it (see `reports.rs`).
pub(crate) const SKIP_BLOCKED: &str = "UPDATE jobs SET state = 'skipped', finished_at = now()
      WHERE id = ANY($1) AND state IS NOT DISTINCT FROM 'blocked'";

/// Blocked steps (ids, errors) to `failed`.
pub(crate) const FAIL_BLOCKED: &str =
    "UPDATE jobs j SET state = 'failed', error = r.error, finished_at = now()
       FROM UNNEST($1::uuid[], $2::text[]) AS r(id, error)
      WHERE j.id = r.id AND j.state IS NOT DISTINCT FROM 'blocked'";

/// Blocked steps (ids, payloads, inputs) released to `pending`.
pub(crate) const RELEASE_BLOCKED: &str =
    "UPDATE jobs j SET state = 'pending', payload = r.payload, inputs = r.inputs, run_at = now()
       FROM UNNEST($1::uuid[], $2::jsonb[], $3::jsonb[]) AS r(id, payload, inputs)
      WHERE j.id = r.id AND j.state IS NOT DISTINCT FROM 'blocked'";

async fn skip_steps(conn: &mut PgConnection, ids: &[Uuid]) -> Result<usize, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(SKIP_BLOCKED).bind(ids).execute(conn).await?;
    Ok(done.rows_affected() as usize)
}

async fn fail_steps(
    conn: &mut PgConnection,
    steps: &[(Uuid, String)],
) -> Result<usize, sqlx::Error> {
    if steps.is_empty() {
        return Ok(0);
    }
    let (ids, errors): (Vec<Uuid>, Vec<String>) = steps.iter().cloned().unzip();
    let done = sqlx::query(FAIL_BLOCKED)
        .bind(&ids)
        .bind(&errors)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() as usize)
}

async fn release_steps(
    conn: &mut PgConnection,
    steps: &[(Uuid, Value, Value)],
) -> Result<usize, sqlx::Error> {
    if steps.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = steps.iter().map(|s| s.0).collect();
    let payloads: Vec<Value> = steps.iter().map(|s| s.1.clone()).collect();
    let inputs: Vec<Value> = steps.iter().map(|s| s.2.clone()).collect();
    let done = sqlx::query(RELEASE_BLOCKED)
        .bind(&ids)
        .bind(&payloads)
        .bind(&inputs)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() as usize)
}
