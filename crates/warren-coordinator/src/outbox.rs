//! The outbox: publishes the task messages of jobs already committed as
//! `queued` (by the dispatcher's claim or by intake's dispatch at creation),
//! the jobs of one queue packed several to a message (`WARREN_TASK_BATCH`),
//! with pipelined confirms, and settles each batch off the caller's loop:
//! confirmed dispatches are counted, refused or unsent ones returned to
//! `pending`, and sent ones left unanswered (the connection went) kept
//! `queued` until it is clear the broker lost them ([`crate::uncertain`]).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerError, PendingConfirm, Publisher, Session};
use warren_core::protocol::pack_tasks;
use warren_store::DispatchedJob;

use crate::batch::{with_db_retry, DbOutcome};
use crate::shared::Shared;

/// Task batches whose confirms may be outstanding at once.
const MAX_SETTLING: usize = 4;

/// Publishes task messages on one session; see the module docs.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    session: Arc<Session>,
    publisher: Publisher,
    exchange: String,
    declared: HashSet<String>,
    settling: JoinSet<Option<BrokerError>>,
}

impl Outbox {
    /// An outbox with its own confirm-mode channel on `session`.
    pub(crate) async fn open(
        shared: Arc<Shared>,
        session: Arc<Session>,
    ) -> Result<Self, BrokerError> {
        let publisher = session.publisher().await?;
        Ok(Outbox {
            exchange: shared.config.broker.names().tasks_exchange(),
            shared,
            session,
            publisher,
            declared: HashSet::new(),
            settling: JoinSet::new(),
        })
    }

    /// Publishes the task messages of `jobs` (declaring queues not seen
    /// before) after waiting, if needed, until fewer than [`MAX_SETTLING`]
    /// batches are unsettled. Their confirms are awaited in the background;
    /// `token` stops the database retries of an undo.
    ///
    /// The jobs are committed as `queued`, so they are never simply
    /// dropped: when the session has already failed (an earlier batch's
    /// error) or a declaration fails, they are not published but returned
    /// to `pending` at once, and that error is returned afterwards.
    pub(crate) async fn publish(
        &mut self,
        jobs: Vec<DispatchedJob>,
        token: &CancellationToken,
    ) -> Result<(), BrokerError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut failed = self.reap().err();
        while failed.is_none() && self.settling.len() >= MAX_SETTLING {
            failed = self.settled().await.err();
        }
        if failed.is_none() {
            failed = self.declare(&jobs).await.err();
        }
        let max_bytes = self.shared.config.max_payload_bytes;
        let tasks: Vec<_> = jobs.iter().map(DispatchedJob::task_message).collect();
        let messages = self
            .shared
            .task_batches
            .with(|cap| pack_tasks(&tasks, cap, max_bytes));
        let (items, members): (Vec<(String, Vec<u8>)>, Vec<_>) = messages
            .into_iter()
            .map(|m| ((m.queue, m.body), m.members))
            .unzip();
        let pending = match failed {
            None => self.publisher.send_batch(&self.exchange, &items).await,
            Some(_) => items
                .iter()
                .map(|_| Err(BrokerError::ConnectionClosed))
                .collect(),
        };
        self.settling.spawn(settle(
            self.shared.clone(),
            token.clone(),
            jobs,
            members,
            pending,
        ));
        failed.map_or(Ok(()), Err)
    }

    /// Declares the task queues of `jobs` this outbox has not declared yet.
    async fn declare(&mut self, jobs: &[DispatchedJob]) -> Result<(), BrokerError> {
        for job in jobs {
            if !self.declared.contains(&job.queue) {
                self.session.declare_task_queue(&job.queue).await?;
                self.declared.insert(job.queue.clone());
            }
        }
        Ok(())
    }

    /// Collects the batches already settled; the first connection-level
    /// error among them ends the session.
    fn reap(&mut self) -> Result<(), BrokerError> {
        while let Some(joined) = self.settling.try_join_next() {
            check(joined)?;
        }
        Ok(())
    }

    /// Waits for the next batch to settle (forever if none is unsettled, so
    /// it can sit in a `select!`).
    pub(crate) async fn settled(&mut self) -> Result<(), BrokerError> {
        match self.settling.join_next().await {
            Some(joined) => check(joined),
            None => std::future::pending().await,
        }
    }

    /// Waits until every published batch has settled, then returns
    /// `result` (the outcome of the loop that used this outbox) or, if that
    /// succeeded, the first settling error.
    pub(crate) async fn finish<E: From<BrokerError>>(
        mut self,
        mut result: Result<(), E>,
    ) -> Result<(), E> {
        while let Some(joined) = self.settling.join_next().await {
            if let (Err(e), Ok(())) = (check(joined), &result) {
                result = Err(e.into());
            }
        }
        result
    }
}

