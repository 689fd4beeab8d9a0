//! `GET /v1/jobs`: filters, a sort from an allowlist, keyset cursors and a
//! capped page size. Unknown parameters are refused, so a typo such as
//! `?stat=failed` is a 400 rather than an unfiltered listing.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use warren_core::JobState;
use warren_store::{JobFilter, JobSort, ListCursor, MAX_PAGE_SIZE};

use super::error::ApiError;
use crate::shared::Shared;

/// Page size when `limit` is not given.
const DEFAULT_PAGE: i64 = 50;

/// Query string of `GET /v1/jobs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    queue: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    workflow: Option<String>,
    dead: Option<bool>,
    sort: Option<String>,
    order: Option<String>,
    cursor: Option<String>,
    /// The first API's cursor: an id, newest-first order only.
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/jobs?state=&queue=&type=&workflow=&dead=&sort=&order=&cursor=&limit=`.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let filter = filter(query)?;
    let page = shared.store.list_jobs(&filter).await?;
    Ok(Json(json!({
        "jobs": page.jobs,
        "next": page.next.map(|cursor| cursor.to_string()),
    })))
}

fn filter(query: ListQuery) -> Result<JobFilter, ApiError> {
    let bad = ApiError::BadRequest;
    let state = query
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    for (what, name) in [("queue", &query.queue), ("type", &query.task_type)] {
        if let Some(name) = name {
            warren_core::validate_name(what, name).map_err(|e| bad(e.to_string()))?;
        }
    }
    let workflow_id = query
        .workflow
        .as_deref()
        .map(|text| {
            uuid::Uuid::parse_str(text)
                .map_err(|_| bad(format!("workflow {text:?} is not a workflow id (UUID)")))
        })
        .transpose()?;
    let sort = match (query.sort.as_deref(), query.order.as_deref()) {
        (None, None) => JobSort::default(),
        (field, order) => JobSort::parse(field.unwrap_or("created_at"), order).map_err(bad)?,
    };
    let cursor = match (query.cursor.as_deref(), query.before.as_deref()) {
        (Some(_), Some(_)) => return Err(bad("give cursor or before, not both".into())),
        (Some(text), None) => Some(ListCursor::parse(text, sort).map_err(bad)?),
        (None, Some(text)) if sort == JobSort::CreatedDesc => {
            Some(ListCursor::parse(text, sort).map_err(bad)?)
        }
        (None, Some(_)) => {
            return Err(bad(
                "before only pages the default order; use cursor with sort".into(),
            ))
        }
        (None, None) => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(bad(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
        )));
    }
    Ok(JobFilter {
        state,
        queue: query.queue,
        task_type: query.task_type,
        workflow_id,
        dead: query.dead.unwrap_or(false),
        sort,
        cursor,
        limit,
    })
}
