//! Publishing job and workflow events to the topic exchange `<ns>.events`.
//!
//! Exactly one coordinator publishes at a time. Each tick it claims the
//! `event_publication` row (`FOR UPDATE SKIP LOCKED`; a coordinator that
//! finds it locked stands by) and, in that one short transaction, reads the
//! events above the stored cursor, keeps the settled prefix (see
//! [`GapTracker`]), publishes it packed per routing key with pipelined
//! confirms, and stores the new cursor. A crash between the confirms and
//! the commit publishes those events again: delivery is at-least-once, and
//! the event ids let consumers deduplicate.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerError, Publisher, Session, CONFIRM_TIMEOUT};
use warren_core::protocol::StreamEvent;
use warren_store::StoreError;

use super::gaps::{read_again_at_once, GapTracker};
use super::messages::{pack, MAX_EVENTS_PER_MESSAGE, MAX_MESSAGE_BYTES};
use super::tailer::Barrier;
use crate::session::SessionError;
use crate::shared::Shared;

/// Events read per tick.
const PUBLISH_BATCH: i64 = 5_000;
/// How often a coordinator that is not publishing checks whether it should.
const STANDBY_INTERVAL: Duration = Duration::from_secs(1);
/// Longest pause after a database error.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// What a tick did.
#[derive(Debug, PartialEq, Eq)]
enum Tick {
    /// It read a full batch and all of it was settled: more may be waiting.
    Full,
    /// Caught up (or waiting for a gap to settle).
    Idle,
    /// Another coordinator is publishing.
    Standby,
}

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
enum TickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// What this coordinator remembers between ticks while it publishes.
#[derive(Default)]
struct State {
    /// The settled cursor and the gaps seen above it.
    tracker: Option<GapTracker>,
    /// While the stored cursor is still unset: where it will start.
    barrier: Option<Barrier>,
}

/// Publishes until the session ends. Broker failures end the session;
/// database failures are retried.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let publisher = session.broadcast_publisher().await?;
    let exchange = shared.config.broker.names().events_exchange();
    let mut state = State::default();
    let mut failures = 0u32;
    loop {
        let pause = match tick(&shared, &publisher, &exchange, &mut state).await {
            Ok(tick) => {
                failures = 0;
                match tick {
                    Tick::Full => Duration::ZERO,
                    Tick::Idle => shared.config.poll_interval,
                    Tick::Standby => STANDBY_INTERVAL,
                }
            }
            Err(TickError::Broker(e)) => return Err(e.into()),
            Err(TickError::Store(e)) => {
                shared
                    .metrics
                    .database_errors
                    .with_label_values(&["events"])
                    .inc();
                tracing::warn!(error = %e, "event publisher: database error; retrying");
                failures = failures.saturating_add(1);
                (shared.config.poll_interval * 2u32.saturating_pow(failures.min(8)))
                    .min(MAX_RETRY_DELAY)
            }
        };
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

async fn tick(
    shared: &Shared,
    publisher: &Publisher,
    exchange: &str,
    state: &mut State,
) -> Result<Tick, TickError> {
    let lag = shared.metrics.events.lag.with_label_values(&["publisher"]);
    let Some(mut claim) = shared.store.claim_event_publication().await? else {
        state.tracker = None;
        lag.set(0);
        return Ok(Tick::Standby);
    };
    let Some(cursor) = claim.cursor() else {
        // First publisher ever: start at the newest event once nothing
        // older can still commit (events before that are history).
        return match state.barrier {
            Some(barrier) if barrier.is_passed(&claim.snapshot().await?) => {
                claim.advance(barrier.max_id).await?;
                tracing::info!(cursor = barrier.max_id, "event publication started");
                Ok(Tick::Full)
            }
            Some(_) => Ok(Tick::Idle),
            None => {
                claim.release().await?;
                state.barrier = Some(Barrier::take(&shared.store).await?);
                Ok(Tick::Idle)
            }
        };
    };
    // Taken out while the tick runs: a failure below leaves it `None`, and
    // the next tick starts again from the stored cursor.
    let mut tracker = state
        .tracker
        .take()
        .unwrap_or_else(|| GapTracker::new(cursor));
    if tracker.cursor() != cursor {
        tracker.reset(cursor); // another coordinator published meanwhile
    }
    let tail = claim.tail_events(cursor, PUBLISH_BATCH).await?;
    let ids: Vec<i64> = tail.events.iter().map(StreamEvent::id).collect();
    let advance = tracker.advance(&ids, tail.snapshot.xmin);
    if tracker.needs_bound() {
        tracker.set_bound(shared.store.xid_bound().await?);
    }
    let settled = tracker.cursor();
    lag.set(tail.snapshot.max_id.saturating_sub(settled));
    if settled == cursor {
        claim.release().await?;
        state.tracker = Some(tracker);
        return Ok(Tick::Idle);
    }
    let messages = pack(
        &tail.events[..advance.emit],
        MAX_EVENTS_PER_MESSAGE,
        MAX_MESSAGE_BYTES,
    );
    confirm_all(publisher, exchange, &messages).await?;
    claim.advance(settled).await?;
    state.tracker = Some(tracker);
    let metrics = &shared.metrics.events;
    metrics.published.inc_by(advance.emit as u64);
    metrics.publish_batches.inc_by(messages.len() as u64);
    if advance.skipped > 0 {
        metrics
            .gaps_skipped
            .with_label_values(&["publisher"])
            .inc_by(advance.skipped);
    }
    Ok(
        if read_again_at_once(ids.len(), advance.emit, PUBLISH_BATCH) {
            Tick::Full
        } else {
            Tick::Idle
        },
    )
}

/// Publishes every message back to back and waits for all confirms.
async fn confirm_all(
    publisher: &Publisher,
    exchange: &str,
    messages: &[(String, Vec<u8>)],
) -> Result<(), BrokerError> {
    let results =
        tokio::time::timeout(CONFIRM_TIMEOUT, publisher.publish_batch(exchange, messages))
            .await
            .map_err(|_| BrokerError::Timeout(CONFIRM_TIMEOUT, "confirming events"))?;
    results.into_iter().collect()
}
