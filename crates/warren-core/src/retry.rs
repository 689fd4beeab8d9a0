//! The retry schedule. A delay is data: the coordinator stores
//! `now() + delay` as the job's `run_at`, it never sleeps on it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default number of attempts (the first run plus four retries).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default delay before the first retry.
pub const DEFAULT_BASE_DELAY_MS: u64 = 1_000;
/// Default growth factor between consecutive retries.
pub const DEFAULT_FACTOR: f64 = 2.0;
/// Default cap on any single delay: one hour.
pub const DEFAULT_MAX_DELAY_MS: u64 = 3_600_000;
/// Upper bound on `max_attempts`, so a typo cannot retry forever.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1_000;

/// Per-job retry policy: capped exponential backoff with optional jitter.
///
/// With the defaults the delays are 1s, 2s, 4s, 8s, ... capped at one hour.
/// On the wire `max_retries: N` is accepted as a synonym of
/// `max_attempts: N + 1` (the spelling Celery users know).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetryPolicyWire")]
pub struct RetryPolicy {
    /// Total attempts allowed, counting the first (>= 1).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub base_delay_ms: u64,
    /// Multiplier applied per further retry (>= 1).
    pub factor: f64,
    /// Cap on any single delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Jitter ratio in [0, 1]: a delay d becomes uniformly d·(1 ± jitter).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay_ms: DEFAULT_BASE_DELAY_MS,
            factor: DEFAULT_FACTOR,
            max_delay_ms: DEFAULT_MAX_DELAY_MS,
            jitter: 0.0,
        }
    }
}

/// A policy that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry policy: {0}")]
pub struct InvalidRetryPolicy(pub String);

impl RetryPolicy {
    /// Rejects nonsense (zero attempts, shrinking factor, jitter outside [0, 1]).
    pub fn validate(&self) -> Result<(), InvalidRetryPolicy> {
        let bad = |why: &str| Err(InvalidRetryPolicy(why.to_owned()));
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return bad("max_attempts must be between 1 and 1000");
        }
        if !(self.factor.is_finite() && (1.0..=100.0).contains(&self.factor)) {
            return bad("factor must be between 1 and 100");
        }
        if !(self.jitter.is_finite() && (0.0..=1.0).contains(&self.jitter)) {
            return bad("jitter must be between 0 and 1");
        }
        if self.base_delay_ms > self.max_delay_ms {
            return bad("base_delay_ms must not exceed max_delay_ms");
        }
        Ok(())
    }

    /// Whether another attempt may follow attempt `attempt` (counted from 1).
    pub fn has_attempts_left(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay after attempt `attempt` (counted from 1) failed.
    ///
    /// `unit_random` is a sample from [0, 1) used for jitter; passing it in
    /// keeps this function pure and testable.
    pub fn delay_after(&self, attempt: u32, unit_random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1_000) as i32;
        let raw = self.base_delay_ms as f64 * self.factor.powi(exponent);
        let capped = raw.min(self.max_delay_ms as f64);
        let spread = self.jitter * (2.0 * unit_random.clamp(0.0, 1.0) - 1.0);
        let jittered = (capped * (1.0 + spread)).clamp(0.0, self.max_delay_ms as f64);
        Duration::from_millis(jittered.round() as u64)
    }

    /// The delay honouring a handler's explicit `retry_after`, capped.
    pub fn delay_with_hint(
        &self,
        attempt: u32,
        hint: Option<Duration>,
        unit_random: f64,
    ) -> Duration {
        match hint {
            Some(hint) => hint.min(Duration::from_millis(self.max_delay_ms)),
            None => self.delay_after(attempt, unit_random),
        }
    }
}

/// The retry fields a job spec (or a queue's defaults for a task type) sets
/// explicitly. Resolution is field by field: what the job sets wins, then the
/// queue's defaults for its task type, then [`RetryPolicy::default`]. Only
/// set fields are serialized, so a client that sets nothing leaves the
/// choice to the queue.
///
/// On the wire `max_retries: N` is accepted for `max_attempts: N + 1`. Each
/// field is range-checked when read; whether the fields fit together
/// (`base_delay_ms <= max_delay_ms`) is checked by [`RetrySpec::resolve`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetryPolicyWire")]
pub struct RetrySpec {
    /// Total attempts allowed, counting the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_delay_ms: Option<u64>,
    /// Multiplier applied per further retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Cap on any single delay, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<u64>,
    /// Jitter ratio in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
}

