//! The API's resources as typed values: jobs, events, workers, pages and the
//! answers of submit, operator moves and `/health`.
//!
//! Each struct mirrors the coordinator's JSON; fields this client does not
//! know yet are kept in `extra` (and written back by `Serialize`), so printing
//! a resource loses nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;
use warren_core::JobState;

/// A job as the API returns it (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id (UUID v7).
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Task type (the handler that runs it).
    pub task_type: String,
    /// Current state.
    pub state: JobState,
    /// Handler input.
    pub payload: Value,
    /// 0–9, higher first.
    pub priority: i16,
    /// Attempts made so far (0 before the first dispatch).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Per-attempt timeout.
    pub timeout_ms: Option<u64>,
    /// Stall limit: longest time without a progress report (opt-in).
    #[serde(default)]
    pub no_progress_timeout_ms: Option<u64>,
    /// Not dispatched before this time.
    pub run_at: DateTime<Utc>,
    /// Worker running (or last running) it.
    pub worker_id: Option<String>,
    /// Last reported percent (0–100).
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
    /// Whether it waits (or waited) for approval.
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
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Job {
    /// Whether the job will not change again without an operator: it is
    /// terminal (completed, cancelled, skipped) or dead.
    ///
    /// Dead means `failed`/`timeout` with no attempts left, or with
    /// `finished_at` set: the coordinator moves a retryable failure on to
    /// `retrying` in the same transaction (clearing `finished_at`), so a job
    /// left in `failed` with attempts to spare failed fatally.
    pub fn is_finished(&self) -> bool {
        match self.state {
            JobState::Failed | JobState::Timeout => {
                self.attempt >= self.max_attempts || self.finished_at.is_some()
            }
            state => state.is_terminal(),
        }
    }

    /// Whether the job completed successfully.
    pub fn is_completed(&self) -> bool {
        self.state == JobState::Completed
    }
}

/// A page of `GET /v1/jobs`, in the order asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Opaque cursor of the next page (pass it as `cursor`); `None` on the
    /// last page.
    pub next: Option<String>,
}

/// One row of a job's audit log (`GET /v1/jobs/{id}/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Event cursor (increasing).
    pub id: i64,
    /// The job.
    pub job_id: Uuid,
    /// State before (`None` for the creation event).
    pub from_state: Option<JobState>,
    /// State after.
    pub to_state: JobState,
    /// Attempt at the time.
    pub attempt: u32,
    /// Worker involved, if any.
    pub worker_id: Option<String>,
    /// When (the database's clock).
    pub at: DateTime<Utc>,
    /// Error, retry time, actor, reason.
    pub detail: Option<Value>,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A worker as last heard from (`GET /v1/workers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// Hostname + boot UUID.
    pub id: String,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Its concurrency.
    pub concurrency: u32,
    /// Jobs running at its last heartbeat.
    pub running: u32,
    /// First heartbeat.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to an operator move (cancel, retry, approve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// The job.
    pub id: Uuid,
    /// State before.
    pub from: JobState,
    /// State after.
    pub to: JobState,
    /// Attempt after the move.
    pub attempt: u32,
}

/// The answer to `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    /// Ids of the submitted jobs, in order.
    pub ids: Vec<Uuid>,
    /// How many were new (re-submitted ids and idempotency keys are not).
    pub created: usize,
}

/// `GET /health`: `status` is `ok` only when the database and broker are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `down`.
    pub status: String,
    /// Everything else the coordinator reports (`database`, `broker`, ...).
    #[serde(flatten)]
    pub checks: Map<String, Value>,
}

impl Health {
    /// Whether the coordinator reports itself healthy.
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(state: &str, attempt: u32, max_attempts: u32, finished: bool) -> Job {
        let finished_at = finished.then_some("2025-01-01T00:00:02Z");
        serde_json::from_value(json!({
            "id": "0190b6c4-5c2e-7d2a-9f00-000000000001", "queue": "default",
            "task_type": "echo", "state": state, "payload": {}, "priority": 0,
            "attempt": attempt, "max_attempts": max_attempts, "timeout_ms": null,
            "run_at": "2025-01-01T00:00:00Z", "worker_id": null, "progress": null,
            "stage": null, "checkpoint": null, "result": null, "error": null,
            "idempotency_key": null, "requires_approval": false, "metadata": null,
            "created_at": "2025-01-01T00:00:00Z", "queued_at": null,
            "started_at": null, "finished_at": finished_at, "workflow_id": null
        }))
        .unwrap()
    }

    #[test]
    fn terminal_and_dead_jobs_are_finished() {
        assert!(job("completed", 1, 5, true).is_finished());
        assert!(job("cancelled", 0, 5, true).is_finished());
        assert!(job("skipped", 0, 5, false).is_finished());
        assert!(job("failed", 5, 5, true).is_finished());
        assert!(job("timeout", 3, 3, true).is_finished());
        // A fatal failure stays `failed` with attempts to spare.
        assert!(job("failed", 1, 5, true).is_finished());
    }

    #[test]
    fn live_jobs_are_not_finished() {
        for state in [
            "pending",
            "queued",
            "running",
            "retrying",
            "awaiting_approval",
            "blocked",
        ] {
            assert!(!job(state, 1, 5, false).is_finished(), "{state}");
        }
        assert!(!job("failed", 1, 5, false).is_finished());
        assert!(!job("timeout", 2, 5, false).is_finished());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let j = job("running", 1, 5, false);
        assert!(j.extra.contains_key("workflow_id"));
        let back = serde_json::to_value(&j).unwrap();
        assert_eq!(back["workflow_id"], Value::Null);
        assert_eq!(back["state"], "running");
    }
}
