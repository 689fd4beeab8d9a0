//! API errors: JSON `{"error": {"code", "message"}}` with the right status.
//! Database text never reaches a client; it is logged instead.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use warren_store::StoreError;

/// Everything an API handler can fail with.
#[derive(Debug)]
pub(super) enum ApiError {
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    Conflict(String),
    /// 409 for a conflict that is not a lifecycle move (e.g. recovery
    /// attempts exhausted, a template version that is not newer).
    Refused(String),
    PayloadTooLarge(String),
    MethodNotAllowed,
    Unavailable,
    /// 503 for a reason other than the database (a limit, still starting).
    Busy(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => ApiError::NotFound(format!("job {id} not found")),
            StoreError::IllegalTransition(e) => ApiError::Conflict(e.to_string()),
            StoreError::Missing(m) => ApiError::NotFound(m),
            StoreError::IllegalWorkflowTransition(e) => ApiError::Conflict(e.to_string()),
            StoreError::Conflict(m) => ApiError::Refused(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            other => {
                tracing::error!(error = %other, "database error in API handler");
                ApiError::Unavailable
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token".to_owned(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "illegal_transition", m),
            ApiError::Refused(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method (see the Allow header)".to_owned(),
            ),
            ApiError::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, "busy", m),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; retry later".to_owned(),
            ),
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(rejection.body_text())
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// Fallback for unknown routes.
pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Fallback for a known route called with a method it does not serve.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
