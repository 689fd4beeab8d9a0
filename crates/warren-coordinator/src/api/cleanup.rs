//! `POST /v1/cleanup`: deletes finished jobs older than `older_than` now,
//! in the same batches as the retention loop ([`crate::cleanup::sweep`]).
//!
//! One call deletes at most [`MAX_JOBS_PER_CALL`] jobs (about two seconds of
//! batches), so a request never runs for long; `complete: false` says that
//! more are left and the call should be repeated (`warren cleanup` does).
//! Workflow steps are never deleted here: they go with their workflow.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use warren_core::JobState;
use warren_store::CLEANABLE_STATES;

use super::error::ApiError;
use crate::cleanup::{sweep, BATCH};
use crate::shared::Shared;

/// Most jobs one call deletes.
pub(crate) const MAX_JOBS_PER_CALL: u64 = 20 * BATCH as u64;

/// Body of `POST /v1/cleanup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CleanupRequest {
    /// Delete jobs that finished longer ago than this (`1h`, `7d`, ...).
    older_than: String,
    /// Only these states (default: every finished state).
    states: Option<Vec<String>>,
}

/// Deletes, answers `{"deleted_jobs", "deleted_events", "complete"}`.
pub(super) async fn run(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<CleanupRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    let older_than = warren_core::parse_duration(&request.older_than)
        .map_err(|e| ApiError::BadRequest(format!("older_than: {e}")))?;
    let states = match request.states {
        None => CLEANABLE_STATES.to_vec(),
        Some(names) if names.is_empty() => {
            return Err(ApiError::BadRequest("states must not be empty".into()))
        }
        Some(names) => names
            .iter()
            .map(|name| cleanable(name))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let never = CancellationToken::new();
    let (mut jobs, mut events) = (0, 0);
    for state in states {
        let done = sweep(&shared, state, older_than, MAX_JOBS_PER_CALL - jobs, &never).await?;
        jobs += done.jobs;
        events += done.events;
        if jobs >= MAX_JOBS_PER_CALL {
            break;
        }
    }
    Ok(Json(json!({
        "deleted_jobs": jobs,
        "deleted_events": events,
        "complete": jobs < MAX_JOBS_PER_CALL,
    })))
}

fn cleanable(name: &str) -> Result<JobState, ApiError> {
    name.parse::<JobState>()
        .ok()
        .filter(|state| CLEANABLE_STATES.contains(state))
        .ok_or_else(|| {
            let names: Vec<&str> = CLEANABLE_STATES.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!(
                "cannot clean up state {name:?}: expected one of {}",
                names.join(", ")
            ))
        })
}
