//! The report's shape: what `GET /v1/stats` returns.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Counts by state name.
pub type StateCounts = BTreeMap<String, i64>;

/// The whole report (the `GET /v1/stats` body).
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// Database time of the report.
    pub at: DateTime<Utc>,
    /// Exact totals over all queues of the waiting, running and dead states.
    pub states: StateCounts,
    /// Dead jobs (`failed` + `timeout`), exact.
    pub dead: i64,
    /// Per queue, by name.
    pub queues: Vec<QueueStats>,
    /// Per task type, by name.
    pub task_types: Vec<TaskTypeStats>,
    /// Finishes per second.
    pub throughput: Throughput,
    /// Jobs created and finished in the last 24 h.
    pub last_24h: Last24h,
    /// What the finished-job figures were computed from.
    pub sample: SampleInfo,
}

/// One queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Exact counts of the waiting, running and dead states.
    pub states: StateCounts,
    /// Dead jobs (`failed` + `timeout`), exact.
    pub dead: i64,
    /// Age of the oldest due `pending` / `retrying` job (0 if none).
    pub oldest_pending_age_seconds: f64,
    /// Jobs finished in the sample, by final state.
    pub finished_24h: StateCounts,
}

/// One task type.
#[derive(Debug, Clone, Serialize)]
pub struct TaskTypeStats {
    /// Task type.
    pub task_type: String,
    /// Counts of the waiting, running and dead states (see `states_complete`).
    pub states: StateCounts,
    /// Jobs finished in the sample, by final state.
    pub finished_24h: StateCounts,
    /// Dispatchable (`run_at`) → started, of jobs finished in the last hour.
    pub queue_wait_seconds: Option<Percentiles>,
    /// Started → finished, of jobs completed, failed or timed out in the last hour.
    pub run_seconds: Option<Percentiles>,
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many durations.
    pub samples: i64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Finishes over the last minute and hour.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Last minute.
    pub last_minute: Rate,
    /// Last hour.
    pub last_hour: Rate,
}

/// Finishes over one period.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Seconds covered (less than the period when the sample is not complete).
    pub seconds: f64,
    /// Jobs completed in that time.
    pub completed: i64,
    /// Jobs that ended dead (`failed` or `timeout`) in that time.
    pub failed: i64,
    /// `completed / seconds`.
    pub completed_per_second: f64,
    /// `failed / seconds`.
    pub failed_per_second: f64,
}

/// The last 24 hours.
#[derive(Debug, Clone, Serialize)]
pub struct Last24h {
    /// Jobs created (by id: UUID v7 carries the creation time).
    pub created: i64,
    /// False when `created` stopped at [`crate::CREATED_MAX_ROWS`].
    pub created_complete: bool,
    /// Jobs finished (in the sample).
    pub finished: i64,
}

/// The sample of finished jobs.
#[derive(Debug, Clone, Serialize)]
pub struct SampleInfo {
    /// Window it is drawn from.
    pub window_seconds: u64,
    /// Percentiles use the part finished within this many seconds.
    pub recent_seconds: u64,
    /// Cap on its size.
    pub max_rows: i64,
    /// Its size.
    pub rows: i64,
    /// True when it holds every job finished in the window.
    pub complete: bool,
    /// How far back it reaches.
    pub since: DateTime<Utc>,
    /// False when the counts by task type stopped at [`crate::BY_TYPE_MAX_ROWS`] rows.
    pub task_type_states_complete: bool,
}
