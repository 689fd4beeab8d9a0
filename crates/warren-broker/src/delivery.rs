//! One received message and the three ways to settle it: ack, reject to the
//! dead-letter queue, or requeue.

use lapin::{
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    Acker, Channel,
};

use crate::error::BrokerError;

/// A message delivered to a [`Consumer`](crate::Consumer). Settle it exactly
/// once: [`ack`](Delivery::ack), [`reject`](Delivery::reject) or
/// [`requeue`](Delivery::requeue) (or in bulk with
/// [`Consumer::ack_up_to`](crate::Consumer::ack_up_to)).
#[derive(Debug)]
pub struct Delivery {
    /// Per-channel delivery tag (what `ack_up_to` takes).
    pub delivery_tag: u64,
    /// The message body (JSON for everything Warren publishes).
    pub body: Vec<u8>,
    /// `true` if the broker delivered this message before (requeued or not
    /// acked by a consumer that went away).
    pub redelivered: bool,
    /// Exchange the message was published to (`""` for the default exchange).
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    acker: Acker,
    /// Keeps the channel open while the delivery is unsettled, even if the
    /// consumer is dropped.
    _channel: Channel,
}

impl Delivery {
    pub(crate) fn new(d: lapin::message::Delivery, channel: Channel) -> Self {
        Delivery {
            delivery_tag: d.delivery_tag,
            body: d.data,
            redelivered: d.redelivered,
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            acker: d.acker,
            _channel: channel,
        }
    }

    /// Acknowledges the message: the broker forgets it.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        let done = self.acker.ack(BasicAckOptions::default()).await?;
        self.settled(done)
    }

    /// Rejects the message without requeueing: the broker dead-letters it
    /// into `<ns>.dead`.
    pub async fn reject(&self) -> Result<(), BrokerError> {
        let opts = BasicRejectOptions { requeue: false };
        let done = self.acker.reject(opts).await?;
        self.settled(done)
    }

    /// Returns the message to its queue (`basic.nack` with `requeue = true`);
    /// it is delivered again with `redelivered = true`.
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        let opts = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        let done = self.acker.nack(opts).await?;
        self.settled(done)
    }

    /// lapin answers `false` when nothing was sent: the channel is gone or the
    /// delivery was already settled.
    fn settled(&self, done: bool) -> Result<(), BrokerError> {
        match (done, self.acker.poisoned()) {
            (true, _) => Ok(()),
            (false, true) => Err(BrokerError::ChannelClosed),
            (false, false) => Err(BrokerError::AlreadyAcknowledged {
                delivery_tag: self.delivery_tag,
            }),
        }
    }
}
