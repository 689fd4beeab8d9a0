//! Workflows: DAGs of steps, each step one job. This module is the pure part:
//! the definition, its validation, the release rule, the final status, the
//! workflow lifecycle, payload references and templates. The engine in the
//! coordinator stores and drives them.
//!
//! # Definition
//!
//! A [`WorkflowSpec`] (JSON or YAML) has a `name`, `max_recovery_attempts`
//! (default 3), free-form `metadata` and `steps`. Each [`StepSpec`] carries
//! what its job needs (`queue`, `type`, `payload`, `priority`, `retry`,
//! `timeout_ms`, in the same shapes a job accepts) plus `depends_on` (step
//! names or 0-based indices into `steps`, both resolved to indices) and
//! `run_if` (`all_succeeded` by default, `any_failed`, `always`).
//!
//! ```yaml
//! name: dataset-build
//! steps:
//!   - {name: download, queue: default, type: exec, payload: {cmd: "fetch"}}
//!   - name: validate
//!     queue: default
//!     type: exec
//!     depends_on: [download]
//!     payload: {file: "${steps.download.result.path}"}
//!   - {name: alert, queue: default, type: echo, depends_on: [0, validate], run_if: any_failed}
//! ```
//!
//! [`WorkflowSpec::validate`] returns the [`Dag`] or a [`WorkflowError`]
//! naming the steps at fault: invalid fields (checked as the step's job
//! would be), duplicate names, unknown or self dependencies, cycles, steps
//! that can never run, and references to steps that are not upstream.
//!
//! # Execution rule
//!
//! [`decide`] says what to do with a blocked step from its parents'
//! outcomes: `all_succeeded` runs when every parent succeeded and is skipped
//! as soon as one failed, was skipped or cancelled; `any_failed` waits for
//! every parent and runs if one failed, else is skipped; `always` runs once
//! every parent finished. A step with no parents runs at once; an
//! `any_failed` step without parents could never run and is rejected, as is
//! every step that can only run after it (see [`WorkflowError::Unsatisfiable`]).
//! Independent branches therefore run in parallel and a step with several
//! parents waits for all of them.
//!
//! When every step has an outcome, [`final_status`] gives the workflow's
//! status: `failed` if any step failed (even if an `any_failed` handler then
//! succeeded), else `cancelled` if any was cancelled, else `completed`.
//!
//! # Lifecycle
//!
//! [`WorkflowStatus`] holds seed 000's states and the legal moves between
//! them; see that type for the table and the moves added to the seed's.
//! Recovery from a step resets [`Dag::downstream`] of it.
//!
//! # References and templates
//!
//! Payload strings may use `${steps.<name>.result[.key...]}`, resolved by
//! [`resolve_references`] when the step is released (see [`mod@reference`]'s
//! docs for the rules). [`Template`]s add typed `${var}` placeholders,
//! substituted and validated by [`Template::instantiate`].

mod dag;
mod decide;
mod error;
mod placeholder;
pub mod reference;
mod spec;
mod status;
mod template;
mod validate;
mod variable;

#[cfg(test)]
mod simulation_tests;
#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod validate_tests;

pub use dag::Dag;
pub use decide::{decide, final_status, Decision, StepOutcome};
pub use error::WorkflowError;
pub use reference::{
    parse_references, referenced_steps, resolve_references, ReferenceError, StepReference,
};
pub use spec::{
    RunIf, StepRef, StepSpec, WorkflowSpec, DEFAULT_MAX_RECOVERY_ATTEMPTS,
    MAX_RECOVERY_ATTEMPTS_LIMIT, MAX_STEPS,
};
pub use status::{IllegalWorkflowTransition, WorkflowStatus};
pub use template::{Template, TemplateError, MAX_VARIABLES};
pub use variable::{VariableSpec, VariableType};
