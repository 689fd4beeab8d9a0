//! `GET /v1/events` (Server-Sent Events of every job transition and every
//! workflow status change, filtered), and `GET /v1/jobs/{id}/events` and
//! `GET /v1/workflows/{id}/events`, which stream one job's (one workflow's)
//! events when the request accepts `text/event-stream` and answer with JSON
//! pages otherwise.
//!
//! Where a stream starts: after the `Last-Event-ID` header if present (what
//! a reconnecting client sends), else after `?after=<id>`, else — for
//! `/v1/events` — at the live edge ("now"), and for one job's or workflow's
//! stream at its first event. `?after=0` replays all of `/v1/events` from
//! the beginning.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;
use warren_core::protocol::EventKind;
use warren_core::JobState;
use warren_store::EventFilter;

use super::error::ApiError;
use super::sse::{self, Start};
use super::{jobs, workflows};
use crate::shared::Shared;

/// The `Last-Event-ID` header of SSE.
const LAST_EVENT_ID: &str = "last-event-id";

/// Query string of `GET /v1/events`: filters (all optional) and a start.
/// `queue`, `type`, `state` and `job` select job events (a stream with any
/// of them carries no workflow events); `workflow` selects one workflow's
/// status changes and its steps' job events; `kind` is `job` or `workflow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    queue: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    state: Option<String>,
    job: Option<String>,
    workflow: Option<String>,
    kind: Option<String>,
    after: Option<i64>,
}

/// Query string of `GET /v1/jobs/{id}/events` and
/// `GET /v1/workflows/{id}/events` as a stream (`limit` belongs to the JSON
/// form and is accepted and ignored here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OneStreamQuery {
    after: Option<i64>,
    #[serde(rename = "limit")]
    _limit: Option<i64>,
}

/// `GET /v1/events`: every job transition and workflow status change as
/// Server-Sent Events.
pub(super) async fn stream(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Query(query) = Query::<StreamQuery>::try_from_uri(&uri)?;
    let filter = EventFilter {
        job_id: query
            .job
            .as_deref()
            .map(|id| parse_id("job", id))
            .transpose()?,
        queue: query.queue.map(|q| checked_name("queue", q)).transpose()?,
        task_type: query
            .task_type
            .map(|t| checked_name("type", t))
            .transpose()?,
        to_state: query
            .state
            .as_deref()
            .map(str::parse::<JobState>)
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        workflow_id: query
            .workflow
            .as_deref()
            .map(|id| parse_id("workflow", id))
            .transpose()?,
        kind: query
            .kind
            .as_deref()
            .map(str::parse::<EventKind>)
            .transpose()
            .map_err(ApiError::BadRequest)?,
    };
    if !filter.wants(EventKind::Job) && !filter.wants(EventKind::Workflow) {
        return Err(ApiError::BadRequest(
            "queue, type, state and job select job events; they cannot be combined with kind=workflow"
                .into(),
        ));
    }
    let start = match resume_after(&headers, query.after)? {
        Some(after) => Start::After(after),
        None => Start::Now,
    };
    sse::respond(shared, filter, start).await
}

/// `GET /v1/jobs/{id}/events`: a stream when the client accepts
/// `text/event-stream`, else the JSON history pages.
pub(super) async fn job_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    if !accepts_event_stream(&headers) {
        let json = jobs::events(State(shared), Path(id), Query::try_from_uri(&uri)).await?;
        return Ok(json.into_response());
    }
    let resume = one_stream_resume(&headers, &uri)?;
    let job_id = parse_id("job", &id)?;
    shared.store.get_job(job_id).await?;
    let filter = EventFilter {
        job_id: Some(job_id),
        ..EventFilter::default()
    };
    sse::respond(shared, filter, Start::After(resume.unwrap_or(0))).await
}

/// `GET /v1/workflows/{id}/events`: a stream of the workflow's status
/// changes and its steps' job transitions when the client accepts
/// `text/event-stream`, else the JSON pages of its status history.
pub(super) async fn workflow_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    if !accepts_event_stream(&headers) {
        let json = workflows::events(State(shared), Path(id), Query::try_from_uri(&uri)).await?;
        return Ok(json.into_response());
    }
    let resume = one_stream_resume(&headers, &uri)?;
    let workflow_id = parse_id("workflow", &id)?;
    shared.store.get_workflow(workflow_id).await?;
    let filter = EventFilter {
        workflow_id: Some(workflow_id),
        ..EventFilter::default()
    };
    let after = match resume {
        Some(after) => after,
        None => shared
            .store
            .workflow_stream_start(workflow_id)
            .await?
            .unwrap_or(0),
    };
    sse::respond(shared, filter, Start::After(after)).await
}

/// Where a one-job or one-workflow stream resumes, if the client said.
fn one_stream_resume(headers: &HeaderMap, uri: &Uri) -> Result<Option<i64>, ApiError> {
    let Query(query) = Query::<OneStreamQuery>::try_from_uri(uri)?;
    resume_after(headers, query.after)
}

/// Whether the `Accept` header names `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|range| range.split(';').next())
        .any(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// The id to resume after: `Last-Event-ID` wins over `?after=`.
fn resume_after(headers: &HeaderMap, after: Option<i64>) -> Result<Option<i64>, ApiError> {
    let header = match headers.get(LAST_EVENT_ID) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| bad_cursor())?.trim();
            if text.is_empty() {
                None
            } else {
                Some(text.parse::<i64>().map_err(|_| bad_cursor())?)
            }
        }
    };
    match header.or(after) {
        Some(id) if id < 0 => Err(bad_cursor()),
        resume => Ok(resume),
    }
}

fn bad_cursor() -> ApiError {
    ApiError::BadRequest("Last-Event-ID and after must be event ids (integers >= 0)".into())
}

fn parse_id(what: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("{text:?} is not a {what} id (UUID)")))
}

fn checked_name(what: &'static str, name: String) -> Result<String, ApiError> {
    warren_core::validate_name(what, &name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn event_stream_is_chosen_only_when_accepted() {
        assert!(accepts_event_stream(&headers(&[(
            "accept",
            "text/event-stream"
        )])));
        assert!(accepts_event_stream(&headers(&[(
            "accept",
            "application/json, Text/Event-Stream;q=0.9"
        )])));
        assert!(!accepts_event_stream(&headers(&[("accept", "*/*")])));
        assert!(!accepts_event_stream(&headers(&[])));
    }

    #[test]
    fn last_event_id_wins_over_after() {
        let h = headers(&[("last-event-id", "42")]);
        assert_eq!(resume_after(&h, Some(7)).unwrap(), Some(42));
        assert_eq!(resume_after(&headers(&[]), Some(7)).unwrap(), Some(7));
        assert_eq!(resume_after(&headers(&[]), None).unwrap(), None);
        let empty = headers(&[("last-event-id", " ")]);
        assert_eq!(resume_after(&empty, Some(3)).unwrap(), Some(3));
    }

    #[test]
    fn bad_cursors_are_rejected() {
        assert!(resume_after(&headers(&[("last-event-id", "abc")]), None).is_err());
        assert!(resume_after(&headers(&[("last-event-id", "-1")]), None).is_err());
        assert!(resume_after(&headers(&[]), Some(-5)).is_err());
    }
}
