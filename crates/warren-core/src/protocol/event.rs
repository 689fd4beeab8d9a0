//! Events: job lifecycle transitions as published to the topic exchange
//! `<ns>.events` and served as Server-Sent Events by the coordinator.
//!
//! One AMQP message carries an [`EventBatch`] of events that share a routing
//! key ([`job_routing_key`]: `job.<to_state>.<queue>`), in id order. Over SSE
//! each event is sent alone as the `data` of an SSE event named `job`. The
//! event `id` is the cursor of `job_events`: increasing, unique, and the SSE
//! `Last-Event-ID`; delivery is at-least-once, so consumers deduplicate by it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Versioned, PROTOCOL_VERSION};
use crate::JobState;

/// One job transition (a row of `job_events` with its job's queue and type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionEvent {
    /// Protocol version (1).
    pub v: u32,
    /// Event id: the `job_events` cursor, increasing and unique.
    pub id: i64,
    /// The job.
    pub job_id: Uuid,
    /// The job's queue (empty if the job row no longer exists).
    pub queue: String,
    /// The job's task type (empty if the job row no longer exists).
    pub task_type: String,
    /// The workflow the job is a step of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
    /// The job's step name in its workflow, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// State before (`None` for the creation event).
    pub from: Option<JobState>,
    /// State after.
    pub to: JobState,
    /// Attempt number after the move.
    pub attempt: u32,
    /// Worker involved, if any.
    pub worker_id: Option<String>,
    /// When (the database's clock).
    pub at: DateTime<Utc>,
    /// Error, retry time, actor, reason (as in `job_events.detail`).
    pub detail: Option<Value>,
}

impl TransitionEvent {
    /// The routing key this event is published with.
    pub fn routing_key(&self) -> String {
        job_routing_key(self.to, &self.queue)
    }
}

/// `job.<to_state>.<queue>`. A queue name containing dots adds topic words,
/// so bind `job.completed.#` rather than `job.completed.*` to catch those.
pub fn job_routing_key(to: JobState, queue: &str) -> String {
    format!("job.{}.{queue}", to.as_str())
}

/// The body of one message on `<ns>.events`: `{"v": 1, "events": [...]}`,
/// every event with the message's routing key, in id order. Messages routed
/// `job.…` carry [`TransitionEvent`]s (the default `E`), messages routed
/// `workflow.…` carry
/// [`WorkflowTransitionEvent`](super::WorkflowTransitionEvent)s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch<E = TransitionEvent> {
    /// Protocol version (1).
    pub v: u32,
    /// The events, oldest first.
    pub events: Vec<E>,
}

impl<E> EventBatch<E> {
    /// A batch of `events`.
    pub fn new(events: Vec<E>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            events,
        }
    }
}

impl<E> Versioned for EventBatch<E> {
    fn version(&self) -> u32 {
        self.v
    }
}

impl Versioned for TransitionEvent {
    fn version(&self) -> u32 {
        self.v
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::{decode, encode};

    fn event() -> TransitionEvent {
        TransitionEvent {
            v: PROTOCOL_VERSION,
            id: 42,
            job_id: Uuid::nil(),
            queue: "media".into(),
            task_type: "resize".into(),
            workflow_id: None,
            step_name: None,
            from: Some(JobState::Running),
            to: JobState::Completed,
            attempt: 1,
            worker_id: Some("host-1".into()),
            at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            detail: None,
        }
    }

    #[test]
    fn routing_keys_name_the_new_state_and_the_queue() {
        assert_eq!(event().routing_key(), "job.completed.media");
        assert_eq!(
            job_routing_key(JobState::AwaitingApproval, "a.b"),
            "job.awaiting_approval.a.b"
        );
    }

    #[test]
    fn a_batch_round_trips_and_leaves_out_absent_workflow_fields() {
        let batch = EventBatch::new(vec![event()]);
        let body = encode(&batch);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["v"], 1);
        assert_eq!(value["events"][0]["from"], "running");
        assert_eq!(value["events"][0]["to"], "completed");
        assert!(value["events"][0].get("workflow_id").is_none());
        assert_eq!(decode::<EventBatch>(&body, 1 << 20).unwrap(), batch);
    }

    #[test]
    fn the_creation_event_has_no_from_state() {
        let mut created = event();
        created.from = None;
        created.to = JobState::Pending;
        created.detail = Some(json!({"by": "api"}));
        let value = serde_json::to_value(&created).unwrap();
        assert!(value["from"].is_null());
        let back: TransitionEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, created);
    }
}
