//! `/v1/jobs`: submit, get, events, cancel, retry, approve (the listing is
//! in [`super::listing`]).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::{JobSpec, SubmitEnvelope};
use warren_store::OperatorMove;

use super::error::ApiError;
use super::note::{self, ApproveBody, CancelBody};
use crate::defaults::TaskDefaults;
use crate::shared::Shared;

/// `POST /v1/jobs` with a `Submit` envelope: `{"v": 1, "jobs": [...]}`. Jobs
/// get their queue's task defaults for what they leave unset.
pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<SubmitEnvelope>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(mut envelope) = body?;
    if envelope.v != warren_core::protocol::PROTOCOL_VERSION {
        return Err(ApiError::BadRequest(format!(
            "unsupported protocol version {}",
            envelope.v
        )));
    }
    envelope
        .jobs
        .iter()
        .try_for_each(JobSpec::validate)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let defaults = TaskDefaults::cached(&shared, envelope.jobs.iter()).await?;
    envelope
        .jobs
        .iter_mut()
        .try_for_each(|job| defaults.apply(job))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let created = insert(&shared, &envelope.jobs).await?;
    shared.metrics.count_submitted(envelope.jobs.len(), created);
    let ids: Vec<Uuid> = envelope.jobs.iter().map(|j| j.id).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ids": ids, "created": created })),
    ))
}

/// Inserts `jobs`; returns how many were new. While a dispatcher runs, the
/// jobs their queue can take at once are committed as `queued` by the
/// INSERT itself and handed to it to publish ([`crate::handoff`]), as
/// intake does with AMQP submissions; the rest wait for its claim.
async fn insert(shared: &Shared, jobs: &[JobSpec]) -> Result<usize, ApiError> {
    if !shared.handoff.is_open() {
        let created = shared.store.insert_jobs(jobs).await?;
        shared.wake_dispatcher();
        return Ok(created.len());
    }
    let window = shared.config.dispatch_window as i64;
    let inserted = shared.store.insert_and_dispatch(jobs, window).await?;
    if inserted.dispatched.len() < inserted.created.len() {
        shared.wake_dispatcher();
    }
    if let Err(refused) = shared.handoff.send(inserted.dispatched) {
        // The dispatcher's session ended meanwhile: back to pending for
        // the next one (or, if this fails too, the lost-dispatch rescue).
        let leases: Vec<(Uuid, Uuid)> = refused.iter().map(|j| (j.id, j.lease)).collect();
        if let Err(e) = shared.store.unclaim(&leases).await {
            tracing::warn!(error = %e, "could not return jobs dispatched at creation to pending");
        }
        shared.wake_dispatcher();
    }
    Ok(inserted.created.len())
}

/// `GET /v1/jobs/{id}`.
pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = shared.store.get_job(parse_id(&id)?).await?;
    Ok(Json(json!(job)))
}

/// Query string of `GET /v1/jobs/{id}/events`.
#[derive(Deserialize)]
pub(super) struct EventsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/jobs/{id}/events?after=&limit=`: the job's audit log.
pub(super) async fn events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let id = parse_id(&id)?;
    shared.store.get_job(id).await?;
    let events = shared
        .store
        .job_events(
            id,
            query.after.unwrap_or(0),
            query.limit.unwrap_or(warren_store::MAX_PAGE_SIZE),
        )
        .await?;
    Ok(Json(json!({ "events": events })))
}

/// `POST /v1/jobs/{id}/cancel`, optional body `{"by", "reason"}`: a running
/// job's worker is told to stop.
pub(super) async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Result<Option<Json<CancelBody>>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let moved = shared
        .store
        .cancel_job(id, note::cancellation(body)?)
        .await?;
    shared.wake_workflows();
    if let Some(worker) = &moved.running_on {
        shared.send_cancel(
            worker,
            moved.transition.job_id,
            moved.transition.attempt as u32,
            "cancelled",
        );
    }
    Ok(respond(&shared, moved))
}

/// `POST /v1/jobs/{id}/retry`: re-drives a dead job (a workflow step is
/// retried through its workflow).
pub(super) async fn retry(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    if let Some(answer) = super::workflows::retry_job_step(&shared, id).await? {
        return Ok(answer);
    }
    let moved = shared.store.retry_job(id, "api").await?;
    shared.wake_dispatcher();
    Ok(respond(&shared, moved))
}

/// `POST /v1/jobs/{id}/approve`, optional body `{"by", "comment"}`.
pub(super) async fn approve(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Result<Option<Json<ApproveBody>>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let moved = shared.store.approve_job(id, note::approval(body)?).await?;
    shared.wake_dispatcher();
    Ok(respond(&shared, moved))
}

fn respond(shared: &Shared, moved: OperatorMove) -> Json<Value> {
    shared
        .metrics
        .record(std::slice::from_ref(&moved.transition));
    let t = moved.transition;
    Json(json!({ "id": t.job_id, "from": t.from, "to": t.to, "attempt": t.attempt }))
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("{text:?} is not a job id (UUID)")))
}
