//! One Server-Sent Events stream: history from the database, then live
//! events from this process's tailer, with no gap and no duplicate between
//! the two.
//!
//! The stream subscribes to the live batches *first*, then reads the
//! settled cursor, then pages through the database up to that cursor; from
//! then on it forwards live events above what it has already covered. A
//! stream that falls behind the live channel (lagged), or receives a batch
//! the tailer did not read, catches up from the database the same way.
//! Each SSE event is `id: <event id>`, `event: job` (or `workflow` for a
//! workflow's status change), `data: <JSON>`. The
//! stream opens with an id-only event naming its starting position, so a
//! client that reconnects before any event arrived (a stream started at
//! "now") still resumes exactly where it began.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use prometheus::IntGauge;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use warren_store::{EventFilter, StoreError};

use super::error::ApiError;
use crate::events::{LiveBatch, StreamItem};
use crate::shared::Shared;

/// Comment sent on an idle stream so proxies and clients see it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Longest wait for the tailer's first settled cursor.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Events per history query.
const HISTORY_PAGE: i64 = 500;
/// Ids spanned by one history query without a job filter, so a rare filter
/// never turns one query into a scan of the whole log.
const HISTORY_WINDOW: i64 = 5_000;

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// At the live edge.
    Now,
    /// After this event id.
    After(i64),
}

/// Opens a stream, or refuses with 503 when the client limit is reached or
/// the tailer has not started.
pub(super) async fn respond(
    shared: Arc<Shared>,
    filter: EventFilter,
    start: Start,
) -> Result<Response, ApiError> {
    let Some(permit) = shared.events.open_stream() else {
        shared.metrics.events.sse_rejected.inc();
        return Err(ApiError::Busy(format!(
            "too many event streams (limit {}); retry later",
            shared.config.max_event_streams
        )));
    };
    let live = shared.events.subscribe();
    let mut settled = shared.events.settled();
    let upto = match tokio::time::timeout(START_TIMEOUT, settled.wait_for(Option::is_some)).await {
        Ok(Ok(cursor)) => cursor.unwrap_or_default(),
        _ => {
            return Err(ApiError::Busy(
                "the event stream is not ready; retry".into(),
            ))
        }
    };
    let position = match start {
        Start::Now => upto,
        Start::After(after) => after,
    };
    let stream = EventStream {
        _slot: Slot::new(permit, shared.metrics.events.sse_clients.clone()),
        shared,
        filter,
        live,
        position,
        catch_up_to: Some(upto),
        pending: VecDeque::from([Event::default().id(position.to_string())]),
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<_, Infallible>(event), stream))
    });
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Ask reverse proxies (nginx) not to buffer the stream.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// The state of one client's stream.
struct EventStream {
    shared: Arc<Shared>,
    filter: EventFilter,
    live: broadcast::Receiver<Arc<LiveBatch>>,
    /// Every event id at or below this has been sent or filtered out.
    position: i64,
    /// Read the database up to this settled cursor before going live.
    catch_up_to: Option<i64>,
    /// Events read but not sent yet.
    pending: VecDeque<Event>,
    /// Held for the stream's lifetime.
    _slot: Slot,
}

impl EventStream {
    /// The next SSE event; `None` ends the stream (shutdown, or a database
    /// error: the client reconnects with `Last-Event-ID`).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.shared.events.is_closed() {
                return None;
            }
            if let Some(upto) = self.catch_up_to {
                if self.position >= upto {
                    self.catch_up_to = None;
                } else if let Err(e) = self.read_history(upto).await {
                    tracing::warn!(error = %e, "event stream: history read failed; closing the stream");
                    return None;
                }
                continue;
            }
            let received = tokio::select! {
                _ = self.shared.events.closed() => return None,
                received = self.live.recv() => received,
            };
            match received {
                Ok(batch) => self.take(&batch),
                Err(RecvError::Lagged(_)) => {
                    self.shared.metrics.events.sse_catchups.inc();
                    self.catch_up_to = *self.shared.events.settled().borrow();
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// One page of history above the position, up to `upto`.
    async fn read_history(&mut self, upto: i64) -> Result<(), StoreError> {
        let end = if self.filter.job_id.is_some() {
            upto // the job's index bounds the query
        } else {
            upto.min(self.position.saturating_add(HISTORY_WINDOW))
        };
        let page = self
            .shared
            .store
            .events_between(&self.filter, self.position, end, HISTORY_PAGE)
            .await?;
        self.position = match page.last() {
            Some(last) if page.len() as i64 == HISTORY_PAGE => last.id(),
            _ => end,
        };
        for event in page {
            let item = StreamItem::new(event);
            self.pending.push_back(sse_event(&item));
        }
        Ok(())
    }

    /// Queues the live events above the position that pass the filter.
    fn take(&mut self, batch: &LiveBatch) {
        if batch.upto <= self.position {
            return; // covered by history already
        }
        let Some(items) = &batch.items else {
            self.catch_up_to = Some(batch.upto);
            return;
        };
        for item in items {
            if item.event.id() > self.position && self.filter.matches(&item.event) {
                self.pending.push_back(sse_event(item));
            }
        }
        self.position = batch.upto;
    }
}

fn sse_event(item: &StreamItem) -> Event {
    Event::default()
        .id(item.event.id().to_string())
        .event(item.event.kind().as_str())
        .data(&item.json)
}

/// A stream's place under the client limit, counted in the gauge.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, gauge: IntGauge) -> Self {
        gauge.inc();
        Self {
            _permit: permit,
            gauge,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
