//! Report handling: consume worker reports in batches, record heartbeats,
//! apply every transition of the batch in one transaction, then acknowledge
//! the batch with one multi-ack.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_broker::{Delivery, Session};
use warren_core::protocol::{decode, Report, ReportEnvelope};
use warren_core::JobState;

use crate::batch::{next_batch, with_db_retry, DbOutcome};
use crate::session::SessionError;
use crate::shared::Shared;

/// Consumes `<ns>.reports` until the session ends.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let queue = shared.config.broker.names().reports_queue();
    let prefetch = (shared.config.batch_size * 2).min(u16::MAX as usize) as u16;
    let mut consumer = session.consume(&queue, prefetch, "warren-reports").await?;
    while let Some(batch) =
        next_batch(&mut consumer, shared.config.batch_size, &token, "reports").await?
    {
        let readable = reject_unreadable(&shared, batch).await?;
        if !record_heartbeats(&shared, &token, &readable).await
            || !apply(&shared, &token, &readable).await?
        {
            return Ok(());
        }
        if let Some(last) = readable.iter().map(|(d, _)| d.delivery_tag).max() {
            consumer.ack_up_to(last).await?;
        }
    }
    Ok(())
}

async fn reject_unreadable(
    shared: &Shared,
    batch: Vec<Delivery>,
) -> Result<Vec<(Delivery, ReportEnvelope)>, SessionError> {
    let mut readable = Vec::with_capacity(batch.len());
    for delivery in batch {
        let decoded = decode::<ReportEnvelope>(&delivery.body, shared.config.max_payload_bytes)
            .map_err(|e| (e.reason(), e.to_string()))
            .and_then(
                |env| match warren_core::validate_name("worker id", &env.worker_id) {
                    Ok(()) => Ok(env),
                    Err(e) => Err(("schema", e.to_string())),
                },
            );
        match decoded {
            Ok(envelope) => readable.push((delivery, envelope)),
            Err((reason, message)) => {
                shared
                    .metrics
                    .rejected
                    .with_label_values(&["reports", reason])
                    .inc();
                tracing::warn!(reason, error = %message, "dead-lettering report");
                delivery.reject().await?;
            }
        }
    }
    Ok(readable)
}

/// Upserts each heartbeat and cancels attempts the database disowns.
/// Returns false on shutdown.
async fn record_heartbeats(
    shared: &Shared,
    token: &CancellationToken,
    batch: &[(Delivery, ReportEnvelope)],
) -> bool {
    for (_, envelope) in batch {
        let Some(heartbeat) = &envelope.heartbeat else {
            continue;
        };
        let worker = envelope.worker_id.as_str();
        match with_db_retry(shared, "heartbeat", token, || {
            shared.store.record_heartbeat(worker, heartbeat)
        })
        .await
        {
            DbOutcome::Done(outcome) => {
                for (job_id, attempt) in outcome.orphaned {
                    shared.send_cancel(worker, job_id, attempt, "not_running");
                }
            }
            DbOutcome::Rejected(e) => {
                tracing::warn!(worker, error = %e, "heartbeat refused by the database")
            }
            DbOutcome::Shutdown => return false,
        }
    }
    true
}

/// Applies all reports of the batch in one transaction; if the database
/// refuses the batch for its content, applies envelope by envelope and
/// dead-letters the ones it refuses. Returns false on shutdown.
async fn apply(
    shared: &Shared,
    token: &CancellationToken,
    batch: &[(Delivery, ReportEnvelope)],
) -> Result<bool, SessionError> {
    let all: Vec<(&str, &Report)> = batch.iter().flat_map(|(_, env)| pairs(env)).collect();
    match apply_reports(shared, token, &all).await {
        DbOutcome::Done(()) => return Ok(true),
        DbOutcome::Shutdown => return Ok(false),
        DbOutcome::Rejected(e) => {
            tracing::warn!(error = %e, "report batch refused; applying envelopes one by one")
        }
    }
    for (delivery, envelope) in batch {
        let one: Vec<(&str, &Report)> = pairs(envelope).collect();
        match apply_reports(shared, token, &one).await {
            DbOutcome::Done(()) => {}
            DbOutcome::Shutdown => return Ok(false),
            DbOutcome::Rejected(e) => {
                shared
                    .metrics
                    .rejected
                    .with_label_values(&["reports", "database_refused"])
                    .inc();
                tracing::warn!(error = %e, "dead-lettering report refused by the database");
                delivery.reject().await?;
            }
        }
    }
    Ok(true)
}

fn pairs(envelope: &ReportEnvelope) -> impl Iterator<Item = (&str, &Report)> {
    envelope
        .reports
        .iter()
        .map(move |r| (envelope.worker_id.as_str(), r))
}

async fn apply_reports(
    shared: &Shared,
    token: &CancellationToken,
    reports: &[(&str, &Report)],
) -> DbOutcome<()> {
    if reports.is_empty() {
        return DbOutcome::Done(());
    }
    match with_db_retry(shared, "reports", token, || {
        shared.store.apply_reports(reports)
    })
    .await
    {
        DbOutcome::Done(outcome) => {
            shared.metrics.record(&outcome.transitions);
            for kind in &outcome.stale {
                shared
                    .metrics
                    .stale_reports
                    .with_label_values(&[kind])
                    .inc();
            }
            if !outcome.stale.is_empty() {
                tracing::debug!(stale = outcome.stale.len(), "dropped stale reports");
            }
            if outcome
                .transitions
                .iter()
                .any(|t| t.to == JobState::Retrying)
            {
                shared.wake_dispatcher();
            }
            if outcome.transitions.iter().any(|t| {
                matches!(
                    t.to,
                    JobState::Completed | JobState::Failed | JobState::Timeout
                )
            }) {
                // A workflow step may have ended: its dependents may run now.
                shared.wake_workflows();
            }
            DbOutcome::Done(())
        }
        DbOutcome::Rejected(e) => DbOutcome::Rejected(e),
        DbOutcome::Shutdown => DbOutcome::Shutdown,
    }
}
