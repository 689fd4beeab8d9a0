//! Rows and filters of workflows, their steps, events and templates.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::model::StateText;

/// A workflow as stored.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WorkflowRow {
    /// Client-chosen UUID v7.
    pub id: Uuid,
    /// The spec's name.
    pub name: String,
    /// `pending`, `running`, `paused`, `completed`, `failed`, `cancelled` or `recovering`.
    pub status: String,
    /// The concrete spec (a template already instantiated).
    pub spec: Value,
    /// Free-form metadata (a JSON object).
    pub metadata: Value,
    /// Recoveries allowed.
    pub max_recovery_attempts: i32,
    /// Recoveries made.
    pub recovery_attempts: i32,
    /// Template it was instantiated from, if any.
    pub template_name: Option<String>,
    /// That template's version.
    pub template_version: Option<i32>,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// First evaluated (pending → running) at.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached completed / failed / cancelled at.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One row of a listing: the workflow without its spec, with step counts.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WorkflowSummary {
    /// Workflow id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Status.
    pub status: String,
    /// Metadata.
    pub metadata: Value,
    /// Recoveries made.
    pub recovery_attempts: i32,
    /// Recoveries allowed.
    pub max_recovery_attempts: i32,
    /// Template name, if any.
    pub template_name: Option<String>,
    /// Template version, if any.
    pub template_version: Option<i32>,
    /// Steps.
    pub total: i64,
    /// Steps completed.
    pub completed: i64,
    /// Steps failed (dead).
    pub failed: i64,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The current row of one step.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct StepRow {
    /// Step name.
    pub name: String,
    /// Position in the spec.
    pub index: i32,
    /// The job that runs it (a new one after a recovery).
    pub job_id: Uuid,
    /// The job's state.
    #[sqlx(try_from = "String")]
    pub state: StateText,
    /// Attempts made so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Queue.
    pub queue: String,
    /// Task type.
    pub task_type: String,
    /// Parent step names.
    pub depends_on: Vec<String>,
    /// Last reported percent.
    pub progress: Option<f32>,
    /// Last reported stage.
    pub stage: Option<String>,
    /// Error of the last failed attempt.
    pub error: Option<String>,
    /// Result once completed.
    pub result: Option<Value>,
    /// Worker running (or last running) it.
    pub worker_id: Option<String>,
    /// Last started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at.
    pub finished_at: Option<DateTime<Utc>>,
}

impl StepRow {
    /// The step's job state.
    pub fn state(&self) -> warren_core::JobState {
        self.state.0
    }
}

/// One row of a workflow's history.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WorkflowEvent {
    /// Event cursor, from the same sequence as job events.
    pub id: i64,
    /// The workflow.
    pub workflow_id: Uuid,
    /// Status before (None for creation).
    pub from_status: Option<String>,
    /// Status after.
    pub to_status: String,
    /// When (database clock).
    pub at: DateTime<Utc>,
    /// Actor, reason, recovery attempt, step.
    pub detail: Option<Value>,
}

/// One stored template version.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TemplateRow {
    /// Template name.
    pub name: String,
    /// Version (from 1).
    pub version: i32,
    /// Description.
    pub description: String,
    /// The whole Template document.
    pub spec: Value,
    /// Stored at.
    pub created_at: DateTime<Utc>,
}

/// A template's latest version, for listings.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TemplateSummary {
    /// Template name.
    pub name: String,
    /// Latest version.
    pub version: i32,
    /// Its description.
    pub description: String,
    /// How many versions are stored.
    pub versions: i64,
    /// When the latest version was stored.
    pub created_at: DateTime<Utc>,
}

/// Which statuses a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusFilter {
    /// pending, running, paused or recovering.
    Active,
    /// failed and with recovery attempts left.
    Recoverable,
    /// Exactly this status.
    Is(String),
}

/// Filters for listing workflows (newest first, cursor = last id seen).
#[derive(Debug, Clone, Default)]
pub struct WorkflowFilter {
    /// Status filter.
    pub status: Option<StatusFilter>,
    /// Only this name.
    pub name: Option<String>,
    /// Metadata fields that must match: the value matches a JSON string
    /// equal to it, or the JSON value it parses as (`42`, `true`).
    pub metadata: Vec<(String, String)>,
    /// Only ids older than this one (the page cursor).
    pub before: Option<Uuid>,
    /// Page size, capped at [`crate::MAX_PAGE_SIZE`].
    pub limit: i64,
}
