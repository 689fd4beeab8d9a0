//! The Warren worker SDK and runtime.
//!
//! Register async handlers for task types in a [`Registry`], then call
//! [`run`] with a [`WorkerConfig`] and a shutdown token: the worker consumes
//! the configured queues, reports every attempt to the coordinator, sends
//! heartbeats, honours timeouts and cancellation, and drains on shutdown.
//!
//! ```no_run
//! use tokio_util::sync::CancellationToken;
//! use warren_broker::BrokerConfig;
//! use warren_worker::{run, HandlerError, Registry, WorkerConfig};
//!
//! # async fn example() -> Result<(), warren_worker::WorkerError> {
//! let mut registry = Registry::with_builtins();
//! registry.register("resize", |ctx, payload| async move {
//!     ctx.progress(50.0, "resizing");
//!     let width = payload["width"].as_u64().ok_or_else(|| HandlerError::fatal("width missing"))?;
//!     Ok(serde_json::json!({ "width": width }))
//! });
//! let broker = BrokerConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "warren");
//! let config = WorkerConfig::new(broker, vec!["images".into()]);
//! run(config, registry, CancellationToken::new()).await
//! # }
//! ```

mod attempts;
mod builtins;
mod config;
mod context;
mod executor;
mod hand_back;
mod handler;
mod last_reports;
mod metrics;
mod metrics_server;
mod progress_gate;
mod reporter;
mod session;
mod task_delivery;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warren_broker::{Session, SessionPacer};
use warren_core::protocol::Heartbeat;

pub use config::*;
pub use context::JobContext;
pub use handler::{BoxedHandler, HandlerError, HandlerFuture, HandlerResult, Registry};
pub use metrics::WorkerMetrics;

use executor::Executor;
use reporter::{Outgoing, Reporter};
use session::{SessionDeps, SessionEnd};

/// Longest wait for the last reports to be confirmed at shutdown.
const REPORT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration was rejected.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The metrics listener could not be bound.
    #[error("metrics server error: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs a worker until `shutdown` is cancelled, then drains: intake stops on
/// every queue at once, in-flight jobs get `shutdown_timeout` to finish, the
/// rest are cancelled (aborted after `cancel_grace`) and reported as failed
/// so they are retried elsewhere, and the last reports are flushed.
pub async fn run(
    config: WorkerConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    config.validate().map_err(WorkerError::Config)?;
    let metrics = WorkerMetrics::new();
    let background = CancellationToken::new();
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tokio::spawn(metrics_server::serve(
            listener,
            metrics.clone(),
            background.clone(),
        ));
    }
    tracing::info!(worker = %config.worker_id, broker = %warren_broker::redact_url(&config.broker.url), task_types = ?registry.task_types(), "worker starting");

    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (outgoing_tx, outgoing_rx) = mpsc::unbounded_channel();
    let (publisher_tx, publisher_rx) = watch::channel(None);
    let reporter = tokio::spawn(
        Reporter {
            worker_id: config.worker_id.clone(),
            exchange: config.broker.names().reports_exchange(),
            max_bytes: config.max_payload_bytes,
            reports: reports_rx,
            outgoing: outgoing_rx,
            publisher: publisher_rx,
        }
        .run(),
    );
    let executor = Arc::new(Executor {
        registry,
        metrics: metrics.clone(),
        reports: reports_tx,
        outgoing: outgoing_tx.clone(),
        attempts: attempts::Attempts::new(4 * usize::from(config.concurrency)),
        running: Mutex::new(HashMap::new()),
        abort_all: CancellationToken::new(),
        cancel_grace: config.cancel_grace,
        max_result_bytes: config.max_result_bytes(),
        coalesce_window: config.coalesce_window,
    });
    let heartbeats = tokio::spawn(send_heartbeats(
        config.clone(),
        executor.clone(),
        outgoing_tx,
        background.clone(),
    ));

    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.concurrency as usize));
    let mut draining = None;
    let mut pacer = SessionPacer::new();
    while let Some(session) = Session::connect_with_backoff(&config.broker, &shutdown).await {
        metrics.connected.set(1);
        pacer.started();
        let deps = SessionDeps {
            config: &config,
            executor: &executor,
            publisher: &publisher_tx,
            permits: &permits,
            tracker: &tracker,
            stop_intake: &shutdown,
        };
        match session::run(session, deps).await {
            SessionEnd::Draining(session, control) => {
                draining = Some((session, control));
                break;
            }
            SessionEnd::Failed(e) => {
                metrics.connected.set(0);
                tracing::warn!(error = %e, "broker session failed; reconnecting (running jobs continue)");
                if !pacer.pause(&shutdown).await {
                    break;
                }
            }
        }
    }

    let (session, control) = draining.unzip();
    // The session intake stopped on carries the last reports, replaced if
    // the broker drops it; without one, no session comes after this, and
    // the reporter stops retrying instead of waiting out its flush timeout.
    let keeper_stop = CancellationToken::new();
    let keeper = tokio::spawn(last_reports::keep_publishing(
        config.broker.clone(),
        session,
        publisher_tx,
        keeper_stop.clone(),
    ));
    drain(&config, &executor, &tracker).await;
    background.cancel();
    let _ = heartbeats.await;
    // Nothing may hold a report sender any more, or the reporter never ends.
    if let Some(control) = control {
        control.abort();
        let _ = control.await;
    }
    drop(executor);
    if tokio::time::timeout(REPORT_FLUSH_TIMEOUT, reporter)
        .await
        .is_err()
    {
        tracing::warn!(
            "could not flush the last reports; the coordinator will time those jobs out"
        );
    }
    keeper_stop.cancel();
    let _ = keeper.await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Waits for in-flight jobs under one deadline, then cancels the rest.
async fn drain(config: &WorkerConfig, executor: &Executor, tracker: &TaskTracker) {
    tracker.close();
    let running = executor.running_jobs();
    if !running.is_empty() {
        tracing::info!(jobs = running.len(), timeout = ?config.shutdown_timeout, "draining in-flight jobs");
    }
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_ok()
    {
        return;
    }
    let left: Vec<String> = executor
        .running_jobs()
        .iter()
        .map(|j| j.job_id.to_string())
        .collect();
    tracing::warn!(jobs = ?left, "shutdown timeout reached; cancelling the remaining jobs (they will be retried)");
    executor.abort_all.cancel();
    let _ =
        tokio::time::timeout(config.cancel_grace + Duration::from_secs(1), tracker.wait()).await;
}

/// One heartbeat per interval listing the attempts in flight.
async fn send_heartbeats(
    config: WorkerConfig,
    executor: Arc<Executor>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let heartbeat = Heartbeat {
            queues: config.queues.clone(),
            concurrency: u32::from(config.concurrency),
            running: executor.running_jobs(),
        };
        if outgoing.send(Outgoing::Heartbeat(heartbeat)).is_err() {
            return;
        }
    }
}
