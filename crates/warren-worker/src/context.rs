//! `JobContext`: the only handle a handler gets. It can report progress and
//! save checkpoints for its own attempt and observe cancellation — nothing
//! else, so a handler cannot move its job to an arbitrary state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_core::protocol::{JobRef, Report, TaskMessage};

use crate::progress_gate::ProgressGate;

/// Per-attempt context handed to a handler.
#[derive(Clone)]
pub struct JobContext {
    job: JobRef,
    queue: String,
    task_type: String,
    max_attempts: u32,
    checkpoint: Option<Value>,
    inputs: Map<String, Value>,
    cancel: CancellationToken,
    reports: mpsc::UnboundedSender<Report>,
    progress: Arc<ProgressGate>,
}

impl JobContext {
    /// A context whose progress reports pass `progress` (see
    /// [`ProgressGate`]); checkpoints go straight to `reports`.
    pub(crate) fn new(
        task: &TaskMessage,
        cancel: CancellationToken,
        reports: mpsc::UnboundedSender<Report>,
        progress: Arc<ProgressGate>,
    ) -> Self {
        Self {
            job: task.job_ref(),
            queue: task.queue.clone(),
            task_type: task.task_type.clone(),
            max_attempts: task.max_attempts,
            checkpoint: task.checkpoint.clone(),
            inputs: task.inputs.clone(),
            cancel,
            reports,
            progress,
        }
    }

    /// A context not attached to a worker, for testing handlers: returns the
    /// context, its cancellation token, and the receiver of its reports.
    /// Every progress report is passed on (a worker's context sends at
    /// most four a second, the last one always).
    pub fn for_testing(
        task: &TaskMessage,
    ) -> (Self, CancellationToken, mpsc::UnboundedReceiver<Report>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let progress = ProgressGate::new(Duration::ZERO, tx.clone());
        (Self::new(task, cancel.clone(), tx, progress), cancel, rx)
    }

    /// The job's id.
    pub fn job_id(&self) -> Uuid {
        self.job.job_id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.job.attempt
    }

    /// Total attempts allowed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The queue the job came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The task type being run.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// The last checkpoint an earlier attempt saved, to resume from.
    pub fn checkpoint(&self) -> Option<&Value> {
        self.checkpoint.as_ref()
    }

    /// For a workflow step: the results of its parents, by step name (`null`
    /// for a parent that did not complete). Empty for a plain job.
    pub fn inputs(&self) -> &Map<String, Value> {
        &self.inputs
    }

    /// Reports progress (`percent` is clamped to 0–100) and the current
    /// stage. Call it as often as convenient: at most four reports a second
    /// leave the worker, the latest one always.
    pub fn progress(&self, percent: f32, stage: impl Into<String>) {
        self.progress.offer(Report::Progress {
            job: self.job,
            percent: Some(percent.clamp(0.0, 100.0)),
            stage: Some(stage.into()),
            checkpoint: None,
        });
    }

    /// Saves a checkpoint; a retried attempt receives the latest one.
    pub fn save_checkpoint(&self, checkpoint: Value) {
        // A closed channel means the attempt is over; nothing left to report.
        let _ = self.reports.send(Report::Progress {
            job: self.job,
            percent: None,
            stage: None,
            checkpoint: Some(checkpoint),
        });
    }

    /// True once the job was cancelled, timed out, or the worker is stopping.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the job should stop. Handlers select on it; a handler
    /// that ignores it is aborted after the worker's cancel grace period.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }
}
