//! `warren-coordinator`: parses configuration, then runs the coordinator
//! until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use warren_broker::{BrokerConfig, QueueType};
use warren_coordinator::*;
use warren_core::parse_duration;
use warren_store::StoreConfig;

/// Warren coordinator: job intake, dispatch, report handling, sweeper and HTTP API.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// PostgreSQL URL (the database is created if missing).
    #[arg(long, env = "WARREN_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
    /// RabbitMQ URL.
    #[arg(long, env = "WARREN_AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    amqp_url: String,
    /// Prefix of every exchange and queue.
    #[arg(long, env = "WARREN_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// HTTP API and /metrics address.
    #[arg(long, env = "WARREN_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    http_addr: SocketAddr,
    /// Bearer token of the API (at least 16 characters).
    #[arg(long, env = "WARREN_API_TOKEN", hide_env_values = true)]
    api_token: String,
    /// Optional read-only bearer token (at least 16 characters, not the admin token): GET routes only.
    #[arg(long, env = "WARREN_API_READ_TOKEN", hide_env_values = true)]
    api_read_token: Option<String>,
    /// Time out running jobs of a worker silent this long.
    #[arg(long, env = "WARREN_LEASE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    lease_timeout: Duration,
    /// Sweeper period.
    #[arg(long, env = "WARREN_SWEEP_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    sweep_interval: Duration,
    /// Re-dispatch jobs queued this long without a Started report.
    #[arg(long, env = "WARREN_DISPATCH_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    dispatch_timeout: Duration,
    /// Grace past a job's own timeout before the sweeper times it out.
    #[arg(long, env = "WARREN_DEADLINE_GRACE", default_value = "5s", value_parser = parse_duration)]
    deadline_grace: Duration,
    /// How often the dispatcher looks for due retries and delayed jobs.
    #[arg(long, env = "WARREN_POLL_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Jobs or reports per statement.
    #[arg(long, env = "WARREN_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Jobs of one queue in flight (queued or running) at once; the rest wait in PostgreSQL.
    #[arg(long, env = "WARREN_DISPATCH_WINDOW", default_value_t = DEFAULT_DISPATCH_WINDOW)]
    dispatch_window: usize,
    /// Most tasks (jobs of one queue dispatched together) one task message carries.
    #[arg(long, env = "WARREN_TASK_BATCH", default_value_t = DEFAULT_TASK_BATCH)]
    task_batch: usize,
    /// Largest accepted message or request body, in bytes.
    #[arg(long, env = "WARREN_MAX_PAYLOAD_BYTES", default_value_t = warren_core::protocol::DEFAULT_MAX_PAYLOAD_BYTES)]
    max_payload_bytes: usize,
    /// Delete this deployment's queues after they are unused this long (x-expires; unset = never).
    #[arg(long, env = "WARREN_QUEUE_EXPIRES", value_parser = parse_duration)]
    queue_expires: Option<Duration>,
    /// RabbitMQ queue type: quorum or classic.
    #[arg(long, env = "WARREN_QUEUE_TYPE", default_value = "quorum")]
    queue_type: QueueType,
    /// Threads of the async runtime: 1 runs every loop on one thread (an
    /// event loop: each hand-off between loops stays on it), 0 one per core.
    #[arg(long, env = "WARREN_RUNTIME_THREADS", default_value_t = 1)]
    runtime_threads: usize,
    /// Concurrent Server-Sent Events streams (/v1/events); more get 503.
    #[arg(long, env = "WARREN_MAX_EVENT_STREAMS", default_value_t = DEFAULT_MAX_EVENT_STREAMS)]
    max_event_streams: usize,
    /// Tail reads buffered per SSE stream before a slow one re-reads the database.
    #[arg(long, env = "WARREN_EVENT_STREAM_BUFFER", default_value_t = DEFAULT_EVENT_STREAM_BUFFER)]
    event_stream_buffer: usize,
    /// Consumer priority on the submit and reports queues (x-priority): the
    /// coordinator with the highest takes every envelope it has room for,
    /// the others stand by; equal values share round-robin.
    #[arg(
        long,
        env = "WARREN_CONSUMER_PRIORITY",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    consumer_priority: i32,
    /// PostgreSQL pool size.
    #[arg(long, env = "WARREN_DB_POOL_SIZE", default_value_t = 10)]
    db_pool_size: u32,
    /// Delete completed jobs this long after they finished (`off`: keep them).
    #[arg(long, env = "WARREN_RETENTION_COMPLETED", default_value = "7d", value_parser = keep)]
    retention_completed: Keep,
    /// Delete dead (failed / timeout) jobs this long after they finished (`off`: keep them).
    #[arg(long, env = "WARREN_RETENTION_FAILED", default_value = "30d", value_parser = keep)]
    retention_failed: Keep,
    /// Delete cancelled and skipped jobs this long after they finished (`off`: keep them).
    #[arg(long, env = "WARREN_RETENTION_CANCELLED", default_value = "7d", value_parser = keep)]
    retention_cancelled: Keep,
    /// How often expired jobs are looked for.
    #[arg(long, env = "WARREN_CLEANUP_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    cleanup_interval: Duration,
}

/// A retention from the command line: a duration, or `off` (None).
#[derive(Clone, Copy)]
struct Keep(Option<Duration>);

fn keep(text: &str) -> Result<Keep, String> {
    parse_retention(text).map(Keep)
}

impl Args {
    fn into_config(self) -> CoordinatorConfig {
        let mut broker = BrokerConfig::new(self.amqp_url, self.namespace);
        broker.queue_type = self.queue_type;
        broker.queue_expires = self.queue_expires;
        CoordinatorConfig {
            store: StoreConfig {
                url: self.database_url,
                max_connections: self.db_pool_size,
            },
            broker,
            http_addr: self.http_addr,
            api_token: self.api_token,
            api_read_token: self.api_read_token.filter(|t| !t.is_empty()),
            lease_timeout: self.lease_timeout,
            sweep_interval: self.sweep_interval,
            dispatch_timeout: self.dispatch_timeout,
            deadline_grace: self.deadline_grace,
            poll_interval: self.poll_interval,
            batch_size: self.batch_size,
            dispatch_window: self.dispatch_window,
            task_batch: self.task_batch,
            max_payload_bytes: self.max_payload_bytes,
            retention: Retention {
                completed: self.retention_completed.0,
                failed: self.retention_failed.0,
                cancelled: self.retention_cancelled.0,
                interval: self.cleanup_interval,
            },
            max_event_streams: self.max_event_streams,
            event_stream_buffer: self.event_stream_buffer,
            consumer_priority: self.consumer_priority,
        }
    }
}

fn main() -> std::process::ExitCode {
    warren_process::init_logging();
    let args = Args::parse();
    let threads = args.runtime_threads;
    let config = args.into_config();
    warren_process::serve(threads, "coordinator", "shutdown requested", |shutdown| {
        run(config, shutdown)
    })
}
