//! State shared by the coordinator's loops and API handlers.

use tokio::sync::{mpsc, Mutex, Notify};
use warren_core::protocol::ControlMessage;
use warren_store::Store;

use crate::events::EventHub;
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
    /// Wakes the workflow engine (a step ended, a workflow was created).
    pub(crate) workflow_wakeup: Notify,
    control_tx: mpsc::UnboundedSender<ControlRequest>,
    /// Drained by the control loop of the current broker session.
    pub(crate) control_rx: Mutex<mpsc::UnboundedReceiver<ControlRequest>>,
    /// The event tailer's output for this process's SSE streams.
    pub(crate) events: EventHub,
}

impl Shared {
    pub(crate) fn new(config: CoordinatorConfig, store: Store) -> Self {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        Self {
            events: EventHub::new(config.max_event_streams, config.event_stream_buffer),
            config,
            store,
            metrics: Metrics::new(),
            dispatch_wakeup: Notify::new(),
            workflow_wakeup: Notify::new(),
            control_tx,
            control_rx: Mutex::new(control_rx),
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

    /// Wakes the workflow engine (it also polls, so this is only latency).
    pub(crate) fn wake_workflows(&self) {
        self.workflow_wakeup.notify_one();
    }
}
