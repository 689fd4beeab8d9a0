//! `warren-worker`: a worker process with the built-in task types
//! (`echo`, `sleep`, `flaky`, `exec`). Runs until SIGTERM or SIGINT, then drains.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use warren_broker::{BrokerConfig, QueueType, DEFAULT_AMQP_URL, DEFAULT_NAMESPACE};
use warren_core::parse_duration;
use warren_worker::{run, Registry, WorkerConfig};

/// Warren worker with the built-in task types.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// RabbitMQ URL.
    #[arg(long, env = "WARREN_AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    amqp_url: String,
    /// Prefix of every exchange and queue.
    #[arg(long, env = "WARREN_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Comma-separated queues to consume.
    #[arg(
        long,
        env = "WARREN_QUEUES",
        default_value = "default",
        value_delimiter = ','
    )]
    queues: Vec<String>,
    /// Jobs run at once (and prefetch per queue).
    #[arg(long, env = "WARREN_CONCURRENCY", default_value_t = warren_worker::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// Heartbeat period (keep it under half the coordinator's lease timeout).
    #[arg(long, env = "WARREN_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Time a cancelled handler gets before it is aborted.
    #[arg(long, env = "WARREN_CANCEL_GRACE", default_value = "5s", value_parser = parse_duration)]
    cancel_grace: Duration,
    /// Time in-flight jobs get to finish after SIGTERM.
    #[arg(long, env = "WARREN_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// Largest accepted task message / result, in bytes.
    #[arg(long, env = "WARREN_MAX_PAYLOAD_BYTES", default_value_t = warren_core::protocol::DEFAULT_MAX_PAYLOAD_BYTES)]
    max_payload_bytes: usize,
    /// Attempts ending within this window send no separate Started report (0 disables).
    #[arg(long, env = "WARREN_COALESCE_WINDOW", default_value = "50ms", value_parser = parse_duration)]
    coalesce_window: Duration,
    /// Serve /metrics and /health here.
    #[arg(long, env = "WARREN_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Delete this deployment's queues after they are unused this long (x-expires; unset = never).
    #[arg(long, env = "WARREN_QUEUE_EXPIRES", value_parser = parse_duration)]
    queue_expires: Option<Duration>,
    /// RabbitMQ queue type: quorum or classic (must match the coordinator).
    #[arg(long, env = "WARREN_QUEUE_TYPE", default_value = "quorum")]
    queue_type: QueueType,
    /// Threads of the async runtime: 1 runs every job and loop on one
    /// thread (the built-in task types only wait), 0 one per core.
    #[arg(long, env = "WARREN_RUNTIME_THREADS", default_value_t = 1)]
    runtime_threads: usize,
}

fn main() -> std::process::ExitCode {
    warren_process::init_logging();
    let args = Args::parse();
    let threads = args.runtime_threads;
    let mut broker = BrokerConfig::new(args.amqp_url, args.namespace);
    broker.queue_type = args.queue_type;
    broker.queue_expires = args.queue_expires;
    let mut config = WorkerConfig::new(broker, args.queues);
    config.concurrency = args.concurrency;
    config.heartbeat_interval = args.heartbeat_interval;
    config.cancel_grace = args.cancel_grace;
    config.shutdown_timeout = args.shutdown_timeout;
    config.max_payload_bytes = args.max_payload_bytes;
    config.metrics_addr = args.metrics_addr;
    config.coalesce_window = args.coalesce_window;
    warren_process::serve(
        threads,
        "worker",
        "shutdown requested: draining",
        |shutdown| run(config, Registry::with_builtins(), shutdown),
    )
}
