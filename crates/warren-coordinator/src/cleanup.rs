//! Retention cleanup: every `WARREN_CLEANUP_INTERVAL`, deletes the finished
//! jobs older than their state's retention, with their events.
//!
//! Deletion never competes with the hot path: it goes in batches of
//! [`BATCH`] rows, one short statement each, and pauses between batches at
//! least as long as the batch took, so cleanup uses at most half of one
//! database connection's time even while it catches up on a large backlog.
//! Batches lock their rows with `SKIP LOCKED`, so several coordinators
//! cleaning at once share the work instead of waiting on each other. The
//! manual `POST /v1/cleanup` uses the same [`sweep`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warren_core::JobState;
use warren_store::{CleanupBatch, StoreError};

use crate::shared::Shared;

/// Jobs deleted per statement.
pub(crate) const BATCH: i64 = 1_000;
/// Shortest pause between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(100);

/// Cleans up until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.retention.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (state, keep) in shared.config.retention.by_state() {
            match sweep(&shared, state, keep, u64::MAX, &shutdown).await {
                Ok(done) if done.jobs > 0 => tracing::info!(
                    state = state.as_str(),
                    jobs = done.jobs,
                    events = done.events,
                    "retention deleted finished jobs"
                ),
                Ok(_) => {}
                Err(e) => {
                    shared
                        .metrics
                        .database_errors
                        .with_label_values(&["cleanup"])
                        .inc();
                    tracing::warn!(error = %e, "cleanup failed; will retry next interval");
                    break;
                }
            }
        }
    }
}

/// Deletes `state` jobs that finished more than `older_than` ago, batch by
/// batch, until none is left, `max_jobs` are deleted (rounded up to a
/// batch), or `stop` is cancelled. Returns what was deleted.
pub(crate) async fn sweep(
    shared: &Shared,
    state: JobState,
    older_than: Duration,
    max_jobs: u64,
    stop: &CancellationToken,
) -> Result<CleanupBatch, StoreError> {
    let mut total = CleanupBatch::default();
    loop {
        let started = Instant::now();
        let batch = shared
            .store
            .delete_finished(state, older_than, BATCH)
            .await?;
        shared.metrics.ops.count_cleanup(state, batch);
        total.jobs += batch.jobs;
        total.events += batch.events;
        if batch.jobs < BATCH as u64 || total.jobs >= max_jobs {
            return Ok(total);
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(total),
            _ = tokio::time::sleep(started.elapsed().max(MIN_PAUSE)) => {}
        }
    }
}
