//! A manual-ack consumer on a channel of its own.
//!
//! The end of the stream ([`Consumer::next`] returning `None`) is an event,
//! not something to swallow: the consumer was cancelled or its channel or
//! connection closed, and the caller reconnects (with backoff) or exits.

use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicCancelOptions},
    Channel,
};

use std::sync::Arc;

use crate::{acks::AckBatch, delivery::Delivery, error::BrokerError};

/// Deliveries from one queue, created by [`Session::consume`](crate::Session::consume).
#[derive(Debug)]
pub struct Consumer {
    channel: Channel,
    inner: lapin::Consumer,
    /// Batched acks ([`Session::consume_batched`](crate::Session::consume_batched)).
    batch: Option<Arc<AckBatch>>,
}

impl Consumer {
    pub(crate) fn new(channel: Channel, inner: lapin::Consumer, batched: bool) -> Self {
        let batch = batched.then(|| AckBatch::start(channel.clone()));
        Consumer {
            channel,
            inner,
            batch,
        }
    }

    /// The consumer tag (the broker's choice if none was given).
    pub fn tag(&self) -> String {
        self.inner.tag().to_string()
    }

    /// The next delivery; `None` once the consumer was cancelled or the
    /// channel/connection closed (an `Err` with the reason may come first).
    pub async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let delivery = self.inner.next().await?;
        Some(
            delivery
                .map(|d| Delivery::new(d, self.channel.clone(), self.batch.clone()))
                .map_err(BrokerError::from),
        )
    }

    /// Stops new deliveries (`basic.cancel`) but keeps the channel open, so
    /// deliveries already received can still be acked; [`Consumer::next`]
    /// then yields what was already buffered, followed by `None`.
    pub async fn cancel(&self) -> Result<(), BrokerError> {
        self.channel
            .basic_cancel(self.inner.tag(), BasicCancelOptions::default())
            .await?;
        Ok(())
    }

    /// Acks every delivery of this consumer up to and including
    /// `delivery_tag` (`multiple = true`). Deliveries covered by it must not
    /// be acked, rejected or requeued individually afterwards. Not for a
    /// consumer with batched acks, which sends its own bulk acks.
    pub async fn ack_up_to(&self, delivery_tag: u64) -> Result<(), BrokerError> {
        debug_assert!(self.batch.is_none(), "ack_up_to on a batched consumer");
        let opts = BasicAckOptions { multiple: true };
        self.channel.basic_ack(delivery_tag, opts).await?;
        Ok(())
    }

    /// Closes the channel gracefully (acks sent before reach the broker first;
    /// unacked deliveries are requeued). Errors are ignored.
    pub async fn close(self) {
        let _ = self.channel.close(200, "bye".into()).await;
    }
}
