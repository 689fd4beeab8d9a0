//! Dispatch: claim due jobs in priority order, commit them as `queued` with a
//! fresh lease, publish their task messages with pipelined confirms, and
//! return any job whose message the broker did not confirm to `pending`.
//! Confirms are awaited beside the loop, so claiming the next batch overlaps
//! the broker's work on the last one.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerError, PendingConfirm, Publisher, Session};
use warren_core::protocol::encode;
use warren_store::DispatchedJob;

use crate::batch::{with_db_retry, DbOutcome};
use crate::session::SessionError;
use crate::shared::Shared;

/// Task batches whose confirms may be outstanding while the next claim runs.
const MAX_SETTLING: usize = 4;

/// Dispatches until the session ends, then settles every batch it published.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let publisher = session.publisher().await?;
    let mut settling = FuturesUnordered::new();
    let mut result = dispatch(&shared, &session, &publisher, &token, &mut settling)
        .await
        .map_err(SessionError::from);
    while let Some(failure) = settling.next().await {
        if let (Some(e), Ok(())) = (failure, &result) {
            result = Err(SessionError::from(e));
        }
    }
    result
}

/// The claim → publish loop. Confirms are awaited off the loop (up to
/// [`MAX_SETTLING`] batches), so the next claim does not wait for the
/// broker's answer to the last publish.
async fn dispatch<'a>(
    shared: &'a Shared,
    session: &Session,
    publisher: &Publisher,
    token: &'a CancellationToken,
    settling: &mut FuturesUnordered<BoxFuture<'a, Option<BrokerError>>>,
) -> Result<(), BrokerError> {
    let tasks_exchange = shared.config.broker.names().tasks_exchange();
    let mut declared: HashSet<String> = HashSet::new();
    loop {
        while let Some(Some(failure)) = settling.next().now_or_never() {
            if let Some(e) = failure {
                return Err(e);
            }
        }
        while settling.len() >= MAX_SETTLING {
            if let Some(Some(e)) = settling.next().await {
                return Err(e);
            }
        }
        let limit = shared.config.batch_size as i64;
        let window = shared.config.dispatch_window as i64;
        let jobs = match with_db_retry(shared, "dispatch", token, || {
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
            let full = jobs.len() as i64 == limit;
            let pending = publisher.send_batch(&tasks_exchange, &items).await;
            settling.push(settle(shared, token, jobs, pending).boxed());
            if full {
                continue; // more may be due right now
            }
        }
        let idle = tokio::time::sleep(shared.config.poll_interval);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = shared.dispatch_wakeup.notified() => break,
                _ = &mut idle => break,
                Some(failure) = settling.next(), if !settling.is_empty() => {
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Records confirmed dispatches and undoes unconfirmed ones. Returns the
/// first connection-level error, which ends the session.
async fn settle(
    shared: &Shared,
    token: &CancellationToken,
    jobs: Vec<DispatchedJob>,
    pending: Vec<Result<PendingConfirm, BrokerError>>,
) -> Option<BrokerError> {
    let results = PendingConfirm::wait_all(pending).await;
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
