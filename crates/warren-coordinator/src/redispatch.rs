//! Re-dispatch of lost task messages. A job `queued` for longer than
//! `dispatch_timeout` may simply be waiting — in its RabbitMQ queue (all
//! workers busy, or none running) or in a busy worker's prefetch buffer —
//! so it is returned to `pending` only when the message cannot be anywhere:
//! the queue has consumers and no ready messages, and the live workers of
//! that queue have free slots (a worker with a free slot has nothing waiting
//! in its buffer). Otherwise re-publishing would pile up duplicates.
//!
//! An attempt whose message is found lost for the
//! [`MAX_LOST_DISPATCHES`](warren_store::MAX_LOST_DISPATCHES)th time fails
//! as undeliverable instead: workers refuse it (too large, a protocol
//! version they do not read), and dispatching it again would never end.
//!
//! The same check settles dispatches whose publish went unanswered
//! ([`crate::uncertain`]), without waiting for the dispatch timeout.
//!
//! A worker with a free slot may still hold the final report of a job that
//! looks lost, buffered while the broker or the database was away, so no
//! job is judged lost until this coordinator has heard workers for a whole
//! lease ([`crate::hearing`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_broker::Session;

use crate::session::SessionError;
use crate::shared::Shared;

/// Rows handled per pass.
const LIMIT: i64 = 1_000;

/// Checks for lost dispatches every `sweep_interval` while the session is up.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let names = shared.config.broker.names();
    let mut tick = tokio::time::interval(shared.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if !shared.hearing.heard_for(shared.config.lease_timeout) {
            continue;
        }
        let timeout = shared.config.dispatch_timeout;
        let candidates = shared.store.queues_with_stale_dispatches(timeout).await;
        shared.hearing.database_call(&candidates);
        let mut candidates = match candidates {
            Ok(queues) => queues,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for lost dispatches");
                continue;
            }
        };
        forget_started(&shared).await;
        for queue in shared.uncertain.queues() {
            if !candidates.contains(&queue) {
                candidates.push(queue);
            }
        }
        let mut lost = Vec::new();
        for queue in candidates {
            match session.queue_stats(&names.task_queue(&queue)).await {
                Ok(stats) if stats.consumers > 0 && stats.messages == 0 => {
                    match shared
                        .store
                        .idle_capacity(&queue, shared.config.lease_timeout)
                        .await
                    {
                        Ok(idle) if idle > 0 => lost.push(queue),
                        Ok(_) => tracing::debug!(
                            queue,
                            "workers busy; stale queued jobs may be prefetched"
                        ),
                        Err(e) => tracing::warn!(error = %e, "could not read worker capacity"),
                    }
                }
                Ok(stats) => tracing::debug!(
                    queue,
                    ?stats,
                    "stale queued jobs are still waiting in the broker"
                ),
                Err(e) if e.is_recoverable() => return Err(e.into()),
                Err(e) => {
                    tracing::debug!(queue, error = %e, "queue not inspectable; leaving its jobs queued")
                }
            }
        }
        if lost.is_empty() {
            continue;
        }
        requeue_uncertain(&shared, &lost).await;
        match shared
            .store
            .requeue_lost_dispatches(timeout, &lost, LIMIT)
            .await
        {
            Ok(lost) => {
                crate::sweeper::handle(&shared, lost.requeued, "dispatch_lost");
                if lost.undeliverable.rescued > 0 {
                    tracing::warn!(
                        count = lost.undeliverable.rescued,
                        "attempts failed as undeliverable: their task messages were lost or refused {} times",
                        warren_store::MAX_LOST_DISPATCHES
                    );
                }
                crate::sweeper::handle(&shared, lost.undeliverable, "undeliverable");
            }
            Err(e) => tracing::warn!(error = %e, "could not re-dispatch lost jobs"),
        }
    }
}

/// Forgets uncertain dispatches whose jobs are no longer `queued` under
/// the lease they were sent with (the broker kept the message and it ran),
/// so that a queue whose messages never run out does not keep them.
async fn forget_started(shared: &Shared) {
    for queue in shared.uncertain.queues() {
        let jobs = shared.uncertain.take(&queue);
        let kept = match shared.store.still_queued(&jobs).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "could not read unconfirmed dispatches");
                jobs
            }
        };
        shared.uncertain.add(&queue, kept);
    }
}

/// Returns the uncertain dispatches of the `lost` queues (their messages
/// cannot be anywhere) to `pending`, those still `queued` under the lease
/// they were sent with; kept for the next pass if the database fails.
async fn requeue_uncertain(shared: &Shared, lost: &[String]) {
    let taken: Vec<(&String, Vec<(Uuid, Uuid)>)> = lost
        .iter()
        .map(|queue| (queue, shared.uncertain.take(queue)))
        .filter(|(_, jobs)| !jobs.is_empty())
        .collect();
    if taken.is_empty() {
        return;
    }
    let jobs: Vec<(Uuid, Uuid)> = taken.iter().flat_map(|(_, jobs)| jobs.clone()).collect();
    let requeued = shared.store.unclaim(&jobs).await;
    if requeued.is_err() {
        // Any that no longer fit are left to the dispatch timeout.
        for (queue, jobs) in taken {
            shared.uncertain.add(queue, jobs);
        }
    }
    match requeued {
        Ok(0) => {}
        Ok(requeued) => {
            tracing::info!(
                count = requeued,
                "re-dispatching jobs whose unconfirmed task messages were lost"
            );
            shared
                .metrics
                .rescued
                .with_label_values(&["publish_unconfirmed"])
                .inc_by(requeued);
            shared.wake_dispatcher();
        }
        Err(e) => tracing::warn!(error = %e, "could not re-dispatch unconfirmed jobs"),
    }
}
