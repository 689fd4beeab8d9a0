//! Built-in task types (`echo`, `sleep`, `flaky`, `exec`) that every worker
//! can run without user code, so a fresh deployment can be exercised end to
//! end; plus the payload and cancellation helpers they share.

mod echo;
mod exec;
mod flaky;
mod sleep;

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::{HandlerError, JobContext, Registry};

/// Longest `ms` a built-in accepts: a sleep beyond a day is a typo, not a test.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// Registers `echo`, `sleep`, `flaky` and `exec`.
pub(crate) fn register_all(registry: &mut Registry) {
    registry
        .register("echo", echo::run)
        .register("sleep", sleep::run)
        .register("flaky", flaky::run)
        .register("exec", exec::run);
}

/// The error every built-in returns when its attempt is cancelled: retryable,
/// because cancellation also covers worker shutdown and timeouts, and the
/// coordinator decides whether a cancelled job may run again.
pub(crate) fn cancelled() -> HandlerError {
    HandlerError::retryable("cancelled")
}

/// Reads an optional non-negative integer field; `null` counts as absent.
pub(crate) fn opt_u64(
    payload: &Value,
    task: &str,
    field: &str,
) -> Result<Option<u64>, HandlerError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            HandlerError::fatal(format!(
                "{task}: \"{field}\" must be a non-negative integer, got {v}"
            ))
        }),
    }
}

/// Reads an optional duration in milliseconds, capped at [`MAX_SLEEP`].
pub(crate) fn opt_millis(
    payload: &Value,
    task: &str,
    field: &str,
) -> Result<Option<Duration>, HandlerError> {
    let Some(ms) = opt_u64(payload, task, field)? else {
        return Ok(None);
    };
    let max = MAX_SLEEP.as_millis();
    if u128::from(ms) > max {
        return Err(HandlerError::fatal(format!(
            "{task}: \"{field}\" is {ms} ms, more than the maximum of {max} ms (24h)"
        )));
    }
    Ok(Some(Duration::from_millis(ms)))
}

/// Sleeps until `deadline`, or returns [`cancelled`] as soon as the attempt is
/// cancelled.
pub(crate) async fn sleep_until(ctx: &JobContext, deadline: Instant) -> Result<(), HandlerError> {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => Ok(()),
        () = ctx.cancelled() => Err(cancelled()),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds task messages for the built-ins' unit tests.

    use serde_json::Value;
    use uuid::Uuid;
    use warren_core::protocol::TaskMessage;

    /// A task message for `task_type` at `attempt` (of 5) carrying `payload`.
    pub(crate) fn task(task_type: &str, attempt: u32, payload: Value) -> TaskMessage {
        TaskMessage {
            v: 1,
            job_id: Uuid::now_v7(),
            attempt,
            lease: Uuid::new_v4(),
            queue: "default".into(),
            task_type: task_type.into(),
            payload,
            timeout_ms: None,
            max_attempts: 5,
            checkpoint: None,
            inputs: Default::default(),
        }
    }
}
