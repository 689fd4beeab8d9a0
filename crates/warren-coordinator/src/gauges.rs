//! Refreshes gauge metrics (jobs by queue and state, the oldest due job per
//! queue, live workers, paused queues) from the database every few seconds,
//! and the queues' own `task_batch` settings with them; workers that
//! stopped long ago are forgotten.
//!
//! `warren_jobs` covers the states a job waits or runs in, plus the dead
//! ones (`failed` / `timeout`), counted exactly from index ranges. Terminal
//! states (`completed`, `cancelled`, `skipped`) are not counted: their rows
//! are kept for days, and counting them every few seconds would cost a scan
//! that grows with retention. `warren_job_transitions_total` counts them
//! as they happen, and `/v1/stats` reports recent ones.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_store::StoreError;

use crate::shared::Shared;

/// Gauge refresh period.
const REFRESH: Duration = Duration::from_secs(5);
/// Workers silent for this long are removed from the `workers` table.
const FORGET_WORKERS_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Refreshes until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = refresh(&shared).await {
            tracing::debug!(error = %e, "gauge refresh failed");
        }
    }
}

async fn refresh(shared: &Shared) -> Result<(), StoreError> {
    let counts = shared.store.count_unfinished_by_queue().await?;
    let oldest = shared.store.oldest_due_by_queue().await?;
    shared.metrics.jobs.reset();
    for row in counts {
        shared
            .metrics
            .jobs
            .with_label_values(&[row.queue.as_str(), row.state.as_str()])
            .set(row.count);
    }
    let ages = &shared.metrics.ops.oldest_pending_age;
    ages.reset();
    for (queue, seconds) in oldest {
        ages.with_label_values(&[queue.as_str()]).set(seconds);
    }
    let alive = shared
        .store
        .count_live_workers(shared.config.lease_timeout)
        .await?;
    shared.metrics.workers_alive.set(alive);
    shared
        .store
        .forget_dead_workers(FORGET_WORKERS_AFTER)
        .await?;
    refresh_queue_flags(shared).await?;
    let batches = shared.store.queue_task_batches().await?;
    shared.task_batches.replace(batches);
    Ok(())
}

/// `warren_queue_paused` for every queue (changes made through another
/// coordinator show up here within one refresh).
async fn refresh_queue_flags(shared: &Shared) -> Result<(), StoreError> {
    let flags = shared.store.queue_pause_flags().await?;
    shared.metrics.queue_paused.reset();
    for (queue, paused) in flags {
        shared.metrics.set_queue_paused(&queue, paused);
    }
    Ok(())
}
