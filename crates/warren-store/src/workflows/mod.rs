//! Workflows: their rows, the step rows (jobs) that make them up, templates,
//! the engine's evaluation transaction and the operator's controls.
//!
//! Every step is a row of `jobs` with `workflow_id`, `step_name` and
//! `step_index`. Recovery never moves a job out of a terminal state: it marks
//! the step's row `superseded_at` and inserts a fresh row for the same step,
//! so "the step's row" always means the one with `superseded_at IS NULL`
//! (a partial unique index guarantees there is exactly one).

mod control;
pub(crate) mod engine;
mod insert;
mod model;
mod query;
mod rows;
mod templates;

pub use control::{Cancelled, StepRetried};
pub use engine::Evaluation;
pub use insert::NewWorkflow;
pub use model::{
    StatusFilter, StepRow, TemplateRow, TemplateSummary, WorkflowEvent, WorkflowFilter,
    WorkflowRow, WorkflowSummary,
};
