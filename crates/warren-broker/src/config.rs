//! Broker settings: where to connect, which namespace to use and how queues are declared.
//!
//! One plain struct with named defaults; [`BrokerConfig::validate`] rejects values that
//! would only fail later, at declare time, with a less helpful broker error.

use std::{fmt, str::FromStr, time::Duration};

use crate::{error::BrokerError, names::Names, redact::redact_url};

/// Default AMQP URL (local RabbitMQ, default vhost `/`).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default namespace prefixed to every exchange and queue name.
pub const DEFAULT_NAMESPACE: &str = "warren";
/// Default `x-delivery-limit` of quorum queues: after this many redeliveries a
/// message is dead-lettered instead of crashing consumers forever.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

/// The RabbitMQ queue type used for the task, submit and reports queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QueueType {
    /// Replicated, durable Raft-based queue; supports `x-delivery-limit`.
    #[default]
    Quorum,
    /// Classic (single-node) queue; `x-delivery-limit` is not applied.
    Classic,
}

impl QueueType {
    /// The value of the `x-queue-type` argument: `"quorum"` or `"classic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing a [`QueueType`] from anything but `quorum` or `classic`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown queue type `{0}` (expected `quorum` or `classic`)")]
pub struct ParseQueueTypeError(String);

impl FromStr for QueueType {
    type Err = ParseQueueTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            _ => Err(ParseQueueTypeError(s.to_owned())),
        }
    }
}

/// Everything needed to connect to the broker and declare Warren's topology.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// AMQP URL, e.g. `amqp://user:pass@host:5672/%2f`. Never logged unredacted.
    pub url: String,
    /// Prefix of every exchange and queue name, so several deployments or test
    /// runs can share one broker.
    pub namespace: String,
    /// Type of the task, submit and reports queues.
    pub queue_type: QueueType,
    /// `x-delivery-limit` on quorum queues (ignored for classic queues).
    pub delivery_limit: u32,
    /// Optional `x-expires` on every queue of the namespace: an unused queue is
    /// deleted after this long. Tests set it so abandoned namespaces vanish;
    /// production leaves it `None`.
    pub queue_expires: Option<Duration>,
}

impl BrokerConfig {
    /// A config with the given URL and namespace and default settings otherwise.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            namespace: namespace.into(),
            queue_type: QueueType::default(),
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
            queue_expires: None,
        }
    }

    /// The exchange and queue names of this config's namespace.
    pub fn names(&self) -> Names {
        Names::new(self.namespace.clone())
    }

    /// Rejects settings the broker would refuse: an empty or over-long
    /// namespace, a zero delivery limit, or a zero / out-of-range `queue_expires`.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let invalid = |msg: String| Err(BrokerError::InvalidConfig(msg));
        // Longest fixed name is "<ns>.reports"; task and control queues add more
        // and are checked again when declared.
        if self.namespace.is_empty() || self.namespace.len() > 200 {
            return invalid("namespace must be 1..=200 bytes long".into());
        }
        if self.delivery_limit == 0 {
            return invalid("delivery_limit must be at least 1".into());
        }
        if let Some(expires) = self.queue_expires {
            if expires.as_millis() == 0 || expires.as_millis() > u128::from(u32::MAX) {
                return invalid(format!("queue_expires {expires:?} out of range"));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for BrokerConfig {
    /// Like a derived `Debug`, but with the URL's password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &redact_url(&self.url))
            .field("namespace", &self.namespace)
            .field("queue_type", &self.queue_type)
            .field("delivery_limit", &self.delivery_limit)
            .field("queue_expires", &self.queue_expires)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_type_parses_and_defaults_to_quorum() {
        assert_eq!("quorum".parse::<QueueType>(), Ok(QueueType::Quorum));
        assert_eq!("Classic".parse::<QueueType>(), Ok(QueueType::Classic));
        assert!("stream".parse::<QueueType>().is_err());
        assert_eq!(QueueType::default(), QueueType::Quorum);
    }

    #[test]
    fn debug_hides_password_and_validate_catches_nonsense() {
        let mut cfg = BrokerConfig::new("amqp://u:s3cret@h:5672/%2f", "ns");
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert!(cfg.validate().is_ok());
        cfg.delivery_limit = 0;
        assert!(cfg.validate().is_err());
    }
}