impl RetrySpec {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == RetrySpec::default()
    }

    /// This spec with its unset fields taken from `fallback`.
    pub fn or(self, fallback: RetrySpec) -> RetrySpec {
        RetrySpec {
            max_attempts: self.max_attempts.or(fallback.max_attempts),
            base_delay_ms: self.base_delay_ms.or(fallback.base_delay_ms),
            factor: self.factor.or(fallback.factor),
            max_delay_ms: self.max_delay_ms.or(fallback.max_delay_ms),
            jitter: self.jitter.or(fallback.jitter),
        }
    }

    /// The complete policy: unset fields take the built-in defaults. Fails
    /// when the result makes no sense (e.g. a base delay above the cap).
    pub fn resolve(&self) -> Result<RetryPolicy, InvalidRetryPolicy> {
        let defaults = RetryPolicy::default();
        let policy = RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(defaults.max_attempts),
            base_delay_ms: self.base_delay_ms.unwrap_or(defaults.base_delay_ms),
            factor: self.factor.unwrap_or(defaults.factor),
            max_delay_ms: self.max_delay_ms.unwrap_or(defaults.max_delay_ms),
            jitter: self.jitter.unwrap_or(defaults.jitter),
        };
        policy.validate()?;
        Ok(policy)
    }
}

impl From<RetryPolicy> for RetrySpec {
    /// Every field set explicitly.
    fn from(policy: RetryPolicy) -> Self {
        RetrySpec {
            max_attempts: Some(policy.max_attempts),
            base_delay_ms: Some(policy.base_delay_ms),
            factor: Some(policy.factor),
            max_delay_ms: Some(policy.max_delay_ms),
            jitter: Some(policy.jitter),
        }
    }
}

impl TryFrom<RetryPolicyWire> for RetrySpec {
    type Error = InvalidRetryPolicy;

    fn try_from(wire: RetryPolicyWire) -> Result<Self, Self::Error> {
        let spec = RetrySpec {
            max_attempts: wire.max_attempts()?,
            base_delay_ms: wire.base_delay_ms,
            factor: wire.factor,
            max_delay_ms: wire.max_delay_ms,
            jitter: wire.jitter,
        };
        // Range-check each field on its own; how they combine is checked
        // once they are resolved against their fallbacks.
        let defaults = RetryPolicy::default();
        RetryPolicy {
            max_attempts: spec.max_attempts.unwrap_or(defaults.max_attempts),
            factor: spec.factor.unwrap_or(defaults.factor),
            jitter: spec.jitter.unwrap_or(defaults.jitter),
            base_delay_ms: 0,
            max_delay_ms: 0,
        }
        .validate()?;
        Ok(spec)
    }
}

/// The accepted wire spellings; converted and validated into [`RetryPolicy`]
/// or [`RetrySpec`].
#[derive(Deserialize)]
pub(crate) struct RetryPolicyWire {
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_retries: Option<u32>,
    pub(crate) base_delay_ms: Option<u64>,
    pub(crate) factor: Option<f64>,
    pub(crate) max_delay_ms: Option<u64>,
    pub(crate) jitter: Option<f64>,
}

impl RetryPolicyWire {
    /// `max_attempts`, or `max_retries + 1`; giving both is an error.
    fn max_attempts(&self) -> Result<Option<u32>, InvalidRetryPolicy> {
        match (self.max_attempts, self.max_retries) {
            (Some(_), Some(_)) => Err(InvalidRetryPolicy(
                "give max_attempts or max_retries, not both".into(),
            )),
            (Some(attempts), None) => Ok(Some(attempts)),
            (None, Some(retries)) => Ok(Some(retries.saturating_add(1))),
            (None, None) => Ok(None),
        }
    }
}

impl TryFrom<RetryPolicyWire> for RetryPolicy {
    type Error = InvalidRetryPolicy;

