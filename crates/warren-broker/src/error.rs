//! The crate's one error type, and the decision every caller needs from it:
//! reconnect and carry on ([`BrokerError::is_recoverable`]) or give up.

use lapin::ErrorKind;

/// Everything that can go wrong talking to the broker.
///
/// No variant ever carries an AMQP password: URLs are passed through
/// [`redact_url`](crate::redact_url) first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// An error reported by lapin: I/O, protocol or channel/connection state.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker accepted the connection but did not answer in time (it may
    /// still be booting); the caller reconnects.
    #[error("the broker did not answer within {0:?} while {1}")]
    Timeout(std::time::Duration, &'static str),
    /// The broker refused (nacked) a publish: it did not take responsibility
    /// for the message, so the caller must publish it again later.
    #[error("broker nacked a publish to exchange `{exchange}` with routing key `{routing_key}`")]
    Nacked {
        /// Exchange the message was published to.
        exchange: String,
        /// Routing key it was published with.
        routing_key: String,
    },
    /// The broker confirmed a mandatory publish but routed it to no queue
    /// (the queue was deleted or expired, or a binding is missing): nothing
    /// holds the message. Publish it again once the topology is declared
    /// again, which a new session does.
    #[error("publish to exchange `{exchange}` with routing key `{routing_key}` reached no queue")]
    Unroutable {
        /// Exchange the message was published to.
        exchange: String,
        /// Routing key it was published with.
        routing_key: String,
    },
    /// The publish went out on a channel without publisher confirms, so its
    /// fate is unknown (cannot happen with a [`Publisher`](crate::Publisher)).
    #[error("publish to exchange `{exchange}` was not confirmed (confirms not enabled)")]
    NotConfirmed {
        /// Exchange the message was published to.
        exchange: String,
    },
    /// The connection is not open (closed, closing or failed).
    #[error("connection to the broker is closed")]
    ConnectionClosed,
    /// The channel a delivery came on is closed: its ack/reject did not reach
    /// the broker, which will redeliver the message.
    #[error("channel closed; the delivery will be redelivered")]
    ChannelClosed,
    /// The delivery was already acked, rejected or requeued.
    #[error("delivery {delivery_tag} was already acknowledged")]
    AlreadyAcknowledged {
        /// The delivery's tag.
        delivery_tag: u64,
    },
    /// The AMQP URL does not parse (the message shows it redacted).
    #[error("invalid AMQP URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL with its password replaced by `***`.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A [`BrokerConfig`](crate::BrokerConfig) setting is out of range.
    #[error("invalid broker config: {0}")]
    InvalidConfig(String),
    /// An exchange or queue name exceeds AMQP's 255-byte limit.
    #[error("AMQP name longer than 255 bytes: `{0}`")]
    NameTooLong(String),
}

impl BrokerError {
    /// `true` if reconnecting (or reopening a channel) and carrying on is the
    /// right reaction: I/O errors, missed heartbeats, connection-level (hard)
    /// protocol errors such as a broker shutdown, operations on a closed
    /// channel or connection, answers that never came, and publishes that
    /// reached no queue (a new session declares the topology again).
    ///
    /// `false` for errors that would repeat after a reconnect: channel-level
    /// (soft) protocol errors such as `NOT_FOUND` or `PRECONDITION_FAILED`,
    /// nacks (republish instead), bad URLs, names or settings.
    pub fn is_recoverable(&self) -> bool {
        match self {
            BrokerError::Amqp(e) => match e.kind() {
                ErrorKind::IOError(_)
                | ErrorKind::MissingHeartbeatError
                | ErrorKind::InvalidChannel(_)
                | ErrorKind::InvalidChannelState(..)
                | ErrorKind::InvalidConnectionState(_) => true,
                ErrorKind::ProtocolError(_) => e.is_amqp_hard_error(),
                _ => false,
            },
            BrokerError::ConnectionClosed
            | BrokerError::ChannelClosed
            | BrokerError::Timeout(..)
            | BrokerError::Unroutable { .. } => true,
            BrokerError::Nacked { .. }
            | BrokerError::NotConfirmed { .. }
            | BrokerError::AlreadyAcknowledged { .. }
            | BrokerError::InvalidUrl { .. }
            | BrokerError::InvalidConfig(_)
            | BrokerError::NameTooLong(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_closed_are_recoverable_nacks_are_not() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(BrokerError::Amqp(lapin::Error::from(io)).is_recoverable());
        assert!(BrokerError::ConnectionClosed.is_recoverable());
        assert!(BrokerError::ChannelClosed.is_recoverable());
        let nacked = BrokerError::Nacked {
            exchange: "x".into(),
            routing_key: "k".into(),
        };
        assert!(!nacked.is_recoverable());
        assert!(!BrokerError::InvalidConfig("x".into()).is_recoverable());
        // A new session declares the topology again and publishes again.
        let unroutable = BrokerError::Unroutable {
            exchange: "x".into(),
            routing_key: "k".into(),
        };
        assert!(unroutable.is_recoverable());
    }
}
