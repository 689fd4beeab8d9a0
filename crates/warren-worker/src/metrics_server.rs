//! `/metrics` and `/health` of a worker (served when `WARREN_METRICS_ADDR` is set).

use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::WorkerMetrics;

/// Serves until `stop` is cancelled.
pub(crate) async fn serve(listener: TcpListener, metrics: WorkerMetrics, stop: CancellationToken) {
    let health_metrics = metrics.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics.render(),
                )
            }),
        )
        .route(
            "/health",
            get(move || async move {
                if health_metrics.connected.get() == 1 {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "broker disconnected")
                }
            }),
        );
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
}
