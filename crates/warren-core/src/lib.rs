//! Warren's pure domain: the job lifecycle, retry policy, names, the wire
//! protocol and workflows (specs, DAG validation, templates). Nothing here
//! performs I/O, so every rule can be unit- and property-tested in isolation
//! and shared by the coordinator, the workers, the store and the client.

pub mod duration;
pub mod names;
pub mod protocol;
pub mod queue;
pub mod retry;
pub mod state;
pub mod workflow;

pub use duration::{format_duration, parse_duration, DurationError};
pub use names::{validate_name, NameError};
pub use queue::TaskDefaults;
pub use retry::{RetryPolicy, RetrySpec};
pub use state::{IllegalTransition, JobState};
pub use workflow::{
    Dag, StepOutcome, Template, TemplateError, WorkflowError, WorkflowSpec, WorkflowStatus,
};

/// A new job id: UUID v7, so ids sort by creation time and a client can choose
/// one before publishing (re-publishing the same id never creates a duplicate).
pub fn new_job_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
