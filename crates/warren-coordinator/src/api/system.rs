//! `/health`, `/metrics` and `/v1/workers`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::shared::Shared;

/// 200 when both the database and the broker answer, else 503.
pub(super) async fn health(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let database = shared.store.ping().await;
    let broker = shared.metrics.broker_connected.get() == 1;
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "down" };
    (
        status,
        Json(
            json!({ "status": word(database && broker), "database": word(database), "broker": word(broker) }),
        ),
    )
}

/// Prometheus text format.
pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

/// Workers by most recent heartbeat.
pub(super) async fn workers(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let workers = shared.store.list_workers().await?;
    Ok(Json(json!({ "workers": workers })))
}
