//! Queue controls that need no I/O: per-task-type defaults a queue applies
//! to the jobs it accepts, and the bounds of its limits. The coordinator
//! stores them in the `queues` table; the rules live here so the API, the
//! intake and the CLI agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::validate_name;
use crate::retry::{RetryPolicyWire, RetrySpec};

/// Longest accepted per-job timeout: one week (also the bound of defaults).
pub const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3_600_000;
/// Most task types one queue may carry defaults for.
pub const MAX_TASK_DEFAULTS: usize = 100;
/// Highest accepted `max_in_flight`.
pub const MAX_IN_FLIGHT_LIMIT: i64 = 1_000_000;
/// Highest accepted rate limit, in jobs per second.
pub const MAX_RATE_LIMIT: f64 = 1_000_000.0;
/// Highest accepted `task_batch` (tasks per task message).
pub const MAX_TASK_BATCH: i64 = 1_000;

/// What a queue fills in for a job of one task type that does not set it
/// itself: the per-attempt timeout and any retry field.
///
/// JSON: `{"timeout_ms": 300000, "max_attempts": 3, "base_delay_ms": 1000,
/// "factor": 2, "max_delay_ms": 60000, "jitter": 0.1}`, every field optional;
/// `max_retries: N` may replace `max_attempts: N + 1`. Unknown fields are
/// rejected, so a typo is an error rather than a silently ignored default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskDefaultsWire")]
pub struct TaskDefaults {
    /// Per-attempt timeout in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retry fields.
    #[serde(flatten)]
    pub retry: RetrySpec,
}

/// Task defaults by task type, as stored in `queues.task_defaults`.
pub type TaskDefaultsByType = BTreeMap<String, TaskDefaults>;

/// Task defaults or a queue limit that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQueueSetting(pub String);

impl TaskDefaults {
    /// True when it sets nothing.
    pub fn is_empty(&self) -> bool {
        self.timeout_ms.is_none() && self.retry.is_empty()
    }

    /// Checks that the timeout is in range and that the retry fields,
    /// completed with the built-in defaults, form a valid policy.
    pub fn validate(&self) -> Result<(), InvalidQueueSetting> {
        if matches!(self.timeout_ms, Some(t) if t == 0 || t > MAX_TIMEOUT_MS) {
            return Err(InvalidQueueSetting(
                "timeout_ms must be between 1 and one week".into(),
            ));
        }
        self.retry
            .resolve()
            .map(|_| ())
            .map_err(|e| InvalidQueueSetting(e.to_string()))
    }
}

/// Checks every task type name and its defaults.
pub fn validate_task_defaults(defaults: &TaskDefaultsByType) -> Result<(), InvalidQueueSetting> {
    if defaults.len() > MAX_TASK_DEFAULTS {
        return Err(InvalidQueueSetting(format!(
            "at most {MAX_TASK_DEFAULTS} task types may have defaults"
        )));
    }
    for (task_type, entry) in defaults {
        validate_name("task type", task_type).map_err(|e| InvalidQueueSetting(e.to_string()))?;
        entry
            .validate()
            .map_err(|e| InvalidQueueSetting(format!("defaults of {task_type:?}: {e}")))?;
    }
    Ok(())
}

/// Applies a PATCH to a queue's task defaults, as a JSON merge patch
/// (RFC 7386): `{"image": {"timeout_ms": 300000}}` sets one field of one
/// type and keeps the others, `{"image": {"timeout_ms": null}}` clears that
/// field, `{"image": null}` drops the type. `max_retries: N` is read as
/// `max_attempts: N + 1`. A type left with no field is dropped. The result
/// is validated as a whole.
pub fn patch_task_defaults(
    current: &TaskDefaultsByType,
    patch: &Value,
) -> Result<TaskDefaultsByType, InvalidQueueSetting> {
    let invalid = |m: String| Err(InvalidQueueSetting(m));
    let Some(patch) = patch.as_object() else {
        return invalid("task_defaults must be an object of task type → defaults".into());
    };
    let mut result = current.clone();
    for (task_type, change) in patch {
        validate_name("task type", task_type).map_err(|e| InvalidQueueSetting(e.to_string()))?;
        if change.is_null() {
            result.remove(task_type);
            continue;
        }
        let Some(change) = change.as_object() else {
            return invalid(format!(
                "defaults of {task_type:?} must be an object or null"
            ));
        };
        let mut change = change.clone();
        if let Some(retries) = change.remove("max_retries") {
            if change.contains_key("max_attempts") {
                return invalid(format!(
                    "defaults of {task_type:?}: give max_attempts or max_retries, not both"
                ));
            }
            let attempts = match retries.as_u64() {
                Some(n) => Value::from(n.saturating_add(1)),
                None if retries.is_null() => Value::Null,
                None => {
                    return invalid(format!(
                        "defaults of {task_type:?}: max_retries must be a whole number"
                    ))
                }
            };
            change.insert("max_attempts".into(), attempts);
        }
        let entry = result.get(task_type).copied().unwrap_or_default();
        let Value::Object(mut merged) = serde_json::to_value(entry).unwrap_or_default() else {
            unreachable!("task defaults serialize to an object");
        };
        for (field, value) in change {
            if value.is_null() {
                merged.remove(&field);
            } else {
                merged.insert(field, value);
            }
        }
        let entry: TaskDefaults = serde_json::from_value(Value::Object(merged))
            .map_err(|e| InvalidQueueSetting(format!("defaults of {task_type:?}: {e}")))?;
        if entry.is_empty() {
            result.remove(task_type);
        } else {
            result.insert(task_type.clone(), entry);
        }
    }
    validate_task_defaults(&result)?;
    Ok(result)
}

