//! The reporter: the single path from a worker to `<ns>.reports`.
//!
//! It outlives broker sessions: reports queue up in a channel while the
//! connection is down and are published, in order, once a new session hands
//! over a publisher. Ready reports are batched into one envelope (bounded in
//! bytes). Up to [`MAX_ENVELOPES_IN_FLIGHT`] envelopes await their confirms
//! at once, so a report does not wait for the confirm of the one before;
//! the broker keeps one channel's publishes to one queue in order.
//!
//! Order is what the coordinator needs (a checkpoint before the failure
//! that retries from it), so an envelope that reports on a job named in an
//! envelope still awaiting its confirm waits for that confirm first; and if
//! a publish fails, every unconfirmed envelope is published again, in
//! order, one at a time (a duplicate report is stale and dropped).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;
use warren_broker::{BrokerError, Publisher, REPORT_ROUTING_KEY};
use warren_core::protocol::{Heartbeat, Report, PROTOCOL_VERSION};

/// Most reports per envelope.
const MAX_REPORTS_PER_ENVELOPE: usize = 500;

/// Envelopes published and awaiting their confirms at once.
const MAX_ENVELOPES_IN_FLIGHT: usize = 4;

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
    jobs: HashSet<Uuid>,
    waiters: Vec<oneshot::Sender<()>>,
}

/// An envelope published and not yet confirmed.
struct Sent {
    body: Vec<u8>,
    reports: usize,
    jobs: HashSet<Uuid>,
    waiters: Vec<oneshot::Sender<()>>,
}

impl Sent {
    fn confirmed(self) {
        for waiter in self.waiters {
            let _ = waiter.send(());
        }
    }
}

/// Envelopes awaiting their confirms, oldest first, and those confirms.
#[derive(Default)]
struct InFlight {
    sent: VecDeque<Sent>,
    confirms: FuturesOrdered<BoxFuture<'static, Result<(), BrokerError>>>,
}

impl InFlight {
    fn overlaps(&self, jobs: &HashSet<Uuid>) -> bool {
        self.sent.iter().any(|sent| !sent.jobs.is_disjoint(jobs))
    }
}

impl Reporter {
    /// Runs until both input channels are closed and everything was sent.
    pub(crate) async fn run(mut self) {
        let mut reports_open = true;
        let mut outgoing_open = true;
        let mut in_flight = InFlight::default();
        loop {
            let open = reports_open || outgoing_open;
            if !open && in_flight.sent.is_empty() {
                return;
            }
            let mut envelope = Envelope {
                heartbeat: None,
                reports: Vec::new(),
                bytes: 0,
                jobs: HashSet::new(),
                waiters: Vec::new(),
            };
            // Wait for the oldest confirm or, with room for another
            // envelope, for the first item; then take whatever else is
            // ready. Plain reports go first: an attempt's progress must
            // never trail the confirmed final report that a coalesced
            // attempt sends.
            let room = in_flight.sent.len() < MAX_ENVELOPES_IN_FLIGHT;
            tokio::select! {
                biased;
                confirm = in_flight.confirms.next(), if !in_flight.sent.is_empty() => {
                    if !self.settle_oldest(&mut in_flight, confirm).await {
                        return;
                    }
                    continue;
                }
                report = self.reports.recv(), if reports_open && room => match report {
                    Some(report) => self.add(&mut envelope, &report),
                    None => reports_open = false,
                },
                item = self.outgoing.recv(), if outgoing_open && room => match item {
                    Some(item) => self.add_outgoing(&mut envelope, item),
                    None => outgoing_open = false,
                },
            }
            // Let the attempts that are ready to end (tasks delivered
            // together, ending together) add their reports first.
            tokio::task::yield_now().await;
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
            if envelope.heartbeat.is_none() && envelope.reports.is_empty() {
                continue;
            }
            // Keep each job's reports in order across envelopes.
            while in_flight.overlaps(&envelope.jobs) {
                let confirm = in_flight.confirms.next().await;
                if !self.settle_oldest(&mut in_flight, confirm).await {
                    return;
                }
            }
            let sent = Sent {
                body: self.encode(&envelope),
                reports: envelope.reports.len(),
                jobs: envelope.jobs,
                waiters: envelope.waiters,
            };
            let publisher = self.publisher.borrow().clone();
            let published = match publisher {
                Some(publisher) => publisher
                    .publish(&self.exchange, REPORT_ROUTING_KEY, &sent.body)
                    .await
                    .map_err(
                        |e| tracing::warn!(error = %e, "report not published; publishing again"),
                    ),
                None => Err(()),
            };
            in_flight.sent.push_back(sent);
            match published {
                Ok(pending) => in_flight.confirms.push_back(Box::pin(pending.wait())),
                Err(()) => {
                    if !self.resend(&mut in_flight).await {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the oldest envelope's confirm: on an error, publishes every
    /// unconfirmed envelope again. False as for [`Reporter::resend`].
    async fn settle_oldest(
        &mut self,
        in_flight: &mut InFlight,
        confirm: Option<Result<(), BrokerError>>,
    ) -> bool {
        match confirm.expect("one confirm per envelope in flight") {
            Ok(()) => {
                let oldest = in_flight.sent.pop_front();
                oldest.expect("one envelope per confirm").confirmed();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "report not confirmed; publishing again");
                self.resend(in_flight).await
            }
        }
    }

    /// Publishes every unconfirmed envelope again, in order, each confirmed
    /// before the next; false if the worker is stopping and no session will
    /// come to send them with (their reports are dropped).
    async fn resend(&mut self, in_flight: &mut InFlight) -> bool {
        in_flight.confirms = FuturesOrdered::new();
        while let Some(sent) = in_flight.sent.pop_front() {
            if !self.send(&sent).await {
                return false;
            }
            sent.confirmed();
        }
        true
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
        envelope.jobs.insert(report.job().job_id);
        let encoded = serde_json::to_vec(report).expect("reports always serialize");
        envelope.bytes += encoded.len() + 1;
        envelope.reports.push(encoded);
    }

    /// Publishes one envelope, waiting for a connection and retrying until
    /// the broker confirms it; false if the worker is stopping and no
    /// session will come.
    async fn send(&mut self, sent: &Sent) -> bool {
        let mut delay = Duration::from_millis(50);
        loop {
            let publisher = self.publisher.borrow().clone();
            match publisher {
                Some(publisher) => match publisher
                    .publish_confirmed(&self.exchange, REPORT_ROUTING_KEY, &sent.body)
                    .await
                {
                    Ok(()) => return true,
                    // The worker is stopping (it dropped the sender) and the
                    // session is gone: no publisher will come to retry with.
                    Err(e) if e.is_recoverable() && self.publisher.has_changed().is_err() => {
                        tracing::warn!(error = %e, reports = sent.reports, "broker session lost while stopping; reports dropped");
                        return false;
                    }
                    Err(e) => tracing::warn!(error = %e, "report not confirmed; retrying"),
                },
                None => {
                    // Wait for the next session's publisher.
                    if self.publisher.changed().await.is_err() {
                        tracing::warn!(
                            reports = sent.reports,
                            "no broker session will come; reports dropped"
                        );
                        return false;
                    }
                    continue;
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
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
