//! Bearer-token authentication with constant-time comparisons, and two
//! roles: the admin token (`WARREN_API_TOKEN`) may do anything; the optional
//! read-only token (`WARREN_API_READ_TOKEN`) may only read. Tokens are never
//! logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::shared::Shared;

/// What a presented token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Reader,
}

/// Rejects requests without a valid bearer token (401), and mutating
/// requests (anything but GET and HEAD) made with the read-only token (403).
pub(super) async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let config = &shared.config;
    match role(
        presented,
        &config.api_token,
        config.api_read_token.as_deref(),
    ) {
        None => Err(ApiError::Unauthorized),
        Some(Role::Reader) if !is_read_only(request.method()) => Err(ApiError::Forbidden(
            "the read-only token cannot change anything; use the admin token".into(),
        )),
        Some(_) => Ok(next.run(request).await),
    }
}

/// The role of `presented`. Both comparisons always run, so the timing does
/// not tell which token (if any) matched.
fn role(presented: &str, admin: &str, reader: Option<&str>) -> Option<Role> {
    let is_admin = constant_time_eq(presented.as_bytes(), admin.as_bytes());
    let is_reader = reader.is_some_and(|r| constant_time_eq(presented.as_bytes(), r.as_bytes()));
    match (is_admin, is_reader) {
        (true, _) => Some(Role::Admin),
        (false, true) => Some(Role::Reader),
        (false, false) => None,
    }
}

/// Methods that change nothing.
fn is_read_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Compares without an early exit, so timing reveals nothing but the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_role() {
        let admin = "admin-token-0123456789";
        let reader = "reader-token-0123456789";
        assert_eq!(role(admin, admin, Some(reader)), Some(Role::Admin));
        assert_eq!(role(reader, admin, Some(reader)), Some(Role::Reader));
        assert_eq!(role("", admin, Some(reader)), None);
        assert_eq!(role(reader, admin, None), None);
        assert!(is_read_only(&Method::GET));
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!is_read_only(&method));
        }
    }

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
