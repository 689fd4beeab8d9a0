//! The client's one error type, and the questions callers ask of it: is it
//! worth retrying ([`ClientError::is_transient`]), was the coordinator
//! unreachable ([`ClientError::is_connect`]), was it a 404 or a 409.
//!
//! No variant carries the API token: it only ever travels in a request header.

use serde::Deserialize;
use uuid::Uuid;
use warren_broker::BrokerError;
use warren_core::protocol::InvalidJobSpec;

/// Longest piece of a non-JSON error body kept in a message.
const MAX_BODY_IN_MESSAGE: usize = 200;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The coordinator answered with an error status and (usually) a JSON
    /// body `{"error": {"code", "message"}}`.
    #[error("{message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// Machine-readable code (`not_found`, `illegal_transition`, ...).
        code: String,
        /// Human-readable explanation.
        message: String,
    },
    /// The request did not get an answer (connection refused or reset,
    /// timeout) or the answer could not be read.
    #[error("{}", describe_http(.0))]
    Http(#[source] reqwest::Error),
    /// The broker could not be reached at all.
    #[error("cannot connect to the broker at {url}: {source}")]
    BrokerConnect {
        /// The AMQP URL with its password redacted.
        url: String,
        /// What went wrong.
        #[source]
        source: BrokerError,
    },
    /// Declaring, publishing or confirming on the broker failed.
    #[error("broker error: {0}")]
    Broker(#[from] BrokerError),
    /// A job spec the coordinator would reject; nothing was sent.
    #[error("invalid job: {}", .0.reason)]
    InvalidJob(#[from] InvalidJobSpec),
    /// A workflow definition the coordinator would reject; nothing was sent.
    /// The message names the steps at fault.
    #[error("invalid workflow: {0}")]
    InvalidWorkflow(String),
    /// One job alone is larger than the coordinator accepts in a message.
    #[error("job {id} encodes to {size} bytes, over the {limit}-byte message limit")]
    TooLarge {
        /// The job.
        id: Uuid,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A queue name the coordinator would reject; nothing was sent.
    #[error(transparent)]
    InvalidName(#[from] warren_core::NameError),
    /// An event stream broke off mid-way (connection lost, coordinator
    /// stopped): transient, reconnect with `Last-Event-ID`.
    #[error("event stream interrupted: {0}")]
    StreamInterrupted(String),
    /// An event stream sent something unreadable.
    #[error("unreadable event stream: {0}")]
    BadStream(String),
    /// The API base URL is not usable.
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is rejected.
        reason: String,
    },
}

impl ClientError {
    /// `true` when the coordinator (or broker) could not be reached at all:
    /// it is down or restarting, or the address is wrong.
    pub fn is_connect(&self) -> bool {
        match self {
            ClientError::Http(e) => e.is_connect(),
            ClientError::BrokerConnect { .. } => true,
            _ => false,
        }
    }

    /// `true` when trying the same call again later may well succeed:
    /// transport failures (refused, reset, timed out) and `502`/`503`/`504`.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Http(e) => !(e.is_builder() || e.is_decode() || e.is_redirect()),
            ClientError::Api { status, .. } => matches!(status, 502..=504),
            ClientError::BrokerConnect { .. } | ClientError::StreamInterrupted(_) => true,
            ClientError::Broker(e) => e.is_recoverable(),
            _ => false,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `true` for a 404 (unknown job, or not accepted yet).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// `true` for a 409 (the job's state does not allow the move).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// `true` for a 401 (missing or wrong token).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }
}

/// The API's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// Builds [`ClientError::Api`] from an error response's status and body,
/// falling back to the body text (or the status) when it is not the API's JSON.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ClientError {
    if let Ok(ErrorBody {
        error: ErrorDetail { code, message },
    }) = serde_json::from_slice(body)
    {
        return ClientError::Api {
            status,
            code,
            message,
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        let short: String = text.chars().take(MAX_BODY_IN_MESSAGE).collect();
        format!("HTTP {status}: {short}")
    };
    ClientError::Api {
        status,
        code: format!("http_{status}"),
        message,
    }
}

/// A one-line description of a transport error naming the endpoint and the
/// root cause (reqwest's own message stops at "error sending request").
fn describe_http(e: &reqwest::Error) -> String {
    let target = e.url().map(sanitized).unwrap_or_default();
    let cause = root_cause(e);
    if e.is_connect() {
        let origin = e.url().map(origin).unwrap_or_default();
        format!("cannot connect to the coordinator at {origin}: {cause}")
    } else if e.is_timeout() {
        format!("request to {target} timed out")
    } else if e.is_decode() {
        format!("unexpected response from {target}: {cause}")
    } else {
        format!("request to {target} failed: {cause}")
    }
}

/// The innermost error message of `e`'s source chain.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `scheme://host:port` of a URL.
fn origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// A URL without user-info or query string, safe to show.
fn sanitized(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_error_body() {
        let body = br#"{"error":{"code":"illegal_transition","message":"illegal job transition from completed to cancelled"}}"#;
        let err = api_error(409, body);
        assert!(err.is_conflict());
        assert!(!err.is_transient());
        match &err {
            ClientError::Api { code, message, .. } => {
                assert_eq!(code, "illegal_transition");
                assert_eq!(
                    message,
                    "illegal job transition from completed to cancelled"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "illegal job transition from completed to cancelled"
        );
    }

    #[test]
    fn falls_back_to_the_body_text_or_the_status() {
        let err = api_error(502, b"  Bad Gateway\n");
        assert_eq!(err.to_string(), "HTTP 502: Bad Gateway");
        assert!(err.is_transient());
        let err = api_error(503, b"");
        assert_eq!(err.to_string(), "HTTP 503");
        assert!(err.is_transient());
        let long = "x".repeat(1000);
        let err = api_error(500, long.as_bytes());
        assert!(err.to_string().len() < 220);
        assert!(api_error(404, br#"{"error":{"code":"not_found","message":"m"}}"#).is_not_found());
        // JSON of another shape is shown as text.
        assert_eq!(
            api_error(400, br#"{"x":1}"#).to_string(),
            r#"HTTP 400: {"x":1}"#
        );
    }

    #[test]
    fn urls_shown_in_errors_lose_credentials_and_queries() {
        let url = reqwest::Url::parse("http://u:secret@host:8080/v1/jobs?x=1").unwrap();
        let shown = sanitized(&url);
        assert!(!shown.contains("secret"));
        assert_eq!(shown, "http://host:8080/v1/jobs");
        assert_eq!(origin(&url), "http://host:8080");
    }
}
