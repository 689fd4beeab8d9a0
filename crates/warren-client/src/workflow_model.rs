//! The API's workflow and template resources as typed values. Like
//! [`crate::Job`], each keeps fields it does not know in `extra`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;
use warren_core::workflow::WorkflowStatus;
use warren_core::JobState;

/// A workflow's progress (`GET /v1/workflows/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Workflow id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Status.
    pub status: WorkflowStatus,
    /// Share of steps finished, 0–100.
    pub percent: u32,
    /// Steps.
    pub total: u32,
    /// Steps completed.
    pub completed: u32,
    /// Steps failed (dead).
    pub failed: u32,
    /// Steps queued, running or waiting to retry.
    pub running: u32,
    /// Steps waiting for their dependencies or for dispatch.
    pub pending: u32,
    /// Steps that will not run.
    pub skipped: u32,
    /// Steps cancelled.
    pub cancelled: u32,
    /// Names of the steps in progress.
    pub current_steps: Vec<String>,
    /// Recoveries made.
    pub recovery_attempts: u32,
    /// Recoveries allowed.
    pub max_recovery_attempts: u32,
    /// Metadata.
    pub metadata: Value,
    /// `{"name", "version"}` of the template it came from, if any.
    pub template: Option<Value>,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every step, in definition order.
    pub steps: Vec<WorkflowStep>,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Workflow {
    /// Whether the workflow will not change again without an operator:
    /// completed, cancelled or failed.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            WorkflowStatus::Completed | WorkflowStatus::Cancelled | WorkflowStatus::Failed
        )
    }
}

/// One step of a [`Workflow`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStep {
    /// Step name.
    pub name: String,
    /// Position in the definition.
    pub index: u32,
    /// Its job's state.
    pub state: JobState,
    /// `all_succeeded`, `any_failed` or `always`.
    pub run_if: String,
    /// Parent step names.
    pub depends_on: Vec<String>,
    /// Queue.
    pub queue: String,
    /// Task type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// The job running it (a new one after a recovery).
    pub job_id: Uuid,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Last reported percent.
    pub progress: Option<f32>,
    /// Last reported stage.
    pub stage: Option<String>,
    /// Last error.
    pub error: Option<String>,
    /// Result once completed.
    pub result: Option<Value>,
    /// Worker running (or last running) it.
    pub worker_id: Option<String>,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of `GET /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// Workflow id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Status.
    pub status: WorkflowStatus,
    /// Metadata.
    pub metadata: Value,
    /// Recoveries made.
    pub recovery_attempts: u32,
    /// Recoveries allowed.
    pub max_recovery_attempts: u32,
    /// Steps.
    pub total: u32,
    /// Steps completed.
    pub completed: u32,
    /// Steps failed.
    pub failed: u32,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Finished at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Fields added by newer coordinators.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A page of `GET /v1/workflows`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPage {
    /// The workflows.
    pub workflows: Vec<WorkflowSummary>,
    /// Cursor of the next (older) page: pass it as `before`.
    pub next: Option<Uuid>,
}

/// Filters of [`crate::ApiClient::list_workflows`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowQuery {
    /// `active`, `failed`, `recoverable` or a status name.
    pub status: Option<String>,
    /// Only this name.
    pub name: Option<String>,
    /// Metadata fields that must equal these values.
    pub metadata: Vec<(String, String)>,
    /// Only workflows older than this id (the previous page's `next`).
    pub before: Option<Uuid>,
    /// Page size (the server caps it).
    pub limit: Option<u32>,
}

/// One row of a workflow's history (`GET /v1/workflows/{id}/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEvent {
    /// Event cursor (shared with job events).
    pub id: i64,
    /// The workflow.
    pub workflow_id: Uuid,
    /// Status before (`None` for creation).
    pub from_status: Option<WorkflowStatus>,
    /// Status after.
    pub to_status: WorkflowStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Actor, reason, step, recovery attempt.
    pub detail: Option<Value>,
}

/// The answer to a workflow submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowCreated {
    /// The workflow's id.
    pub id: Uuid,
    /// False when a workflow with this id already existed.
    pub created: bool,
}

/// The answer to pause, resume, cancel or recover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowMoved {
    /// The workflow.
    pub id: Uuid,
    /// Status before.
    pub from: WorkflowStatus,
    /// Status after.
    pub to: WorkflowStatus,
    /// Anything else the coordinator says (cancelled steps, recovery attempts).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to a step retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRetried {
    /// The workflow.
    pub id: Uuid,
    /// The step.
    pub step: String,
    /// Its job.
    pub job_id: Uuid,
    /// Its state before.
    pub from: JobState,
    /// Its state after (`retrying`, or `blocked` when it never ran).
    pub to: JobState,
    /// Its attempt number.
    pub attempt: u32,
}

/// One row of `GET /v1/templates`: a template's latest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSummary {
    /// Name.
    pub name: String,
    /// Latest version.
    pub version: u32,
    /// Its description.
    pub description: String,
    /// Versions stored.
    pub versions: u32,
    /// When the latest version was stored.
    pub created_at: DateTime<Utc>,
}

/// The answer to `PUT /v1/templates/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateStored {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// False when this exact version was already stored.
    pub created: bool,
}
