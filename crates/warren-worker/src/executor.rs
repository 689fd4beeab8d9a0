//! Runs one attempt: report Started (acknowledging the delivery only once
//! the broker confirmed that report), run the handler under the job's
//! timeout and cancellation, and report the outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_core::protocol::{Failure, JobRef, Report, RetryDecision, TaskMessage};

use crate::attempts::{Attempts, Begin};
use crate::context::JobContext;
use crate::handler::{HandlerError, Registry};
use crate::metrics::WorkerMetrics;
use crate::progress_gate::{ProgressGate, PROGRESS_INTERVAL};
use crate::reporter::Outgoing;
use crate::task_delivery::TaskDelivery;

/// Longest error text reported.
const MAX_ERROR_BYTES: usize = 4 * 1024;

/// What every attempt shares.
pub(crate) struct Executor {
    pub(crate) registry: Registry,
    pub(crate) metrics: WorkerMetrics,
    pub(crate) reports: mpsc::UnboundedSender<Report>,
    pub(crate) outgoing: mpsc::UnboundedSender<Outgoing>,
    /// Attempts begun by this process, so a copy delivered again is not run.
    pub(crate) attempts: Attempts<Arc<TaskDelivery>>,
    /// Attempts in flight, for heartbeats and cancel requests.
    pub(crate) running: Mutex<HashMap<Uuid, (JobRef, CancellationToken)>>,
    /// Parent of every job's token: cancelled when shutdown stops waiting.
    pub(crate) abort_all: CancellationToken,
    pub(crate) cancel_grace: Duration,
    pub(crate) max_result_bytes: usize,
    /// Attempts ending within this window send no separate Started report.
    pub(crate) coalesce_window: Duration,
}

/// How an attempt ended.
enum Outcome {
    Done(Result<serde_json::Value, HandlerError>),
    TimedOut(Duration),
    Stopped,
    Panicked,
}

impl Executor {
    /// The attempts in flight.
    pub(crate) fn running_jobs(&self) -> Vec<JobRef> {
        self.running
            .lock()
            .expect("running map poisoned")
            .values()
            .map(|(job, _)| *job)
            .collect()
    }

    /// Trips the token of a running attempt (older attempts are ignored).
    pub(crate) fn cancel(&self, job_id: Uuid, attempt: u32) -> bool {
        let running = self.running.lock().expect("running map poisoned");
        match running.get(&job_id) {
            Some((job, token)) if job.attempt <= attempt => {
                token.cancel();
                true
            }
            _ => false,
        }
    }

