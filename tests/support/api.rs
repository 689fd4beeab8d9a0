//! HTTP calls to a test coordinator beyond [`TestEnv::api_get`] and
//! [`TestEnv::api_post`]: JSON bodies and arbitrary methods.

use serde_json::Value;

use crate::{TestEnv, TEST_TOKEN};

/// A response reduced to what tests check.
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Allow` header, if any.
    pub allow: Option<String>,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
}

impl TestEnv {
    /// POSTs `body` as JSON to `path` with the test token.
    pub async fn api_post_json(&self, api_url: &str, path: &str, body: &Value) -> ApiResponse {
        let request = reqwest::Client::new()
            .post(format!("{api_url}{path}"))
            .bearer_auth(TEST_TOKEN)
            .json(body);
        respond(request).await
    }

    /// Sends `method` to `path` with the test token and no body.
    pub async fn api_call(&self, api_url: &str, method: &str, path: &str) -> ApiResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let request = reqwest::Client::new()
            .request(method, format!("{api_url}{path}"))
            .bearer_auth(TEST_TOKEN);
        respond(request).await
    }
}

async fn respond(request: reqwest::RequestBuilder) -> ApiResponse {
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get(reqwest::header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.expect("body");
    ApiResponse {
        status,
        allow,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}