    fn try_from(wire: RetryPolicyWire) -> Result<Self, Self::Error> {
        let defaults = RetryPolicy::default();
        let policy = RetryPolicy {
            max_attempts: wire.max_attempts()?.unwrap_or(defaults.max_attempts),
            base_delay_ms: wire.base_delay_ms.unwrap_or(defaults.base_delay_ms),
            factor: wire.factor.unwrap_or(defaults.factor),
            max_delay_ms: wire.max_delay_ms.unwrap_or(defaults.max_delay_ms),
            jitter: wire.jitter.unwrap_or(defaults.jitter),
        };
        policy.validate()?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_double_from_one_second_to_an_hour() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=14).map(|a| p.delay_after(a, 0.5).as_secs()).collect();
        assert_eq!(secs[..5], [1, 2, 4, 8, 16]);
        assert_eq!(p.delay_after(13, 0.5), Duration::from_secs(3600));
        assert_eq!(p.delay_after(u32::MAX, 0.5), Duration::from_secs(3600));
    }

    #[test]
    fn max_retries_is_max_attempts_minus_one() {
        let p: RetryPolicy = serde_json::from_str(r#"{"max_retries": 3}"#).unwrap();
        assert_eq!(p.max_attempts, 4);
        let both = serde_json::from_str::<RetryPolicy>(r#"{"max_retries": 3, "max_attempts": 2}"#);
        assert!(both.is_err());
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"max_attempts": 0}"#).is_err());
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"jitter": 2.0}"#).is_err());
    }

    #[test]
    fn retry_after_hint_wins_but_is_capped() {
        let p = RetryPolicy {
            max_delay_ms: 10_000,
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.delay_with_hint(1, Some(Duration::from_secs(3)), 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay_with_hint(1, Some(Duration::from_secs(99)), 0.0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_spec_resolves_field_by_field_and_serializes_only_what_it_sets() {
        let job: RetrySpec = serde_json::from_str(r#"{"max_retries": 1}"#).unwrap();
        assert_eq!(job.max_attempts, Some(2));
        assert_eq!(
            serde_json::to_string(&job).unwrap(),
            r#"{"max_attempts":2}"#
        );
        let queue = RetrySpec {
            max_attempts: Some(9),
            base_delay_ms: Some(10),
            ..RetrySpec::default()
        };
        let policy = job.or(queue).resolve().unwrap();
        assert_eq!(policy.max_attempts, 2, "the job's own value wins");
        assert_eq!(policy.base_delay_ms, 10, "then the queue's default");
        assert_eq!(
            policy.max_delay_ms, DEFAULT_MAX_DELAY_MS,
            "then the built-in one"
        );
        assert!(RetrySpec::default().is_empty());
        assert_eq!(
            RetrySpec::default().resolve().unwrap(),
            RetryPolicy::default()
        );
    }

    #[test]
    fn a_spec_checks_each_field_when_read_and_the_combination_when_resolved() {
        assert!(serde_json::from_str::<RetrySpec>(r#"{"jitter": 2}"#).is_err());
        assert!(serde_json::from_str::<RetrySpec>(r#"{"max_attempts": 0}"#).is_err());
        assert!(
            serde_json::from_str::<RetrySpec>(r#"{"max_attempts": 1, "max_retries": 0}"#).is_err()
        );
        let spec: RetrySpec = serde_json::from_str(r#"{"max_delay_ms": 10}"#).unwrap();
        assert!(
            spec.resolve().is_err(),
            "default base delay 1s exceeds a 10ms cap"
        );
        // An old client's complete policy reads as every field set.
        let full = serde_json::to_string(&RetryPolicy::default()).unwrap();
        let spec: RetrySpec = serde_json::from_str(&full).unwrap();
        assert_eq!(spec, RetrySpec::from(RetryPolicy::default()));
    }

    fn any_policy() -> impl Strategy<Value = RetryPolicy> {
        (
            1u32..50,
            0u64..100_000,
            1.0f64..10.0,
            0u64..10_000_000,
            0.0f64..=1.0,
        )
            .prop_map(|(max_attempts, base, factor, extra, jitter)| RetryPolicy {
                max_attempts,
                base_delay_ms: base,
                factor,
                max_delay_ms: base + extra,
                jitter,
            })
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_the_cap(p in any_policy(), attempt in 1u32..10_000, r in 0.0f64..1.0) {
            prop_assert!(p.delay_after(attempt, r) <= Duration::from_millis(p.max_delay_ms));
        }

        #[test]
        fn without_jitter_delays_never_shrink(p in any_policy(), attempt in 1u32..200) {
            let p = RetryPolicy { jitter: 0.0, ..p };
            prop_assert!(p.delay_after(attempt, 0.0) <= p.delay_after(attempt + 1, 0.0));
        }

        #[test]
        fn jitter_stays_within_its_ratio(p in any_policy(), attempt in 1u32..60, r in 0.0f64..1.0) {
            let plain = RetryPolicy { jitter: 0.0, ..p }.delay_after(attempt, r).as_millis() as f64;
            let jittered = p.delay_after(attempt, r).as_millis() as f64;
            prop_assert!(jittered >= plain * (1.0 - p.jitter) - 1.0);
            prop_assert!(jittered <= plain * (1.0 + p.jitter) + 1.0);
        }

        #[test]
        fn wire_round_trip(p in any_policy()) {
            let json = serde_json::to_string(&p).unwrap();
            let back: RetryPolicy = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.max_attempts, p.max_attempts);
            prop_assert_eq!(back.base_delay_ms, p.base_delay_ms);
            prop_assert_eq!(back.max_delay_ms, p.max_delay_ms);
        }
    }
}
