//! The reporter: the single path from a worker to `<ns>.reports`.
//!
//! It outlives broker sessions: reports queue up in a channel while the
//! connection is down and are published, in order, once a new session hands
//! over a publisher. Ready reports are batched into one envelope (bounded in
//! bytes) and every envelope is confirmed by the broker before the next.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use warren_broker::{Publisher, REPORT_ROUTING_KEY};
use warren_core::protocol::{Heartbeat, Report, PROTOCOL_VERSION};

/// Most reports per envelope.
const MAX_REPORTS_PER_ENVELOPE: usize = 500;

/// Something to send that needs more than fire-and-forget.
pub(crate) enum Outgoing {
    /// A report whose broker confirmation the sender waits for.
    Confirmed(Report, oneshot::Sender<()>),
    /// This worker's heartbeat.
    Heartbeat(Heartbeat),
}

/// Sends reports and heartbeats; see the module docs.
pub(crate) struct Reporter {
    pub(crate) worker_id: String,
    pub(crate) exchange: String,
    /// Envelope size bound, so the coordinator never rejects one as oversized.
    pub(crate) max_bytes: usize,
    pub(crate) reports: mpsc::UnboundedReceiver<Report>,
    pub(crate) outgoing: mpsc::UnboundedReceiver<Outgoing>,
    pub(crate) publisher: watch::Receiver<Option<Publisher>>,
}

/// One envelope being assembled, pre-encoded so its size is exact.
struct Envelope {
    heartbeat: Option<Heartbeat>,
    reports: Vec<Vec<u8>>,
    bytes: usize,
    waiters: Vec<oneshot::Sender<()>>,
}

impl Reporter {
    /// Runs until both input channels are closed and everything was sent.
    pub(crate) async fn run(mut self) {
        let mut reports_open = true;
        let mut outgoing_open = true;
        while reports_open || outgoing_open {
            let mut envelope = Envelope {
                heartbeat: None,
                reports: Vec::new(),
                bytes: 0,
                waiters: Vec::new(),
            };
            // Wait for the first item, then take whatever else is ready.
            // Plain reports go first: an attempt's progress must never trail
            // the confirmed final report that a coalesced attempt sends.
            tokio::select! {
                biased;
                report = self.reports.recv(), if reports_open => match report {
                    Some(report) => self.add(&mut envelope, &report),
                    None => reports_open = false,
                },
                item = self.outgoing.recv(), if outgoing_open => match item {
                    Some(item) => self.add_outgoing(&mut envelope, item),
                    None => outgoing_open = false,
                },
            }
            while envelope.reports.len() < MAX_REPORTS_PER_ENVELOPE
                && envelope.bytes < self.max_bytes / 2
            {
                if let Ok(report) = self.reports.try_recv() {
                    self.add(&mut envelope, &report);
                } else if let Ok(item) = self.outgoing.try_recv() {
                    self.add_outgoing(&mut envelope, item);
                } else {
                    break;
                }
            }
            if envelope.heartbeat.is_some() || !envelope.reports.is_empty() {
                self.send(envelope).await;
            }
        }
    }

    fn add_outgoing(&self, envelope: &mut Envelope, item: Outgoing) {
        match item {
            Outgoing::Confirmed(report, waiter) => {
                self.add(envelope, &report);
                envelope.waiters.push(waiter);
            }
            Outgoing::Heartbeat(heartbeat) => envelope.heartbeat = Some(heartbeat),
        }
    }

    fn add(&self, envelope: &mut Envelope, report: &Report) {
        let encoded = serde_json::to_vec(report).expect("reports always serialize");
        envelope.bytes += encoded.len() + 1;
        envelope.reports.push(encoded);
    }

    /// Publishes one envelope, waiting for a connection and retrying until
    /// the broker confirms it.
    async fn send(&mut self, envelope: Envelope) {
        let body = self.encode(&envelope);
        let mut delay = Duration::from_millis(50);
        loop {
            let publisher = self.publisher.borrow().clone();
            match publisher {
                Some(publisher) => match publisher
                    .publish_confirmed(&self.exchange, REPORT_ROUTING_KEY, &body)
                    .await
                {
                    Ok(()) => break,
                    // The worker is stopping (it dropped the sender) and the
                    // session is gone: no publisher will come to retry with.
                    Err(e) if e.is_recoverable() && self.publisher.has_changed().is_err() => {
                        tracing::warn!(error = %e, reports = envelope.reports.len(), "broker session lost while stopping; reports dropped");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "report not confirmed; retrying"),
                },
                None => {
                    // Wait for the next session's publisher.
                    if self.publisher.changed().await.is_err() {
                        tracing::warn!(
                            reports = envelope.reports.len(),
                            "no broker session will come; reports dropped"
                        );
                        return;
                    }
                    continue;
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        for waiter in envelope.waiters {
            let _ = waiter.send(());
        }
    }

    /// `{"v":1,"worker_id":…,"heartbeat":…,"reports":[…]}` from pre-encoded parts.
    fn encode(&self, envelope: &Envelope) -> Vec<u8> {
        let mut body = Vec::with_capacity(envelope.bytes + 256);
        body.extend_from_slice(format!("{{\"v\":{PROTOCOL_VERSION},\"worker_id\":").as_bytes());
        serde_json::to_writer(&mut body, &self.worker_id).expect("string serializes");
        if let Some(heartbeat) = &envelope.heartbeat {
            body.extend_from_slice(b",\"heartbeat\":");
            serde_json::to_writer(&mut body, heartbeat).expect("heartbeat serializes");
        }
        body.extend_from_slice(b",\"reports\":[");
        for (i, report) in envelope.reports.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(report);
        }
        body.extend_from_slice(b"]}");
        body
    }
}
