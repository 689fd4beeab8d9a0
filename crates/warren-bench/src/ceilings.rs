//! `warren bench --ceilings`: what the machine's broker and database can do
//! on their own, measured with the same kind of work Warren gives them.
//!
//! Warren's figures only mean something next to these: the targets of the
//! benchmark were set on a machine whose RabbitMQ confirmed about 17,000
//! messages a second end to end and whose PostgreSQL committed about 14,000
//! single-row transactions a second. A run on another machine states its
//! own ceilings beside its results, so a slower machine is told apart from
//! a slower Warren.
//!
//! - **Broker**: persistent messages published with confirms (pipelined
//!   windows of 100, from several connections) into one scratch queue of
//!   the deployment's queue type, consumed and acked in bulk by one
//!   consumer; messages per second from the first publish to the last ack.
//!   The queue is deleted afterwards.
//! - **Database**: single-row `INSERT`s, each its own durable commit, from
//!   several connections (commits per second), then `INSERT`s of 100 rows
//!   a statement (rows per second), into a scratch table that is dropped
//!   afterwards.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;
use warren_broker::{BrokerConfig, BrokerError, PendingConfirm, Publisher, Session};

use crate::BenchError;

/// Bytes of each probe message, about a no-op task message's size.
const MESSAGE_BYTES: usize = 256;
/// Messages a publisher writes before awaiting confirms, and the windows it
/// keeps in flight.
const WINDOW: usize = 100;
const WINDOWS_IN_FLIGHT: usize = 4;
/// Deliveries the consumer may hold, and how often it acks them in bulk.
const PREFETCH: u16 = 1_000;
const ACK_EVERY: usize = 100;
/// Expiry of the scratch queue when the deployment sets none.
const SCRATCH_EXPIRES: Duration = Duration::from_secs(600);
/// Rows per statement of the batched insert probe.
const ROWS_PER_STATEMENT: i32 = 100;

/// How much to measure.
#[derive(Debug, Clone)]
pub struct CeilingsConfig {
    /// Messages through the broker.
    pub messages: usize,
    /// Publishing connections.
    pub publishers: usize,
    /// Database connections.
    pub connections: usize,
    /// How long each database probe runs.
    pub db_time: Duration,
}

/// What the machine did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceilings {
    /// Persistent messages per second, published with confirms, delivered and acked.
    pub broker_per_s: f64,
    /// Single-row durable commits per second.
    pub commits_per_s: f64,
    /// Rows per second inserted 100 to a statement (each statement committed).
    pub rows_per_s: f64,
}

impl fmt::Display for Ceilings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warren-bench-ceilings broker_confirmed_per_s={:.0} db_commits_per_s={:.0} db_rows_per_s={:.0} (rows {} a statement)",
            self.broker_per_s, self.commits_per_s, self.rows_per_s, ROWS_PER_STATEMENT
        )
    }
}

/// Measures the broker (through `broker`'s namespace and queue type) and
/// the database at `database_url`, removing what it created.
pub async fn measure(
    config: &CeilingsConfig,
    broker: &BrokerConfig,
    database_url: &str,
) -> Result<Ceilings, BenchError> {
    if config.messages == 0 || config.publishers == 0 || config.connections == 0 {
        return Err(BenchError::Invalid(
            "messages, publishers and connections must be at least 1".into(),
        ));
    }
    let broker_per_s = broker_ceiling(config, broker).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.connections as u32)
        .connect(database_url)
        .await?;
    let table = format!("warren_ceiling_{}", Uuid::new_v4().simple());
    sqlx::query(&format!(
        "CREATE TABLE {table} (id bigserial PRIMARY KEY, body jsonb NOT NULL)"
    ))
    .execute(&pool)
    .await?;
    let measured = db_ceilings(config, &pool, &table).await;
    let dropped = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await;
    pool.close().await;
    let (commits_per_s, rows_per_s) = measured?;
    dropped?;
    Ok(Ceilings {
        broker_per_s,
        commits_per_s,
        rows_per_s,
    })
}

