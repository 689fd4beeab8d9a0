//! Operator controls: pause, resume, cancel, recover from a step, retry one
//! failed step. Each is one transaction that locks the workflow row first
//! (then step rows), and every move is guarded by the status it expects.

use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;
use warren_core::workflow::{Dag, IllegalWorkflowTransition, WorkflowSpec, WorkflowStatus};
use warren_core::JobState;

use super::engine::set_status;
use super::rows::{insert_step_rows, supersede_steps, wake};
use crate::admin::MANUAL_RETRY_SET;
use crate::{Store, StoreError, Transition};

/// What cancelling a workflow did.
#[derive(Debug, Clone, Default)]
pub struct Cancelled {
    /// The workflow's status before.
    pub from: String,
    /// The steps cancelled with it.
    pub transitions: Vec<Transition>,
    /// (worker, job, attempt) of steps that were running: tell them to stop.
    pub running: Vec<(String, Uuid, u32)>,
}

/// What retrying one step did.
#[derive(Debug, Clone)]
pub struct StepRetried {
    /// The step's job.
    pub job_id: Uuid,
    /// Its state before (`failed` or `timeout`).
    pub from: JobState,
    /// Its state after: `retrying` (one more attempt of the same job, keeping
    /// its checkpoint), or `blocked` for a step that never ran (its payload
    /// could not be built): a fresh job is created for it.
    pub to: JobState,
    /// The attempt number of the job.
    pub attempt: i32,
}

/// A locked workflow row.
struct Locked {
    status: WorkflowStatus,
    spec: WorkflowSpec,
    recovery_attempts: i32,
    max_recovery_attempts: i32,
}

