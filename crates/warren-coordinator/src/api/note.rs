//! Optional bodies of `approve` and `cancel`: who moved the job and why,
//! written into the event of the move. Without a body the event says
//! `{"by": "api"}`.

use axum::extract::rejection::JsonRejection;
use axum::Json;
use serde::Deserialize;
use warren_store::MoveNote;

use super::error::ApiError;

/// Longest `by`, in characters.
const MAX_BY_CHARS: usize = 100;
/// Longest `comment` or `reason`, in characters.
const MAX_TEXT_CHARS: usize = 1_000;
/// `by` when the request names nobody.
const DEFAULT_BY: &str = "api";

/// Body of `POST /v1/jobs/{id}/approve`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveBody {
    by: Option<String>,
    comment: Option<String>,
}

/// Body of `POST /v1/jobs/{id}/cancel`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelBody {
    by: Option<String>,
    reason: Option<String>,
}

/// The note of an approval; no body (no `Content-Type`) is allowed.
pub(super) fn approval(
    body: Result<Option<Json<ApproveBody>>, JsonRejection>,
) -> Result<MoveNote, ApiError> {
    let body = body?.map(|Json(b)| b).unwrap_or_default();
    note(body.by, Some(("comment", body.comment)), None)
}

/// The note of a cancellation; no body (no `Content-Type`) is allowed.
pub(super) fn cancellation(
    body: Result<Option<Json<CancelBody>>, JsonRejection>,
) -> Result<MoveNote, ApiError> {
    let body = body?.map(|Json(b)| b).unwrap_or_default();
    note(body.by, None, Some(("reason", body.reason)))
}

fn note(
    by: Option<String>,
    comment: Option<(&str, Option<String>)>,
    reason: Option<(&str, Option<String>)>,
) -> Result<MoveNote, ApiError> {
    let by = by.unwrap_or_else(|| DEFAULT_BY.to_owned());
    let by_chars = by.chars().count();
    if by_chars == 0 || by_chars > MAX_BY_CHARS || by.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "by must be 1 to {MAX_BY_CHARS} characters without control characters"
        )));
    }
    let text = |field: Option<(&str, Option<String>)>| match field {
        Some((name, Some(text))) if text.chars().count() > MAX_TEXT_CHARS => {
            Err(ApiError::BadRequest(format!(
                "{name} must be at most {MAX_TEXT_CHARS} characters"
            )))
        }
        Some((_, text)) => Ok(text.filter(|t| !t.is_empty())),
        None => Ok(None),
    };
    Ok(MoveNote {
        by,
        comment: text(comment)?,
        reason: text(reason)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounded() {
        let ok = note(
            Some("alice".into()),
            Some(("comment", Some("ok".into()))),
            None,
        )
        .unwrap();
        assert_eq!(ok.by, "alice");
        assert_eq!(ok.comment.as_deref(), Some("ok"));
        assert_eq!(note(None, None, None).unwrap().by, "api");
        assert!(note(Some(String::new()), None, None).is_err());
        assert!(note(Some("a\nb".into()), None, None).is_err());
        assert!(note(Some("x".repeat(101)), None, None).is_err());
        assert!(note(None, None, Some(("reason", Some("x".repeat(1001))))).is_err());
    }
}
