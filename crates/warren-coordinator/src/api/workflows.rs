//! `/v1/workflows`: submit, list, progress, history, and the operator's
//! controls (pause, resume, cancel, recover from a step, retry one step).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::WorkflowSubmission;
use warren_core::workflow::WorkflowStatus;
use warren_store::{StatusFilter, WorkflowFilter};

use super::error::ApiError;
use crate::shared::Shared;
use crate::workflows::{prepare, progress};

/// Default page size of listings.
const DEFAULT_PAGE: i64 = 50;
/// Most `meta.<key>=<value>` filters in one listing.
const MAX_METADATA_FILTERS: usize = 10;
/// Who the API records as the actor of a move.
const ACTOR: &str = "api";

/// `POST /v1/workflows`: a workflow definition, or
/// `{"template": name, "version"?: n, "variables": {...}}`; either may carry
/// a client-chosen `id` (a known id creates nothing).
pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let submission = WorkflowSubmission::try_from(body).map_err(ApiError::BadRequest)?;
    let workflow = prepare(&shared.store, submission, false).await?;
    let id = workflow.id;
    let created = shared
        .store
        .insert_workflows(std::slice::from_ref(&workflow))
        .await?;
    shared.metrics.count_workflows_submitted(1, created.len());
    shared.wake_workflows();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "created": !created.is_empty() })),
    ))
}

/// `GET /v1/workflows?status=&name=&meta.<key>=<value>&before=&limit=`,
/// newest first. `status` is `active`, `recoverable` or a status name.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let mut filter = WorkflowFilter {
        limit: DEFAULT_PAGE,
        ..WorkflowFilter::default()
    };
    for (key, value) in query {
        match key.as_str() {
            "status" => filter.status = Some(parse_status_filter(&value)?),
            "name" => filter.name = Some(value),
            "before" => filter.before = Some(parse_id(&value)?),
            "limit" => {
                filter.limit = value
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("limit {value:?} is not a number")))?
            }
            _ => match key.strip_prefix("meta.") {
                Some(field) if !field.is_empty() => filter.metadata.push((field.to_owned(), value)),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown query parameter {key:?} (expected status, name, meta.<key>, before, limit)"
                    )))
                }
            },
        }
    }
    if filter.metadata.len() > MAX_METADATA_FILTERS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_METADATA_FILTERS} metadata filters"
        )));
    }
    let workflows = shared.store.list_workflows(&filter).await?;
    let next = (workflows.len() as i64 >= filter.limit.clamp(1, warren_store::MAX_PAGE_SIZE))
        .then(|| workflows.last().map(|w| w.id))
        .flatten();
    Ok(Json(json!({ "workflows": workflows, "next": next })))
}

fn parse_status_filter(text: &str) -> Result<StatusFilter, ApiError> {
    match text {
        "active" => Ok(StatusFilter::Active),
        "recoverable" => Ok(StatusFilter::Recoverable),
        other => match WorkflowStatus::parse(other) {
            Some(status) => Ok(StatusFilter::Is(status.as_str().to_owned())),
            None => {
                let names: Vec<&str> = WorkflowStatus::ALL.iter().map(|s| s.as_str()).collect();
                Err(ApiError::BadRequest(format!(
                    "unknown status {other:?} (expected active, recoverable, {})",
                    names.join(", ")
                )))
            }
        },
    }
}

/// `GET /v1/workflows/{id}`: the progress view.
pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let workflow = shared.store.get_workflow(id).await?;
    let steps = shared.store.workflow_steps(id).await?;
    Ok(Json(progress::progress(&workflow, &steps)))
}

