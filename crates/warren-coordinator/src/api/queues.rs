//! `/v1/queues`: list and show queues with their job counts; change a
//! queue's controls (pause, `max_in_flight`, rate limit, `task_batch`,
//! task defaults). Changes are stored in the `queues` table, which every
//! coordinator's dispatch and intake read, so they apply cluster-wide at
//! once (`task_batch` on other coordinators within one gauge refresh).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use warren_core::queue::{validate_max_in_flight, validate_rate_limit, validate_task_batch};
use warren_core::validate_name;
use warren_store::{QueueInfo, QueueUpdate};

use super::error::ApiError;
use crate::shared::Shared;

/// `GET /v1/queues`: `{"queues": [queue…]}` by name.
pub(super) async fn list(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let queues = shared.store.list_queues().await?;
    Ok(Json(json!({ "queues": queues })))
}

/// `GET /v1/queues/{name}`; 404 for a queue that never had a job or a setting.
pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_name(&name)?;
    shared
        .store
        .get_queue(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("queue {name:?} not found")))
}

/// Body of `PATCH /v1/queues/{name}`: every field optional, `null` clears.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueuePatch {
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    max_in_flight: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    task_defaults: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    task_batch: Option<Option<i64>>,
}

/// Tells a field given as `null` (`Some(None)` / `Some(Null)`) from one left
/// out (`None`, through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl QueuePatch {
    /// The validated store update.
    fn into_update(self) -> Result<QueueUpdate, ApiError> {
        let bad = |e: warren_core::queue::InvalidQueueSetting| ApiError::BadRequest(e.to_string());
        let max_in_flight = match self.max_in_flight {
            Some(Some(n)) => {
                validate_max_in_flight(n).map_err(bad)?;
                Some(Some(n as i32))
            }
            other => other.map(|_| None),
        };
        let task_batch = match self.task_batch {
            Some(Some(n)) => {
                validate_task_batch(n).map_err(bad)?;
                Some(Some(n as i32))
            }
            other => other.map(|_| None),
        };
        if let Some(Some(rate)) = self.rate_limit {
            validate_rate_limit(rate).map_err(bad)?;
        }
        Ok(QueueUpdate {
            paused: self.paused,
            max_in_flight,
            rate_limit: self.rate_limit,
            task_defaults: self.task_defaults,
            task_batch,
        })
    }
}

/// `PATCH /v1/queues/{name}`: changes the given settings (creating the queue
/// if the name is new) and returns the queue.
pub(super) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Result<Json<QueuePatch>, JsonRejection>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_name(&name)?;
    let Json(patch) = body?;
    let update = patch.into_update()?;
    change(&shared, &name, update).await
}

/// `POST /v1/queues/{name}/pause`: dispatch stops; running jobs finish.
pub(super) async fn pause(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    set_paused(&shared, &name, true).await
}

/// `POST /v1/queues/{name}/resume`.
pub(super) async fn resume(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    set_paused(&shared, &name, false).await
}

async fn set_paused(
    shared: &Shared,
    name: &str,
    paused: bool,
) -> Result<Json<QueueInfo>, ApiError> {
    check_name(name)?;
    let update = QueueUpdate {
        paused: Some(paused),
        ..QueueUpdate::default()
    };
    change(shared, name, update).await
}

async fn change(
    shared: &Shared,
    name: &str,
    update: QueueUpdate,
) -> Result<Json<QueueInfo>, ApiError> {
    let queue = shared.store.update_queue(name, &update).await?;
    // Other coordinators hear of it from PostgreSQL; this one applies it to
    // its very next batch.
    shared.defaults_cache.invalidate();
    if update.task_batch.is_some() {
        shared.task_batches.set(name, queue.task_batch);
    }
    tracing::info!(
        queue = name,
        paused = queue.paused,
        max_in_flight = queue.max_in_flight,
        rate_limit = queue.rate_limit,
        task_batch = queue.task_batch,
        "queue settings changed through the API"
    );
    shared.metrics.set_queue_paused(name, queue.paused);
    // A resumed queue or a raised limit may have work due right now.
    shared.wake_dispatcher();
    Ok(Json(queue))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    validate_name("queue", name).map_err(|e| ApiError::BadRequest(e.to_string()))
}
