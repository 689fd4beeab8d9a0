//! The HTTP API: `/health` and `/metrics` are open; everything under `/v1`
//! requires `Authorization: Bearer <WARREN_API_TOKEN>`.

mod auth;
mod error;
mod events;
mod jobs;
mod sse;
mod system;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
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
        .route("/jobs", post(jobs::create).get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/events", get(events::job_events))
        .route("/events", get(events::stream))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/approve", post(jobs::approve))
        .route("/workers", get(system::workers))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .nest("/v1", v1)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}
