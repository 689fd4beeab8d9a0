//! The wire protocol: versioned JSON envelopes exchanged over RabbitMQ.
//!
//! Every message carries `"v": 1`. [`decode`] checks size, encoding, JSON
//! shape and version before anything else looks at a message, and names the
//! reason for a rejection so consumers can dead-letter and count it.

mod control;
mod decode;
mod event;
mod report;
mod stream_event;
mod submit;
mod task;
mod task_batch;
mod workflow;

pub use control::{ControlKind, ControlMessage};
pub use decode::{decode, encode, DecodeError, Versioned};
pub use event::{job_routing_key, EventBatch, TransitionEvent};
pub use report::{Failure, Heartbeat, JobRef, Report, ReportEnvelope, RetryDecision};
pub use stream_event::{workflow_routing_key, EventKind, StreamEvent, WorkflowTransitionEvent};
pub use submit::{InvalidJobSpec, JobSpec, SubmitEnvelope, MAX_PRIORITY};
pub use task::TaskMessage;
pub use task_batch::{decode_tasks, pack_tasks, PackedTasks, TaskBatch};
pub use workflow::{TemplateRef, WorkflowSource, WorkflowSubmission};

/// The only protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default bound on any message body (`WARREN_MAX_PAYLOAD_BYTES`): 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Smallest `WARREN_MAX_PAYLOAD_BYTES` a coordinator or worker accepts.
pub const MIN_MAX_PAYLOAD_BYTES: usize = 1024;
