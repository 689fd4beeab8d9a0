//! Queue controls over the HTTP API: list and show queues with their job
//! counts, pause and resume dispatch, change `max_in_flight`, the rate
//! limit, the tasks per task message and the per-task-type defaults.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warren_core::validate_name;

use crate::{ApiClient, ClientError};

/// A queue as the API returns it (`GET /v1/queues/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// Queue name.
    pub name: String,
    /// Whether dispatch is paused (running jobs still finish).
    pub paused: bool,
    /// Cap on jobs queued or running at once, across all coordinators.
    pub max_in_flight: Option<u32>,
    /// Dispatches per second, across all coordinators.
    pub rate_limit: Option<f64>,
    /// Most tasks one task message of the queue carries; `None`: the
    /// coordinators' `WARREN_TASK_BATCH`.
    #[serde(default)]
    pub task_batch: Option<u32>,
    /// Defaults by task type: `{"image": {"timeout_ms": 300000, "max_attempts": 3}}`.
    #[serde(default)]
    pub task_defaults: BTreeMap<String, Map<String, Value>>,
    /// Jobs per non-terminal state, plus `dead`.
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    /// How long the oldest due job has waited for dispatch.
    pub oldest_pending_age_ms: Option<i64>,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A change to a queue (`PATCH /v1/queues/{name}`). `None` leaves a setting
/// alone; `Some(None)` clears a limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueuePatch {
    /// Pause or resume dispatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Set or clear the in-flight cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<Option<u32>>,
    /// Set or clear the rate limit (jobs per second; fractions allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Option<f64>>,
    /// Set the tasks per task message, or go back to `WARREN_TASK_BATCH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_batch: Option<Option<u32>>,
    /// A JSON merge patch of the task defaults: `{"image": {"timeout_ms":
    /// 300000}}` sets one field of one type, `null` values clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_defaults: Option<Value>,
}

#[derive(Deserialize)]
struct QueuesBody {
    queues: Vec<Queue>,
}

impl ApiClient {
    /// `GET /v1/queues`, by name.
    pub async fn queues(&self) -> Result<Vec<Queue>, ClientError> {
        let request = self.request(Method::GET, "/v1/queues");
        Ok(self.send::<QueuesBody>(request).await?.queues)
    }

    /// `GET /v1/queues/{name}`.
    pub async fn queue(&self, name: &str) -> Result<Queue, ClientError> {
        validate_name("queue", name)?;
        self.send(self.request(Method::GET, &format!("/v1/queues/{name}")))
            .await
    }

    /// `PATCH /v1/queues/{name}`; creates the queue if it is new.
    pub async fn update_queue(&self, name: &str, patch: &QueuePatch) -> Result<Queue, ClientError> {
        validate_name("queue", name)?;
        let request = self
            .request(Method::PATCH, &format!("/v1/queues/{name}"))
            .json(patch);
        self.send(request).await
    }

    /// `POST /v1/queues/{name}/pause`: no new dispatches; running jobs finish.
    pub async fn pause_queue(&self, name: &str) -> Result<Queue, ClientError> {
        self.queue_action(name, "pause").await
    }

    /// `POST /v1/queues/{name}/resume`.
    pub async fn resume_queue(&self, name: &str) -> Result<Queue, ClientError> {
        self.queue_action(name, "resume").await
    }

    async fn queue_action(&self, name: &str, action: &str) -> Result<Queue, ClientError> {
        validate_name("queue", name)?;
        self.send(self.request(Method::POST, &format!("/v1/queues/{name}/{action}")))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_sends_only_what_it_changes_and_null_to_clear() {
        let patch = QueuePatch {
            max_in_flight: Some(None),
            rate_limit: Some(Some(0.5)),
            ..QueuePatch::default()
        };
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"max_in_flight": null, "rate_limit": 0.5})
        );
    }

    #[test]
    fn the_queue_resource_reads_the_api_shape() {
        let queue: Queue = serde_json::from_value(json!({
            "name": "media", "paused": true, "max_in_flight": null, "rate_limit": 2.5,
            "task_defaults": {"image": {"timeout_ms": 300000}},
            "counts": {"pending": 3, "dead": 1}, "oldest_pending_age_ms": 1200
        }))
        .unwrap();
        assert_eq!(queue.counts["pending"], 3);
        assert_eq!(queue.task_defaults["image"]["timeout_ms"], 300000);
    }

    #[tokio::test]
    async fn a_bad_queue_name_is_refused_before_sending() {
        let api = ApiClient::new("http://127.0.0.1:1", "token-0123456789abcdef").unwrap();
        let err = api.pause_queue("a/b").await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidName(_)), "{err:?}");
    }
}
