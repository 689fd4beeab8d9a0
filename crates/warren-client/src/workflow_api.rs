//! [`ApiClient`] calls for workflows and templates.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warren_core::protocol::WorkflowSubmission;
use warren_core::workflow::Template;

use crate::api::ApiClient;
use crate::error::ClientError;
use crate::workflow_model::{
    StepRetried, TemplateStored, TemplateSummary, Workflow, WorkflowCreated, WorkflowEvent,
    WorkflowMoved, WorkflowPage, WorkflowQuery,
};

#[derive(Deserialize)]
struct EventsBody {
    events: Vec<WorkflowEvent>,
}

#[derive(Deserialize)]
struct TemplatesBody {
    templates: Vec<TemplateSummary>,
}

impl ApiClient {
    /// `POST /v1/workflows`: creates a workflow (a definition, or a stored
    /// template with variables). The coordinator validates it first and
    /// answers 400 naming the steps or variables at fault.
    pub async fn submit_workflow(
        &self,
        submission: &WorkflowSubmission,
    ) -> Result<WorkflowCreated, ClientError> {
        let request = self.request(Method::POST, "/v1/workflows").json(submission);
        self.send(request).await
    }

    /// `GET /v1/workflows/{id}`: status, counts and every step.
    pub async fn get_workflow(&self, id: Uuid) -> Result<Workflow, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/workflows/{id}")))
            .await
    }

    /// `GET /v1/workflows`: newest first, filtered.
    pub async fn list_workflows(&self, query: &WorkflowQuery) -> Result<WorkflowPage, ClientError> {
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(status) = &query.status {
            params.push(("status".into(), status.clone()));
        }
        if let Some(name) = &query.name {
            params.push(("name".into(), name.clone()));
        }
        for (key, value) in &query.metadata {
            params.push((format!("meta.{key}"), value.clone()));
        }
        if let Some(before) = query.before {
            params.push(("before".into(), before.to_string()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit".into(), limit.to_string()));
        }
        self.send(self.request(Method::GET, "/v1/workflows").query(&params))
            .await
    }

    /// `GET /v1/workflows/{id}/events`: status changes after cursor `after`.
    pub async fn workflow_events(
        &self,
        id: Uuid,
        after: i64,
    ) -> Result<Vec<WorkflowEvent>, ClientError> {
        let request = self
            .request(Method::GET, &format!("/v1/workflows/{id}/events"))
            .query(&[("after", after)]);
        Ok(self.send::<EventsBody>(request).await?.events)
    }

    /// `POST /v1/workflows/{id}/pause`.
    pub async fn pause_workflow(&self, id: Uuid) -> Result<WorkflowMoved, ClientError> {
        self.workflow_action(id, "pause", None).await
    }

    /// `POST /v1/workflows/{id}/resume`.
    pub async fn resume_workflow(&self, id: Uuid) -> Result<WorkflowMoved, ClientError> {
        self.workflow_action(id, "resume", None).await
    }

    /// `POST /v1/workflows/{id}/cancel`.
    pub async fn cancel_workflow(&self, id: Uuid) -> Result<WorkflowMoved, ClientError> {
        self.workflow_action(id, "cancel", None).await
    }

    /// `POST /v1/workflows/{id}/recover` from step `from_step`.
    pub async fn recover_workflow(
        &self,
        id: Uuid,
        from_step: &str,
    ) -> Result<WorkflowMoved, ClientError> {
        self.workflow_action(id, "recover", Some(json!({ "from_step": from_step })))
            .await
    }

    /// `POST /v1/workflows/{id}/steps/{step}/retry`.
    pub async fn retry_workflow_step(
        &self,
        id: Uuid,
        step: &str,
    ) -> Result<StepRetried, ClientError> {
        let path = format!("/v1/workflows/{id}/steps/{}/retry", encode_segment(step));
        self.send(self.request(Method::POST, &path)).await
    }

    /// `PUT /v1/templates/{name}`: stores a new version of a template.
    pub async fn put_template(&self, template: &Template) -> Result<TemplateStored, ClientError> {
        let path = format!("/v1/templates/{}", encode_segment(&template.name));
        self.send(self.request(Method::PUT, &path).json(template))
            .await
    }

    /// `GET /v1/templates/{name}`: a version, or the latest.
    pub async fn get_template(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Template, ClientError> {
        let path = format!("/v1/templates/{}", encode_segment(name));
        let mut request = self.request(Method::GET, &path);
        if let Some(version) = version {
            request = request.query(&[("version", version)]);
        }
        let mut document: Map<String, Value> = self.send(request).await?;
        document.remove("created_at");
        serde_json::from_value(Value::Object(document)).map_err(|e| ClientError::Api {
            status: 200,
            code: "unexpected".into(),
            message: format!("unreadable template {name:?}: {e}"),
        })
    }

    /// `GET /v1/templates`: the latest version of each template.
    pub async fn list_templates(&self) -> Result<Vec<TemplateSummary>, ClientError> {
        let request = self
            .request(Method::GET, "/v1/templates")
            .query(&[("limit", 500)]);
        Ok(self.send::<TemplatesBody>(request).await?.templates)
    }

    async fn workflow_action(
        &self,
        id: Uuid,
        action: &str,
        body: Option<Value>,
    ) -> Result<WorkflowMoved, ClientError> {
        let mut request = self.request(Method::POST, &format!("/v1/workflows/{id}/{action}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }
}

/// Percent-encodes a path segment (names are `[A-Za-z0-9_.-]`, so this only
/// matters for names the server will reject anyway).
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Longest delay between polls after failures.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// What a [`wait_for_workflow`] observer is told.
#[derive(Debug)]
pub enum WorkflowWaitEvent<'a> {
    /// A fresh view of the workflow (every poll).
    Update(&'a Workflow),
    /// A poll failed with an error worth retrying (the coordinator is
    /// restarting or unreachable); the next one follows in `retry_in`.
    Retrying {
        /// Why the poll failed.
        error: &'a ClientError,
        /// Delay before the next poll.
        retry_in: Duration,
    },
}

/// Polls a workflow every `poll` until it is finished (completed, failed or
/// cancelled), telling `observe` about every view and every retried failure.
/// Transient errors (coordinator restarting) are retried with backoff from
/// 500 ms to 5 s. Returns the final view.
pub async fn wait_for_workflow(
    api: &ApiClient,
    id: Uuid,
    poll: Duration,
    mut observe: impl FnMut(WorkflowWaitEvent<'_>),
) -> Result<Workflow, ClientError> {
    let mut delay = Duration::from_millis(500);
    loop {
        match api.get_workflow(id).await {
            Ok(workflow) => {
                delay = Duration::from_millis(500);
                observe(WorkflowWaitEvent::Update(&workflow));
                if workflow.is_finished() {
                    return Ok(workflow);
                }
                tokio::time::sleep(poll).await;
            }
            Err(error) if error.is_transient() => {
                observe(WorkflowWaitEvent::Retrying {
                    error: &error,
                    retry_in: delay,
                });
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX_DELAY);
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("dataset-build.v2"), "dataset-build.v2");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