fn check(joined: Result<Option<BrokerError>, tokio::task::JoinError>) -> Result<(), BrokerError> {
    match joined {
        Ok(None) => Ok(()),
        Ok(Some(e)) => Err(e),
        Err(e) => {
            // A panic while settling: the sweeper re-dispatches whatever it left queued.
            tracing::error!(error = %e, "settling task messages failed");
            Ok(())
        }
    }
}

/// Whether a sent message that got `error` instead of a confirm may be in
/// the broker all the same ([`crate::uncertain`]): not when the broker
/// answered that it did not take it.
fn may_be_taken(error: &BrokerError) -> bool {
    !matches!(
        error,
        BrokerError::Nacked { .. }
            | BrokerError::Unroutable { .. }
            | BrokerError::NotConfirmed { .. }
    )
}

/// Records confirmed dispatches and undoes those the broker surely does
/// not hold; sent ones whose fate is unknown are left `queued` for the
/// lost-dispatch check ([`crate::uncertain`]). Returns the first
/// connection-level error, which ends the session.
async fn settle(
    shared: Arc<Shared>,
    token: CancellationToken,
    jobs: Vec<DispatchedJob>,
    members: Vec<Vec<usize>>,
    pending: Vec<Result<PendingConfirm, BrokerError>>,
) -> Option<BrokerError> {
    let sent: Vec<bool> = pending.iter().map(Result::is_ok).collect();
    let results = PendingConfirm::wait_all(pending).await;
    let mut unconfirmed = Vec::new();
    let mut uncertain = 0;
    let mut confirmed = Vec::with_capacity(jobs.len());
    let mut fatal = None;
    for ((carried_ids, result), sent) in members.iter().zip(results).zip(sent) {
        let carried = carried_ids.iter().map(|&i| &jobs[i]);
        let Some(queue) = carried_ids.first().map(|&i| jobs[i].queue.as_str()) else {
            continue;
        };
        match result {
            Ok(()) => {
                shared
                    .metrics
                    .task_messages
                    .with_label_values(&[queue])
                    .inc();
                confirmed.extend(carried.map(DispatchedJob::transition));
            }
            Err(e) => {
                let leases = carried.map(|job| (job.id, job.lease)).collect::<Vec<_>>();
                if sent && may_be_taken(&e) {
                    uncertain += leases.len();
                    unconfirmed.extend(shared.uncertain.add(queue, leases));
                } else {
                    unconfirmed.extend(leases);
                }
                if fatal.is_none() && e.is_recoverable() {
                    fatal = Some(e);
                }
            }
        }
    }
    if uncertain > 0 {
        tracing::warn!(
            count = uncertain,
            "task messages sent but not confirmed; their jobs stay queued until it is clear they were lost"
        );
    }
    shared.metrics.record(&confirmed);
    if !unconfirmed.is_empty() {
        tracing::warn!(
            count = unconfirmed.len(),
            "task messages not confirmed; returning jobs to pending"
        );
        // If this fails too, the sweeper re-dispatches them after dispatch_timeout.
        if let DbOutcome::Rejected(e) = with_db_retry(&shared, "dispatch", &token, || {
            shared.store.unclaim(&unconfirmed)
        })
        .await
        {
            tracing::error!(error = %e, "could not return unconfirmed jobs to pending");
        }
    }
    fatal
}
