//! Cheap aggregates, refreshed every few seconds for the metrics gauges and
//! reused by `/v1/stats`. None of them counts over the whole `jobs` table:
//! terminal rows (millions, kept for days) are never counted here.

use std::sync::LazyLock;
use std::time::Duration;

use warren_core::JobState;

use crate::{Store, StoreError};

/// States counted exactly: every state a job waits or runs in, plus the
/// dead ones ([`DEAD_STATES`]), which operators must see however old.
pub const COUNTED_STATES: [JobState; 8] = [
    JobState::AwaitingApproval,
    JobState::Blocked,
    JobState::Pending,
    JobState::Queued,
    JobState::Running,
    JobState::Retrying,
    JobState::Failed,
    JobState::Timeout,
];

/// States whose jobs are dead at rest: a failed or timed-out attempt that
/// will retry moves on to `retrying` in the same transaction, so a job
/// found in one of these has no automatic attempt left (or failed fatally).
pub const DEAD_STATES: [JobState; 2] = [JobState::Failed, JobState::Timeout];

/// Exact count of one queue's jobs in one of [`COUNTED_STATES`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueStateCount {
    /// Queue name.
    pub queue: String,
    /// State name.
    pub state: String,
    /// Jobs (0 included, so every queue × state has a value).
    pub count: i64,
}

impl Store {
    /// Exact job counts for every registered queue × [`COUNTED_STATES`],
    /// zeros included, from one pass over the rows in those states (the
    /// states are written into the SQL, so the planner knows that no
    /// `completed` row can match and reads the partial indexes). The cost
    /// is the number of rows counted, whatever the number of completed
    /// rows kept or of queues. A count per (queue × state) pair, as this
    /// was before, let a generic plan that expected half the table per
    /// pair scan the whole table once per pair: 1.5–3 s every 5 s beside a
    /// million-job backlog.
    pub async fn count_unfinished_by_queue(&self) -> Result<Vec<QueueStateCount>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            let states: Vec<String> = COUNTED_STATES
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            format!(
                "SELECT q.name AS queue, s.state::text AS state, COALESCE(c.count, 0) AS count
                   FROM queues q
                  CROSS JOIN unnest(ARRAY[{list}]::job_state[]) AS s(state)
                   LEFT JOIN (SELECT queue, state, count(*) AS count FROM jobs
                               WHERE state IN ({list}) GROUP BY queue, state) c
                          ON c.queue = q.name AND c.state = s.state
                  ORDER BY 1, 2",
                list = states.join(", ")
            )
        });
        Ok(sqlx::query_as(SQL.as_str()).fetch_all(&self.pool).await?)
    }

    /// For every registered queue, how long its oldest due job (`pending` or
    /// `retrying` with `run_at <= now()`) has been dispatchable, in seconds;
    /// 0 when none is due. Ten index probes per queue (one per priority) on
    /// `jobs_queue_dispatch_idx` `(queue, priority, run_at)`.
    pub async fn oldest_due_by_queue(&self) -> Result<Vec<(String, f64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT q.name,
                    COALESCE(EXTRACT(EPOCH FROM now() - min(o.run_at) FILTER (WHERE o.run_at <= now())), 0)::float8
               FROM queues q
              CROSS JOIN generate_series(0, 9) AS p(priority)
               LEFT JOIN LATERAL (SELECT j.run_at FROM jobs j
                                   WHERE j.queue = q.name AND j.priority = p.priority::int2
                                     AND j.state IN ('pending', 'retrying')
                                   ORDER BY j.run_at LIMIT 1) o ON true
              GROUP BY q.name ORDER BY q.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Workers that sent a heartbeat within `window`.
    pub async fn count_live_workers(&self, window: Duration) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM workers WHERE last_heartbeat_at > now() - $1 * interval '1 millisecond'")
            .bind(window.as_millis() as i64)
            .fetch_one(&self.pool)
            .await?)
    }
}
