//! `/v1/templates`: store, read and list named, versioned workflow templates.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use warren_core::workflow::Template;

use super::error::ApiError;
use crate::shared::Shared;

/// Default page size of the template listing.
const DEFAULT_PAGE: i64 = 100;

/// `PUT /v1/templates/{name}` with a Template document. The version must be
/// greater than the latest stored one (`409` otherwise); repeating the PUT
/// of the latest version with the same content is a no-op (`200`).
pub(super) async fn put(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(mut body) = body?;
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "a template must be a JSON object".into(),
        ));
    };
    match fields.get("name") {
        None => {
            fields.insert("name".into(), Value::String(name.clone()));
        }
        Some(Value::String(given)) if *given == name => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "the template's name {other} differs from {name:?} in the path"
            )))
        }
    }
    let template: Template = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid template: {e}")))?;
    template
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let document = serde_json::to_value(&template)
        .map_err(|e| ApiError::BadRequest(format!("invalid template: {e}")))?;
    let created = shared
        .store
        .put_template(
            &template.name,
            template.version,
            &template.description,
            &document,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "name": template.name, "version": template.version, "created": created })),
    ))
}

/// Query string of `GET /v1/templates/{name}`.
#[derive(Deserialize)]
pub(super) struct GetQuery {
    version: Option<u32>,
}

/// `GET /v1/templates/{name}?version=N`: that version, or the latest.
pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let row = shared.store.get_template(&name, query.version).await?;
    let mut document = row.spec;
    if let Some(fields) = document.as_object_mut() {
        fields.insert("created_at".into(), json!(row.created_at));
    }
    Ok(Json(document))
}

/// Query string of `GET /v1/templates`.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/templates?after=&limit=`: the latest version of each template,
/// by name.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let templates = shared
        .store
        .list_templates(query.after.as_deref(), limit)
        .await?;
    let next = (templates.len() as i64 >= limit.clamp(1, warren_store::MAX_PAGE_SIZE))
        .then(|| templates.last().map(|t| t.name.clone()))
        .flatten();
    Ok(Json(json!({ "templates": templates, "next": next })))
}
