//! Dispatch: claim due jobs in priority order, commit them as `queued` with a
//! fresh lease, publish their task messages with pipelined confirms, and
//! return any job whose message the broker did not confirm to `pending`.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerError, Session};
use warren_core::protocol::encode;
use warren_store::DispatchedJob;

use crate::batch::{with_db_retry, DbOutcome};
use crate::session::SessionError;
use crate::shared::Shared;

/// Dispatches until the session ends.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let publisher = session.publisher().await?;
    let names = shared.config.broker.names();
    let tasks_exchange = names.tasks_exchange();
    let mut declared: HashSet<String> = HashSet::new();
    loop {
        let limit = shared.config.batch_size as i64;
        let window = shared.config.dispatch_window as i64;
        let jobs = match with_db_retry(&shared, "dispatch", &token, || {
            shared.store.claim_batch(limit, window)
        })
        .await
        {
            DbOutcome::Done(claim) => {
                for queue in &claim.throttled {
                    shared
                        .metrics
                        .dispatch_throttled
                        .with_label_values(&[queue])
                        .inc();
                }
                claim.jobs
            }
            DbOutcome::Shutdown => return Ok(()),
            DbOutcome::Rejected(e) => {
                tracing::error!(error = %e, "dispatch query failed");
                Vec::new()
            }
        };
        if !jobs.is_empty() {
            for queue in jobs.iter().map(|j| &j.queue) {
                if !declared.contains(queue) {
                    session.declare_task_queue(queue).await?;
                    declared.insert(queue.clone());
                }
            }
            let items: Vec<(String, Vec<u8>)> = jobs
                .iter()
                .map(|j| (j.queue.clone(), encode(&j.task_message())))
                .collect();
            let results = publisher.publish_batch(&tasks_exchange, &items).await;
            let failure = settle(&shared, &token, &jobs, results).await;
            if let Some(e) = failure {
                return Err(e.into());
            }
            if jobs.len() as i64 == limit {
                continue; // more may be due right now
            }
        }
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = shared.dispatch_wakeup.notified() => {}
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
        }
    }
}

/// Records confirmed dispatches and undoes unconfirmed ones. Returns the
/// first connection-level error, which ends the session.
async fn settle(
    shared: &Shared,
    token: &CancellationToken,
    jobs: &[DispatchedJob],
    results: Vec<Result<(), BrokerError>>,
) -> Option<BrokerError> {
    let mut unconfirmed = Vec::new();
    let mut confirmed = Vec::with_capacity(jobs.len());
    let mut fatal = None;
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(()) => confirmed.push(job.transition()),
            Err(e) => {
                unconfirmed.push((job.id, job.lease));
                if fatal.is_none() && e.is_recoverable() {
                    fatal = Some(e);
                }
            }
        }
    }
    shared.metrics.record(&confirmed);
    if !unconfirmed.is_empty() {
        tracing::warn!(
            count = unconfirmed.len(),
            "task messages not confirmed; returning jobs to pending"
        );
        // If this fails too, the sweeper re-dispatches them after dispatch_timeout.
        if let DbOutcome::Rejected(e) = with_db_retry(shared, "dispatch", token, || {
            shared.store.unclaim(&unconfirmed)
        })
        .await
        {
            tracing::error!(error = %e, "could not return unconfirmed jobs to pending");
        }
    }
    fatal
}
