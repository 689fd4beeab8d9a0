//! The tailer: one per coordinator process, reading both event logs in id
//! order through a [`GapTracker`] and handing each settled run to the
//! [`EventHub`](super::EventHub) for this process's Server-Sent Events
//! clients. It polls every `WARREN_POLL_INTERVAL`, at once again after a
//! full read. With no client subscribed it reads ids only, which is enough
//! to keep the settled cursor current.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_core::protocol::StreamEvent;
use warren_store::{Store, StoreError, TailSnapshot};

use super::gaps::{read_again_at_once, GapTracker};
use super::{StreamItem, TAIL_BATCH};
use crate::shared::Shared;

/// Longest pause after a database error.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Tails until shutdown, then closes the hub (ending every stream).
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    tail(&shared, &shutdown).await;
    shared.events.close();
}

async fn tail(shared: &Shared, shutdown: &CancellationToken) {
    let poll = shared.config.poll_interval;
    let mut tracker: Option<GapTracker> = None;
    let mut failures = 0u32;
    loop {
        let result = match tracker.as_mut() {
            Some(tracker) => tick(shared, tracker).await,
            None => match settled_start(&shared.store, poll, shutdown).await {
                Ok(Some(start)) => {
                    shared.events.publish(start, Some(Vec::new()));
                    tracker = Some(GapTracker::new(start));
                    Ok(false)
                }
                Ok(None) => return, // shutdown while starting
                Err(e) => Err(e),
            },
        };
        let pause = match result {
            Ok(full) => {
                failures = 0;
                // After a full read more may be waiting: read again at once.
                if full {
                    Duration::ZERO
                } else {
                    poll
                }
            }
            Err(e) => {
                shared
                    .metrics
                    .database_errors
                    .with_label_values(&["events"])
                    .inc();
                tracing::warn!(error = %e, "event tailer: database error; retrying");
                failures = failures.saturating_add(1);
                (poll * 2u32.saturating_pow(failures.min(8))).min(MAX_RETRY_DELAY)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One read. Returns whether to read again at once ([`read_again_at_once`]).
async fn tick(shared: &Shared, tracker: &mut GapTracker) -> Result<bool, StoreError> {
    let before = tracker.cursor();
    let (snapshot, read, emitted, items) = if shared.events.has_listeners() {
        let tail = shared.store.tail_events(before, TAIL_BATCH).await?;
        let ids: Vec<i64> = tail.events.iter().map(StreamEvent::id).collect();
        let emit = advance(shared, tracker, &ids, &tail.snapshot);
        let items = tail
            .events
            .into_iter()
            .take(emit)
            .map(StreamItem::new)
            .collect();
        (tail.snapshot, ids.len(), emit, Some(items))
    } else {
        // Nobody listened when we looked; a stream that subscribes meanwhile
        // is told to read the settled run from the database (`None`).
        let tail = shared.store.tail_event_ids(before, TAIL_BATCH).await?;
        let emit = advance(shared, tracker, &tail.events, &tail.snapshot);
        (tail.snapshot, tail.events.len(), emit, None)
    };
    // Hand over what the read settled before anything else can fail.
    shared.events.publish(tracker.cursor(), items);
    shared
        .metrics
        .events
        .lag
        .with_label_values(&["stream"])
        .set(snapshot.max_id.saturating_sub(tracker.cursor()));
    if tracker.needs_bound() {
        // If this fails, the gaps keep waiting and the next read asks again.
        tracker.set_bound(shared.store.xid_bound().await?);
    }
    Ok(read_again_at_once(read, emitted, TAIL_BATCH))
}

/// Feeds one read to the tracker; returns how many events to emit.
fn advance(shared: &Shared, tracker: &mut GapTracker, ids: &[i64], s: &TailSnapshot) -> usize {
    let advance = tracker.advance(ids, s.xmin);
    if advance.skipped > 0 {
        shared
            .metrics
            .events
            .gaps_skipped
            .with_label_values(&["stream"])
            .inc_by(advance.skipped);
    }
    advance.emit
}

/// A settled starting point: the newest event id, once every transaction
/// that could hold a lower id has finished (see [`Barrier`]). `Ok(None)` on
/// shutdown.
pub(crate) async fn settled_start(
    store: &Store,
    poll: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<i64>, StoreError> {
    let barrier = Barrier::take(store).await?;
    loop {
        if barrier.is_passed(&store.event_snapshot().await?) {
            return Ok(Some(barrier.max_id));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// The newest event id and a bound taken after reading it: once a
/// snapshot's `xmin` reaches the bound, every transaction that could hold a
/// lower id has finished, so `max_id` is settled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Barrier {
    pub(crate) max_id: i64,
    bound: u64,
}

impl Barrier {
    pub(crate) async fn take(store: &Store) -> Result<Self, StoreError> {
        let max_id = store.event_snapshot().await?.max_id;
        let bound = store.xid_bound().await?;
        Ok(Self { max_id, bound })
    }

    pub(crate) fn is_passed(&self, now: &TailSnapshot) -> bool {
        now.xmin >= self.bound
    }
}
