//! Rows and results returned by the store.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;
use warren_core::JobState;

/// One applied state change, derived from the UPDATE's `RETURNING` (never
/// from intent), used for metrics and events.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The job.
    pub job_id: Uuid,
    /// Its queue (metric label).
    pub queue: String,
    /// Its task type (metric label).
    pub task_type: String,
    /// State before.
    pub from: JobState,
    /// State after.
    pub to: JobState,
    /// Attempt number after the move.
    pub attempt: i32,
    /// Queue wait (for `running`) or run time (for terminal moves), seconds.
    pub seconds: Option<f64>,
}

/// A job as stored (the API's job resource).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct JobRow {
    /// Job id (UUID v7).
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Task type.
    pub task_type: String,
    /// Current state.
    #[sqlx(try_from = "String")]
    pub state: StateText,
    /// Handler input.
    pub payload: Value,
    /// 0–9, higher first.
    pub priority: i16,
    /// Attempts made so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Per-attempt timeout.
    pub timeout_ms: Option<i64>,
    /// Stall limit: longest time without a progress report (opt-in).
    pub no_progress_timeout_ms: Option<i64>,
    /// Not dispatched before this time.
    pub run_at: DateTime<Utc>,
    /// Worker running (or last running) it.
    pub worker_id: Option<String>,
    /// Last reported percent.
    pub progress: Option<f32>,
    /// Last reported stage.
    pub stage: Option<String>,
    /// Last saved checkpoint.
    pub checkpoint: Option<Value>,
    /// Result of the completed attempt.
    pub result: Option<Value>,
    /// Error of the last failed attempt.
    pub error: Option<String>,
    /// Idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Whether it waited for approval.
    pub requires_approval: bool,
    /// Free-form metadata.
    pub metadata: Option<Value>,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Last dispatched at.
    pub queued_at: Option<DateTime<Utc>>,
    /// Last started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at (terminal or dead).
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job state read from the database's text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StateText(pub JobState);

impl TryFrom<String> for StateText {
    type Error = warren_core::state::UnknownState;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse().map(StateText)
    }
}

impl JobRow {
    /// The job's state.
    pub fn state(&self) -> JobState {
        self.state.0
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct JobEvent {
    /// Event cursor.
    pub id: i64,
    /// The job.
    pub job_id: Uuid,
    /// State before (None for creation).
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// Attempt at the time.
    pub attempt: i32,
    /// Worker involved, if any.
    pub worker_id: Option<String>,
    /// When (database clock).
    pub at: DateTime<Utc>,
    /// Error, retry time, actor, reason.
    pub detail: Option<Value>,
}

/// A worker as last heard from.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WorkerRow {
    /// hostname + boot UUID.
    pub id: String,
    /// Queues consumed.
    pub queues: Vec<String>,
    /// Concurrency.
    pub concurrency: i32,
    /// Jobs running at the last heartbeat.
    pub running: i32,
    /// First heartbeat.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub last_heartbeat_at: DateTime<Utc>,
}
