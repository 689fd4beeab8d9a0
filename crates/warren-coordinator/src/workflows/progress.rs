//! The progress view of one workflow (`GET /v1/workflows/{id}`), in the
//! shape of seed 000's `get_workflow_progress`: status, percent, step
//! counts, the steps in progress, recovery attempts and every step's state.

use serde::Serialize;
use serde_json::Value;
use warren_core::workflow::WorkflowSpec;
use warren_core::JobState;
use warren_store::{StepRow, WorkflowRow};

/// Step counts of a workflow by how far each step got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    /// Every step.
    pub(crate) total: usize,
    /// Completed.
    pub(crate) completed: usize,
    /// Failed or timed out with no retry coming (dead).
    pub(crate) failed: usize,
    /// Queued, running, or waiting to retry.
    pub(crate) running: usize,
    /// Waiting for dependencies, or released and not yet dispatched.
    pub(crate) pending: usize,
    /// Will not run.
    pub(crate) skipped: usize,
    /// Cancelled.
    pub(crate) cancelled: usize,
}

impl Counts {
    /// Counts `steps` by state.
    pub(crate) fn of(steps: &[StepRow]) -> Counts {
        let mut counts = Counts {
            total: steps.len(),
            ..Counts::default()
        };
        for step in steps {
            match step.state() {
                JobState::Completed => counts.completed += 1,
                JobState::Failed | JobState::Timeout => counts.failed += 1,
                JobState::Queued | JobState::Running | JobState::Retrying => counts.running += 1,
                JobState::Blocked | JobState::Pending | JobState::AwaitingApproval => {
                    counts.pending += 1
                }
                JobState::Skipped => counts.skipped += 1,
                JobState::Cancelled => counts.cancelled += 1,
            }
        }
        counts
    }

    /// Share of steps that have finished, 0–100.
    pub(crate) fn percent(&self) -> u32 {
        if self.total == 0 {
            return 100;
        }
        let finished = self.completed + self.failed + self.skipped + self.cancelled;
        ((finished * 100) as f64 / self.total as f64).round() as u32
    }
}

/// One step in the view.
#[derive(Debug, Serialize)]
struct StepView<'a> {
    name: &'a str,
    index: i32,
    state: JobState,
    run_if: &'static str,
    depends_on: &'a [String],
    queue: &'a str,
    #[serde(rename = "type")]
    task_type: &'a str,
    job_id: uuid::Uuid,
    attempts: i32,
    max_attempts: i32,
    progress: Option<f32>,
    stage: Option<&'a str>,
    error: Option<&'a str>,
    result: Option<&'a Value>,
    worker_id: Option<&'a str>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The whole view.
#[derive(Debug, Serialize)]
struct ProgressView<'a> {
    id: uuid::Uuid,
    name: &'a str,
    status: &'a str,
    percent: u32,
    #[serde(flatten)]
    counts: Counts,
    current_steps: Vec<&'a str>,
    recovery_attempts: i32,
    max_recovery_attempts: i32,
    metadata: &'a Value,
    template: Option<Value>,
    created_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    steps: Vec<StepView<'a>>,
}

/// The progress document of `workflow` with its current `steps`.
pub(crate) fn progress(workflow: &WorkflowRow, steps: &[StepRow]) -> Value {
    let spec: Option<WorkflowSpec> = serde_json::from_value(workflow.spec.clone()).ok();
    let run_if = |name: &str| {
        spec.as_ref()
            .and_then(|s| s.step(name))
            .map_or("all_succeeded", |s| s.run_if.as_str())
    };
    let counts = Counts::of(steps);
    let view = ProgressView {
        id: workflow.id,
        name: &workflow.name,
        status: &workflow.status,
        percent: if workflow.status == "completed" {
            100
        } else {
            counts.percent()
        },
        counts,
        current_steps: steps
            .iter()
            .filter(|s| {
                matches!(
                    s.state(),
                    JobState::Queued | JobState::Running | JobState::Retrying
                )
            })
            .map(|s| s.name.as_str())
            .collect(),
        recovery_attempts: workflow.recovery_attempts,
        max_recovery_attempts: workflow.max_recovery_attempts,
        metadata: &workflow.metadata,
        template: workflow
            .template_name
            .as_ref()
            .map(|name| serde_json::json!({ "name": name, "version": workflow.template_version })),
        created_at: workflow.created_at,
        started_at: workflow.started_at,
        finished_at: workflow.finished_at,
        steps: steps
            .iter()
            .map(|s| StepView {
                name: &s.name,
                index: s.index,
                state: s.state(),
                run_if: run_if(&s.name),
                depends_on: &s.depends_on,
                queue: &s.queue,
                task_type: &s.task_type,
                job_id: s.job_id,
                attempts: s.attempt,
                max_attempts: s.max_attempts,
                progress: s.progress,
                stage: s.stage.as_deref(),
                error: s.error.as_deref(),
                result: s.result.as_ref(),
                worker_id: s.worker_id.as_deref(),
                started_at: s.started_at,
                finished_at: s.finished_at,
            })
            .collect(),
    };
    serde_json::to_value(view).unwrap_or(Value::Null)
}
