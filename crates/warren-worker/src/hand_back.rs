//! Tasks a worker has no free slot for go back to their queue.
//!
//! A task message may carry several tasks (`WARREN_TASK_BATCH` on the
//! coordinator). A worker pulls a message only when a slot is free, starts
//! as many of its tasks as it has free slots, and publishes the rest back
//! to the tasks exchange as one message, where any worker with room takes
//! them: a busy worker never sits on tasks another could run.
//!
//! Until the original delivery is acknowledged, the handed-back tasks exist
//! twice, and a crash (or a broker restart) then runs them twice. So the
//! hand-back waits until the tasks started here have settled (their Started
//! or final report confirmed: a few milliseconds, about 50 with the
//! default coalesce window for a task that runs longer) and is acknowledged the moment its own confirm
//! arrives: the window in which a crash duplicates them is one ack long.
//! Handing back first measured 5 runs of one job after 3 kills in the
//! fault suite: copies of copies, each made in a long window.
//!
//! If the publishing channel is gone, nothing more is done: the broker
//! returns the unacknowledged message to the queue whole once the session
//! ends (it checks its publishing channel every second). If the channel
//! is open yet the publish failed (a nack, no queue bound for it any more,
//! a confirm that did not come in time), the message would stay
//! unacknowledged on a live channel, its tasks never run; so they run here
//! at once, above the worker's concurrency for a while: waiting for its
//! slots instead could wait forever, since the loop holds a slot while it
//! waits for a delivery the unacknowledged message keeps the prefetch from
//! sending (found with one slot). A confirm that came too late means the
//! broker may hold the copy too: at most one extra run, where waiting
//! meant none ever.

use std::sync::Arc;

use tokio_util::task::TaskTracker;
use warren_broker::{BrokerError, Publisher};
use warren_core::protocol::{pack_tasks, TaskMessage};

use crate::executor::Executor;
use crate::task_delivery::TaskDelivery;

/// What handing tasks back needs.
pub(crate) struct HandBack {
    pub(crate) publisher: Option<Publisher>,
    pub(crate) exchange: String,
    pub(crate) executor: Arc<Executor>,
    pub(crate) tracker: TaskTracker,
}

impl HandBack {
    /// Publishes `tasks` (part of `delivery`) back to their queues in the
    /// background, settling their share of `delivery` once confirmed.
    pub(crate) fn spawn(self, delivery: Arc<TaskDelivery>, tasks: Vec<TaskMessage>) {
        let tracker = self.tracker.clone();
        tracker.spawn(self.run(delivery, tasks));
    }

    async fn run(self, delivery: Arc<TaskDelivery>, tasks: Vec<TaskMessage>) {
        tokio::select! {
            _ = delivery.settled_down_to(tasks.len()) => {}
            // Shutting down without confirming the started tasks' reports:
            // the unacknowledged message returns to the queue whole.
            _ = self.executor.abort_all.cancelled() => return,
        }
        let messages = pack_tasks(&tasks, |_| tasks.len(), usize::MAX);
        let mut kept = Vec::new();
        for message in messages {
            let published = match &self.publisher {
                Some(publisher) => {
                    publisher
                        .publish_confirmed(&self.exchange, &message.queue, &message.body)
                        .await
                }
                None => Err(BrokerError::ConnectionClosed),
            };
            match published {
                Ok(()) => {
                    let count = message.members.len();
                    self.executor.metrics.handed_back.inc_by(count as u64);
                    if let Err(e) = delivery.settle(count).await {
                        tracing::warn!(error = %e, "could not ack task delivery");
                    }
                }
                // Decided by the channel, not by the kind of error: an
                // unroutable publish or a late confirm is recoverable for a
                // publisher, yet the channel lives on and would keep the
                // message unacknowledged.
                Err(e) if !self.publisher.as_ref().is_some_and(Publisher::is_open) => {
                    tracing::warn!(error = %e, "could not hand tasks back; their message returns to the queue");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, tasks = message.members.len(),
                        "could not hand tasks back; running them here");
                    kept.extend(message.members.iter().map(|&i| tasks[i].clone()));
                }
            }
        }
        for task in kept {
            let executor = self.executor.clone();
            self.tracker.spawn(executor.execute(delivery.clone(), task));
        }
    }
}
