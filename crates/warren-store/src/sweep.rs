//! The sweeper's queries. Each claims a bounded batch with `SKIP LOCKED`
//! using the database clock, so any number of coordinators can sweep at once.

use std::time::Duration;

use uuid::Uuid;
use warren_core::JobState;

use crate::retry::{end_attempts, EndedAttempt, ENDED_COLUMNS};
use crate::{Store, StoreError, Transition};

/// What one sweep changed.
#[derive(Debug, Default)]
pub struct SweepOutcome {
    /// State changes, in order.
    pub transitions: Vec<Transition>,
    /// (worker, job, attempt) whose execution must be stopped on the worker.
    pub cancels: Vec<(String, Uuid, u32)>,
    /// Jobs rescued by this sweep (metric).
    pub rescued: usize,
}

impl Store {
    /// Running jobs whose worker has not sent a heartbeat for `lease_timeout`
    /// go to `timeout` (then `retrying` if attempts remain).
    pub async fn rescue_lost_heartbeats(
        &self,
        lease_timeout: Duration,
        limit: i64,
    ) -> Result<SweepOutcome, StoreError> {
        self.time_out_running(
            "SELECT j.id FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
              WHERE j.state = 'running'
                AND COALESCE(w.last_heartbeat_at, j.started_at) < now() - $1 * interval '1 millisecond'
              LIMIT $2 FOR UPDATE OF j SKIP LOCKED",
            "worker heartbeat lost",
            lease_timeout,
            limit,
        )
        .await
    }

    /// Running jobs past `started_at + timeout_ms + grace` go to `timeout`;
    /// the worker is told to stop. (Workers enforce the timeout themselves;
    /// this is the backstop for a worker that cannot.)
    pub async fn expire_deadlines(
        &self,
        grace: Duration,
        limit: i64,
    ) -> Result<SweepOutcome, StoreError> {
        self.time_out_running(
            "SELECT j.id FROM jobs j
              WHERE j.state = 'running' AND j.timeout_ms IS NOT NULL
                AND j.started_at + (j.timeout_ms + $1) * interval '1 millisecond' < now()
              LIMIT $2 FOR UPDATE SKIP LOCKED",
            "execution deadline exceeded",
            grace,
            limit,
        )
        .await
    }

    /// Running jobs with a `no_progress_timeout_ms` that have reported no
    /// progress (nor started) for that long plus `grace` go to `timeout`;
    /// the worker is told to stop (DESIGN §3.6, opt-in per job).
    pub async fn expire_stalled(
        &self,
        grace: Duration,
        limit: i64,
    ) -> Result<SweepOutcome, StoreError> {
        self.time_out_running(
            "SELECT j.id FROM jobs j
              WHERE j.state = 'running' AND j.no_progress_timeout_ms IS NOT NULL
                AND COALESCE(j.progress_at, j.started_at)
                    + (j.no_progress_timeout_ms + $1) * interval '1 millisecond' < now()
              LIMIT $2 FOR UPDATE SKIP LOCKED",
            "no progress reported within no_progress_timeout_ms",
            grace,
            limit,
        )
        .await
    }

    async fn time_out_running(
        &self,
        select: &str,
        error: &str,
        age: Duration,
        limit: i64,
    ) -> Result<SweepOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let ended: Vec<EndedAttempt> = sqlx::query_as(&format!(
            "WITH lost AS ({select})
             UPDATE jobs j SET state = 'timeout', error = $3, finished_at = now()
               FROM lost WHERE j.id = lost.id AND j.state = 'running'
             RETURNING {ENDED_COLUMNS}"
        ))
        .bind(age.as_millis() as i64)
        .bind(limit)
        .bind(error)
        .fetch_all(&mut *tx)
        .await?;
        let transitions =
            end_attempts(&mut tx, &ended, JobState::Running, JobState::Timeout).await?;
        tx.commit().await?;
        Ok(SweepOutcome {
            rescued: ended.len(),
            transitions,
            cancels: ended
                .iter()
                .filter_map(|a| Some((a.worker_id.clone()?, a.id, a.attempt as u32)))
                .collect(),
        })
    }

    /// Forgets workers silent for longer than `age` (their jobs were rescued long ago).
    pub async fn forget_dead_workers(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM workers WHERE last_heartbeat_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(age.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
