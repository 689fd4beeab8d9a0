//! The HTTP API: `/health` and `/metrics` are open; everything under `/v1`
//! requires `Authorization: Bearer <token>`: the admin token
//! (`WARREN_API_TOKEN`) for anything, or the read-only token
//! (`WARREN_API_READ_TOKEN`) for `GET`s. The dashboard's static files (`/`,
//! `/ui/<file>`) are open too: they carry no data.

mod auth;
mod cleanup;
mod error;
mod events;
mod jobs;
mod listing;
mod note;
mod openapi;
mod queues;
mod sse;
mod stats;
mod system;
mod templates;
mod ui;
mod workflows;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// Serves the API until shutdown.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let app = router(shared);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_payload_bytes;
    let v1 = Router::new()
        .route("/jobs", post(jobs::create).get(listing::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/events", get(events::job_events))
        .route("/events", get(events::stream))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/approve", post(jobs::approve))
        .route("/workers", get(system::workers))
        .route("/openapi.json", get(openapi::get))
        .route("/stats", get(stats::get))
        .route("/cleanup", post(cleanup::run))
        .route("/queues", get(queues::list))
        .route("/queues/{name}", get(queues::get).patch(queues::patch))
        .route("/queues/{name}/pause", post(queues::pause))
        .route("/queues/{name}/resume", post(queues::resume))
        .route("/workflows", post(workflows::create).get(workflows::list))
        .route("/workflows/{id}", get(workflows::get))
        .route("/workflows/{id}/events", get(events::workflow_events))
        .route("/workflows/{id}/pause", post(workflows::pause))
        .route("/workflows/{id}/resume", post(workflows::resume))
        .route("/workflows/{id}/cancel", post(workflows::cancel))
        .route("/workflows/{id}/recover", post(workflows::recover))
        .route(
            "/workflows/{id}/steps/{name}/retry",
            post(workflows::retry_step),
        )
        .route("/templates", get(templates::list))
        .route("/templates/{name}", put(templates::put).get(templates::get))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .nest("/v1", v1)
        .merge(ui::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}
