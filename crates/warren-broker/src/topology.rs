//! Warren's AMQP topology: declaring (idempotently), inspecting and deleting
//! the exchanges and queues of a namespace.
//!
//! Each operation runs on a short-lived channel of its own, so a broker error
//! that closes the channel (e.g. `NOT_FOUND`) never poisons a publisher or a
//! consumer.

use lapin::{
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::FieldTable,
    Channel, ExchangeKind,
};

use crate::session::within;
use crate::{
    arguments::{queue_args, QueueRole},
    error::BrokerError,
    names::{short, REPORT_ROUTING_KEY, SUBMIT_ROUTING_KEY},
    session::Session,
};

impl Session {
    /// Declares the namespace's core topology: the dead-letter exchange and
    /// queue, the submit exchange and queue, the tasks exchange, the reports
    /// exchange and queue, and the events exchange. Idempotent.
    pub async fn declare_core(&self) -> Result<(), BrokerError> {
        within("declaring the topology", self.declare_core_unbounded()).await?
    }

    async fn declare_core_unbounded(&self) -> Result<(), BrokerError> {
        let n = self.names();
        let ch = self.channel().await?;
        exchange(&ch, &n.dead_exchange(), ExchangeKind::Fanout).await?;
        let (durable, plain) = (QueueDeclareOptions::durable(), QueueRole::Plain);
        queue(
            &ch,
            &n.dead_queue(),
            durable,
            queue_args(self.config(), plain),
        )
        .await?;
        bind(&ch, &n.dead_queue(), &n.dead_exchange(), "").await?;

        exchange(&ch, &n.submit_exchange(), ExchangeKind::Direct).await?;
        self.work_queue(&ch, &n.submit_queue()).await?;
        bind(
            &ch,
            &n.submit_queue(),
            &n.submit_exchange(),
            SUBMIT_ROUTING_KEY,
        )
        .await?;

        exchange(&ch, &n.tasks_exchange(), ExchangeKind::Direct).await?;

        exchange(&ch, &n.reports_exchange(), ExchangeKind::Direct).await?;
        self.work_queue(&ch, &n.reports_queue()).await?;
        bind(
            &ch,
            &n.reports_queue(),
            &n.reports_exchange(),
            REPORT_ROUTING_KEY,
        )
        .await?;

        exchange(&ch, &n.events_exchange(), ExchangeKind::Topic).await?;
        close(ch).await;
        Ok(())
    }

    /// Declares the task queue `<ns>.q.<queue>` (same arguments as the submit
    /// and reports queues) and binds it to the tasks exchange with routing key
    /// `queue`. Idempotent; expects [`Session::declare_core`] to have run.
    pub async fn declare_task_queue(&self, queue: &str) -> Result<(), BrokerError> {
        within(
            "declaring a task queue",
            self.declare_task_queue_unbounded(queue),
        )
        .await?
    }

    async fn declare_task_queue_unbounded(&self, queue: &str) -> Result<(), BrokerError> {
        let n = self.names();
        let name = n.task_queue(queue);
        let ch = self.channel().await?;
        self.work_queue(&ch, &name).await?;
        bind(&ch, &name, &n.tasks_exchange(), queue).await?;
        close(ch).await;
        Ok(())
    }

    /// Declares the worker's control queue `<ns>.ctl.<worker_id>`: classic,
    /// exclusive to this connection, auto-delete, not durable. Messages reach
    /// it through the default exchange (routing key = queue name). Returns its name.
    pub async fn declare_control_queue(&self, worker_id: &str) -> Result<String, BrokerError> {
        within(
            "declaring the control queue",
            self.declare_control_queue_unbounded(worker_id),
        )
        .await?
    }

    async fn declare_control_queue_unbounded(
        &self,
        worker_id: &str,
    ) -> Result<String, BrokerError> {
        let name = self.names().control_queue(worker_id);
        let ch = self.channel().await?;
        let opts = QueueDeclareOptions::exclusive().auto_delete();
        queue(
            &ch,
            &name,
            opts,
            queue_args(self.config(), QueueRole::Plain),
        )
        .await?;
        close(ch).await;
        Ok(name)
    }

