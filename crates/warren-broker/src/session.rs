//! One AMQP connection and what is built on it: channels for publishers and
//! consumers, and (re)connecting with backoff.
//!
//! Topology declarations live in `topology.rs`; this file is about the
//! connection's life cycle. A [`Session`] never reconnects by itself: when an
//! operation fails with a [recoverable](BrokerError::is_recoverable) error the
//! caller drops it and calls [`Session::connect_with_backoff`] again.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use lapin::{
    options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable},
    uri::AMQPUri,
    Channel, Connection, ConnectionProperties,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::BrokerConfig, consumer::Consumer, error::BrokerError, names::short, names::Names,
    publisher::Publisher, redact::redact_url,
};

/// First reconnect delay.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest reconnect delay, jitter included.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Longest wait for the broker to answer a `connection.close`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// An open connection to the broker, with the config it was opened with.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    cfg: BrokerConfig,
    names: Names,
}

impl Session {
    /// Opens one connection (a single attempt). The connection is named
    /// `warren:<namespace>:<pid>` in the RabbitMQ management UI.
    pub async fn connect(cfg: &BrokerConfig) -> Result<Session, BrokerError> {
        let uri: AMQPUri = cfg.url.parse().map_err(|reason: String| {
            let url = redact_url(&cfg.url);
            // The parser may echo the URL; never let the password through.
            let reason = reason.replace(&cfg.url, &url);
            BrokerError::InvalidUrl { url, reason }
        })?;
        let name = format!("warren:{}:{}", cfg.namespace, std::process::id());
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let conn = within("connecting", Connection::connect_uri(uri, props)).await??;
        Ok(Session {
            conn,
            cfg: cfg.clone(),
            names: cfg.names(),
        })
    }

    /// Connects, retrying with exponential backoff (100 ms up to 5 s, with
    /// jitter, unlimited attempts) and logging each failure at `warn` with the
    /// redacted URL. Returns `None` only once `shutdown` is cancelled.
    pub async fn connect_with_backoff(
        cfg: &BrokerConfig,
        shutdown: &CancellationToken,
    ) -> Option<Session> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(RECONNECT_MIN_DELAY)
            .with_max_delay(RECONNECT_MAX_DELAY)
            .with_jitter()
            .without_max_times();
        let url = redact_url(&cfg.url);
        let attempts = (|| Session::connect(cfg))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            // Jitter may add up to 100 %; keep the promised ceiling.
            .adjust(|_, delay| delay.map(|d| d.min(RECONNECT_MAX_DELAY)))
            .notify(|err, delay| {
                tracing::warn!(url = %url, error = %err, retry_in = ?delay, "broker connection failed");
            });
        tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            res = attempts => res.ok(),
        }
    }

    /// The config this session was opened with.
    pub fn config(&self) -> &BrokerConfig {
        &self.cfg
    }

    /// The exchange and queue names of this session's namespace.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// `true` while the connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// Closes the connection gracefully; errors (e.g. already closed) are
    /// ignored, and the wait for the broker's answer is bounded: a channel
    /// still closing as the connection closes can put lapin's connection in
    /// error, after which the answer may never come.
    pub async fn close(&self) {
        if self.is_connected() {
            let closing = self.conn.close(200, "bye".into());
            if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
                tracing::warn!(
                    "broker did not answer connection.close in time; dropping the connection"
                );
            }
        }
    }

    /// A new channel on this connection.
    pub(crate) async fn channel(&self) -> Result<Channel, BrokerError> {
        if !self.is_connected() {
            return Err(BrokerError::ConnectionClosed);
        }
        Ok(self.conn.create_channel().await?)
    }

    /// A [`Publisher`] on a new channel in confirm mode whose messages must
    /// reach a queue (tasks, reports, submissions): one routed nowhere fails
    /// with [`BrokerError::Unroutable`]. Fails with [`BrokerError::Timeout`]
    /// if the broker does not answer in time.
    pub async fn publisher(&self) -> Result<Publisher, BrokerError> {
        self.open_publisher(true).await
    }

    /// Like [`Session::publisher`], for messages that may reach no queue
    /// (events nobody subscribed to, a control message to a worker that
    /// left): the broker confirms them either way.
    pub async fn broadcast_publisher(&self) -> Result<Publisher, BrokerError> {
        self.open_publisher(false).await
    }

    async fn open_publisher(&self, mandatory: bool) -> Result<Publisher, BrokerError> {
        within("opening a publisher", async {
            let channel = self.channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok(Publisher::new(channel, mandatory))
        })
        .await?
    }

    /// Consumes `queue` on a new channel with manual acks and at most
    /// `prefetch` unacknowledged deliveries; `tag` names the consumer (empty:
    /// the broker picks one).
    pub async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
        tag: &str,
    ) -> Result<Consumer, BrokerError> {
        self.open_consumer(queue, prefetch, tag, false, 0).await
    }

    /// Like [`Session::consume`], with a consumer priority (`x-priority`):
    /// the broker delivers to the highest-priority consumer of the queue
    /// that has room in its prefetch, and to lower ones only while every
    /// higher one is full or gone. Consumers of equal priority share
    /// round-robin; 0 is the broker's default.
    pub async fn consume_with_priority(
        &self,
        queue: &str,
        prefetch: u16,
        tag: &str,
        priority: i32,
    ) -> Result<Consumer, BrokerError> {
        self.open_consumer(queue, prefetch, tag, false, priority)
            .await
    }

    /// Like [`Session::consume`], with acks sent in bulk: [`Delivery::ack`](crate::Delivery::ack)
    /// returns once a frame covering its delivery was sent, and one frame
    /// covers every delivery acked below the oldest one still in progress
    /// (see [`crate::acks`]). For consumers that settle many deliveries
    /// concurrently, out of order.
    pub async fn consume_batched(
        &self,
        queue: &str,
        prefetch: u16,
        tag: &str,
    ) -> Result<Consumer, BrokerError> {
        self.open_consumer(queue, prefetch, tag, true, 0).await
    }

    async fn open_consumer(
        &self,
        queue: &str,
        prefetch: u16,
        tag: &str,
        batched: bool,
        priority: i32,
    ) -> Result<Consumer, BrokerError> {
        let (queue, tag) = (short(queue)?, short(tag)?);
        let mut arguments = FieldTable::default();
        if priority != 0 {
            arguments.insert("x-priority".into(), AMQPValue::LongInt(priority));
        }
        // Bounded like a declaration: a consumer whose `basic.consume` is
        // never answered (a queue still recovering after a broker restart)
        // would otherwise leave its loop waiting while the rest of the
        // session runs, and the queue unconsumed.
        let (channel, inner) = within("opening a consumer", async {
            let channel = self.channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let inner = channel
                .basic_consume(queue, tag, BasicConsumeOptions::default(), arguments)
                .await?;
            Ok::<_, BrokerError>((channel, inner))
        })
        .await??;
        Ok(Consumer::new(channel, inner, batched))
    }
}

/// Longest wait for the broker to answer a connection, a declaration or the
/// opening of a consumer or publisher. A broker that is still booting may
/// accept TCP and never answer; without a bound, reconnecting would hang
/// instead of retrying.
pub(crate) const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `step`, failing with [`BrokerError::Timeout`] after [`ANSWER_TIMEOUT`].
pub(crate) async fn within<T>(
    what: &'static str,
    step: impl std::future::Future<Output = T>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(ANSWER_TIMEOUT, step)
        .await
        .map_err(|_| BrokerError::Timeout(ANSWER_TIMEOUT, what))
}
