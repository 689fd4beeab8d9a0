//! Why a workflow definition was rejected. Every message names the steps at
//! fault, because the person reading it has to find them in a file.

use crate::names::NameError;

/// A workflow definition that cannot be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    /// Not valid JSON/YAML, or not the shape of a workflow.
    #[error("invalid workflow definition: {0}")]
    Parse(String),
    /// No steps at all.
    #[error("a workflow needs at least one step")]
    Empty,
    /// More steps than [`super::MAX_STEPS`].
    #[error("a workflow may have at most {max} steps, this one has {got}")]
    TooManySteps {
        /// The limit.
        max: usize,
        /// How many were given.
        got: usize,
    },
    /// The workflow name breaks the naming rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A workflow-level field is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field (`max_recovery_attempts`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A step's own fields are invalid (name, queue, type, priority, retry,
    /// timeout), for the same reasons a job's would be.
    #[error("step {step:?}: {reason}")]
    InvalidStep {
        /// The step.
        step: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two steps share a name.
    #[error("duplicate step name {name:?}: step names must be unique")]
    DuplicateStep {
        /// The repeated name.
        name: String,
    },
    /// `depends_on` names a step (or index) that does not exist.
    #[error("step {step:?} depends on {dependency}, which is not a step of this workflow")]
    UnknownDependency {
        /// The step with the bad dependency.
        step: String,
        /// The dependency as written (`"name"` or `index N`).
        dependency: String,
    },
    /// A step lists itself in `depends_on`.
    #[error("step {step:?} depends on itself")]
    SelfDependency {
        /// The step.
        step: String,
    },
    /// The dependencies form a cycle; `steps` is one cycle in dependency
    /// order, first step repeated at the end (`a -> b -> a`).
    #[error("dependency cycle: {}", .steps.join(" -> "))]
    Cycle {
        /// The steps of the cycle.
        steps: Vec<String>,
    },
    /// Steps that can never run, whatever the outcomes of the others.
    #[error("steps that can never run: {} ({reason})", .steps.join(", "))]
    Unsatisfiable {
        /// Every such step, in topological order.
        steps: Vec<String>,
        /// Why, naming the step(s) at the root of the problem.
        reason: String,
    },
    /// A `${steps...}` reference in a payload is malformed, names no step,
    /// or names a step that does not finish before this one.
    #[error("step {step:?}: bad reference {reference}: {reason}")]
    BadReference {
        /// The step whose payload holds the reference.
        step: String,
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
}
