//! The Warren coordinator: accepts submitted jobs, dispatches them to worker
//! queues, applies worker reports, rescues lost work and serves the HTTP API.
//!
//! Each loop lives in its own module. Loops that need RabbitMQ run inside a
//! broker session (`session.rs`) that is rebuilt (with backoff) whenever the connection
//! fails; loops that only need PostgreSQL (sweeper, gauges, cleanup, the
//! workflow engine) run for the whole
//! process and retry database errors. Several coordinators may run at once.

mod api;
mod batch;
mod cleanup;
mod config;
mod control;
mod defaults;
mod defaults_cache;
mod dispatcher;
mod events;
mod gauges;
mod handoff;
mod hearing;
mod in_flight;
mod intake;
mod intake_workflows;
mod metrics;
mod ops_metrics;
mod outbox;
mod redispatch;
mod reports;
mod retention;
mod session;
mod shared;
mod sweeper;
mod task_batches;
mod uncertain;
mod workflows;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_store::Store;

pub use config::*;
pub use metrics::{EventMetrics, Metrics};
pub use ops_metrics::OpsMetrics;
pub use retention::*;

use shared::Shared;

/// Why the coordinator could not run.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configuration was rejected.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP listener could not be bound or served.
    #[error("HTTP server error: {0}")]
    Http(#[from] std::io::Error),
}

/// Binds `config.http_addr` and runs until `shutdown` is cancelled.
pub async fn run(
    config: CoordinatorConfig,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let listener = TcpListener::bind(config.http_addr).await?;
    serve(config, listener, shutdown).await
}

/// Runs the coordinator with an already bound HTTP listener (tests bind port 0).
pub async fn serve(
    config: CoordinatorConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    config.validate().map_err(CoordinatorError::Config)?;
    tracing::info!(
        namespace = %config.broker.namespace,
        database = %warren_store::redact_database_url(&config.store.url),
        broker = %warren_broker::redact_url(&config.broker.url),
        http = %listener.local_addr()?,
        "coordinator starting"
    );
    let Some(store) = connect_store(&config, &shutdown).await else {
        return Ok(());
    };
    let shared = Arc::new(Shared::new(config, store));
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(api::serve(listener, shared.clone(), shutdown.clone()));
    tasks.spawn(sweeper::run(shared.clone(), shutdown.clone()));
    tasks.spawn(gauges::run(shared.clone(), shutdown.clone()));
    tasks.spawn(cleanup::run(shared.clone(), shutdown.clone()));
    tasks.spawn(workflows::run(shared.clone(), shutdown.clone()));
    tasks.spawn(events::tailer::run(shared.clone(), shutdown.clone()));
    tasks.spawn(defaults_cache::listen(shared.clone(), shutdown.clone()));
    tasks.close();
    session::run(shared, shutdown.clone()).await;
    tasks.wait().await;
    tracing::info!("coordinator stopped");
    Ok(())
}

/// Connects to PostgreSQL (creating the database and migrating), retrying
/// with backoff until it answers or shutdown is requested.
async fn connect_store(config: &CoordinatorConfig, shutdown: &CancellationToken) -> Option<Store> {
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match Store::connect_and_migrate(&config.store).await {
            Ok(store) => return Some(store),
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "database not ready"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}
