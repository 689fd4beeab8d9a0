//! `Task`: what the coordinator publishes to `<ns>.tasks` for one attempt.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{JobRef, Versioned};

/// One attempt of one job, addressed to a worker queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// Protocol version (1).
    pub v: u32,
    /// The job.
    pub job_id: Uuid,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Lease token of this attempt; every report must echo it.
    pub lease: Uuid,
    /// Queue it was routed to.
    pub queue: String,
    /// Handler to run.
    pub task_type: String,
    /// Handler input.
    pub payload: Value,
    /// Per-attempt execution timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Total attempts allowed (so a handler can tell the last one).
    pub max_attempts: u32,
    /// Last checkpoint saved by an earlier attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
}

impl TaskMessage {
    /// The (job, attempt, lease) triple reports refer to.
    pub fn job_ref(&self) -> JobRef {
        JobRef {
            job_id: self.job_id,
            attempt: self.attempt,
            lease: self.lease,
        }
    }
}

impl Versioned for TaskMessage {
    fn version(&self) -> u32 {
        self.v
    }
}
