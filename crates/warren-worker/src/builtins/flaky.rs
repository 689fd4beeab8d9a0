//! `flaky`: fails its first `fail_times` attempts on purpose, then succeeds —
//! the fixture for retry, backoff and dead-letter behaviour.

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{opt_millis, opt_u64, sleep_until};
use crate::{HandlerError, HandlerResult, JobContext};

/// Optionally sleeps `ms` first; attempts `1..=fail_times` then fail
/// retryably, later ones succeed with `{"attempt": a}`.
pub(crate) async fn run(ctx: JobContext, payload: Value) -> HandlerResult {
    let fail_times = opt_u64(&payload, "flaky", "fail_times")?.ok_or_else(|| {
        HandlerError::fatal("flaky: payload needs \"fail_times\", a non-negative integer")
    })?;
    if let Some(duration) = opt_millis(&payload, "flaky", "ms")? {
        sleep_until(&ctx, Instant::now() + duration).await?;
    }
    let attempt = ctx.attempt();
    if u64::from(attempt) <= fail_times {
        return Err(HandlerError::retryable(format!(
            "flaky: attempt {attempt} of {fail_times} fails on purpose"
        )));
    }
    Ok(json!({ "attempt": attempt }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::builtins::testing::task;

    async fn attempt(attempt: u32, payload: Value) -> HandlerResult {
        let (ctx, _cancel, _reports) =
            JobContext::for_testing(&task("flaky", attempt, payload.clone()));
        run(ctx, payload).await
    }

    #[tokio::test]
    async fn fails_exactly_fail_times_attempts() {
        let payload = json!({"fail_times": 2});
        for a in 1..=2 {
            let expected =
                HandlerError::retryable(format!("flaky: attempt {a} of 2 fails on purpose"));
            assert_eq!(attempt(a, payload.clone()).await, Err(expected));
        }
        for a in 3..=4 {
            assert_eq!(attempt(a, payload.clone()).await, Ok(json!({"attempt": a})));
        }
    }

    #[tokio::test]
    async fn zero_fail_times_always_succeeds() {
        assert_eq!(
            attempt(1, json!({"fail_times": 0})).await,
            Ok(json!({"attempt": 1}))
        );
    }

    #[tokio::test]
    async fn sleeps_first_and_honours_cancellation() {
        let started = std::time::Instant::now();
        assert_eq!(
            attempt(3, json!({"fail_times": 1, "ms": 20})).await,
            Ok(json!({"attempt": 3}))
        );
        assert!(started.elapsed() >= Duration::from_millis(20));

        let payload = json!({"fail_times": 0, "ms": 3_600_000});
        let (ctx, cancel, _reports) = JobContext::for_testing(&task("flaky", 1, payload.clone()));
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), run(ctx, payload))
            .await
            .expect("returns within 5s");
        assert_eq!(outcome, Err(HandlerError::retryable("cancelled")));
    }

    #[tokio::test]
    async fn bad_payloads_are_fatal() {
        for payload in [
            json!({}),
            json!({"fail_times": -1}),
            json!({"fail_times": "2"}),
            json!({"fail_times": 1, "ms": "5"}),
        ] {
            assert!(
                matches!(
                    attempt(1, payload.clone()).await,
                    Err(HandlerError::Fatal(_))
                ),
                "{payload}"
            );
        }
    }
}
