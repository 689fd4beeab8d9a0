//! Following the coordinator's Server-Sent Events (job transitions and
//! workflow status changes): [`ApiClient::event_stream`]
//! opens one stream; [`EventFollower`] keeps one open, reconnecting with
//! `Last-Event-ID` after a disconnect (with backoff while the coordinator is
//! away), so the caller sees every event once, in order.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT};
use uuid::Uuid;
use warren_core::protocol::{EventKind, StreamEvent};
use warren_core::JobState;

use crate::api::ApiClient;
use crate::error::{api_error, ClientError};
use crate::sse::{SseMessage, SseParser};

/// The SSE event name of job transitions.
pub const JOB_EVENT: &str = EventKind::Job.as_str();
/// The SSE event name of workflow status changes.
pub const WORKFLOW_EVENT: &str = EventKind::Workflow.as_str();
/// First delay before reconnecting after a failure.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(500);
/// Longest delay between reconnects.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// Which events to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// `GET /v1/events`: all jobs, optionally filtered; starts live ("now")
    /// unless `after` is set (`Some(0)`: from the beginning).
    All(EventQuery),
    /// `GET /v1/jobs/{id}/events`: one job, from its first event.
    Job(Uuid),
    /// `GET /v1/workflows/{id}/events`: one workflow's status changes and
    /// its steps' job transitions, from its first event.
    Workflow(Uuid),
}

/// Filters and start of `GET /v1/events`. `queue`, `task_type`, `state` and
/// `job` select job events (workflow events then never match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only jobs on this queue.
    pub queue: Option<String>,
    /// Only jobs of this task type.
    pub task_type: Option<String>,
    /// Only moves into this state.
    pub state: Option<JobState>,
    /// Only this job.
    pub job: Option<Uuid>,
    /// Only this workflow's status changes and its steps' job events.
    pub workflow: Option<Uuid>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
    /// Start after this event id instead of at the live edge.
    pub after: Option<i64>,
}

impl EventSource {
    fn path(&self) -> String {
        match self {
            EventSource::Job(id) => format!("/v1/jobs/{id}/events"),
            EventSource::Workflow(id) => format!("/v1/workflows/{id}/events"),
            EventSource::All(_) => "/v1/events".to_owned(),
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let EventSource::All(q) = self else {
            return Vec::new();
        };
        let mut query = Vec::new();
        if let Some(queue) = &q.queue {
            query.push(("queue", queue.clone()));
        }
        if let Some(task_type) = &q.task_type {
            query.push(("type", task_type.clone()));
        }
        if let Some(state) = q.state {
            query.push(("state", state.as_str().to_owned()));
        }
        if let Some(job) = q.job {
            query.push(("job", job.to_string()));
        }
        if let Some(workflow) = q.workflow {
            query.push(("workflow", workflow.to_string()));
        }
        if let Some(kind) = q.kind {
            query.push(("kind", kind.as_str().to_owned()));
        }
        if let Some(after) = q.after {
            query.push(("after", after.to_string()));
        }
        query
    }
}

/// One open event stream.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    parser: SseParser,
}

impl EventStream {
    /// The next event; `Ok(None)` when the coordinator ended the stream.
    pub async fn next_message(&mut self) -> Result<Option<SseMessage>, ClientError> {
        loop {
            if let Some(message) = self.parser.next_message() {
                return Ok(Some(message));
            }
            let chunk = self.response.chunk().await.map_err(|e| {
                // A body that breaks off is a lost connection, whatever
                // reqwest calls it (an EOF inside a chunk is a "decode" error).
                let cause = std::error::Error::source(&e).map_or(e.to_string(), |c| c.to_string());
                ClientError::StreamInterrupted(cause)
            })?;
            match chunk {
                Some(chunk) => self
                    .parser
                    .feed(&chunk)
                    .map_err(|e| ClientError::BadStream(e.to_string()))?,
                None => return Ok(None),
            }
        }
    }

    /// The last event id the stream dispatched (to resume after).
    pub fn last_event_id(&self) -> Option<i64> {
        self.parser.last_event_id()?.parse().ok()
    }
}

impl ApiClient {
    /// Opens an event stream, resuming after `last_event_id` if given.
    pub async fn event_stream(
        &self,
        source: &EventSource,
        last_event_id: Option<i64>,
    ) -> Result<EventStream, ClientError> {
        let mut request = self
            .stream_request(&source.path())
            .query(&source.query())
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.map_err(ClientError::Http)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.map_err(ClientError::Http)?;
            return Err(api_error(status.as_u16(), &body));
        }
        Ok(EventStream {
            response,
            parser: SseParser::new(),
        })
    }

    /// Follows `source` across disconnects; see [`EventFollower`].
    pub fn follow_events(&self, source: EventSource) -> EventFollower {
        EventFollower {
            api: self.clone(),
            source,
            stream: None,
            last_id: None,
            failures: 0,
            wait: None,
        }
    }
}

