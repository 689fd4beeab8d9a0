//! `Task`: what the coordinator publishes to `<ns>.tasks` for one attempt.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
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
    /// For a workflow step: its parents' results by step name (`null` for a
    /// parent that did not complete). Absent for plain jobs, so workers of
    /// older builds and older messages still decode.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, encode};
    use serde_json::json;

    fn task(inputs: Map<String, Value>) -> TaskMessage {
        TaskMessage {
            v: 1,
            job_id: Uuid::now_v7(),
            attempt: 1,
            lease: Uuid::new_v4(),
            queue: "default".into(),
            task_type: "echo".into(),
            payload: json!({}),
            timeout_ms: None,
            max_attempts: 5,
            checkpoint: None,
            inputs,
        }
    }

    #[test]
    fn inputs_are_optional_on_the_wire() {
        let plain = task(Map::new());
        let bytes = encode(&plain);
        assert!(!String::from_utf8_lossy(&bytes).contains("inputs"));
        assert_eq!(decode::<TaskMessage>(&bytes, 1 << 20).unwrap(), plain);

        let mut inputs = Map::new();
        inputs.insert("download".into(), json!({"rows": 3}));
        let step = task(inputs);
        let back: TaskMessage = decode(&encode(&step), 1 << 20).unwrap();
        assert_eq!(back.inputs["download"], json!({"rows": 3}));
    }
}
