//! Watching an exchange from the outside: a server-named, exclusive queue
//! bound to one of a namespace's exchanges receives a copy of every message
//! routed there after the bind, read with `basic.get`.

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};

use crate::env::TestEnv;

/// A server-named, exclusive queue bound to an exchange; it goes away with
/// its connection.
pub struct Tap {
    connection: Connection,
    channel: Channel,
    queue: ShortString,
}

/// One message taken from a [`Tap`], as published.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Its routing key.
    pub routing_key: String,
    /// Its body, byte for byte.
    pub body: Vec<u8>,
}

impl Tap {
    /// Binds a new queue to `exchange` (which must exist: a coordinator ran,
    /// or the core topology was declared) with each of `keys`.
    pub async fn bind(env: &TestEnv, exchange: &str, keys: &[&str]) -> Self {
        let connection = Connection::connect(&env.amqp_url, ConnectionProperties::default())
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        let declared = channel
            .queue_declare(
                ShortString::from(""),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await
            .expect("declare tap queue");
        let queue = declared.name().clone();
        for key in keys {
            channel
                .queue_bind(
                    queue.clone(),
                    ShortString::from(exchange),
                    ShortString::from(*key),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("bind tap queue");
        }
        Self {
            connection,
            channel,
            queue,
        }
    }

    /// The next message, if one is waiting.
    pub async fn take(&self) -> Option<RawMessage> {
        let message = self
            .channel
            .basic_get(self.queue.clone(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")?;
        let delivery = message.delivery;
        Some(RawMessage {
            routing_key: delivery.routing_key.to_string(),
            body: delivery.data,
        })
    }

    /// Every message waiting now, in the order the queue holds them.
    pub async fn drain(&self) -> Vec<RawMessage> {
        let mut messages = Vec::new();
        while let Some(message) = self.take().await {
            messages.push(message);
        }
        messages
    }

    /// Closes the connection (the queue goes with it).
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}
