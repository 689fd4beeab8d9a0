//! Operator actions (cancel, retry, approve) and job queries.

use serde::Serialize;
use uuid::Uuid;
use warren_core::{IllegalTransition, JobState};

use crate::{JobEvent, JobRow, Store, StoreError, Transition, MAX_PAGE_SIZE};

/// Columns of [`JobRow`].
pub(crate) const JOB_COLUMNS: &str =
    "id, queue, task_type, state::text AS state, payload, priority, attempt, max_attempts,
    timeout_ms, no_progress_timeout_ms, run_at, worker_id, progress, stage, checkpoint, result, error, idempotency_key,
    requires_approval, metadata, created_at, queued_at, started_at, finished_at";

/// An operator's move that happened.
#[derive(Debug, Clone)]
pub struct OperatorMove {
    /// The state change.
    pub transition: Transition,
    /// The worker that was running the job, if it was running.
    pub running_on: Option<String>,
}

/// Who made an operator move, and why: stored as the detail of the move's
/// event. A plain `&str` converts into a note with only `by`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MoveNote {
    /// Who (a person, or the component that acted, e.g. `api`).
    pub by: String,
    /// Free text, e.g. why a job was approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Why, e.g. why a job was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&str> for MoveNote {
    fn from(by: &str) -> Self {
        MoveNote {
            by: by.to_owned(),
            ..MoveNote::default()
        }
    }
}

/// What a manual retry sets besides `state = 'retrying'` (on `jobs j`): due
/// now, unfinished, and room for one more attempt.
pub(crate) const MANUAL_RETRY_SET: &str =
    "run_at = now(), finished_at = NULL, max_attempts = GREATEST(j.max_attempts, j.attempt + 1)";

impl Store {
    /// Cancels a job in any non-terminal state. A running job's worker is
    /// returned so the caller can tell it to stop.
    pub async fn cancel_job(
        &self,
        id: Uuid,
        note: impl Into<MoveNote>,
    ) -> Result<OperatorMove, StoreError> {
        let from: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_cancellable())
            .collect();
        self.operator_move(
            id,
            &from,
            JobState::Cancelled,
            "finished_at = now()",
            note.into(),
        )
        .await
    }

    /// Re-drives a dead (`failed` / `timeout`) job: one more attempt, now.
    /// (A workflow step's retry goes the same way: `MANUAL_RETRY_SET`.)
    pub async fn retry_job(
        &self,
        id: Uuid,
        note: impl Into<MoveNote>,
    ) -> Result<OperatorMove, StoreError> {
        self.operator_move(
            id,
            &[JobState::Failed, JobState::Timeout],
            JobState::Retrying,
            MANUAL_RETRY_SET,
            note.into(),
        )
        .await
    }

    /// Approves a job waiting in `awaiting_approval`.
    pub async fn approve_job(
        &self,
        id: Uuid,
        note: impl Into<MoveNote>,
    ) -> Result<OperatorMove, StoreError> {
        self.operator_move(
            id,
            &[JobState::AwaitingApproval],
            JobState::Pending,
            "run_at = GREATEST(j.run_at, now())",
            note.into(),
        )
        .await
    }

    async fn operator_move(
        &self,
        id: Uuid,
        from: &[JobState],
        to: JobState,
        set: &str,
        note: MoveNote,
    ) -> Result<OperatorMove, StoreError> {
        let from_names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let row: Option<(String, String, String, i32, Option<String>)> = sqlx::query_as(&format!(
            "WITH cur AS (SELECT id, state AS old_state FROM jobs WHERE id = $1 FOR UPDATE)
             UPDATE jobs j SET state = $2::job_state, {set}, transition_note = $4
               FROM cur WHERE j.id = cur.id AND cur.old_state::text = ANY($3)
             RETURNING cur.old_state::text, j.queue, j.task_type, j.attempt, j.worker_id"
        ))
        .bind(id)
        .bind(to.as_str())
        .bind(&from_names)
        .bind(sqlx::types::Json(&note))
        .fetch_optional(&self.pool)
        .await?;
        let Some((old, queue, task_type, attempt, worker)) = row else {
            let current = self.get_job(id).await?.state();
            return Err(IllegalTransition { from: current, to }.into());
        };
        let old: JobState = old
            .parse()
            .map_err(|e: warren_core::state::UnknownState| StoreError::Config(e.to_string()))?;
        Ok(OperatorMove {
            running_on: worker.filter(|_| old == JobState::Running),
            transition: Transition {
                job_id: id,
                queue,
                task_type,
                from: old,
                to,
                attempt,
                seconds: None,
            },
        })
    }

    /// One job.
    pub async fn get_job(&self, id: Uuid) -> Result<JobRow, StoreError> {
        sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound(id))
    }

    /// A job's events in order, after cursor `after`.
    pub async fn job_events(
        &self,
        id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JobEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, job_id, from_state::text AS from_state, to_state::text AS to_state, attempt, worker_id, at, detail
               FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit.clamp(1, MAX_PAGE_SIZE))
        .fetch_all(&self.pool)
        .await?)
    }
}
