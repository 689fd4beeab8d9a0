//! Worker heartbeats: upsert the worker row and reconcile the attempts it
//! says it runs against the database.

use uuid::Uuid;
use warren_core::protocol::Heartbeat;

use crate::{Store, StoreError, WorkerRow};

/// Attempts a worker runs that the database no longer considers its own
/// (cancelled, timed out, re-dispatched): the worker must stop them.
#[derive(Debug, Default)]
pub struct HeartbeatOutcome {
    /// (job, attempt) to cancel on the sending worker.
    pub orphaned: Vec<(Uuid, u32)>,
}

/// Of the attempts a worker says it runs (ids, attempts, leases), those
/// whose job no longer holds that attempt in flight. Reached by primary key
/// only (the state test is written so no index serves it; see `reports.rs`).
pub(crate) const ORPHANED_ATTEMPTS: &str =
    "SELECT r.id, r.attempt FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[]) AS r(id, attempt, lease)
      WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.id AND j.attempt = r.attempt AND j.lease = r.lease
                          AND (j.state IS NOT DISTINCT FROM 'queued' OR j.state IS NOT DISTINCT FROM 'running'))";

impl Store {
    /// Records a heartbeat (database clock) and returns the worker's orphaned attempts.
    pub async fn record_heartbeat(
        &self,
        worker_id: &str,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatOutcome, StoreError> {
        sqlx::query(
            "INSERT INTO workers (id, queues, concurrency, running, last_heartbeat_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (id) DO UPDATE
                SET queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency,
                    running = EXCLUDED.running, last_heartbeat_at = now()",
        )
        .bind(worker_id)
        .bind(&heartbeat.queues)
        .bind(heartbeat.concurrency as i32)
        .bind(heartbeat.running.len() as i32)
        .execute(&self.pool)
        .await?;
        if heartbeat.running.is_empty() {
            return Ok(HeartbeatOutcome::default());
        }
        let ids: Vec<Uuid> = heartbeat.running.iter().map(|j| j.job_id).collect();
        let attempts: Vec<i32> = heartbeat.running.iter().map(|j| j.attempt as i32).collect();
        let leases: Vec<Uuid> = heartbeat.running.iter().map(|j| j.lease).collect();
        let orphaned: Vec<(Uuid, i32)> = sqlx::query_as(ORPHANED_ATTEMPTS)
            .bind(&ids)
            .bind(&attempts)
            .bind(&leases)
            .fetch_all(&self.pool)
            .await?;
        Ok(HeartbeatOutcome {
            orphaned: orphaned.into_iter().map(|(id, a)| (id, a as u32)).collect(),
        })
    }

    /// Workers that sent a heartbeat, most recent first.
    pub async fn list_workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, queues, concurrency, running, started_at, last_heartbeat_at
               FROM workers ORDER BY last_heartbeat_at DESC LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Free execution slots of live workers consuming `queue`, as of their
    /// last heartbeats. A worker with a free slot has no task of that queue
    /// waiting in its prefetch buffer.
    pub async fn idle_capacity(
        &self,
        queue: &str,
        live_within: std::time::Duration,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(sum(GREATEST(concurrency - running, 0)), 0)::int8 FROM workers
              WHERE $1 = ANY(queues) AND last_heartbeat_at > now() - $2 * interval '1 millisecond'",
        )
        .bind(queue)
        .bind(live_within.as_millis() as i64)
        .fetch_one(&self.pool)
        .await?)
    }
}
