//! Moving failed or timed-out attempts to `retrying` on the job's backoff
//! schedule (the delay is computed by warren-core and stored as `run_at`).

use std::time::Duration;

use sqlx::{FromRow, PgConnection};
use uuid::Uuid;
use warren_core::{JobState, RetryPolicy};

use crate::Transition;

/// An attempt that just ended badly, as returned by its guarded UPDATE.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct EndedAttempt {
    pub(crate) id: Uuid,
    pub(crate) queue: String,
    pub(crate) task_type: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) retry_base_ms: i64,
    pub(crate) retry_factor: f64,
    pub(crate) retry_max_ms: i64,
    pub(crate) retry_jitter: f64,
    pub(crate) worker_id: Option<String>,
    pub(crate) run_seconds: Option<f64>,
}

/// Columns every "attempt ended" UPDATE returns, in [`EndedAttempt`] order.
pub(crate) const ENDED_COLUMNS: &str = "j.id, j.queue, j.task_type, j.attempt, j.max_attempts, \
    j.retry_base_ms, j.retry_factor, j.retry_max_ms, j.retry_jitter, j.worker_id, \
    EXTRACT(EPOCH FROM (now() - j.started_at))::float8 AS run_seconds";

impl EndedAttempt {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1) as u32,
            base_delay_ms: self.retry_base_ms.max(0) as u64,
            factor: self.retry_factor,
            max_delay_ms: self.retry_max_ms.max(0) as u64,
            jitter: self.retry_jitter,
        }
    }

    pub(crate) fn transition(&self, from: JobState, to: JobState) -> Transition {
        Transition {
            job_id: self.id,
            queue: self.queue.clone(),
            task_type: self.task_type.clone(),
            from,
            to,
            attempt: self.attempt,
            seconds: self.run_seconds,
        }
    }
}

/// If attempts remain (and the failure allows it), moves the job from
/// `from` (failed/timeout) to `retrying` with `run_at = now() + delay`.
/// Returns the transition when it happened.
pub(crate) async fn schedule_retry(
    conn: &mut PgConnection,
    ended: &EndedAttempt,
    from: JobState,
    hint: Option<Duration>,
) -> Result<Option<Transition>, sqlx::Error> {
    let policy = ended.policy();
    if !policy.has_attempts_left(ended.attempt as u32) {
        return Ok(None);
    }
    let delay = policy.delay_with_hint(ended.attempt as u32, hint, rand::random::<f64>());
    let moved = sqlx::query(
        "UPDATE jobs SET state = 'retrying', run_at = now() + $3 * interval '1 millisecond', finished_at = NULL
          WHERE id = $1 AND attempt = $2 AND state = $4::job_state",
    )
    .bind(ended.id)
    .bind(ended.attempt)
    .bind(delay.as_millis() as i64)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    Ok((moved.rows_affected() == 1).then(|| Transition {
        seconds: None,
        ..ended.transition(from, JobState::Retrying)
    }))
}

/// The moves of attempts that just ended badly (`from → to`, `to` being
/// failed or timeout), each followed by its move to `retrying` when
/// [`schedule_retry`] schedules one.
pub(crate) async fn end_attempts(
    conn: &mut PgConnection,
    ended: &[EndedAttempt],
    from: JobState,
    to: JobState,
) -> Result<Vec<Transition>, sqlx::Error> {
    let mut transitions = Vec::with_capacity(ended.len());
    for attempt in ended {
        transitions.push(attempt.transition(from, to));
        if let Some(retry) = schedule_retry(conn, attempt, to, None).await? {
            transitions.push(retry);
        }
    }
    Ok(transitions)
}
