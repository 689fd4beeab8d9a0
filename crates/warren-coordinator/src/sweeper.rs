//! The sweeper: every `sweep_interval`, using the database clock and
//! `SKIP LOCKED`, times out running jobs whose worker went silent or whose
//! deadline passed or that stalled (no progress for their opt-in
//! `no_progress_timeout_ms`), telling the worker to stop. Lost task messages are
//! handled by [`crate::redispatch`] (it needs the broker); retries and
//! delayed jobs are picked up by the dispatcher's own poll.
//!
//! All three read a worker's silence as loss, so they hold off until this
//! coordinator has heard workers for a whole lease ([`crate::hearing`]):
//! after a broker or database outage, live workers first get the time to
//! reconnect and deliver what they buffered.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_store::{StoreError, SweepOutcome};

use crate::shared::Shared;

/// Rows handled per sweep query.
const SWEEP_LIMIT: i64 = 1_000;

/// Sweeps until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut holding = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let hold = !shared.hearing.heard_for(shared.config.lease_timeout);
        if hold != holding {
            holding = hold;
            if holding {
                tracing::info!(
                    window = ?shared.config.lease_timeout,
                    "lease, deadline and progress checks wait until workers have been heard for a whole lease"
                );
            } else {
                tracing::info!("lease, deadline and progress checks resume");
            }
        }
        let result = if !hold {
            sweep(&shared).await
        } else {
            // Only keep the database side of the hearing clock current.
            shared.store.reach().await
        };
        shared.hearing.database_call(&result);
        if let Err(e) = result {
            shared
                .metrics
                .database_errors
                .with_label_values(&["sweeper"])
                .inc();
            tracing::warn!(error = %e, "sweep failed; will retry next interval");
        }
    }
}

async fn sweep(shared: &Shared) -> Result<(), StoreError> {
    let config = &shared.config;
    let lost = shared
        .store
        .rescue_lost_heartbeats(config.lease_timeout, SWEEP_LIMIT)
        .await?;
    handle(shared, lost, "heartbeat_lost");
    let late = shared
        .store
        .expire_deadlines(config.deadline_grace, SWEEP_LIMIT)
        .await?;
    handle(shared, late, "deadline");
    let stalled = shared
        .store
        .expire_stalled(config.deadline_grace, SWEEP_LIMIT)
        .await?;
    handle(shared, stalled, "no_progress");
    Ok(())
}

pub(crate) fn handle(shared: &Shared, outcome: SweepOutcome, reason: &'static str) {
    if outcome.rescued == 0 {
        return;
    }
    tracing::info!(count = outcome.rescued, reason, "rescued jobs");
    shared
        .metrics
        .rescued
        .with_label_values(&[reason])
        .inc_by(outcome.rescued as u64);
    shared.metrics.record(&outcome.transitions);
    for (worker, job_id, attempt) in &outcome.cancels {
        shared.send_cancel(worker, *job_id, *attempt, reason);
    }
    shared.wake_dispatcher();
    shared.wake_workflows();
}
