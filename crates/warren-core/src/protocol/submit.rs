//! `Submit`: one or many jobs published by a client to `<ns>.submit`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Versioned, WorkflowSubmission, PROTOCOL_VERSION};
use crate::names::validate_name;
use crate::queue::{TaskDefaults, MAX_TIMEOUT_MS};
use crate::retry::{RetryPolicy, RetrySpec};

/// Highest priority; dispatch takes higher priorities first.
pub const MAX_PRIORITY: i16 = 9;
/// Longest accepted idempotency key.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A batch of jobs to accept atomically per job (each job is independent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitEnvelope {
    /// Protocol version (1).
    pub v: u32,
    /// The jobs to create.
    pub jobs: Vec<JobSpec>,
    /// Workflows to create (absent in envelopes that carry none, so older
    /// coordinators and clients are unaffected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<WorkflowSubmission>,
}

impl SubmitEnvelope {
    /// An envelope of the current version.
    pub fn new(jobs: Vec<JobSpec>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            jobs,
            workflows: Vec::new(),
        }
    }

    /// An envelope of the current version carrying workflows only.
    pub fn with_workflows(workflows: Vec<WorkflowSubmission>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            jobs: Vec::new(),
            workflows,
        }
    }
}

impl Versioned for SubmitEnvelope {
    fn version(&self) -> u32 {
        self.v
    }
}

/// Everything needed to create one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Client-chosen UUID v7; re-publishing the same id creates nothing new.
    pub id: Uuid,
    /// Queue the job runs on (workers subscribe to queues).
    pub queue: String,
    /// Which handler runs it.
    #[serde(rename = "type", alias = "task_type")]
    pub task_type: String,
    /// Handler input.
    #[serde(default)]
    pub payload: Value,
    /// 0 (default) to 9; higher is dispatched first.
    #[serde(default)]
    pub priority: i16,
    /// Retry fields the job sets; each unset one comes from the queue's
    /// defaults for this task type, else the built-in default.
    #[serde(default, skip_serializing_if = "RetrySpec::is_empty")]
    pub retry: RetrySpec,
    /// Execution timeout per attempt, in milliseconds; when unset, the
    /// queue's default for this task type (if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Opt-in stall detection: an attempt that reports no progress (nor
    /// starts) for this many milliseconds times out, and its worker is told
    /// to stop. Unset: no limit beyond `timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_progress_timeout_ms: Option<u64>,
    /// Do not dispatch before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// Do not dispatch before this many milliseconds after acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Optional key, unique per queue: a second job with it is not created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Wait in `awaiting_approval` until an operator approves.
    #[serde(default)]
    pub requires_approval: bool,
    /// Free-form JSON object kept with the job.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}

/// A job spec that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {id}: {reason}")]
pub struct InvalidJobSpec {
    /// The offending job.
    pub id: Uuid,
    /// What is wrong with it.
    pub reason: String,
}

impl JobSpec {
    /// A job with default options.
    pub fn new(queue: impl Into<String>, task_type: impl Into<String>, payload: Value) -> Self {
        Self {
            id: crate::new_job_id(),
            queue: queue.into(),
            task_type: task_type.into(),
            payload,
            priority: 0,
            retry: RetrySpec::default(),
            timeout_ms: None,
            no_progress_timeout_ms: None,
            run_at: None,
            delay_ms: None,
            idempotency_key: None,
            requires_approval: false,
            metadata: Value::Null,
        }
    }

    /// Fills what the job does not set itself (timeout, retry fields) from
    /// its queue's defaults for its task type. Validate again afterwards: a
    /// job's own field and a default may not fit together.
    pub fn apply_defaults(&mut self, defaults: &TaskDefaults) {
        if self.timeout_ms.is_none() {
            self.timeout_ms = defaults.timeout_ms;
        }
        self.retry = self.retry.or(defaults.retry);
    }