async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Locked, StoreError> {
    let row: Option<(String, Value, i32, i32)> = sqlx::query_as(
        "SELECT status::text, spec, recovery_attempts, max_recovery_attempts
           FROM workflows WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let (status, spec, recovery_attempts, max_recovery_attempts) =
        row.ok_or_else(|| StoreError::Missing(format!("workflow {id} not found")))?;
    Ok(Locked {
        status: WorkflowStatus::parse(&status)
            .ok_or_else(|| StoreError::Config(format!("unknown workflow status {status}")))?,
        spec: serde_json::from_value(spec)
            .map_err(|e| StoreError::Config(format!("workflow {id}: unreadable spec: {e}")))?,
        recovery_attempts,
        max_recovery_attempts,
    })
}

fn illegal(from: WorkflowStatus, to: WorkflowStatus) -> StoreError {
    IllegalWorkflowTransition { from, to }.into()
}

/// Checks and applies one move of a locked workflow.
async fn step_status(
    conn: &mut PgConnection,
    id: Uuid,
    from: WorkflowStatus,
    to: WorkflowStatus,
    note: Value,
) -> Result<(), StoreError> {
    if !from.can_transition_to(to) {
        return Err(illegal(from, to));
    }
    set_status(conn, id, from, to, Some(note)).await
}

/// `from → recovering → running`, both moves annotated with `note`: how a
/// recovery and a step retry put a failed workflow back to work.
async fn recover_to_running(
    conn: &mut PgConnection,
    id: Uuid,
    from: WorkflowStatus,
    note: Value,
) -> Result<(), StoreError> {
    step_status(conn, id, from, WorkflowStatus::Recovering, note.clone()).await?;
    step_status(
        conn,
        id,
        WorkflowStatus::Recovering,
        WorkflowStatus::Running,
        note,
    )
    .await
}

fn dag_of(id: Uuid, spec: &WorkflowSpec) -> Result<Dag, StoreError> {
    spec.validate()
        .map_err(|e| StoreError::Config(format!("workflow {id}: {e}")))
}

impl Store {
    /// `running → paused`: no further step is released until resumed
    /// (running steps finish; steps already released may still start).
    pub async fn pause_workflow(&self, id: Uuid, actor: &str) -> Result<String, StoreError> {
        let mut tx = self.begin().await?;
        let wf = lock(&mut tx, id).await?;
        step_status(
            &mut tx,
            id,
            wf.status,
            WorkflowStatus::Paused,
            json!({ "by": actor }),
        )
        .await?;
        tx.commit().await?;
        Ok(wf.status.as_str().to_owned())
    }

    /// `paused → running`, and the engine re-evaluates it.
    pub async fn resume_workflow(&self, id: Uuid, actor: &str) -> Result<String, StoreError> {
        let mut tx = self.begin().await?;
        let wf = lock(&mut tx, id).await?;
        if wf.status != WorkflowStatus::Paused {
            return Err(illegal(wf.status, WorkflowStatus::Running));
        }
        step_status(
            &mut tx,
            id,
            wf.status,
            WorkflowStatus::Running,
            json!({ "by": actor }),
        )
        .await?;
        wake(&mut tx, id).await?;
        tx.commit().await?;
        Ok(wf.status.as_str().to_owned())
    }

    /// Cancels the workflow and every step that has not finished; running
    /// steps are returned so their workers can be told to stop. Dead steps
    /// keep their `failed` / `timeout` state.
    pub async fn cancel_workflow(&self, id: Uuid, actor: &str) -> Result<Cancelled, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT set_config('warren.workflow_engine', 'on', true)")
            .execute(&mut *tx)
            .await?;
        let wf = lock(&mut tx, id).await?;
        step_status(
            &mut tx,
            id,
            wf.status,
            WorkflowStatus::Cancelled,
            json!({ "by": actor }),
        )
        .await?;
        let rows: Vec<(Uuid, String, String, String, i32, Option<String>)> = sqlx::query_as(
            "WITH cur AS (
                 SELECT id, state AS old_state FROM jobs
                  WHERE workflow_id = $1 AND superseded_at IS NULL
                    AND state IN ('awaiting_approval', 'blocked', 'pending', 'queued', 'running', 'retrying')
                  FOR UPDATE)
             UPDATE jobs j SET state = 'cancelled', finished_at = now(), transition_note = $2
               FROM cur WHERE j.id = cur.id
             RETURNING j.id, cur.old_state::text, j.queue, j.task_type, j.attempt, j.worker_id",
        )
        .bind(id)
        .bind(json!({ "by": actor, "reason": "workflow_cancelled" }))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut cancelled = Cancelled {
            from: wf.status.as_str().to_owned(),
            ..Cancelled::default()
        };
        for (job_id, old, queue, task_type, attempt, worker) in rows {
            let from: JobState = old.parse().unwrap_or(JobState::Pending);
            if let (JobState::Running, Some(worker)) = (from, worker) {
                cancelled.running.push((worker, job_id, attempt as u32));
            }
            cancelled.transitions.push(Transition {
                job_id,
                queue,
                task_type,
                from,
                to: JobState::Cancelled,
                attempt,
                seconds: None,
            });
        }
        Ok(cancelled)
    }

    /// Recovers a failed workflow from `from_step`: that step and everything
    /// downstream get fresh job rows (new ids, a new attempt budget; the old
    /// rows stay as history), `recovery_attempts` grows by one, and the
    /// workflow goes `failed → recovering → running`. Refused once
    /// `max_recovery_attempts` recoveries were made.
    pub async fn recover_workflow(
        &self,
        id: Uuid,
        from_step: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let wf = lock(&mut tx, id).await?;
        if wf.status != WorkflowStatus::Failed {
            return Err(illegal(wf.status, WorkflowStatus::Recovering));
        }
        if wf.recovery_attempts >= wf.max_recovery_attempts {
            return Err(StoreError::Conflict(format!(
                "workflow {id} has used all its recovery attempts ({} of {})",
                wf.recovery_attempts, wf.max_recovery_attempts
            )));
        }
        let dag = dag_of(id, &wf.spec)?;
        let start = dag.index_of(from_step).ok_or_else(|| {
            StoreError::Invalid(format!("workflow {id} has no step {from_step:?}"))
        })?;
        let reset = dag.downstream(start);
        replace_steps(&mut tx, id, &wf.spec, &dag, &reset).await?;
        sqlx::query("UPDATE workflows SET recovery_attempts = recovery_attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let note = json!({ "by": actor, "from_step": from_step });
        recover_to_running(&mut tx, id, wf.status, note).await?;
        wake(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives one dead step of a failed workflow one more attempt through the
    /// job's own retry path, resets everything downstream of it to fresh
    /// `blocked` rows, and moves the workflow `failed → recovering → running`.
    /// Does not count as a recovery attempt.
    pub async fn retry_workflow_step(
        &self,
        id: Uuid,
        step: &str,
        actor: &str,
    ) -> Result<StepRetried, StoreError> {
        let mut tx = self.begin().await?;
        let wf = lock(&mut tx, id).await?;
        if wf.status != WorkflowStatus::Failed {
            return Err(illegal(wf.status, WorkflowStatus::Recovering));
        }
        let dag = dag_of(id, &wf.spec)?;
        let index = dag
            .index_of(step)
            .ok_or_else(|| StoreError::Missing(format!("workflow {id} has no step {step:?}")))?;
        let (job_id, state, attempt): (Uuid, String, i32) = sqlx::query_as(
            "SELECT id, state::text, attempt FROM jobs
              WHERE workflow_id = $1 AND step_name = $2 AND superseded_at IS NULL FOR UPDATE",
        )
        .bind(id)
        .bind(step)
        .fetch_one(&mut *tx)
        .await?;
        let from: JobState = state
            .parse()
            .map_err(|e: warren_core::state::UnknownState| StoreError::Config(e.to_string()))?;
        if !matches!(from, JobState::Failed | JobState::Timeout) {
            return Err(StoreError::Conflict(format!(
                "step {step:?} is {from}; only a failed or timed-out step can be retried"
            )));
        }
        let note = json!({ "by": actor, "retry_step": step });
        let downstream = dag.downstream(index);
        let retried = if attempt == 0 {
            // It never ran: its payload could not be built. A fresh row lets
            // the engine build it again.
            replace_steps(&mut tx, id, &wf.spec, &dag, &downstream).await?;
            wake(&mut tx, id).await?;
            StepRetried {
                job_id,
                from,
                to: JobState::Blocked,
                attempt,
            }
        } else {
            let below: Vec<usize> = downstream.into_iter().filter(|&i| i != index).collect();
            replace_steps(&mut tx, id, &wf.spec, &dag, &below).await?;
            sqlx::query(&format!(
                "UPDATE jobs j SET state = 'retrying', {MANUAL_RETRY_SET}, transition_note = $3
                  WHERE id = $1 AND state = $2::job_state"
            ))
            .bind(job_id)
            .bind(from.as_str())
            .bind(&note)
            .execute(&mut *tx)
            .await?;
            StepRetried {
                job_id,
                from,
                to: JobState::Retrying,
                attempt,
            }
        };
        recover_to_running(&mut tx, id, wf.status, note).await?;
        tx.commit().await?;
        Ok(retried)
    }

    /// The workflow and step of a job, if it is a workflow step:
    /// (workflow id, step name, superseded).
    pub async fn job_workflow_step(
        &self,
        job_id: Uuid,
    ) -> Result<Option<(Uuid, String, bool)>, StoreError> {
        let row: Option<(Option<Uuid>, Option<String>, bool)> = sqlx::query_as(
            "SELECT workflow_id, step_name, superseded_at IS NOT NULL FROM jobs WHERE id = $1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Err(StoreError::NotFound(job_id)),
            Some((Some(workflow), Some(step), superseded)) => {
                Ok(Some((workflow, step, superseded)))
            }
            Some(_) => Ok(None),
        }
    }
}

/// Supersedes the current rows of `indices` (which must all be finished)
/// and inserts fresh `blocked` rows for them.
async fn replace_steps(
    conn: &mut PgConnection,
    id: Uuid,
    spec: &WorkflowSpec,
    dag: &Dag,
    indices: &[usize],
) -> Result<(), StoreError> {
    if indices.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = indices
        .iter()
        .map(|&i| spec.steps[i].name.as_str())
        .collect();
    let replaced = supersede_steps(conn, id, &names).await?;
    if let Some((step, state)) = replaced.iter().find(|(_, state)| {
        !matches!(
            state.parse::<JobState>(),
            Ok(JobState::Completed
                | JobState::Failed
                | JobState::Timeout
                | JobState::Skipped
                | JobState::Cancelled)
        )
    }) {
        return Err(StoreError::Conflict(format!(
            "step {step:?} is still {state}; it cannot be reset"
        )));
    }
    insert_step_rows(conn, id, spec, dag, indices).await?;
    Ok(())
}
