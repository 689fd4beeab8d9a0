//! Warren's Rust client.
//!
//! - [`Submitter`] publishes jobs to the coordinator over AMQP (`<ns>.submit`,
//!   publisher confirms): the fast path, and it works while the coordinator's
//!   HTTP API is down.
//! - [`ApiClient`] queries and administers jobs over the coordinator's HTTP
//!   API (bearer token), with typed results ([`Job`], [`JobEvent`], [`Worker`],
//!   [`Queue`]).
//! - [`wait_for_terminal`] / [`watch_job`] poll a job until it is finished,
//!   riding out coordinator restarts; [`wait_for_workflow`] does the same
//!   for a workflow.
//! - Workflows are submitted over HTTP ([`ApiClient::submit_workflow`]) or
//!   AMQP ([`Submitter::submit_workflows`]), and controlled over HTTP.
//! - [`ApiClient::follow_events`] follows the Server-Sent Events of one job,
//!   one workflow or everything ([`StreamEvent`]s: [`TransitionEvent`]s and
//!   [`WorkflowTransitionEvent`]s), resuming with `Last-Event-ID` after a
//!   disconnect.
//!
//! Every failure is a [`ClientError`]; none of them ever carries the API token
//! or an AMQP password.

mod admin;
mod api;
mod batch;
mod error;
mod model;
mod queues;
mod sse;
mod stats;
mod stream;
mod submitter;
mod wait;
mod workflow_api;
mod workflow_model;

pub use admin::JobQuery;
pub use api::ApiClient;
pub use batch::{MAX_ENVELOPE_BYTES, MAX_JOBS_PER_ENVELOPE};
pub use error::ClientError;
pub use model::{Health, Job, JobEvent, JobPage, Moved, Submitted, Worker};
pub use queues::{Queue, QueuePatch};
pub use sse::{LineTooLong, SseMessage, SseParser, MAX_SSE_LINE_BYTES};
pub use stats::{
    Cleanup, Last24h, Percentiles, QueueStats, Rate, SampleInfo, StateCounts, Stats, TaskTypeStats,
    Throughput,
};
pub use stream::{
    EventFollower, EventQuery, EventSource, EventStream, Followed, JOB_EVENT, WORKFLOW_EVENT,
};
pub use submitter::Submitter;
pub use wait::{wait_for_terminal, watch_job, WaitEvent, NOT_FOUND_GRACE};
pub use warren_broker::{redact_url, BrokerConfig, QueueType, DEFAULT_AMQP_URL, DEFAULT_NAMESPACE};
pub use warren_core::protocol::{
    EventKind, JobSpec, StreamEvent, TransitionEvent, WorkflowTransitionEvent,
};
pub use warren_core::protocol::{TemplateRef, WorkflowSource, WorkflowSubmission};
pub use warren_core::workflow::{Template, WorkflowSpec, WorkflowStatus};
pub use workflow_api::{wait_for_workflow, WorkflowWaitEvent};
pub use workflow_model::{
    StepRetried, TemplateStored, TemplateSummary, Workflow, WorkflowCreated, WorkflowEvent,
    WorkflowMoved, WorkflowPage, WorkflowQuery, WorkflowStep, WorkflowSummary,
};