/// Checks a queue's `max_in_flight`.
pub fn validate_max_in_flight(value: i64) -> Result<(), InvalidQueueSetting> {
    whole_in_range(
        "max_in_flight",
        value,
        MAX_IN_FLIGHT_LIMIT,
        "removes the cap",
    )
}

/// Checks a queue's `task_batch`: most tasks one task message carries.
pub fn validate_task_batch(value: i64) -> Result<(), InvalidQueueSetting> {
    whole_in_range(
        "task_batch",
        value,
        MAX_TASK_BATCH,
        "leaves it to WARREN_TASK_BATCH",
    )
}

/// `value` within 1..=`max`, else an error naming the setting and what its
/// `null` does.
fn whole_in_range(
    setting: &str,
    value: i64,
    max: i64,
    null_does: &str,
) -> Result<(), InvalidQueueSetting> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(InvalidQueueSetting(format!(
            "{setting} must be between 1 and {max} (null {null_does})"
        )))
    }
}

/// Checks a queue's rate limit (jobs per second; fractions allowed).
pub fn validate_rate_limit(value: f64) -> Result<(), InvalidQueueSetting> {
    if value.is_finite() && value > 0.0 && value <= MAX_RATE_LIMIT {
        Ok(())
    } else {
        Err(InvalidQueueSetting(format!(
            "rate_limit must be a number of jobs per second above 0 and at most {MAX_RATE_LIMIT} (null removes the limit)"
        )))
    }
}

/// The accepted JSON of [`TaskDefaults`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskDefaultsWire {
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    max_retries: Option<u32>,
    base_delay_ms: Option<u64>,
    factor: Option<f64>,
    max_delay_ms: Option<u64>,
    jitter: Option<f64>,
}

impl TryFrom<TaskDefaultsWire> for TaskDefaults {
    type Error = InvalidQueueSetting;

    fn try_from(wire: TaskDefaultsWire) -> Result<Self, Self::Error> {
        let retry = RetrySpec::try_from(RetryPolicyWire {
            max_attempts: wire.max_attempts,
            max_retries: wire.max_retries,
            base_delay_ms: wire.base_delay_ms,
            factor: wire.factor,
            max_delay_ms: wire.max_delay_ms,
            jitter: wire.jitter,
        })
        .map_err(|e| InvalidQueueSetting(e.to_string()))?;
        let defaults = TaskDefaults {
            timeout_ms: wire.timeout_ms,
            retry,
        };
        defaults.validate()?;
        Ok(defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_read_max_retries_and_write_max_attempts() {
        let defaults: TaskDefaults =
            serde_json::from_value(json!({"timeout_ms": 300000, "max_retries": 2})).unwrap();
        assert_eq!(defaults.timeout_ms, Some(300_000));
        assert_eq!(defaults.retry.max_attempts, Some(3));
        assert_eq!(
            serde_json::to_value(defaults).unwrap(),
            json!({"timeout_ms": 300000, "max_attempts": 3})
        );
        assert!(TaskDefaults::default().is_empty());
    }

    #[test]
    fn defaults_reject_unknown_fields_and_nonsense() {
        for bad in [
            json!({"timeout": "5m"}),
            json!({"timeout_ms": 0}),
            json!({"timeout_ms": MAX_TIMEOUT_MS + 1}),
            json!({"max_attempts": 0}),
            json!({"max_delay_ms": 10}),
            json!({"max_attempts": 2, "max_retries": 1}),
        ] {
            assert!(
                serde_json::from_value::<TaskDefaults>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_patch_merges_field_by_field() {
        let current: TaskDefaultsByType = serde_json::from_value(json!({
            "image": {"timeout_ms": 300000, "max_attempts": 3},
            "video": {"timeout_ms": 3600000}
        }))
        .unwrap();
        let patched = patch_task_defaults(
            &current,
            &json!({"image": {"max_retries": 1, "timeout_ms": null}, "video": null, "pdf": {"jitter": 0.2}}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&patched).unwrap(),
            json!({"image": {"max_attempts": 2}, "pdf": {"jitter": 0.2}})
        );
        let emptied =
            patch_task_defaults(&patched, &json!({"image": {"max_attempts": null}})).unwrap();
        assert!(
            !emptied.contains_key("image"),
            "a type with nothing set is dropped"
        );
        for bad in [
            json!([]),
            json!({"image": 5}),
            json!({"image": {"timeout": 1}}),
            json!({"image": {"max_retries": -1}}),
            json!({"image": {"max_retries": 1, "max_attempts": 2}}),
            json!({"bad type": {"timeout_ms": 1}}),
            json!({"bad type": {}}),
            json!({"bad type": null}),
        ] {
            assert!(patch_task_defaults(&current, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn task_types_and_limits_are_checked() {
        let mut map = TaskDefaultsByType::new();
        map.insert("image".into(), TaskDefaults::default());
        assert!(validate_task_defaults(&map).is_ok());
        map.insert("bad type".into(), TaskDefaults::default());
        assert!(validate_task_defaults(&map).is_err());
        assert!(validate_task_batch(1).is_ok());
        assert!(validate_task_batch(MAX_TASK_BATCH).is_ok());
        assert!(validate_task_batch(0).is_err());
        assert!(validate_task_batch(MAX_TASK_BATCH + 1).is_err());
        assert!(validate_max_in_flight(1).is_ok());
        assert!(validate_max_in_flight(0).is_err());
        assert!(validate_max_in_flight(-3).is_err());
        assert!(validate_rate_limit(0.5).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(validate_rate_limit(bad).is_err(), "{bad}");
        }
    }
}