    /// The complete retry policy (unset fields take the built-in defaults).
    /// A spec that passed [`JobSpec::validate`] always has one.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.resolve().unwrap_or_default()
    }

    /// Checks everything the database would otherwise have to reject.
    pub fn validate(&self) -> Result<(), InvalidJobSpec> {
        let fail = |reason: String| {
            Err(InvalidJobSpec {
                id: self.id,
                reason,
            })
        };
        if let Err(e) = validate_name("queue", &self.queue) {
            return fail(e.to_string());
        }
        if let Err(e) = validate_name("task type", &self.task_type) {
            return fail(e.to_string());
        }
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            return fail(format!(
                "priority {} is outside 0..={MAX_PRIORITY}",
                self.priority
            ));
        }
        if let Err(e) = self.retry.resolve() {
            return fail(e.to_string());
        }
        if matches!(self.timeout_ms, Some(t) if t == 0 || t > MAX_TIMEOUT_MS) {
            return fail("timeout_ms must be between 1 and one week".into());
        }
        if matches!(self.no_progress_timeout_ms, Some(t) if t == 0 || t > MAX_TIMEOUT_MS) {
            return fail("no_progress_timeout_ms must be between 1 and one week".into());
        }
        if self.run_at.is_some() && self.delay_ms.is_some() {
            return fail("give run_at or delay_ms, not both".into());
        }
        if matches!(&self.idempotency_key, Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return fail(format!(
                "idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_LEN} bytes"
            ));
        }
        if !(self.metadata.is_null() || self.metadata.is_object()) {
            return fail("metadata must be a JSON object".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec: JobSpec = serde_json::from_value(json!({
            "id": "0190b6c4-5c2e-7d2a-9f00-000000000001", "queue": "default", "type": "echo"
        }))
        .unwrap();
        assert_eq!(spec.priority, 0);
        assert!(spec.retry.is_empty());
        assert_eq!(spec.retry_policy(), RetryPolicy::default());
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn defaults_fill_only_what_the_job_leaves_unset() {
        let defaults: TaskDefaults =
            serde_json::from_value(json!({"timeout_ms": 300000, "max_attempts": 2, "jitter": 0.5}))
                .unwrap();
        let mut bare = JobSpec::new("media", "image", json!({}));
        bare.apply_defaults(&defaults);
        assert_eq!(bare.timeout_ms, Some(300_000));
        assert_eq!(bare.retry_policy().max_attempts, 2);
        let mut own = JobSpec::new("media", "image", json!({}));
        own.timeout_ms = Some(1_000);
        own.retry.max_attempts = Some(7);
        own.apply_defaults(&defaults);
        assert_eq!(own.timeout_ms, Some(1_000));
        assert_eq!(own.retry_policy().max_attempts, 7);
        assert_eq!(own.retry_policy().jitter, 0.5);
    }

    #[test]
    fn a_spec_without_retry_or_timeout_serializes_without_them() {
        let spec = JobSpec::new("default", "echo", json!({}));
        let text = serde_json::to_string(&spec).unwrap();
        assert!(
            !text.contains("retry") && !text.contains("timeout_ms"),
            "{text}"
        );
        let back: JobSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn rejects_bad_fields_with_a_reason() {
        let base = JobSpec::new("default", "echo", json!({}));
        let cases = [
            JobSpec {
                queue: "bad queue".into(),
                ..base.clone()
            },
            JobSpec {
                priority: 10,
                ..base.clone()
            },
            JobSpec {
                timeout_ms: Some(0),
                ..base.clone()
            },
            JobSpec {
                no_progress_timeout_ms: Some(0),
                ..base.clone()
            },
            JobSpec {
                no_progress_timeout_ms: Some(MAX_TIMEOUT_MS + 1),
                ..base.clone()
            },
            JobSpec {
                delay_ms: Some(1),
                run_at: Some(Utc::now()),
                ..base.clone()
            },
            JobSpec {
                idempotency_key: Some(String::new()),
                ..base.clone()
            },
            JobSpec {
                metadata: json!([1]),
                ..base.clone()
            },
        ];
        for spec in cases {
            let err = spec.validate().unwrap_err();
            assert_eq!(err.id, spec.id);
        }
    }
}
