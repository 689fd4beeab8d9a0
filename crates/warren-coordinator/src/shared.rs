//! State shared by the coordinator's loops and API handlers.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, Mutex, Notify};
use warren_broker::{BrokerError, Consumer, Session};
use warren_core::protocol::ControlMessage;
use warren_store::Store;

use crate::defaults_cache::DefaultsCache;
use crate::events::EventHub;
use crate::handoff::Handoff;
use crate::hearing::Hearing;
use crate::task_batches::TaskBatches;
use crate::uncertain::Uncertain;
use crate::{CoordinatorConfig, Metrics};

/// A control message for one worker, sent by whichever broker session is up.
#[derive(Debug)]
pub(crate) struct ControlRequest {
    pub(crate) worker_id: String,
    pub(crate) message: ControlMessage,
}

pub(crate) struct Shared {
    pub(crate) config: CoordinatorConfig,
    pub(crate) store: Store,
    pub(crate) metrics: Metrics,
    /// Wakes the dispatcher (new jobs, due retries, approvals).
    pub(crate) dispatch_wakeup: Notify,
    /// Set while the dispatcher's last claim may have stopped at a queue's
    /// window with due jobs left behind: jobs leaving flight then wake it.
    dispatch_awaits_room: AtomicBool,
    /// Wakes the workflow engine (a step ended, a workflow was created).
    pub(crate) workflow_wakeup: Notify,
    control_tx: mpsc::UnboundedSender<ControlRequest>,
    /// Drained by the control loop of the current broker session.
    pub(crate) control_rx: Mutex<mpsc::UnboundedReceiver<ControlRequest>>,
    /// The event tailer's output for this process's SSE streams.
    pub(crate) events: EventHub,
    /// The queues' task defaults, kept while changes are heard.
    pub(crate) defaults_cache: DefaultsCache,
    /// Whether workers can be heard (broker up, database reachable): the
    /// checks that read silence as loss wait for it.
    pub(crate) hearing: Hearing,
    /// Each queue's cap on tasks per task message.
    pub(crate) task_batches: TaskBatches,
    /// Jobs the API dispatched at creation, for the dispatcher to publish.
    pub(crate) handoff: Handoff,
    /// Dispatches sent but not confirmed, for the lost-dispatch check.
    pub(crate) uncertain: Uncertain,
}

impl Shared {
    pub(crate) fn new(config: CoordinatorConfig, store: Store) -> Self {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let metrics = Metrics::new();
        Self {
            task_batches: TaskBatches::new(config.task_batch),
            events: EventHub::new(config.max_event_streams, config.event_stream_buffer),
            config,
            store,
            uncertain: Uncertain::new(metrics.unconfirmed_dispatches.clone()),
            metrics,
            dispatch_wakeup: Notify::new(),
            dispatch_awaits_room: AtomicBool::new(false),
            workflow_wakeup: Notify::new(),
            control_tx,
            control_rx: Mutex::new(control_rx),
            defaults_cache: DefaultsCache::default(),
            hearing: Hearing::default(),
            handoff: Handoff::default(),
        }
    }

    /// Queues a cancel for a job attempt running on `worker_id`. Delivery is
    /// best effort: if it is lost, the worker's next heartbeat lists the
    /// attempt, the database disowns it, and the cancel is sent again.
    pub(crate) fn send_cancel(
        &self,
        worker_id: &str,
        job_id: uuid::Uuid,
        attempt: u32,
        reason: &str,
    ) {
        let message = ControlMessage::cancel(job_id, attempt, reason);
        let _ = self.control_tx.send(ControlRequest {
            worker_id: worker_id.to_owned(),
            message,
        });
    }

    /// Wakes the dispatcher.
    pub(crate) fn wake_dispatcher(&self) {
        self.dispatch_wakeup.notify_one();
    }

    /// Records whether the dispatcher's last claim may have left due jobs
    /// behind for want of room in a queue's window.
    pub(crate) fn set_dispatch_awaits_room(&self, awaits: bool) {
        self.dispatch_awaits_room.store(awaits, Ordering::Relaxed);
    }

    /// Jobs left flight (ended, or went back to wait for a retry): wakes the
    /// dispatcher if it is waiting for room, so a window-bound backlog
    /// flows at the speed of completions rather than of the poll interval.
    pub(crate) fn room_freed(&self) {
        if self.dispatch_awaits_room.load(Ordering::Relaxed) {
            self.wake_dispatcher();
        }
    }

    /// Wakes the workflow engine (it also polls, so this is only latency).
    pub(crate) fn wake_workflows(&self) {
        self.workflow_wakeup.notify_one();
    }

    /// Consumes one of the queues every coordinator shares (submit,
    /// reports): a prefetch of two batches, and this coordinator's
    /// consumer priority.
    pub(crate) async fn consume_shared(
        &self,
        session: &Session,
        queue: &str,
        tag: &str,
    ) -> Result<Consumer, BrokerError> {
        let prefetch = (self.config.batch_size * 2).min(u16::MAX as usize) as u16;
        session
            .consume_with_priority(queue, prefetch, tag, self.config.consumer_priority)
            .await
    }
}
