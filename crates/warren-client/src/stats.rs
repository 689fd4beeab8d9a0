//! The answers of `GET /v1/stats` and `POST /v1/cleanup`.
//!
//! Finished-job figures come from a bounded sample of the most recent
//! finished jobs (see [`SampleInfo`]); waiting, running and dead counts are
//! exact. Fields this client does not know yet are kept in `extra`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Counts by state name.
pub type StateCounts = BTreeMap<String, i64>;

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Database time of the report.
    pub at: DateTime<Utc>,
    /// Exact totals of the waiting, running and dead states.
    pub states: StateCounts,
    /// Dead jobs (`failed` + `timeout`).
    pub dead: i64,
    /// Per queue.
    pub queues: Vec<QueueStats>,
    /// Per task type.
    pub task_types: Vec<TaskTypeStats>,
    /// Finishes per second over the last minute and hour.
    pub throughput: Throughput,
    /// Jobs created and finished in the last 24 h.
    pub last_24h: Last24h,
    /// What the finished-job figures were computed from.
    pub sample: SampleInfo,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One queue of [`Stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Exact counts of the waiting, running and dead states.
    pub states: StateCounts,
    /// Dead jobs.
    pub dead: i64,
    /// Age of the oldest due `pending` / `retrying` job (0 if none).
    pub oldest_pending_age_seconds: f64,
    /// Finished in the sample, by final state.
    pub finished_24h: StateCounts,
}

/// One task type of [`Stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTypeStats {
    /// Task type.
    pub task_type: String,
    /// Counts of the waiting, running and dead states.
    pub states: StateCounts,
    /// Finished in the sample, by final state.
    pub finished_24h: StateCounts,
    /// Dispatchable → started, of jobs finished in the last hour.
    pub queue_wait_seconds: Option<Percentiles>,
    /// Started → finished, of jobs finished in the last hour.
    pub run_seconds: Option<Percentiles>,
}

/// Percentiles of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Last minute.
    pub last_minute: Rate,
    /// Last hour.
    pub last_hour: Rate,
}

/// Finishes over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Seconds covered.
    pub seconds: f64,
    /// Completed in that time.
    pub completed: i64,
    /// Ended dead in that time.
    pub failed: i64,
    /// Completions per second.
    pub completed_per_second: f64,
    /// Dead endings per second.
    pub failed_per_second: f64,
}

/// The last 24 hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Last24h {
    /// Jobs created.
    pub created: i64,
    /// False when `created` stopped at the server's cap.
    pub created_complete: bool,
    /// Jobs finished (in the sample).
    pub finished: i64,
}

/// The sample behind the finished-job figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// False when the counts by task type stopped at the server's cap.
    pub task_type_states_complete: bool,
}

/// `POST /v1/cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// Jobs deleted.
    pub deleted_jobs: u64,
    /// Their events deleted.
    pub deleted_events: u64,
    /// False when the call stopped at its cap and more may be left.
    pub complete: bool,
}
