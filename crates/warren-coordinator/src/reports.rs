//! Report handling: consume worker reports in batches, record heartbeats,
//! apply every transition of the batch in one transaction, then acknowledge
//! the batch with one multi-ack.
//!
//! Several batches are applied at once, each in its own transaction, and
//! acknowledged in delivery order ([`crate::in_flight`]), so a multi-ack
//! never covers a report that is not committed. Two batches may carry
//! reports of the same attempt (Started, then Completed); every report is
//! guarded by (state, attempt, lease), but order still matters (a
//! checkpoint must land before the failure that retries from it), so a
//! batch that reports on a job an earlier batch in flight also reports on
//! waits for that batch first.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_broker::{Consumer, Delivery, Session};
use warren_core::protocol::{decode, Report, ReportEnvelope};
use warren_core::JobState;

use crate::batch::{next_batch, with_db_retry, DbOutcome};
use crate::in_flight::InFlight;
use crate::session::SessionError;
use crate::shared::Shared;

/// Consumes `<ns>.reports` until the session ends.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let queue = shared.config.broker.names().reports_queue();
    let mut consumer = shared
        .consume_shared(&session, &queue, "warren-reports")
        .await?;
    let mut in_flight = InFlight::default();
    loop {
        // Wait for the oldest batch to end or, with room for another, for
        // the next batch. `next_batch` only awaits its first delivery,
        // which a dropped call leaves in the consumer.
        let batch = tokio::select! {
            biased;
            settled = in_flight.next(), if !in_flight.is_empty() => {
                if !settle(&consumer, settled?).await? {
                    return Ok(());
                }
                continue;
            }
            batch = next_batch(&mut consumer, shared.config.batch_size, &token, "reports"), if in_flight.has_room() => batch?,
        };
        let Some(batch) = batch else { return Ok(()) };
        let readable = reject_unreadable(&shared, batch).await?;
        let jobs: HashSet<Uuid> = readable
            .iter()
            .flat_map(|(_, env)| env.reports.iter().map(|r| r.job().job_id))
            .collect();
        // An attempt's reports apply in the order sent (a checkpoint
        // before the failure that retries from it): a batch waits for
        // every earlier batch that carries a report of the same job.
        while in_flight.overlaps(&jobs) {
            if !settle(&consumer, in_flight.next().await?).await? {
                return Ok(());
            }
        }
        in_flight.push(jobs, handle(&shared, &token, readable));
    }
}

/// How a batch ended.
enum Settled {
    /// Applied: acknowledge up to this delivery tag.
    AckUpTo(u64),
    /// Every delivery was dead-lettered already.
    NothingToAck,
    /// Shutdown was requested before the batch was applied.
    Shutdown,
}

/// Acknowledges a settled batch; false on shutdown (this batch and every
/// later one stay unacknowledged).
async fn settle(consumer: &Consumer, settled: Settled) -> Result<bool, SessionError> {
    match settled {
        Settled::AckUpTo(last) => consumer.ack_up_to(last).await?,
        Settled::NothingToAck => {}
        Settled::Shutdown => return Ok(false),
    }
    Ok(true)
}

/// Records one batch's heartbeats and applies its reports.
async fn handle(
    shared: &Shared,
    token: &CancellationToken,
    readable: Vec<(Delivery, ReportEnvelope)>,
) -> Result<Settled, SessionError> {
    if !record_heartbeats(shared, token, &readable).await
        || !apply(shared, token, &readable).await?
    {
        return Ok(Settled::Shutdown);
    }
    Ok(match readable.iter().map(|(d, _)| d.delivery_tag).max() {
        Some(last) => Settled::AckUpTo(last),
        None => Settled::NothingToAck,
    })
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
            if outcome.step_ended {
                // Its dependents may run now.
                shared.wake_workflows();
            }
            if outcome.transitions.iter().any(|t| {
                matches!(
                    t.to,
                    JobState::Completed | JobState::Failed | JobState::Timeout
                )
            }) {
                // A queue's window has room for a job waiting behind it.
                shared.room_freed();
            }
            DbOutcome::Done(())
        }
        DbOutcome::Rejected(e) => DbOutcome::Rejected(e),
        DbOutcome::Shutdown => DbOutcome::Shutdown,
    }
}