async fn broker_ceiling(config: &CeilingsConfig, broker: &BrokerConfig) -> Result<f64, BenchError> {
    // The scratch queue expires if the probe dies before deleting it.
    let mut broker = broker.clone();
    broker.queue_expires = broker.queue_expires.or(Some(SCRATCH_EXPIRES));
    let broker = &broker;
    let session = Session::connect(broker).await?;
    let queue = format!(
        "{}.ceiling.{}",
        broker.names().namespace(),
        Uuid::new_v4().simple()
    );
    session.declare_scratch_queue(&queue).await?;
    let measured = through_queue(config, broker, &session, &queue).await;
    let deleted = session.delete_queue(&queue).await;
    session.close().await;
    let per_s = measured?;
    deleted?;
    Ok(per_s)
}

/// Publishes `config.messages` into `queue` and consumes them; messages per second.
async fn through_queue(
    config: &CeilingsConfig,
    broker: &BrokerConfig,
    session: &Session,
    queue: &str,
) -> Result<f64, BrokerError> {
    let mut consumer = session.consume(queue, PREFETCH, "").await?;
    let mut publishers = Vec::with_capacity(config.publishers);
    for _ in 0..config.publishers {
        publishers.push(Session::connect(broker).await?);
    }
    let started = Instant::now();
    let mut sending = Vec::with_capacity(publishers.len());
    for (index, publisher) in publishers.into_iter().enumerate() {
        let share = (config.messages + config.publishers - 1 - index) / config.publishers;
        let queue = queue.to_owned();
        sending.push(tokio::spawn(async move {
            let channel = publisher.publisher().await?;
            let result = publish_share(&channel, &queue, share).await;
            // Closed with its channel still open: a channel dropped just
            // before leaves lapin's connection in error as it closes.
            publisher.close().await;
            result
        }));
    }
    let mut received = 0;
    while received < config.messages {
        let delivery = consumer
            .next()
            .await
            .ok_or(BrokerError::ConnectionClosed)??;
        received += 1;
        if received % ACK_EVERY == 0 || received == config.messages {
            consumer.ack_up_to(delivery.delivery_tag).await?;
        }
    }
    let elapsed = started.elapsed();
    for sent in sending {
        sent.await.expect("publisher task panicked")?;
    }
    consumer.close().await;
    Ok(config.messages as f64 / elapsed.as_secs_f64())
}

/// Publishes `count` messages in pipelined windows, every one confirmed.
async fn publish_share(
    publisher: &Publisher,
    queue: &str,
    count: usize,
) -> Result<(), BrokerError> {
    let body = vec![b'x'; MESSAGE_BYTES];
    let mut in_flight: VecDeque<Vec<Result<PendingConfirm, BrokerError>>> = VecDeque::new();
    let mut remaining = count;
    while remaining > 0 || !in_flight.is_empty() {
        if remaining > 0 && in_flight.len() < WINDOWS_IN_FLIGHT {
            let n = remaining.min(WINDOW);
            let items: Vec<(String, Vec<u8>)> =
                (0..n).map(|_| (queue.to_owned(), body.clone())).collect();
            in_flight.push_back(publisher.send_batch("", &items).await);
            remaining -= n;
            continue;
        }
        let window = in_flight.pop_front().expect("a window in flight");
        for result in PendingConfirm::wait_all(window).await {
            result?;
        }
    }
    Ok(())
}

/// (commits per second, rows per second).
async fn db_ceilings(
    config: &CeilingsConfig,
    pool: &PgPool,
    table: &str,
) -> Result<(f64, f64), BenchError> {
    let single = format!("INSERT INTO {table} (body) VALUES ('{{\"probe\":1}}')");
    let commits = insert_for(config, pool, single).await?;
    let batched = format!(
        "INSERT INTO {table} (body) SELECT '{{\"probe\":1}}' FROM generate_series(1, {ROWS_PER_STATEMENT})"
    );
    let statements = insert_for(config, pool, batched).await?;
    Ok((commits, statements * f64::from(ROWS_PER_STATEMENT)))
}

/// Runs `statement` on every connection until `config.db_time` is up;
/// statements per second.
async fn insert_for(
    config: &CeilingsConfig,
    pool: &PgPool,
    statement: String,
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let (pool, statement, time) = (pool.clone(), statement.clone(), config.db_time);
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < time {
                sqlx::query(&statement).execute(&pool).await?;
                done += 1;
            }
            Ok::<u64, sqlx::Error>(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("probe task panicked")?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
