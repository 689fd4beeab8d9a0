//! Dispatch: claim due jobs in priority order, commit them as `queued` with a
//! fresh lease, and hand them to the [`Outbox`] to publish. Jobs that intake
//! could dispatch at creation never reach this loop; it serves everything
//! else (retries, delayed and approved jobs, workflow steps, backlogs,
//! capped and rate-limited queues). It also publishes the jobs the HTTP API
//! dispatched at creation ([`crate::handoff`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerError, Session};
use warren_store::{ClaimOutcome, StoreError};

use crate::batch::{with_db_retry, DbOutcome};
use crate::handoff::Inbox;
use crate::outbox::Outbox;
use crate::session::SessionError;
use crate::shared::Shared;

/// Dispatches until the session ends, then settles every batch it published.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let mut outbox = Outbox::open(shared.clone(), session).await?;
    let mut inbox = shared.handoff.open();
    let result = dispatch(&shared, &mut outbox, &mut inbox, &token).await;
    let result = inbox.close(&mut outbox, &token, result).await;
    outbox.finish(result.map_err(SessionError::from)).await
}

/// The claim → publish loop. Confirms are awaited by the [`Outbox`], so the
/// next claim does not wait for the broker's answer to the last publish.
async fn dispatch(
    shared: &Shared,
    outbox: &mut Outbox,
    inbox: &mut Inbox,
    token: &CancellationToken,
) -> Result<(), BrokerError> {
    let limit = shared.config.batch_size as i64;
    let mut full = false;
    loop {
        // The API's hand-offs first: a backlog's claims never hold them up.
        inbox.publish_waiting(outbox, token).await?;
        let jobs =
            match with_db_retry(shared, "dispatch", token, || claim(shared, !full, limit)).await {
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
        full = jobs.len() as i64 == limit;
        // A claim that took some jobs but fewer than it asked for either
        // drained what was due or filled a queue's window; in the latter
        // case the next job can go as soon as one in flight ends. (A claim
        // that took nothing clears this: the next wake-up comes from
        // whatever makes a job due.)
        shared.set_dispatch_awaits_room(!jobs.is_empty() && !full);
        outbox.publish(jobs, token).await?;
        if full {
            continue; // more may be due right now
        }
        let idle = tokio::time::sleep(shared.config.poll_interval);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = shared.dispatch_wakeup.notified() => break,
                _ = &mut idle => break,
                jobs = inbox.recv() => outbox.publish(jobs, token).await?,
                settled = outbox.settled() => settled?,
            }
        }
    }
}

/// Claims up to `limit` due jobs. With `ask_first` it first asks whether
/// anything is due at all ([`Store::any_due`](warren_store::Store::any_due)):
/// the claim is planned afresh on every call, and most polls of a quiet or
/// intake-dispatched deployment find nothing. After a full claim more is
/// known to be due, so the question is skipped.
async fn claim(shared: &Shared, ask_first: bool, limit: i64) -> Result<ClaimOutcome, StoreError> {
    if ask_first && !shared.store.any_due().await? {
        return Ok(ClaimOutcome::default());
    }
    let window = shared.config.dispatch_window as i64;
    shared.store.claim_batch(limit, window).await
}
