//! `GET /v1/stats`: the bounded report of [`warren_store::StatsReport`].

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use warren_store::StatsReport;

use super::error::ApiError;
use crate::shared::Shared;

/// Counts by state, queue and task type; throughput; percentiles.
pub(super) async fn get(State(shared): State<Arc<Shared>>) -> Result<Json<StatsReport>, ApiError> {
    Ok(Json(shared.store.stats_report().await?))
}
