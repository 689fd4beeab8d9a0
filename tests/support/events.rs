//! Observing the event stream from the outside: a queue bound to the events
//! exchange ([`EventsTap`], a [`Tap`] that decodes what it takes), reading
//! Server-Sent Events with a deadline, and the `job_events` rows they must
//! match.

use std::time::Duration;

use uuid::Uuid;
use warren_client::{
    EventKind, EventStream, StreamEvent, TransitionEvent, WorkflowTransitionEvent,
};
use warren_core::protocol::EventBatch;
use warren_store::Store;

use crate::env::TestEnv;
use crate::tap::Tap;

/// A server-named, exclusive queue bound to `<ns>.events`.
pub struct EventsTap {
    tap: Tap,
}

/// One message taken from an [`EventsTap`].
#[derive(Debug)]
pub struct TappedMessage {
    /// Its routing key.
    pub routing_key: String,
    /// Its body when routed `job.…` (empty otherwise).
    pub batch: EventBatch,
    /// Its events when routed `workflow.…` (empty otherwise).
    pub workflows: Vec<WorkflowTransitionEvent>,
}

impl TappedMessage {
    /// How many events it carries.
    pub fn len(&self) -> usize {
        self.batch.events.len() + self.workflows.len()
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EventsTap {
    /// Binds a new queue to the events exchange with each of `keys`
    /// (e.g. `job.completed.*`). The exchange must exist (a coordinator ran).
    pub async fn bind(env: &TestEnv, keys: &[&str]) -> Self {
        let exchange = env.broker_config().names().events_exchange();
        Self {
            tap: Tap::bind(env, &exchange, keys).await,
        }
    }

    /// The next message, if one is waiting.
    pub async fn take(&self) -> Option<TappedMessage> {
        let message = self.tap.take().await?;
        let routing_key = message.routing_key;
        let (batch, workflows) = if routing_key.starts_with("workflow.") {
            let batch: EventBatch<WorkflowTransitionEvent> =
                serde_json::from_slice(&message.body).expect("a batch of workflow events");
            (EventBatch::new(Vec::new()), batch.events)
        } else {
            let batch = serde_json::from_slice(&message.body).expect("a batch of job events");
            (batch, Vec::new())
        };
        Some(TappedMessage {
            routing_key,
            batch,
            workflows,
        })
    }

    /// Every message waiting now.
    pub async fn drain(&self) -> Vec<TappedMessage> {
        let mut messages = Vec::new();
        while let Some(message) = self.take().await {
            messages.push(message);
        }
        messages
    }

    /// Takes messages until they carry at least `events` events in all;
    /// panics after `deadline`.
    pub async fn collect(&self, events: usize, deadline: Duration) -> Vec<TappedMessage> {
        let start = tokio::time::Instant::now();
        let mut messages = Vec::new();
        loop {
            messages.extend(self.drain().await);
            let count: usize = messages.iter().map(TappedMessage::len).sum();
            if count >= events {
                return messages;
            }
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} with {count} of {events} events: {messages:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes the connection (the queue goes with it).
    pub async fn close(self) {
        self.tap.close().await;
    }
}

/// A `job_events` row reduced to what an event must repeat.
pub type EventRow = (i64, Uuid, Option<String>, String, i32);

/// Every row of `job_events`, in id order.
pub async fn event_rows(store: &Store) -> Vec<EventRow> {
    sqlx::query_as(
        "SELECT id, job_id, from_state::text, to_state::text, attempt FROM job_events ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .expect("job_events")
}

/// An event reduced like [`EventRow`].
pub fn row_of(event: &TransitionEvent) -> EventRow {
    (
        event.id,
        event.job_id,
        event.from.map(|s| s.as_str().to_owned()),
        event.to.as_str().to_owned(),
        event.attempt as i32,
    )
}

/// Reads events of either kind from `stream` until `done` holds for
/// everything read so far; panics after `deadline` or if the stream ends
/// first.
pub async fn read_stream_until(
    stream: &mut EventStream,
    deadline: Duration,
    done: impl Fn(&[StreamEvent]) -> bool,
) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + deadline;
    while !done(&events) {
        events.push(next_event(stream, until, deadline, &events).await);
    }
    events
}

/// Reads job events from `stream` (skipping workflow events) until `done`
/// holds for everything read so far; panics after `deadline` or if the
/// stream ends first.
pub async fn read_until(
    stream: &mut EventStream,
    deadline: Duration,
    done: impl Fn(&[TransitionEvent]) -> bool,
) -> Vec<TransitionEvent> {
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + deadline;
    while !done(&events) {
        if let StreamEvent::Job(event) = next_event(stream, until, deadline, &events).await {
            events.push(event);
        }
    }
    events
}

/// The next job or workflow event; panics at `until` (showing `so_far`).
async fn next_event(
    stream: &mut EventStream,
    until: tokio::time::Instant,
    deadline: Duration,
    so_far: &impl std::fmt::Debug,
) -> StreamEvent {
    loop {
        let message = tokio::time::timeout_at(until, stream.next_message())
            .await
            .unwrap_or_else(|_| panic!("timed out after {deadline:?}; read so far: {so_far:?}"))
            .expect("stream readable")
            .expect("stream still open");
        if let Ok(kind) = message.event.parse::<EventKind>() {
            return StreamEvent::from_sse(kind, &message.data).expect("a readable event");
        }
    }
}

/// Reads `n` job events from `stream` within `deadline`.
pub async fn read_n(
    stream: &mut EventStream,
    n: usize,
    deadline: Duration,
) -> Vec<TransitionEvent> {
    read_until(stream, deadline, |events| events.len() >= n).await
}
