//! The coordinator's configuration: one validated struct with named defaults.

use std::net::SocketAddr;
use std::time::Duration;

use warren_broker::BrokerConfig;
use warren_core::protocol::MIN_MAX_PAYLOAD_BYTES;
use warren_core::queue::MAX_TASK_BATCH;
use warren_store::StoreConfig;

use crate::Retention;

/// Default database URL.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/warren";
/// Default AMQP URL.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default namespace prefixing every exchange and queue.
pub const DEFAULT_NAMESPACE: &str = "warren";
/// Default HTTP listen address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// A running job whose worker is silent this long is timed out.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the sweeper runs.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(2);
/// A job queued this long without a Started report is re-dispatched.
pub const DEFAULT_DISPATCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Extra time past a job's own timeout before the sweeper steps in.
pub const DEFAULT_DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// How often due retries and delayed jobs are looked for when nothing else wakes the dispatcher.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Jobs of one queue allowed in flight (queued or running) at once.
///
/// A job counts from its claim until its final report commits, so the
/// window must cover throughput × that cycle (Little's law): at 8,000 jobs/s
/// and a cycle of about 100 ms under load (worker prefetch, report envelopes
/// awaiting confirms, report batches) 1,000 left the task queue nearly empty
/// and the worker waiting on the dispatcher. See BENCHMARKS.md.
pub const DEFAULT_DISPATCH_WINDOW: usize = 5_000;
/// Most tasks one task message carries (see [`CoordinatorConfig::task_batch`]).
///
/// At full speed an intake batch dispatches hundreds of jobs of one queue
/// at once; 16 a message cut the broker's messages per job by about 15
/// while a worker pulling a message it has too few free slots for hands
/// the rest back to the queue (BENCHMARKS.md, "Several tasks per message").
pub const DEFAULT_TASK_BATCH: usize = 16;
/// Jobs or reports handled per statement.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Concurrent Server-Sent Events streams served by one coordinator.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 256;
/// Tail reads buffered for each SSE stream before a slow one falls back to
/// reading the database.
pub const DEFAULT_EVENT_STREAM_BUFFER: usize = 64;
/// Shortest accepted API token.
pub const MIN_TOKEN_LEN: usize = 16;

/// Everything a coordinator needs to run. `Debug` never shows the tokens.
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// PostgreSQL settings.
    pub store: StoreConfig,
    /// RabbitMQ settings (URL, namespace, queue type).
    pub broker: BrokerConfig,
    /// Address of the HTTP API and `/metrics`.
    pub http_addr: SocketAddr,
    /// Bearer token required by the API (never logged).
    pub api_token: String,
    /// Optional second bearer token that may only read (`GET`); every
    /// mutating route answers it with 403 (never logged).
    pub api_read_token: Option<String>,
    /// Running jobs of a worker silent this long are timed out.
    pub lease_timeout: Duration,
    /// Sweeper period.
    pub sweep_interval: Duration,
    /// Queued jobs older than this are re-dispatched.
    pub dispatch_timeout: Duration,
    /// Grace past a job's timeout before the sweeper times it out.
    pub deadline_grace: Duration,
    /// Dispatcher wake-up period for delayed and retrying jobs.
    pub poll_interval: Duration,
    /// Batch size of intake, dispatch and report handling.
    pub batch_size: usize,
    /// Per-queue cap on jobs queued or running; the rest of a backlog stays
    /// `pending` in PostgreSQL. A queue's `max_in_flight` may lower it.
    pub dispatch_window: usize,
    /// Most tasks one task message carries: jobs of one queue dispatched
    /// together (by one intake batch or one claim) share messages of up to
    /// this many tasks and `max_payload_bytes`. 1 publishes one message
    /// per task, as coordinators before it did.
    pub task_batch: usize,
    /// Largest accepted message or request body.
    pub max_payload_bytes: usize,
    /// How long finished jobs are kept, and how often older ones are deleted.
    pub retention: Retention,
    /// Concurrent Server-Sent Events streams; more are refused with 503.
    pub max_event_streams: usize,
    /// Tail reads buffered per SSE stream; a stream further behind catches
    /// up from the database instead.
    pub event_stream_buffer: usize,
    /// This coordinator's consumer priority on the submit and reports
    /// queues (`x-priority`). The broker hands every envelope to the
    /// highest-priority coordinator with room in its prefetch, so one
    /// coordinator given a higher value takes the stream whole while the
    /// others stand by; equal values (the default 0) share round-robin.
    pub consumer_priority: i32,
}