    /// Runs one attempt to its end. Its share of `delivery` (the message
    /// that carried it) is settled once Started is confirmed.
    pub(crate) async fn execute(self: Arc<Self>, delivery: Arc<TaskDelivery>, task: TaskMessage) {
        let job = task.job_ref();
        match self.attempts.begin(job, delivery.clone()) {
            Begin::Run => {}
            Begin::SettleNow => {
                self.metrics.duplicates.inc();
                settle(&delivery).await;
                return;
            }
            Begin::Deferred => {
                self.metrics.duplicates.inc();
                return;
            }
        }
        let Some(handler) = self.registry.get(&task.task_type) else {
            let failure = fail(
                format!("no handler registered for task type {:?}", task.task_type),
                RetryDecision::Fatal,
                false,
            );
            self.metrics
                .jobs
                .with_label_values(&["unknown", "no_handler"])
                .inc();
            self.confirm_then_ack(Report::Failed { job, failure }, &delivery)
                .await;
            return;
        };
        let token = self.abort_all.child_token();
        self.running
            .lock()
            .expect("running map poisoned")
            .insert(job.job_id, (job, token.clone()));
        self.metrics.running.inc();

        let started = Instant::now();
        let progress = ProgressGate::new(PROGRESS_INTERVAL, self.reports.clone());
        let ctx = JobContext::new(&task, token.clone(), self.reports.clone(), progress.clone());
        let timeout = task.timeout_ms.map(Duration::from_millis);
        let supervised = self.supervise(tokio::spawn(handler(ctx, task.payload)), &token, timeout);
        tokio::pin!(supervised);
        // Coalescing: an attempt that ends within the window sends only its
        // final report (the coordinator applies the implied start), and the
        // task is acked once that report is confirmed. A longer one reports
        // Started, is acked, and reports its outcome when it ends.
        let early = tokio::select! {
            outcome = &mut supervised => Some(outcome),
            _ = tokio::time::sleep(self.coalesce_window) => None,
        };
        let coalesced = early.is_some();
        let outcome = match early {
            Some(outcome) => outcome,
            None => {
                self.confirm_then_ack(Report::Started { job }, &delivery)
                    .await;
                supervised.await
            }
        };

        // No progress report may trail the final one.
        progress.close();
        self.running
            .lock()
            .expect("running map poisoned")
            .remove(&job.job_id);
        self.metrics.running.dec();
        self.metrics
            .job_seconds
            .with_label_values(&[task.task_type.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let (label, report) = self.report_for(job, outcome);
        self.metrics
            .jobs
            .with_label_values(&[task.task_type.as_str(), label])
            .inc();
        if coalesced {
            self.confirm_then_ack(report, &delivery).await;
        } else {
            let _ = self.reports.send(report);
        }
    }

    /// Waits for the handler, enforcing the timeout and cancellation; a
    /// handler that ignores cancellation is aborted after the grace period.
    async fn supervise(
        &self,
        mut handle: tokio::task::JoinHandle<Result<serde_json::Value, HandlerError>>,
        token: &CancellationToken,
        timeout: Option<Duration>,
    ) -> Outcome {
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        // Biased: once the attempt was cancelled or timed out, that is its
        // outcome, even if the handler returns in the same instant.
        let stopped = tokio::select! {
            biased;
            _ = token.cancelled() => Outcome::Stopped,
            _ = deadline => Outcome::TimedOut(timeout.unwrap_or_default()),
            joined = &mut handle => return joined.map_or(Outcome::Panicked, Outcome::Done),
        };
        token.cancel();
        if tokio::time::timeout(self.cancel_grace, &mut handle)
            .await
            .is_err()
        {
            handle.abort();
            tracing::warn!("handler ignored cancellation; aborted");
        }
        stopped
    }

    fn report_for(&self, job: JobRef, outcome: Outcome) -> (&'static str, Report) {
        let failed = |label, failure| (label, Report::Failed { job, failure });
        match outcome {
            Outcome::Done(Ok(result)) => match serde_json::to_vec(&result).map(|b| b.len()) {
                Ok(size) if size <= self.max_result_bytes => {
                    ("completed", Report::Completed { job, result })
                }
                _ => failed(
                    "failed",
                    fail(
                        format!("result exceeds {} bytes", self.max_result_bytes),
                        RetryDecision::Fatal,
                        false,
                    ),
                ),
            },
            Outcome::Done(Err(e)) => failed("failed", fail(e.to_string(), e.decision(), false)),
            Outcome::TimedOut(t) => failed(
                "timeout",
                fail(
                    format!("timed out after {}", warren_core::format_duration(t)),
                    RetryDecision::Retryable,
                    true,
                ),
            ),
            Outcome::Stopped => failed(
                "cancelled",
                fail(
                    "stopped: cancelled or worker shutting down".into(),
                    RetryDecision::Retryable,
                    false,
                ),
            ),
            Outcome::Panicked => failed(
                "panicked",
                fail("handler panicked".into(), RetryDecision::Retryable, false),
            ),
        }
    }

    /// Sends `report`, waits for the broker's confirm, then settles this
    /// attempt's share of the delivery and of any copy delivered meanwhile.
    async fn confirm_then_ack(&self, report: Report, delivery: &TaskDelivery) {
        let job = report.job();
        let (tx, rx) = oneshot::channel();
        if self.outgoing.send(Outgoing::Confirmed(report, tx)).is_err() || rx.await.is_err() {
            return; // shutting down: the unacked delivery returns to the queue
        }
        settle(delivery).await;
        for copy in self.attempts.settled(job) {
            settle(&copy).await;
        }
    }
}

/// Settles one attempt's share of `delivery`.
async fn settle(delivery: &TaskDelivery) {
    if let Err(e) = delivery.settle(1).await {
        // The session died: the message is delivered again, and settled
        // then as a copy of an attempt begun here.
        tracing::warn!(error = %e, "could not ack task delivery");
    }
}

fn fail(error: String, retry: RetryDecision, timed_out: bool) -> Failure {
    let mut error = error;
    if error.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    Failure {
        error,
        retry,
        timed_out,
    }
}
