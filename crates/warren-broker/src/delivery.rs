//! One received message and the three ways to settle it: ack, reject to the
//! dead-letter queue, or requeue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lapin::{
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    Acker, Channel,
};

use crate::acks::AckBatch;
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
    /// The consumer's batched acks, when it has them.
    batch: Option<Arc<AckBatch>>,
    /// Set by the first settle: a delivery acked in bulk is not known to
    /// lapin as settled, and settling it again would close the channel.
    settled: AtomicBool,
    /// Keeps the channel open while the delivery is unsettled, even if the
    /// consumer is dropped.
    _channel: Channel,
}

impl Delivery {
    pub(crate) fn new(
        d: lapin::message::Delivery,
        channel: Channel,
        batch: Option<Arc<AckBatch>>,
    ) -> Self {
        if let Some(batch) = &batch {
            batch.open(d.delivery_tag);
        }
        Delivery {
            delivery_tag: d.delivery_tag,
            body: d.data,
            redelivered: d.redelivered,
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            acker: d.acker,
            batch,
            settled: AtomicBool::new(false),
            _channel: channel,
        }
    }

    /// Acknowledges the message: the broker forgets it. Returns once the
    /// frame was sent; on a consumer with batched acks that frame may cover
    /// other deliveries too (see [`crate::acks`]).
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.settle_once()?;
        if let Some(batch) = &self.batch {
            return batch.ack(self.delivery_tag).await;
        }
        let done = self.acker.ack(BasicAckOptions::default()).await?;
        self.settled(done)
    }

    /// Rejects the message without requeueing: the broker dead-letters it
    /// into `<ns>.dead`.
    pub async fn reject(&self) -> Result<(), BrokerError> {
        self.settle_once()?;
        let opts = BasicRejectOptions { requeue: false };
        let done = self.acker.reject(opts).await;
        self.settled_alone();
        self.settled(done?)
    }

    /// Returns the message to its queue (`basic.nack` with `requeue = true`);
    /// it is delivered again with `redelivered = true`.
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        let opts = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        self.settle_once()?;
        let done = self.acker.nack(opts).await;
        self.settled_alone();
        self.settled(done?)
    }

    /// Claims the one settle this delivery gets.
    fn settle_once(&self) -> Result<(), BrokerError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(BrokerError::AlreadyAcknowledged {
                delivery_tag: self.delivery_tag,
            });
        }
        Ok(())
    }

    /// Tells the batch this delivery was settled by a frame of its own (sent
    /// before, so a later bulk ack may pass over its tag).
    fn settled_alone(&self) {
        if let Some(batch) = &self.batch {
            batch.settled(self.delivery_tag);
        }
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