impl CoordinatorConfig {
    /// Defaults for everything but the token.
    pub fn new(api_token: impl Into<String>) -> Self {
        Self {
            store: StoreConfig::new(DEFAULT_DATABASE_URL),
            broker: BrokerConfig::new(DEFAULT_AMQP_URL, DEFAULT_NAMESPACE),
            http_addr: DEFAULT_HTTP_ADDR.parse().expect("valid default address"),
            api_token: api_token.into(),
            api_read_token: None,
            lease_timeout: DEFAULT_LEASE_TIMEOUT,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            dispatch_timeout: DEFAULT_DISPATCH_TIMEOUT,
            deadline_grace: DEFAULT_DEADLINE_GRACE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            batch_size: DEFAULT_BATCH_SIZE,
            dispatch_window: DEFAULT_DISPATCH_WINDOW,
            task_batch: DEFAULT_TASK_BATCH,
            max_payload_bytes: warren_core::protocol::DEFAULT_MAX_PAYLOAD_BYTES,
            retention: Retention::default(),
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            event_stream_buffer: DEFAULT_EVENT_STREAM_BUFFER,
            consumer_priority: 0,
        }
    }

    /// Rejects settings that cannot work together.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "WARREN_API_TOKEN must be set to at least {MIN_TOKEN_LEN} characters"
            ));
        }
        if let Some(read) = &self.api_read_token {
            if read.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "WARREN_API_READ_TOKEN must be at least {MIN_TOKEN_LEN} characters"
                ));
            }
            if read == &self.api_token {
                return Err("WARREN_API_READ_TOKEN must differ from WARREN_API_TOKEN".into());
            }
        }
        warren_core::validate_name("namespace", &self.broker.namespace)
            .map_err(|e| e.to_string())?;
        if self.lease_timeout <= self.sweep_interval {
            return Err("WARREN_LEASE_TIMEOUT must exceed WARREN_SWEEP_INTERVAL".into());
        }
        if self.dispatch_timeout < Duration::from_secs(1) {
            return Err("WARREN_DISPATCH_TIMEOUT must be at least 1s".into());
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err("WARREN_BATCH_SIZE must be between 1 and 10000".into());
        }
        if self.dispatch_window == 0 {
            return Err("WARREN_DISPATCH_WINDOW must be at least 1".into());
        }
        if !(1..=MAX_TASK_BATCH as usize).contains(&self.task_batch) {
            return Err(format!(
                "WARREN_TASK_BATCH must be between 1 and {MAX_TASK_BATCH}"
            ));
        }
        if self.max_event_streams == 0 {
            return Err("WARREN_MAX_EVENT_STREAMS must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.event_stream_buffer) {
            return Err("WARREN_EVENT_STREAM_BUFFER must be between 1 and 100000".into());
        }
        if self.max_payload_bytes < MIN_MAX_PAYLOAD_BYTES {
            return Err(format!(
                "WARREN_MAX_PAYLOAD_BYTES must be at least {MIN_MAX_PAYLOAD_BYTES}"
            ));
        }
        if self.retention.interval.is_zero() {
            return Err("WARREN_CLEANUP_INTERVAL must be positive".into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |token: &str| if token.is_empty() { "" } else { "***" };
        f.debug_struct("CoordinatorConfig")
            .field(
                "database",
                &warren_store::redact_database_url(&self.store.url),
            )
            .field("broker", &self.broker)
            .field("http_addr", &self.http_addr)
            .field("api_token", &hidden(&self.api_token))
            .field(
                "api_read_token",
                &self.api_read_token.as_deref().map(hidden),
            )
            .field("lease_timeout", &self.lease_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("dispatch_timeout", &self.dispatch_timeout)
            .field("deadline_grace", &self.deadline_grace)
            .field("poll_interval", &self.poll_interval)
            .field("batch_size", &self.batch_size)
            .field("dispatch_window", &self.dispatch_window)
            .field("task_batch", &self.task_batch)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("consumer_priority", &self.consumer_priority)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_with_a_token_and_invalid_without() {
        assert!(CoordinatorConfig::new("0123456789abcdef")
            .validate()
            .is_ok());
        assert!(CoordinatorConfig::new("short").validate().is_err());
        let mut config = CoordinatorConfig::new("0123456789abcdef");
        config.lease_timeout = config.sweep_interval;
        assert!(config.validate().is_err());
    }

    #[test]
    fn a_read_token_must_be_long_and_differ_from_the_admin_token() {
        let mut config = CoordinatorConfig::new("0123456789abcdef");
        config.api_read_token = Some("short".into());
        assert!(config.validate().is_err());
        config.api_read_token = Some("0123456789abcdef".into());
        assert!(config.validate().is_err());
        config.api_read_token = Some("read-only-token-0123".into());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn debug_output_hides_both_tokens() {
        let mut config = CoordinatorConfig::new("admin-secret-0123456789");
        config.api_read_token = Some("reader-secret-0123456789".into());
        let text = format!("{config:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("dispatch_window"));
    }
}
