//! The workflow definition as users write it (JSON or YAML): a name, a
//! recovery budget, free-form metadata and a list of steps. Parsing only
//! checks the shape; [`WorkflowSpec::validate`] checks the meaning.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::WorkflowError;
use crate::protocol::JobSpec;
use crate::queue::TaskDefaults;
use crate::retry::{InvalidRetryPolicy, RetryPolicy};

/// `max_recovery_attempts` when a definition does not say.
pub const DEFAULT_MAX_RECOVERY_ATTEMPTS: u32 = 3;
/// Upper bound on `max_recovery_attempts`, so a typo cannot recover forever.
pub const MAX_RECOVERY_ATTEMPTS_LIMIT: u32 = 100;
/// Most steps one workflow may have: every step is a job row and the DAG is
/// re-read on each step event, so the size is bounded.
pub const MAX_STEPS: usize = 1_000;

fn default_max_recovery() -> u32 {
    DEFAULT_MAX_RECOVERY_ATTEMPTS
}

/// A workflow definition: a DAG of steps, each of which becomes one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSpec {
    /// Name of the workflow (same rules as a queue name); not unique, it
    /// groups runs of the same pipeline for queries.
    pub name: String,
    /// How many times an operator may recover this workflow from a step
    /// after it failed (0 = never). Default 3.
    #[serde(default = "default_max_recovery")]
    pub max_recovery_attempts: u32,
    /// Free-form key/values kept with the workflow (queryable by field).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// The steps, in any order that users find readable; `depends_on` and
    /// not the position decides when a step runs.
    pub steps: Vec<StepSpec>,
}

/// One step: the job it becomes, plus when it may run.
///
/// Unknown fields are rejected, so a misspelt `depends_on` cannot silently
/// turn a dependent step into one that runs at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the workflow. Same alphabet as queue names minus `.`,
    /// because `${steps.<name>.result.a.b}` uses dots as separators.
    pub name: String,
    /// Queue the step's job runs on.
    pub queue: String,
    /// Handler that runs it (`type` on the wire; `task_type` accepted).
    #[serde(rename = "type", alias = "task_type")]
    pub task_type: String,
    /// Handler input; strings may hold `${steps.<name>.result...}` references.
    #[serde(default)]
    pub payload: Value,
    /// 0 (default) to 9; higher is dispatched first.
    #[serde(default)]
    pub priority: i16,
    /// Retry policy in the same shape as a job's (`max_attempts` or
    /// `max_retries`, `base_delay_ms`, ...); absent = the job defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Per-attempt execution timeout in milliseconds, as for a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Stall detection in milliseconds, as for a job (opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_progress_timeout_ms: Option<u64>,
    /// Steps that must finish first, by name or 0-based position in `steps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<StepRef>,
    /// Which outcomes of the dependencies let this step run.
    #[serde(default)]
    pub run_if: RunIf,
}

/// A dependency: a step name or a 0-based index into `steps`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum StepRef {
    /// By name (`"download"`).
    Name(String),
    /// By position (`0` is the first step).
    Index(usize),
}

impl<'de> Deserialize<'de> for StepRef {
    /// Hand-written instead of `untagged` so that `-1` or `true` get an error
    /// that says what a dependency may be.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StepRef;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a step name or a 0-based step index")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StepRef, E> {
                Ok(StepRef::Name(v.to_owned()))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StepRef, E> {
                usize::try_from(v)
                    .map(StepRef::Index)
                    .map_err(|_| E::custom("step index out of range"))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StepRef, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("step index {v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl std::fmt::Display for StepRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepRef::Name(name) => write!(f, "{name:?}"),
            StepRef::Index(index) => write!(f, "index {index}"),
        }
    }
}

/// When a step runs, given how its dependencies ended (see [`super::decide`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunIf {
    /// Every dependency succeeded (the default).
    #[default]
    AllSucceeded,
    /// At least one dependency failed: an on-failure branch.
    AnyFailed,
    /// Every dependency finished, however it ended (clean-up, reports).
    Always,
}

