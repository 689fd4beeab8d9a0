//! [`ApiClient`] calls for operators: filtered listings, statistics,
//! cleanup, and approvals or cancels that say who and why.

use reqwest::Method;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warren_core::JobState;

use crate::error::ClientError;
use crate::model::{JobPage, Moved};
use crate::stats::{Cleanup, Stats};
use crate::ApiClient;

/// Filters, order and page of `GET /v1/jobs`; everything is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this task type.
    pub task_type: Option<String>,
    /// Only steps of this workflow.
    pub workflow: Option<Uuid>,
    /// Only dead jobs (`failed` / `timeout` with no attempt left).
    pub dead: bool,
    /// `created_at` (default) or `finished_at`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// The previous page's `next`.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

impl JobQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let mut add = |key, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((key, value));
            }
        };
        add("state", self.state.map(|s| s.as_str().to_owned()));
        add("queue", self.queue.clone());
        add("type", self.task_type.clone());
        add("workflow", self.workflow.map(|id| id.to_string()));
        add("dead", self.dead.then(|| "true".to_owned()));
        add("sort", self.sort.clone());
        add("order", self.order.clone());
        add("cursor", self.cursor.clone());
        add("limit", self.limit.map(|n| n.to_string()));
        pairs
    }
}

/// The optional body of an approve or cancel.
fn note(by: Option<&str>, field: &str, text: Option<&str>) -> Option<Value> {
    let mut body = Map::new();
    if let Some(by) = by {
        body.insert("by".into(), json!(by));
    }
    if let Some(text) = text {
        body.insert(field.into(), json!(text));
    }
    (!body.is_empty()).then_some(Value::Object(body))
}

impl ApiClient {
    /// `GET /v1/jobs` with any filters, order and cursor.
    pub async fn list(&self, query: &JobQuery) -> Result<JobPage, ClientError> {
        self.send(self.request(Method::GET, "/v1/jobs").query(&query.pairs()))
            .await
    }

    /// `GET /v1/stats`.
    pub async fn stats(&self) -> Result<Stats, ClientError> {
        self.send(self.request(Method::GET, "/v1/stats")).await
    }

    /// `POST /v1/cleanup`: deletes jobs in `states` (empty: every finished
    /// state) that finished more than `older_than` (e.g. `7d`) ago. One call
    /// does a bounded amount; repeat while `complete` is false.
    pub async fn cleanup(
        &self,
        older_than: &str,
        states: &[JobState],
    ) -> Result<Cleanup, ClientError> {
        let mut body = json!({ "older_than": older_than });
        if !states.is_empty() {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            body["states"] = json!(names);
        }
        self.send(self.request(Method::POST, "/v1/cleanup").json(&body))
            .await
    }

    /// `POST /v1/jobs/{id}/approve`, recording `by` and `comment` in the event.
    pub async fn approve_as(
        &self,
        id: Uuid,
        by: Option<&str>,
        comment: Option<&str>,
    ) -> Result<Moved, ClientError> {
        self.move_with_note(id, "approve", note(by, "comment", comment))
            .await
    }

    /// `POST /v1/jobs/{id}/cancel`, recording `by` and `reason` in the event.
    pub async fn cancel_as(
        &self,
        id: Uuid,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Moved, ClientError> {
        self.move_with_note(id, "cancel", note(by, "reason", reason))
            .await
    }

    async fn move_with_note(
        &self,
        id: Uuid,
        action: &str,
        body: Option<Value>,
    ) -> Result<Moved, ClientError> {
        let request = self.request(Method::POST, &format!("/v1/jobs/{id}/{action}"));
        match body {
            Some(body) => self.send(request.json(&body)).await,
            None => self.send(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_hold_only_what_is_set() {
        assert!(JobQuery::default().pairs().is_empty());
        let query = JobQuery {
            task_type: Some("echo".into()),
            dead: true,
            limit: Some(10),
            ..JobQuery::default()
        };
        assert_eq!(
            query.pairs(),
            vec![
                ("type", "echo".to_owned()),
                ("dead", "true".to_owned()),
                ("limit", "10".to_owned())
            ]
        );
    }

    #[test]
    fn notes_are_sent_only_when_given() {
        assert_eq!(note(None, "comment", None), None);
        assert_eq!(
            note(Some("alice"), "reason", Some("dup")),
            Some(json!({"by": "alice", "reason": "dup"}))
        );
    }
}
