//! Dispatch: claim due jobs (priority, then `run_at`) with `SKIP LOCKED`, give
//! each a fresh lease and attempt number in one commit; undo the claim for
//! jobs whose task message could not be published.

use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;
use warren_core::protocol::{TaskMessage, PROTOCOL_VERSION};
use warren_core::JobState;

use crate::{Store, StoreError, Transition};

/// A job moved to `queued`, ready to publish.
#[derive(Debug, Clone, FromRow)]
pub struct DispatchedJob {
    /// The job.
    pub id: Uuid,
    /// Its queue (routing key).
    pub queue: String,
    /// Its task type.
    pub task_type: String,
    /// Handler input.
    pub payload: Value,
    /// The new attempt number.
    pub attempt: i32,
    /// The new lease token.
    pub lease: Uuid,
    /// Per-attempt timeout.
    pub timeout_ms: Option<i64>,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Last checkpoint, for resuming.
    pub checkpoint: Option<Value>,
    /// `pending` or `retrying` before the claim.
    pub from_state: String,
    /// A workflow step's parents' results by step name.
    pub inputs: Option<Value>,
}

impl DispatchedJob {
    /// The task message for this attempt.
    pub fn task_message(&self) -> TaskMessage {
        TaskMessage {
            v: PROTOCOL_VERSION,
            job_id: self.id,
            attempt: self.attempt as u32,
            lease: self.lease,
            queue: self.queue.clone(),
            task_type: self.task_type.clone(),
            payload: self.payload.clone(),
            timeout_ms: self.timeout_ms.map(|t| t as u64),
            max_attempts: self.max_attempts as u32,
            checkpoint: self.checkpoint.clone(),
            inputs: match &self.inputs {
                Some(Value::Object(inputs)) => inputs.clone(),
                _ => Default::default(),
            },
        }
    }

    /// The transition this claim made.
    pub fn transition(&self) -> Transition {
        Transition {
            job_id: self.id,
            queue: self.queue.clone(),
            task_type: self.task_type.clone(),
            from: self.from_state.parse().unwrap_or(JobState::Pending),
            to: JobState::Queued,
            attempt: self.attempt,
            seconds: None,
        }
    }
}

impl Store {
    /// Claims up to `limit` due jobs and moves them to `queued` with
    /// `attempt + 1` and a fresh lease, in one statement. Each unpaused queue
    /// contributes at most its free room: `window` (or its `max_in_flight`,
    /// if lower) minus its jobs already queued or running, so the backlog
    /// stays in PostgreSQL instead of piling up in RabbitMQ.
    pub async fn claim_for_dispatch(
        &self,
        limit: i64,
        window: i64,
    ) -> Result<Vec<DispatchedJob>, StoreError> {
        // The outer SELECT re-sorts: UPDATE ... RETURNING promises no order,
        // and the dispatcher publishes in the order returned.
        let jobs = sqlx::query_as::<_, DispatchedJob>(
            "WITH room AS MATERIALIZED (
                 SELECT q.name,
                        LEAST($2, COALESCE(q.max_in_flight, $2))
                          - (SELECT count(*) FROM jobs f
                              WHERE f.queue = q.name AND f.state IN ('queued', 'running')) AS free
                   FROM queues q
                  WHERE NOT q.paused),
             due AS (
                 SELECT d.id, d.state, d.priority, d.run_at
                   FROM room r
                  CROSS JOIN LATERAL (
                        SELECT id, state, priority, run_at FROM jobs
                         WHERE queue = r.name AND state IN ('pending', 'retrying') AND run_at <= now()
                         ORDER BY priority DESC, run_at
                         LIMIT LEAST(r.free, $1)
                         FOR UPDATE SKIP LOCKED) d
                  WHERE r.free > 0
                  ORDER BY d.priority DESC, d.run_at
                  LIMIT $1),
             claimed AS (
                 UPDATE jobs j
                    SET state = 'queued', attempt = j.attempt + 1, lease = gen_random_uuid(),
                        queued_at = now(), worker_id = NULL, started_at = NULL
                   FROM due
                  WHERE j.id = due.id
                 RETURNING j.id, j.queue, j.task_type, j.payload, j.attempt, j.lease, j.timeout_ms,
                           j.max_attempts, j.checkpoint, due.state::text AS from_state, j.priority, j.run_at,
                           j.inputs)
             SELECT id, queue, task_type, payload, attempt, lease, timeout_ms, max_attempts, checkpoint, from_state,
                    inputs
               FROM claimed ORDER BY priority DESC, run_at",
        )
        .bind(limit)
        .bind(window)
        .fetch_all(&self.pool)
        .await?;
        Ok(jobs)
    }

    /// Returns jobs whose task message was not confirmed by the broker to
    /// `pending` (same attempt number again, lease cleared), guarded by lease.
    pub async fn unclaim(&self, jobs: &[(Uuid, Uuid)]) -> Result<u64, StoreError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let (ids, leases): (Vec<Uuid>, Vec<Uuid>) = jobs.iter().copied().unzip();
        let done = sqlx::query(
            "UPDATE jobs j SET state = 'pending', attempt = j.attempt - 1, lease = NULL, queued_at = NULL,
                               transition_note = '{\"reason\": \"publish_failed\"}'
               FROM UNNEST($1::uuid[], $2::uuid[]) AS r(id, lease)
              WHERE j.id = r.id AND j.state = 'queued' AND j.lease = r.lease",
        )
        .bind(&ids)
        .bind(&leases)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
