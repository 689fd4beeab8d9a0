//! Raw HTTP calls to a coordinator's API with any method, token and body,
//! for tests of validation and authentication.

use serde_json::Value;

/// Read-only API token of every test coordinator (`WARREN_API_READ_TOKEN`).
pub const TEST_READ_TOKEN: &str = "test-read-token-0123456789";

/// Sends `method path` with `Authorization: Bearer token` (none if `None`)
/// and `body` as JSON (if any); returns the status and the body, parsed as
/// JSON when it is JSON (else as a JSON string).
pub async fn api_call(
    api_url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
    let mut request = reqwest::Client::new().request(method, format!("{api_url}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
