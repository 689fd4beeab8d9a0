//! Workflow status changes on the event stream, and [`StreamEvent`]: either
//! kind of event the stream carries.
//!
//! Workflow events take their ids from the same sequence as job events, so
//! one cursor (the SSE `Last-Event-ID`) orders both. On `<ns>.events` a
//! workflow event is published with routing key `workflow.<status>`
//! ([`workflow_routing_key`]) in an [`EventBatch`](super::EventBatch) of
//! [`WorkflowTransitionEvent`]s; over Server-Sent Events it is an SSE event
//! named `workflow` (job transitions are named `job`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{TransitionEvent, Versioned};
use crate::workflow::WorkflowStatus;

/// One workflow status change (a row of `workflow_events` with the
/// workflow's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTransitionEvent {
    /// Protocol version (1).
    pub v: u32,
    /// Event id, from the same sequence as job events.
    pub id: i64,
    /// The workflow.
    pub workflow_id: Uuid,
    /// The workflow's name (empty if the workflow row no longer exists).
    pub name: String,
    /// Status before (`None` for the creation event).
    pub from: Option<WorkflowStatus>,
    /// Status after.
    pub to: WorkflowStatus,
    /// When (the database's clock).
    pub at: DateTime<Utc>,
    /// Actor, reason, recovery attempt, step (as in `workflow_events.detail`).
    pub detail: Option<Value>,
}

impl WorkflowTransitionEvent {
    /// The routing key this event is published with.
    pub fn routing_key(&self) -> String {
        workflow_routing_key(self.to)
    }
}

impl Versioned for WorkflowTransitionEvent {
    fn version(&self) -> u32 {
        self.v
    }
}

/// `workflow.<status>`, e.g. `workflow.completed`; bind `workflow.*` for all.
pub fn workflow_routing_key(to: WorkflowStatus) -> String {
    format!("workflow.{}", to.as_str())
}

/// Which log an event comes from; also its SSE event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A job transition (SSE event `job`).
    Job,
    /// A workflow status change (SSE event `workflow`).
    Workflow,
}

impl EventKind {
    /// `job` or `workflow`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Job => "job",
            EventKind::Workflow => "workflow",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "job" => Ok(EventKind::Job),
            "workflow" => Ok(EventKind::Workflow),
            other => Err(format!(
                "unknown event kind {other:?} (expected job or workflow)"
            )),
        }
    }
}

/// One event of the stream: a job transition or a workflow status change.
/// Serialized as the inner event alone (the SSE event name or the routing
/// key says which kind it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreamEvent {
    /// A job transition.
    Job(TransitionEvent),
    /// A workflow status change.
    Workflow(WorkflowTransitionEvent),
}

impl StreamEvent {
    /// The event id (the stream's cursor).
    pub fn id(&self) -> i64 {
        match self {
            StreamEvent::Job(e) => e.id,
            StreamEvent::Workflow(e) => e.id,
        }
    }

    /// Which kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            StreamEvent::Job(_) => EventKind::Job,
            StreamEvent::Workflow(_) => EventKind::Workflow,
        }
    }

    /// The routing key on `<ns>.events`.
    pub fn routing_key(&self) -> String {
        match self {
            StreamEvent::Job(e) => e.routing_key(),
            StreamEvent::Workflow(e) => e.routing_key(),
        }
    }

    /// The job transition, if this is one.
    pub fn as_job(&self) -> Option<&TransitionEvent> {
        match self {
            StreamEvent::Job(e) => Some(e),
            StreamEvent::Workflow(_) => None,
        }
    }

    /// Reads the `data` of an SSE event named `kind`.
    pub fn from_sse(kind: EventKind, data: &str) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            EventKind::Job => StreamEvent::Job(serde_json::from_str(data)?),
            EventKind::Workflow => StreamEvent::Workflow(serde_json::from_str(data)?),
        })
    }
}

impl From<TransitionEvent> for StreamEvent {
    fn from(event: TransitionEvent) -> Self {
        StreamEvent::Job(event)
    }
}

impl From<WorkflowTransitionEvent> for StreamEvent {
    fn from(event: WorkflowTransitionEvent) -> Self {
        StreamEvent::Workflow(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, encode, EventBatch, PROTOCOL_VERSION};
    use crate::JobState;

    fn workflow_event() -> WorkflowTransitionEvent {
        WorkflowTransitionEvent {
            v: PROTOCOL_VERSION,
            id: 7,
            workflow_id: Uuid::nil(),
            name: "dataset-build".into(),
            from: Some(WorkflowStatus::Running),
            to: WorkflowStatus::Completed,
            at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            detail: None,
        }
    }

    fn job_event() -> TransitionEvent {
        TransitionEvent {
            v: PROTOCOL_VERSION,
            id: 6,
            job_id: Uuid::nil(),
            queue: "media".into(),
            task_type: "resize".into(),
            workflow_id: Some(Uuid::nil()),
            step_name: Some("resize".into()),
            from: Some(JobState::Running),
            to: JobState::Completed,
            attempt: 1,
            worker_id: None,
            at: Utc::now(),
            detail: None,
        }
    }

    #[test]
    fn workflow_events_route_by_their_new_status() {
        assert_eq!(workflow_event().routing_key(), "workflow.completed");
        assert_eq!(
            workflow_routing_key(WorkflowStatus::Recovering),
            "workflow.recovering"
        );
        let event = StreamEvent::from(workflow_event());
        assert_eq!(event.routing_key(), "workflow.completed");
        assert_eq!((event.id(), event.kind()), (7, EventKind::Workflow));
        assert!(event.as_job().is_none());
    }

    #[test]
    fn a_stream_event_serializes_as_the_inner_event_and_reads_back_either_way() {
        for event in [
            StreamEvent::from(job_event()),
            StreamEvent::from(workflow_event()),
        ] {
            let json = serde_json::to_string(&event).unwrap();
            let value: Value = serde_json::from_str(&json).unwrap();
            assert!(value.get("Job").is_none() && value.get("Workflow").is_none());
            assert_eq!(StreamEvent::from_sse(event.kind(), &json).unwrap(), event);
            assert_eq!(serde_json::from_str::<StreamEvent>(&json).unwrap(), event);
        }
    }

    #[test]
    fn a_batch_of_workflow_events_round_trips() {
        let batch = EventBatch::new(vec![workflow_event()]);
        let body = encode(&batch);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["events"][0]["to"], "completed");
        assert_eq!(value["events"][0]["from"], "running");
        let back: EventBatch<WorkflowTransitionEvent> = decode(&body, 1 << 20).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn kinds_parse_from_their_names_only() {
        assert_eq!("job".parse::<EventKind>().unwrap(), EventKind::Job);
        assert_eq!(
            "workflow".parse::<EventKind>().unwrap(),
            EventKind::Workflow
        );
        assert!("Job".parse::<EventKind>().is_err());
        assert_eq!(EventKind::Workflow.to_string(), "workflow");
    }
}