/// What [`EventFollower::next`] yields.
#[derive(Debug)]
pub enum Followed {
    /// The next event (a job transition or a workflow status change).
    Event(Box<StreamEvent>),
    /// The stream broke or the coordinator is unreachable; the follower
    /// reconnects after `retry_in` on the next call.
    Reconnecting {
        /// Why.
        error: ClientError,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// An event stream that survives disconnects: it reconnects with
/// `Last-Event-ID` (transport errors and 502–504 are retried with backoff,
/// 500 ms doubling up to 5 s; a stream the coordinator closes is reopened
/// at once), and drops any event it has already returned.
#[derive(Debug)]
pub struct EventFollower {
    api: ApiClient,
    source: EventSource,
    stream: Option<EventStream>,
    /// The highest event id returned or announced by the coordinator.
    last_id: Option<i64>,
    failures: u32,
    /// Delay to wait before the next connection attempt.
    wait: Option<Duration>,
}

impl EventFollower {
    /// The next event (or a reconnect notice). Errors that retrying cannot
    /// fix (401, 404, 400, an unreadable event) end the follow.
    pub async fn next(&mut self) -> Result<Followed, ClientError> {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    if let Some(wait) = self.wait.take() {
                        tokio::time::sleep(wait).await;
                    }
                    match self.api.event_stream(&self.source, self.last_id).await {
                        Ok(stream) => self.stream.insert(stream),
                        Err(error) => return self.broken(error),
                    }
                }
            };
            match stream.next_message().await {
                Ok(Some(message)) => {
                    self.failures = 0;
                    // Events of kinds this client does not know are skipped.
                    let Ok(kind) = message.event.parse::<EventKind>() else {
                        continue;
                    };
                    let event = StreamEvent::from_sse(kind, &message.data)
                        .map_err(|e| ClientError::BadStream(format!("unreadable event: {e}")))?;
                    if self.last_id.is_some_and(|last| event.id() <= last) {
                        continue; // already returned before a reconnect
                    }
                    self.last_id = Some(event.id());
                    return Ok(Followed::Event(Box::new(event)));
                }
                Ok(None) => {
                    // Closed by the coordinator (e.g. it is shutting down).
                    self.take_resume_point();
                    self.wait = Some(RETRY_MIN_DELAY);
                }
                Err(error) => {
                    self.take_resume_point();
                    return self.broken(error);
                }
            }
        }
    }

    /// Drops the stream, keeping the last id it announced (a stream starts
    /// with an id-only event naming its position, so even a stream that
    /// delivered nothing resumes where it began).
    fn take_resume_point(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.last_id = self.last_id.max(stream.last_event_id());
        }
    }

    /// Drops the stream; a transient error becomes a reconnect notice.
    fn broken(&mut self, error: ClientError) -> Result<Followed, ClientError> {
        self.stream = None;
        if !error.is_transient() {
            return Err(error);
        }
        let retry_in = retry_delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.wait = Some(retry_in);
        Ok(Followed::Reconnecting { error, retry_in })
    }
}

/// Delay after `failures` consecutive failures: 500 ms, 1 s, 2 s, 4 s, 5 s, ...
fn retry_delay(failures: u32) -> Duration {
    RETRY_MIN_DELAY
        .saturating_mul(1u32 << failures.min(16))
        .min(RETRY_MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_their_path_and_filters() {
        let job = Uuid::nil();
        assert_eq!(
            EventSource::Job(job).path(),
            format!("/v1/jobs/{job}/events")
        );
        let all = EventSource::All(EventQuery {
            queue: Some("media".into()),
            state: Some(JobState::Completed),
            after: Some(0),
            ..EventQuery::default()
        });
        assert_eq!(all.path(), "/v1/events");
        assert_eq!(
            EventSource::Workflow(job).path(),
            format!("/v1/workflows/{job}/events")
        );
        let one_workflow = EventSource::All(EventQuery {
            workflow: Some(job),
            kind: Some(EventKind::Workflow),
            ..EventQuery::default()
        });
        assert_eq!(
            one_workflow.query(),
            [
                ("workflow", job.to_string()),
                ("kind", "workflow".to_owned())
            ]
        );
        assert_eq!(
            all.query(),
            [
                ("queue", "media".to_owned()),
                ("state", "completed".to_owned()),
                ("after", "0".to_owned())
            ]
        );
    }

    #[test]
    fn reconnects_back_off_up_to_five_seconds() {
        let delays: Vec<u128> = (0..6).map(|n| retry_delay(n).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
    }
}
