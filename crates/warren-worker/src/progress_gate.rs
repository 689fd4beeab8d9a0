//! At most one progress report per attempt per [`PROGRESS_INTERVAL`].
//!
//! A handler that reports progress for every item it processes would
//! otherwise send thousands of reports a second, each a row update at the
//! coordinator, and buffer all of them in memory while the broker is
//! unreachable. A call within the interval replaces the report waiting to
//! be sent, which goes out when the interval ends, so the last word always
//! arrives (a handler that reports 50% and then works silently for an hour
//! shows 50%). Once the attempt ended, a waiting report is dropped: the
//! final report says more, and a progress report after it would only be
//! counted as stale. Checkpoints are not gated (a retry resumes from them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren_core::protocol::Report;

/// Shortest time between two progress reports of one attempt.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The gate of one attempt's progress reports; see the module docs.
pub(crate) struct ProgressGate {
    interval: Duration,
    reports: mpsc::UnboundedSender<Report>,
    /// Where the trailing report is sent from (the handler may call from a
    /// thread of its own); without one, every report is sent at once.
    runtime: Option<Handle>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_sent: Option<Instant>,
    waiting: Option<Report>,
    flush_scheduled: bool,
    closed: bool,
}

impl ProgressGate {
    /// A gate sending to `reports` at most once per `interval` (made outside
    /// a Tokio runtime, it passes every report on).
    pub(crate) fn new(interval: Duration, reports: mpsc::UnboundedSender<Report>) -> Arc<Self> {
        Arc::new(ProgressGate {
            interval,
            reports,
            runtime: Handle::try_current().ok(),
            state: Mutex::new(State::default()),
        })
    }

    /// Sends `report` now if the interval since the last one has passed,
    /// else keeps it (replacing any kept before) for the interval's end.
    pub(crate) fn offer(self: &Arc<Self>, report: Report) {
        let mut state = self.state.lock().expect("progress gate poisoned");
        if state.closed {
            return;
        }
        let now = Instant::now();
        let due = state.last_sent.map(|at| at + self.interval);
        match (due, &self.runtime) {
            (Some(due), Some(runtime)) if due > now => {
                state.waiting = Some(report);
                if !state.flush_scheduled {
                    state.flush_scheduled = true;
                    let gate = self.clone();
                    runtime.spawn(async move {
                        tokio::time::sleep_until(due).await;
                        gate.flush();
                    });
                }
            }
            _ => {
                state.last_sent = Some(now);
                let _ = self.reports.send(report);
            }
        }
    }

    /// Sends the kept report, if the attempt is still running.
    fn flush(&self) {
        let mut state = self.state.lock().expect("progress gate poisoned");
        state.flush_scheduled = false;
        if state.closed {
            return;
        }
        if let Some(report) = state.waiting.take() {
            state.last_sent = Some(Instant::now());
            let _ = self.reports.send(report);
        }
    }

    /// The attempt ended: nothing more is sent.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock().expect("progress gate poisoned");
        state.closed = true;
        state.waiting = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;
    use warren_core::protocol::JobRef;

    fn progress(percent: f32) -> Report {
        Report::Progress {
            job: JobRef {
                job_id: Uuid::nil(),
                attempt: 1,
                lease: Uuid::nil(),
            },
            percent: Some(percent),
            stage: None,
            checkpoint: None,
        }
    }

    fn percent(report: Report) -> f32 {
        match report {
            Report::Progress {
                percent: Some(p), ..
            } => p,
            other => panic!("not progress: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_sends_its_first_report_at_once_and_its_last_at_the_interval() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = ProgressGate::new(PROGRESS_INTERVAL, tx);
        for i in 0..1000 {
            gate.offer(progress(i as f32 / 10.0));
        }
        assert_eq!(percent(rx.try_recv().unwrap()), 0.0);
        assert!(rx.try_recv().is_err(), "the rest waits for the interval");
        tokio::time::sleep(PROGRESS_INTERVAL).await;
        tokio::task::yield_now().await;
        assert_eq!(percent(rx.try_recv().unwrap()), 99.9, "the last word");
        assert!(rx.try_recv().is_err());

        // After a quiet interval the next report goes at once.
        tokio::time::sleep(PROGRESS_INTERVAL).await;
        gate.offer(progress(100.0));
        assert_eq!(percent(rx.try_recv().unwrap()), 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_once_the_attempt_ended() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = ProgressGate::new(PROGRESS_INTERVAL, tx);
        gate.offer(progress(1.0));
        gate.offer(progress(2.0));
        gate.close();
        gate.offer(progress(3.0));
        tokio::time::sleep(PROGRESS_INTERVAL * 2).await;
        tokio::task::yield_now().await;
        assert_eq!(percent(rx.try_recv().unwrap()), 1.0);
        assert!(rx.try_recv().is_err(), "the waiting report was dropped");
    }
}
