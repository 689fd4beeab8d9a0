//! `sleep`: waits `{"ms": N}` milliseconds, stopping early when cancelled, and
//! reports progress on long sleeps — a stand-in for slow work in tests, demos
//! and benchmarks.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{opt_millis, sleep_until};
use crate::{HandlerError, HandlerResult, JobContext};

/// Sleeps at least this long before progress is worth reporting.
const PROGRESS_FROM: Duration = Duration::from_secs(1);

/// Long sleeps report progress this many times minus one (10%, 20%, … 90%);
/// completion itself is the 100% report.
const PROGRESS_STEPS: u32 = 10;

/// Sleeps for the payload's `ms`; the result is `{"slept_ms": N}`.
pub(crate) async fn run(ctx: JobContext, payload: Value) -> HandlerResult {
    let duration = opt_millis(&payload, "sleep", "ms")?.ok_or_else(|| {
        HandlerError::fatal("sleep: payload needs \"ms\", a non-negative integer of milliseconds")
    })?;
    let start = Instant::now();
    let steps = progress_steps(duration);
    for step in 1..=steps {
        sleep_until(&ctx, start + duration * step / steps).await?;
        if step < steps {
            ctx.progress((100 * step / steps) as f32, "sleeping");
        }
    }
    Ok(json!({ "slept_ms": duration.as_millis() as u64 }))
}

/// How many equal slices to sleep in: one for short sleeps, so they send no
/// progress at all.
fn progress_steps(duration: Duration) -> u32 {
    if duration >= PROGRESS_FROM {
        PROGRESS_STEPS
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use warren_core::protocol::Report;

    use super::*;
    use crate::builtins::testing::task;

    fn context(
        payload: &Value,
    ) -> (
        JobContext,
        tokio_util::sync::CancellationToken,
        tokio::sync::mpsc::UnboundedReceiver<Report>,
    ) {
        JobContext::for_testing(&task("sleep", 1, payload.clone()))
    }

    #[tokio::test]
    async fn short_sleep_returns_slept_ms_without_progress() {
        let payload = json!({"ms": 20});
        let (ctx, _cancel, mut reports) = context(&payload);
        let started = std::time::Instant::now();
        assert_eq!(run(ctx, payload).await, Ok(json!({"slept_ms": 20})));
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert!(
            reports.try_recv().is_err(),
            "a short sleep reports no progress"
        );
    }

    #[tokio::test]
    async fn long_sleep_reports_progress_every_tenth() {
        let payload = json!({"ms": 1000});
        let (ctx, _cancel, mut reports) = context(&payload);
        assert_eq!(run(ctx, payload).await, Ok(json!({"slept_ms": 1000})));
        let mut percents = Vec::new();
        while let Ok(Report::Progress { percent, .. }) = reports.try_recv() {
            percents.push(percent.expect("progress carries a percent"));
        }
        assert_eq!(
            percents,
            [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        );
    }

    #[test]
    fn only_sleeps_of_a_second_or_more_report_progress() {
        assert_eq!(progress_steps(Duration::ZERO), 1);
        assert_eq!(progress_steps(Duration::from_millis(999)), 1);
        assert_eq!(progress_steps(Duration::from_secs(1)), PROGRESS_STEPS);
        assert_eq!(progress_steps(Duration::from_secs(86_400)), PROGRESS_STEPS);
    }

    #[tokio::test]
    async fn cancellation_ends_the_sleep_promptly() {
        let payload = json!({"ms": 3_600_000});
        let (ctx, cancel, _reports) = context(&payload);
        let handle = tokio::spawn(run(ctx, payload));
        tokio::task::yield_now().await; // let the handler start sleeping
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("returns within 5s")
            .unwrap();
        assert_eq!(outcome, Err(HandlerError::retryable("cancelled")));
    }

    #[tokio::test]
    async fn bad_payloads_are_fatal() {
        for payload in [
            json!({}),
            json!({"ms": -1}),
            json!({"ms": 1.5}),
            json!({"ms": "10"}),
            json!(null),
            json!({"ms": 86_400_001}),
        ] {
            let (ctx, _cancel, _reports) = context(&payload);
            match run(ctx, payload.clone()).await {
                Err(HandlerError::Fatal(message)) => {
                    assert!(message.contains("\"ms\""), "{payload}: {message}")
                }
                other => panic!("{payload}: expected a fatal error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_full_day_is_allowed() {
        let payload = json!({"ms": 86_400_000});
        let (ctx, cancel, _reports) = context(&payload);
        cancel.cancel();
        assert_eq!(
            run(ctx, payload).await,
            Err(HandlerError::retryable("cancelled"))
        );
    }
}