impl RunIf {
    /// The snake_case name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunIf::AllSucceeded => "all_succeeded",
            RunIf::AnyFailed => "any_failed",
            RunIf::Always => "always",
        }
    }
}

impl std::fmt::Display for RunIf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WorkflowSpec {
    /// Parses a JSON definition (shape only; call [`WorkflowSpec::validate`]).
    pub fn from_json(text: &str) -> Result<WorkflowSpec, WorkflowError> {
        serde_json::from_str(text).map_err(|e| WorkflowError::Parse(e.to_string()))
    }

    /// Parses a YAML definition (shape only; call [`WorkflowSpec::validate`]).
    pub fn from_yaml(text: &str) -> Result<WorkflowSpec, WorkflowError> {
        serde_yaml_ng::from_str(text).map_err(|e| WorkflowError::Parse(e.to_string()))
    }

    /// The step called `name`, if any.
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|step| step.name == name)
    }
}

impl StepSpec {
    /// Fills what the step leaves unset from its queue's defaults for its
    /// task type, as for a job: the timeout, and the retry policy when the
    /// step names none (a step's policy, when given, is complete). Fails
    /// when the defaults' retry fields do not make a valid policy.
    pub fn apply_defaults(&mut self, defaults: &TaskDefaults) -> Result<(), InvalidRetryPolicy> {
        self.timeout_ms = self.timeout_ms.or(defaults.timeout_ms);
        if self.retry.is_none() && !defaults.retry.is_empty() {
            self.retry = Some(defaults.retry.resolve()?);
        }
        Ok(())
    }

    /// The job this step becomes, with a fresh id and the payload as written
    /// (references unresolved): the engine resolves the payload when the step
    /// is released and fills in the workflow columns itself.
    pub fn job_spec(&self) -> JobSpec {
        let mut job = JobSpec::new(&*self.queue, &*self.task_type, self.payload.clone());
        job.priority = self.priority;
        job.retry = self.retry.map(Into::into).unwrap_or_default();
        job.timeout_ms = self.timeout_ms;
        job.no_progress_timeout_ms = self.no_progress_timeout_ms;
        job
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::retry::RetrySpec;

    fn step(extra: Value) -> StepSpec {
        let mut value = json!({"name": "s", "queue": "media", "type": "video"});
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).expect("a step")
    }

    fn defaults(timeout_ms: Option<u64>, max_attempts: Option<u32>) -> TaskDefaults {
        TaskDefaults {
            timeout_ms,
            retry: RetrySpec {
                max_attempts,
                ..RetrySpec::default()
            },
        }
    }

    #[test]
    fn queue_defaults_fill_only_what_a_step_leaves_unset() {
        let mut bare = step(json!({}));
        bare.apply_defaults(&defaults(Some(3_600_000), Some(2)))
            .unwrap();
        assert_eq!(bare.timeout_ms, Some(3_600_000));
        assert_eq!(bare.retry.map(|r| r.max_attempts), Some(2));

        let mut own = step(json!({"timeout_ms": 1000, "retry": {"max_attempts": 7}}));
        own.apply_defaults(&defaults(Some(5), Some(2))).unwrap();
        assert_eq!(own.timeout_ms, Some(1000));
        assert_eq!(own.retry.map(|r| r.max_attempts), Some(7));

        let mut untouched = step(json!({}));
        untouched.apply_defaults(&defaults(None, None)).unwrap();
        assert_eq!((untouched.timeout_ms, untouched.retry), (None, None));
    }

    #[test]
    fn defaults_that_make_no_valid_policy_are_an_error() {
        let mut bare = step(json!({}));
        let bad = TaskDefaults {
            timeout_ms: None,
            retry: RetrySpec {
                base_delay_ms: Some(10_000),
                max_delay_ms: Some(1),
                ..RetrySpec::default()
            },
        };
        assert!(bare.apply_defaults(&bad).is_err());
    }
}
