//! [`ApiClient`]: typed calls to the coordinator's HTTP API.
//!
//! Every `/v1` request carries `Authorization: Bearer <token>`; the token is
//! kept out of `Debug` output and error messages. Error responses become
//! [`ClientError::Api`] with the body's code and message; failures to get an
//! answer become [`ClientError::Http`].

use std::fmt;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;
use warren_core::protocol::{JobSpec, SubmitEnvelope};
use warren_core::JobState;

use crate::error::{api_error, ClientError};
use crate::model::{Health, Job, JobEvent, JobPage, Moved, Submitted, Worker};

/// Longest wait for a TCP connection to the coordinator.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence on an event stream (the coordinator sends a keep-alive
/// every 15 s) before it counts as broken.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// A client of one coordinator's HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// For event streams: no overall timeout, a read timeout instead.
    stream_http: reqwest::Client,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    base: String,
    /// Bearer token; empty means none is sent (enough for `/health`).
    token: String,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &if self.token.is_empty() { "" } else { "***" })
            .finish()
    }
}

#[derive(Deserialize)]
struct EventsBody {
    events: Vec<JobEvent>,
}

#[derive(Deserialize)]
struct WorkersBody {
    workers: Vec<Worker>,
}

impl ApiClient {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:8080`)
    /// authenticating with `token` (empty: no `Authorization` header).
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<ApiClient, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("expected an http:// URL"));
        }
        if url.query().is_some() {
            return Err(invalid("a base URL takes no query string"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("warren-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Http)?;
        let stream_http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(STREAM_READ_TIMEOUT)
            .user_agent(concat!("warren-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Http)?;
        Ok(ApiClient {
            http,
            stream_http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.into(),
        })
    }

    /// The base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn get_job(&self, id: Uuid) -> Result<Job, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/jobs/{id}")))
            .await
    }

    /// `GET /v1/jobs`: newest first, optionally only one state or queue,
    /// only jobs older than `before` (the previous page's `next`), at most
    /// `limit` (1–500; default 50). [`ApiClient::list`] takes every filter.
    pub async fn list_jobs(
        &self,
        state: Option<JobState>,
        queue: Option<&str>,
        before: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<JobPage, ClientError> {
        self.list(&crate::JobQuery {
            state,
            queue: queue.map(str::to_owned),
            cursor: before.map(|id| id.to_string()),
            limit,
            ..crate::JobQuery::default()
        })
        .await
    }

    /// `GET /v1/jobs/{id}/events`: the job's events with an id greater than
    /// `after` (0: from the start), oldest first, one page.
    pub async fn job_events(&self, id: Uuid, after: i64) -> Result<Vec<JobEvent>, ClientError> {
        let request = self
            .request(Method::GET, &format!("/v1/jobs/{id}/events"))
            .query(&[("after", after)]);
        Ok(self.send::<EventsBody>(request).await?.events)
    }

    /// `POST /v1/jobs/{id}/cancel` (a running job's worker is told to stop).
    pub async fn cancel(&self, id: Uuid) -> Result<Moved, ClientError> {
        self.operator_move(id, "cancel").await
    }

    /// `POST /v1/jobs/{id}/retry`: one more attempt for a dead job.
    pub async fn retry(&self, id: Uuid) -> Result<Moved, ClientError> {
        self.operator_move(id, "retry").await
    }

    /// `POST /v1/jobs/{id}/approve`: releases a job awaiting approval.
    pub async fn approve(&self, id: Uuid) -> Result<Moved, ClientError> {
        self.operator_move(id, "approve").await
    }

    /// `GET /v1/workers`, most recent heartbeat first.
    pub async fn workers(&self) -> Result<Vec<Worker>, ClientError> {
        let request = self.request(Method::GET, "/v1/workers");
        Ok(self.send::<WorkersBody>(request).await?.workers)
    }

    /// `GET /health`. A coordinator that is up but unhealthy answers 503 with
    /// the same body: that is returned as `Ok` with [`Health::is_ok`] false.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let response = self
            .http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .map_err(ClientError::Http)?;
        let status = response.status();
        let body = response.bytes().await.map_err(ClientError::Http)?;
        if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE {
            if let Ok(health) = serde_json::from_slice::<Health>(&body) {
                return Ok(health);
            }
        }
        Err(api_error(status.as_u16(), &body))
    }

    /// `POST /v1/jobs` with one `Submit` envelope: the jobs are inserted
    /// before the call returns (unlike AMQP submission). Specs are validated
    /// first.
    pub async fn submit_http(&self, specs: Vec<JobSpec>) -> Result<Submitted, ClientError> {
        for spec in &specs {
            spec.validate()?;
        }
        let envelope = SubmitEnvelope::new(specs);
        self.send(self.request(Method::POST, "/v1/jobs").json(&envelope))
            .await
    }

    async fn operator_move(&self, id: Uuid, action: &str) -> Result<Moved, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/jobs/{id}/{action}")))
            .await
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.authorized(self.http.request(method, format!("{}{path}", self.base)))
    }

    /// A `GET` of an event stream at `path` (no overall timeout).
    pub(crate) fn stream_request(&self, path: &str) -> RequestBuilder {
        self.authorized(self.stream_http.get(format!("{}{path}", self.base)))
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        }
    }

    /// Sends, then decodes a success body as `T` or an error body as
    /// [`ClientError::Api`].
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await.map_err(ClientError::Http)?;
        let status = response.status();
        if status.is_success() {
            return response.json::<T>().await.map_err(ClientError::Http);
        }
        let body = response.bytes().await.map_err(ClientError::Http)?;
        Err(api_error(status.as_u16(), &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unusable_base_urls() {
        assert!(ApiClient::new("not a url", "t").is_err());
        assert!(ApiClient::new("ftp://host", "t").is_err());
        assert!(ApiClient::new("http://host:8080/?x=1", "t").is_err());
        let api = ApiClient::new("http://host:8080/", "t").unwrap();
        assert_eq!(api.base_url(), "http://host:8080");
    }

    #[test]
    fn debug_hides_the_token() {
        let api = ApiClient::new("http://host:8080", "s3cret-token").unwrap();
        assert!(!format!("{api:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let api = ApiClient::new("http://127.0.0.1:1", "s3cret-token").unwrap();
        let err = api.get_job(Uuid::now_v7()).await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert!(err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("cannot connect to the coordinator at http://127.0.0.1:1"),
            "{text}"
        );
        assert!(!text.contains("s3cret"));
    }
}
