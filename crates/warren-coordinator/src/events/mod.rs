//! The durable event stream: every job transition (a row of `job_events`)
//! and every workflow status change (`workflow_events`, ids from the same
//! sequence), in id order with no gaps, to two kinds of readers.
//!
//! - [`publisher`]: one coordinator at a time (it claims the
//!   `event_publication` row) publishes batches to the topic exchange
//!   `<ns>.events` with confirms, then advances the stored cursor.
//! - [`tailer`]: every coordinator tails the log for its own Server-Sent
//!   Events clients and hands what it reads to the [`EventHub`].
//!
//! Both read through a [`gaps::GapTracker`], which only lets an id through
//! once every lower id is settled.

pub(crate) mod gaps;
pub(crate) mod messages;
pub(crate) mod publisher;
pub(crate) mod tailer;

use std::sync::Arc;

use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use warren_core::protocol::StreamEvent;

/// Events read per tail query.
pub(crate) const TAIL_BATCH: i64 = 2_000;

/// One event ready to send: the event (to filter on) and its JSON, encoded
/// once for every client.
#[derive(Debug)]
pub(crate) struct StreamItem {
    pub(crate) event: StreamEvent,
    pub(crate) json: String,
}

impl StreamItem {
    pub(crate) fn new(event: StreamEvent) -> Self {
        let json = serde_json::to_string(&event).expect("events always serialize");
        Self { event, json }
    }
}

/// What the tailer settled in one read: every id up to `upto`.
#[derive(Debug)]
pub(crate) struct LiveBatch {
    /// The settled cursor after this batch.
    pub(crate) upto: i64,
    /// The settled events above the previous cursor, or `None` when the
    /// tailer did not read them (it had no listeners when it looked): a
    /// client then reads them from the database.
    pub(crate) items: Option<Vec<StreamItem>>,
}

/// What the tailer shares with the SSE streams of this process.
///
/// The settled cursor is updated *before* the batch that reaches it is
/// sent, so a stream that subscribes first and then reads the cursor either
/// receives the batch or finds its events in the database — never neither.
pub(crate) struct EventHub {
    settled: watch::Sender<Option<i64>>,
    live: broadcast::Sender<Arc<LiveBatch>>,
    streams: Arc<Semaphore>,
    closed: CancellationToken,
}

impl EventHub {
    /// A hub allowing `max_streams` concurrent SSE clients, each `buffer`
    /// tail reads behind at most before it lags.
    pub(crate) fn new(max_streams: usize, buffer: usize) -> Self {
        Self {
            settled: watch::Sender::new(None),
            live: broadcast::Sender::new(buffer),
            streams: Arc::new(Semaphore::new(max_streams)),
            closed: CancellationToken::new(),
        }
    }

    /// Live batches from now on (subscribe before reading [`EventHub::settled`]).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<LiveBatch>> {
        self.live.subscribe()
    }

    /// The settled cursor (`None` until the tailer has started).
    pub(crate) fn settled(&self) -> watch::Receiver<Option<i64>> {
        self.settled.subscribe()
    }

    /// Whether any stream is subscribed.
    pub(crate) fn has_listeners(&self) -> bool {
        self.live.receiver_count() > 0
    }

    /// Publishes the settled cursor, then (if anyone listens) the batch.
    pub(crate) fn publish(&self, upto: i64, items: Option<Vec<StreamItem>>) {
        let moved = self.settled.send_if_modified(|settled| {
            let moved = settled.is_none_or(|s| s < upto);
            if moved {
                *settled = Some(upto);
            }
            moved
        });
        if moved && self.has_listeners() {
            let _ = self.live.send(Arc::new(LiveBatch { upto, items }));
        }
    }

    /// A slot for one more SSE client, if any is free.
    pub(crate) fn open_stream(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// Ends every stream (shutdown).
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Resolves once the hub is closed.
    pub(crate) fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    /// Whether the hub is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}
