//! `Control`: coordinator → one worker, on `<ns>.ctl.<worker_id>`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Versioned, PROTOCOL_VERSION};

/// What the coordinator asks of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// Stop running the job: trip its cancellation token, abort after grace.
    Cancel,
}

/// One control instruction for one job attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlMessage {
    /// Protocol version (1).
    pub v: u32,
    /// The instruction.
    pub kind: ControlKind,
    /// Which job.
    pub job_id: Uuid,
    /// Which attempt (older attempts are ignored by the worker).
    pub attempt: u32,
    /// Why (`cancelled`, `deadline`, `not_running`), for logs.
    pub reason: String,
}

impl ControlMessage {
    /// A cancel instruction.
    pub fn cancel(job_id: Uuid, attempt: u32, reason: impl Into<String>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            kind: ControlKind::Cancel,
            job_id,
            attempt,
            reason: reason.into(),
        }
    }
}

impl Versioned for ControlMessage {
    fn version(&self) -> u32 {
        self.v
    }
}
