//! Warren's messaging layer: every AMQP (RabbitMQ, via lapin) detail lives here.
//!
//! The rest of the workspace sees a small surface:
//! - [`BrokerConfig`] and [`Names`]: where to connect and what every exchange/queue is called;
//! - [`Session`]: one connection; declares the topology and opens publishers and consumers;
//! - [`Publisher`]: persistent, confirmed publishes that can be pipelined;
//! - [`Consumer`] and [`Delivery`]: manual-ack consumption;
//! - [`BrokerError`]: one error type whose [`BrokerError::is_recoverable`] says
//!   whether to reconnect and carry on.
//!
//! Nothing here logs or returns an AMQP password: see [`redact_url`].

pub mod acks;
mod arguments;
mod config;
mod consumer;
mod delivery;
mod error;
mod names;
mod pacing;
mod publisher;
mod redact;
mod session;
mod topology;

pub use config::{
    BrokerConfig, ParseQueueTypeError, QueueType, DEFAULT_AMQP_URL, DEFAULT_DELIVERY_LIMIT,
    DEFAULT_NAMESPACE,
};
pub use consumer::Consumer;
pub use delivery::Delivery;
pub use error::BrokerError;
pub use names::{Names, REPORT_ROUTING_KEY, SUBMIT_ROUTING_KEY};
pub use pacing::SessionPacer;
pub use publisher::{PendingConfirm, Publisher, CONFIRM_TIMEOUT};
pub use redact::redact_url;
pub use session::Session;
pub use topology::QueueStats;
