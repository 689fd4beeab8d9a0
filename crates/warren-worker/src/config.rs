//! The worker's configuration: one validated struct with named defaults.

use std::net::SocketAddr;
use std::time::Duration;

use warren_broker::BrokerConfig;
use warren_core::protocol::MIN_MAX_PAYLOAD_BYTES;

/// Default heartbeat period.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default time a cancelled handler gets before it is aborted.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
/// Default time in-flight jobs get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default window within which a finished attempt sends no separate Started report.
pub const DEFAULT_COALESCE_WINDOW: Duration = Duration::from_millis(50);
/// Default concurrency.
pub const DEFAULT_CONCURRENCY: u16 = 8;

/// Everything a worker needs to run.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// RabbitMQ settings.
    pub broker: BrokerConfig,
    /// Queues to consume.
    pub queues: Vec<String>,
    /// Jobs run at once (also the prefetch of each queue).
    pub concurrency: u16,
    /// Heartbeat period; must be well below the coordinator's lease timeout.
    pub heartbeat_interval: Duration,
    /// How long a cancelled or timed-out handler may take to stop before it is aborted.
    pub cancel_grace: Duration,
    /// How long in-flight jobs may run after a shutdown request.
    pub shutdown_timeout: Duration,
    /// Largest accepted task message and largest result sent back.
    pub max_payload_bytes: usize,
    /// Where to serve `/metrics` and `/health` (None: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// This process's identity: hostname + a fresh UUID.
    pub worker_id: String,
    /// An attempt that ends within this window reports only its outcome
    /// (Started is folded in), halving report traffic for fast jobs.
    /// Zero disables coalescing.
    pub coalesce_window: Duration,
}

impl WorkerConfig {
    /// Defaults, with a fresh worker id.
    pub fn new(broker: BrokerConfig, queues: Vec<String>) -> Self {
        Self {
            broker,
            queues,
            concurrency: DEFAULT_CONCURRENCY,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_payload_bytes: warren_core::protocol::DEFAULT_MAX_PAYLOAD_BYTES,
            metrics_addr: None,
            worker_id: new_worker_id(),
            coalesce_window: DEFAULT_COALESCE_WINDOW,
        }
    }

    /// Largest result a handler may return: the payload bound less room for
    /// the rest of its report (4 KiB, or half the bound below 8 KiB, so that
    /// a small bound still leaves room for a result).
    pub fn max_result_bytes(&self) -> usize {
        self.max_payload_bytes - (self.max_payload_bytes / 2).min(4096)
    }

    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.queues.is_empty() {
            return Err("WARREN_QUEUES must name at least one queue".into());
        }
        for queue in &self.queues {
            warren_core::validate_name("queue", queue).map_err(|e| e.to_string())?;
        }
        warren_core::validate_name("worker id", &self.worker_id).map_err(|e| e.to_string())?;
        if self.concurrency == 0 {
            return Err("WARREN_CONCURRENCY must be at least 1".into());
        }
        if self.heartbeat_interval < Duration::from_millis(50) {
            return Err("WARREN_HEARTBEAT_INTERVAL must be at least 50ms".into());
        }
        if self.max_payload_bytes < MIN_MAX_PAYLOAD_BYTES {
            return Err(format!(
                "WARREN_MAX_PAYLOAD_BYTES must be at least {MIN_MAX_PAYLOAD_BYTES}"
            ));
        }
        Ok(())
    }
}

/// `hostname-<uuid>`: unique per process, so a restarted worker never
/// inherits its predecessor's jobs.
pub fn new_worker_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(60)
        .collect();
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_payload_bytes: usize) -> WorkerConfig {
        let broker = BrokerConfig::new("amqp://localhost", "ns");
        WorkerConfig {
            max_payload_bytes,
            ..WorkerConfig::new(broker, vec!["default".into()])
        }
    }

    #[test]
    fn results_keep_room_for_their_report_and_a_small_bound_still_has_room() {
        assert_eq!(config(1 << 20).max_result_bytes(), (1 << 20) - 4096);
        assert_eq!(config(8192).max_result_bytes(), 4096);
        assert_eq!(config(1024).max_result_bytes(), 512);
    }

    #[test]
    fn a_payload_bound_below_1024_is_refused() {
        assert!(config(1024).validate().is_ok());
        assert_eq!(
            config(1023).validate(),
            Err("WARREN_MAX_PAYLOAD_BYTES must be at least 1024".to_owned())
        );
    }
}
