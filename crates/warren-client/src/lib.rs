//! Warren's Rust client.
//!
//! - [`Submitter`] publishes jobs to the coordinator over AMQP (`<ns>.submit`,
//!   publisher confirms): the fast path, and it works while the coordinator's
//!   HTTP API is down.
//! - [`ApiClient`] queries and administers jobs over the coordinator's HTTP
//!   API (bearer token), with typed results ([`Job`], [`JobEvent`], [`Worker`]).
//! - [`wait_for_terminal`] / [`watch_job`] poll a job until it is finished,
//!   riding out coordinator restarts.
//! - [`ApiClient::follow_events`] follows the Server-Sent Events of one job
//!   or of all jobs ([`TransitionEvent`]s), resuming with `Last-Event-ID`
//!   after a disconnect.
//!
//! Every failure is a [`ClientError`]; none of them ever carries the API token
//! or an AMQP password.

mod api;
mod batch;
mod error;
mod model;
mod sse;
mod stream;
mod submitter;
mod wait;

pub use api::ApiClient;
pub use batch::{MAX_ENVELOPE_BYTES, MAX_JOBS_PER_ENVELOPE};
pub use error::ClientError;
pub use model::{Health, Job, JobEvent, JobPage, Moved, Submitted, Worker};
pub use sse::{LineTooLong, SseMessage, SseParser, MAX_SSE_LINE_BYTES};
pub use stream::{EventFollower, EventQuery, EventSource, EventStream, Followed, JOB_EVENT};
pub use submitter::Submitter;
pub use wait::{wait_for_terminal, watch_job, WaitEvent, NOT_FOUND_GRACE};
pub use warren_broker::{redact_url, BrokerConfig, QueueType, DEFAULT_AMQP_URL, DEFAULT_NAMESPACE};
pub use warren_core::protocol::{JobSpec, TransitionEvent};