/// Query string of `GET /v1/workflows/{id}/events` (the JSON form).
#[derive(Deserialize)]
pub(super) struct EventsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/workflows/{id}/events?after=&limit=`: status history.
pub(super) async fn events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let id = parse_id(&id)?;
    shared.store.get_workflow(id).await?;
    let events = shared
        .store
        .workflow_events(
            id,
            query.after.unwrap_or(0),
            query.limit.unwrap_or(warren_store::MAX_PAGE_SIZE),
        )
        .await?;
    Ok(Json(json!({ "events": events })))
}

/// `POST /v1/workflows/{id}/pause`.
pub(super) async fn pause(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let from = shared.store.pause_workflow(id, ACTOR).await?;
    Ok(moved(&shared, id, &from, WorkflowStatus::Paused))
}

/// `POST /v1/workflows/{id}/resume`.
pub(super) async fn resume(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let from = shared.store.resume_workflow(id, ACTOR).await?;
    shared.wake_workflows();
    Ok(moved(&shared, id, &from, WorkflowStatus::Running))
}

/// `POST /v1/workflows/{id}/cancel`: unfinished steps are cancelled, and
/// the workers of running ones are told to stop.
pub(super) async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let cancelled = shared.store.cancel_workflow(id, ACTOR).await?;
    for (worker, job_id, attempt) in &cancelled.running {
        shared.send_cancel(worker, *job_id, *attempt, "cancelled");
    }
    shared.metrics.record(&cancelled.transitions);
    let mut body = moved(&shared, id, &cancelled.from, WorkflowStatus::Cancelled);
    body["cancelled_steps"] = json!(cancelled.transitions.len());
    Ok(body)
}

/// Body of `POST /v1/workflows/{id}/recover`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecoverBody {
    from_step: String,
}

/// `POST /v1/workflows/{id}/recover` with `{"from_step": "S"}`.
pub(super) async fn recover(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Result<Json<RecoverBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let Json(body) = body?;
    shared
        .store
        .recover_workflow(id, &body.from_step, ACTOR)
        .await?;
    shared.wake_workflows();
    shared
        .metrics
        .record_workflow_moves(&[("failed", "recovering"), ("recovering", "running")]);
    let workflow = shared.store.get_workflow(id).await?;
    Ok(Json(json!({
        "id": id, "from": "failed", "to": "running", "from_step": body.from_step,
        "recovery_attempts": workflow.recovery_attempts,
        "max_recovery_attempts": workflow.max_recovery_attempts,
    })))
}

/// `POST /v1/workflows/{id}/steps/{name}/retry`: one more attempt for a
/// dead step of a failed workflow; what ran after it is reset.
pub(super) async fn retry_step(
    State(shared): State<Arc<Shared>>,
    Path((id, step)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let retried = shared.store.retry_workflow_step(id, &step, ACTOR).await?;
    shared
        .metrics
        .record_workflow_moves(&[("failed", "recovering"), ("recovering", "running")]);
    shared.wake_dispatcher();
    shared.wake_workflows();
    Ok(Json(json!({
        "id": id, "step": step, "job_id": retried.job_id,
        "from": retried.from, "to": retried.to, "attempt": retried.attempt,
    })))
}

/// `POST /v1/jobs/{id}/retry` of a workflow step goes through the workflow
/// (so what ran after the step is reset too). Returns `None` for a job that
/// is not a workflow step.
pub(super) async fn retry_job_step(
    shared: &Shared,
    job_id: Uuid,
) -> Result<Option<Json<Value>>, ApiError> {
    let Some((workflow, step, superseded)) = shared.store.job_workflow_step(job_id).await? else {
        return Ok(None);
    };
    if superseded {
        return Err(ApiError::Refused(format!(
            "job {job_id} is an old run of step {step:?} of workflow {workflow}, replaced by a recovery"
        )));
    }
    let retried = shared
        .store
        .retry_workflow_step(workflow, &step, ACTOR)
        .await?;
    shared.wake_dispatcher();
    shared.wake_workflows();
    Ok(Some(Json(json!({
        "id": retried.job_id, "from": retried.from, "to": retried.to,
        "attempt": retried.attempt, "workflow_id": workflow, "step": step,
    }))))
}

fn moved(shared: &Shared, id: Uuid, from: &str, to: WorkflowStatus) -> Json<Value> {
    shared.metrics.record_workflow_moves(&[(from, to.as_str())]);
    Json(json!({ "id": id, "from": from, "to": to }))
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("{text:?} is not a workflow id (UUID)")))
}
