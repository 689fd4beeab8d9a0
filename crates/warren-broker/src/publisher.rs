//! Confirmed publishing: persistent JSON messages on a channel in confirm
//! mode, with confirms that can be pipelined.
//!
//! Why a mutex: the broker numbers publishes in the order their frames arrive,
//! while lapin assigns the number it will match a confirm against when the
//! publish starts. Two tasks publishing at once could swap the two and each be
//! told the other's confirm. Publishes on one [`Publisher`] are therefore
//! written one at a time (the lock is held until lapin has handed the frames to
//! its I/O loop, never while waiting for the broker's confirm).

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;

use lapin::{
    options::BasicPublishOptions, BasicProperties, Channel, Confirmation, PublisherConfirm,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{error::BrokerError, names::short};

/// Longest wait for the broker's confirm of a publish. A confirm that never
/// comes on a live channel would otherwise hold what waits on it (a job
/// `queued` but never published, a report never acknowledged) for good; past
/// this the publish counts as failed with a recoverable error, so the
/// caller publishes again on a new session.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// AMQP `delivery_mode` of persistent messages.
const PERSISTENT: u8 = 2;
/// Content type of every message Warren publishes.
const CONTENT_TYPE: &str = "application/json";

/// A confirm-mode channel that many tasks can publish on concurrently.
/// Cheap to clone.
///
/// A publisher from [`Session::publisher`](crate::Session::publisher)
/// publishes `mandatory`: a message the broker routes to no queue is
/// answered with [`BrokerError::Unroutable`] instead of being confirmed and
/// dropped. One from [`Session::broadcast_publisher`](crate::Session::broadcast_publisher)
/// does not (events nobody subscribed to, control messages to a worker
/// that left).
///
/// Once a publish fails with a [recoverable](BrokerError::is_recoverable)
/// error the channel is gone: open a new publisher (or session).
#[derive(Clone, Debug)]
pub struct Publisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    channel: Channel,
    /// Serialises the writing of publishes (see the module docs).
    write: Mutex<()>,
    /// Whether every message must reach a queue.
    mandatory: bool,
}

/// The broker's pending answer to one publish; see [`PendingConfirm::wait`].
#[derive(Debug)]
#[must_use = "a publish is only safe once its confirm has been awaited"]
pub struct PendingConfirm {
    confirm: PublisherConfirm,
    exchange: String,
    routing_key: String,
}

impl Publisher {
    pub(crate) fn new(channel: Channel, mandatory: bool) -> Self {
        let write = Mutex::new(());
        Publisher {
            inner: Arc::new(Inner {
                channel,
                write,
                mandatory,
            }),
        }
    }

    /// `true` while the underlying channel is open.
    pub fn is_open(&self) -> bool {
        self.inner.channel.status().connected()
    }

    /// Publishes a persistent (delivery mode 2) `application/json` message
    /// (`mandatory` as the publisher was opened). Returns once the publish is written, handing back
    /// the broker's confirm to await later, so many publishes can be pipelined.
    /// Exchange `""` with routing key = queue name targets a queue directly.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<PendingConfirm, BrokerError> {
        let _write = self.inner.write.lock().await;
        self.send(exchange, routing_key, body).await
    }

    /// Publishes and waits for the broker's confirm; `Err(Nacked)` if it refuses.
    pub async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), BrokerError> {
        self.publish(exchange, routing_key, body)
            .await?
            .wait()
            .await
    }

    /// Publishes every `(routing_key, body)` to `exchange`, then awaits all
    /// confirms. Returns one result per item, in order.
    pub async fn publish_batch(
        &self,
        exchange: &str,
        items: &[(String, Vec<u8>)],
    ) -> Vec<Result<(), BrokerError>> {
        PendingConfirm::wait_all(self.send_batch(exchange, items).await).await
    }

    /// Publishes every `(routing_key, body)` to `exchange` without waiting
    /// for the broker: one pending confirm (or the publish's error) per
    /// item, in order. Await them with [`PendingConfirm::wait`]; until then
    /// nothing is known to be taken.
    ///
    /// The publishes are queued for lapin's I/O loop one after another and
    /// their writes awaited together: awaiting each write before queueing
    /// the next cost one hand-off to that thread and back per message.
    pub async fn send_batch(
        &self,
        exchange: &str,
        items: &[(String, Vec<u8>)],
    ) -> Vec<Result<PendingConfirm, BrokerError>> {
        let _write = self.inner.write.lock().await;
        let mut sends: Vec<_> = items
            .iter()
            .map(|(routing_key, body)| Box::pin(self.send(exchange, routing_key, body)))
            .collect();
        // The first poll of each send, in order, takes its confirm number
        // and queues its frames (nothing in between awaits), so numbers and
        // frames stay in the same order.
        let mut started = Vec::with_capacity(sends.len());
        for send in &mut sends {
            started.push(poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await);
        }
        let mut pending = Vec::with_capacity(sends.len());
        for (send, first) in sends.into_iter().zip(started) {
            pending.push(match first {
                Poll::Ready(result) => result,
                Poll::Pending => send.await,
            });
        }
        pending
    }

    /// Writes one publish; the caller holds the write lock.
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<PendingConfirm, BrokerError> {
        let props = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(CONTENT_TYPE.into());
        let confirm = self
            .inner
            .channel
            .basic_publish(
                short(exchange)?,
                short(routing_key)?,
                BasicPublishOptions {
                    mandatory: self.inner.mandatory,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await?;
        Ok(PendingConfirm {
            confirm,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        })
    }
}

impl PendingConfirm {
    /// Waits for every answer of a [`Publisher::send_batch`], in order: one
    /// result per item, the publish's own error where it never went out.
    /// All of them within one [`CONFIRM_TIMEOUT`].
    pub async fn wait_all(
        pending: Vec<Result<PendingConfirm, BrokerError>>,
    ) -> Vec<Result<(), BrokerError>> {
        let deadline = Instant::now() + CONFIRM_TIMEOUT;
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            results.push(match p {
                Ok(confirm) => confirm.wait_until(deadline).await,
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Waits for the broker's answer: `Ok` on ack, `Err(Nacked)` on nack,
    /// `Err(Unroutable)` if a mandatory publish reached no queue, and a
    /// recoverable error if the channel closed first or no answer came
    /// within [`CONFIRM_TIMEOUT`] (the message may or may not have been
    /// taken: publish it again).
    pub async fn wait(self) -> Result<(), BrokerError> {
        self.wait_until(Instant::now() + CONFIRM_TIMEOUT).await
    }

    async fn wait_until(self, deadline: Instant) -> Result<(), BrokerError> {
        let answer = tokio::time::timeout_at(deadline, self.confirm)
            .await
            .map_err(|_| BrokerError::Timeout(CONFIRM_TIMEOUT, "confirming a publish"))??;
        match answer {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable {
                exchange: self.exchange,
                routing_key: self.routing_key,
            }),
            Confirmation::Nack(_) => Err(BrokerError::Nacked {
                exchange: self.exchange,
                routing_key: self.routing_key,
            }),
            Confirmation::NotRequested => Err(BrokerError::NotConfirmed {
                exchange: self.exchange,
            }),
        }
    }
}