    /// Number of ready messages in `queue` (passive declare; fails with a
    /// `NOT_FOUND` protocol error if the queue does not exist). Unacknowledged
    /// deliveries are not counted.
    pub async fn queue_depth(&self, queue: &str) -> Result<u32, BrokerError> {
        Ok(self.queue_stats(queue).await?.messages)
    }

    /// Ready messages and consumers of a queue (passive declare).
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, BrokerError> {
        let ch = self.channel().await?;
        let opts = QueueDeclareOptions::default().passive();
        let q = ch
            .queue_declare(short(queue)?, opts, FieldTable::default())
            .await?;
        close(ch).await;
        Ok(QueueStats {
            messages: q.message_count(),
            consumers: q.consumer_count(),
        })
    }

    /// Deletes every queue and exchange of the namespace, including the given
    /// task queues (by job queue name, as passed to [`Session::declare_task_queue`]).
    /// Deleting something that does not exist is not an error.
    pub async fn delete_namespace(&self, task_queues: &[&str]) -> Result<(), BrokerError> {
        let n = self.names();
        let mut queues = vec![n.submit_queue(), n.reports_queue(), n.dead_queue()];
        queues.extend(task_queues.iter().map(|q| n.task_queue(q)));
        let exchanges = [
            n.submit_exchange(),
            n.tasks_exchange(),
            n.reports_exchange(),
            n.dead_exchange(),
            n.events_exchange(),
        ];
        let ch = self.channel().await?;
        for q in &queues {
            ch.queue_delete(short(q)?, QueueDeleteOptions::default())
                .await?;
        }
        for x in &exchanges {
            ch.exchange_delete(short(x)?, ExchangeDeleteOptions::default())
                .await?;
        }
        close(ch).await;
        Ok(())
    }

    /// Declares a standalone queue of the configured type with the work
    /// queues' arguments, reached through the default exchange (routing
    /// key = its name): a scratch queue for measuring the broker itself
    /// (`warren bench --ceilings`). Delete it with [`Session::delete_queue`].
    pub async fn declare_scratch_queue(&self, name: &str) -> Result<(), BrokerError> {
        within("declaring a scratch queue", async {
            let ch = self.channel().await?;
            self.work_queue(&ch, name).await?;
            close(ch).await;
            Ok(())
        })
        .await?
    }

    /// Deletes one queue and its messages; deleting a missing queue is not an error.
    pub async fn delete_queue(&self, name: &str) -> Result<(), BrokerError> {
        within("deleting a queue", async {
            let ch = self.channel().await?;
            ch.queue_delete(short(name)?, QueueDeleteOptions::default())
                .await?;
            close(ch).await;
            Ok(())
        })
        .await?
    }

    /// Declares a durable queue of the configured type (submit, reports, tasks).
    async fn work_queue(&self, ch: &Channel, name: &str) -> Result<(), BrokerError> {
        let args = queue_args(self.config(), QueueRole::Work);
        queue(ch, name, QueueDeclareOptions::durable(), args).await
    }
}

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
    let opts = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(short(name)?, kind, opts, FieldTable::default())
        .await?;
    Ok(())
}

async fn queue(
    ch: &Channel,
    name: &str,
    opts: QueueDeclareOptions,
    args: FieldTable,
) -> Result<(), BrokerError> {
    ch.queue_declare(short(name)?, opts, args).await?;
    Ok(())
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), BrokerError> {
    let (q, x, k) = (short(queue)?, short(exchange)?, short(key)?);
    ch.queue_bind(q, x, k, QueueBindOptions::default(), FieldTable::default())
        .await?;
    Ok(())
}

/// Closes a short-lived channel; a failure here cannot affect what it did.
async fn close(ch: Channel) {
    let _ = ch.close(200, "done".into()).await;
}

/// What a passive declare reports about a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages ready for delivery (not counting unacknowledged ones).
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}
