//! Dispatches whose task message cannot be anywhere (the redispatch loop
//! decides which queues lost theirs): back to `pending` to be dispatched
//! again with the same attempt number, or, once an attempt's message was
//! lost [`MAX_LOST_DISPATCHES`] times, the attempt fails as undeliverable
//! (`queued → failed`) and the retry policy decides what follows.
//!
//! A message lost once is a fault (a coordinator killed between commit and
//! publish, a broker that dropped it); lost every time, it is refused: a
//! worker dead-letters a task message too large for its
//! `WARREN_MAX_PAYLOAD_BYTES` or of a protocol version it does not read,
//! and dispatching it again would repeat that forever.

use std::time::Duration;

use warren_core::JobState;

use crate::retry::{end_attempts, EndedAttempt, ENDED_COLUMNS};
use crate::{Store, StoreError, SweepOutcome, Transition};

/// Times one attempt's task message may be found lost; the last of them
/// fails the attempt instead of dispatching it again.
pub const MAX_LOST_DISPATCHES: i64 = 3;

/// The error an undeliverable attempt fails with.
pub const UNDELIVERABLE_ERROR: &str = "undeliverable: the task message was lost or refused by \
    workers 3 times without the attempt starting (a worker dead-letters a message too large for \
    its WARREN_MAX_PAYLOAD_BYTES or of a protocol version it does not read; see the namespace's \
    dead-letter queue)";

/// What [`Store::requeue_lost_dispatches`] did.
#[derive(Debug, Default)]
pub struct LostDispatches {
    /// Jobs sent back to `pending`, to be dispatched again.
    pub requeued: SweepOutcome,
    /// Attempts failed as undeliverable (then `retrying` if attempts remain).
    pub undeliverable: SweepOutcome,
}

/// A job `queued` for longer than the dispatch timeout (`$1`, in ms).
macro_rules! stale_dispatch {
    () => {
        "state = 'queued' AND queued_at < now() - $1 * interval '1 millisecond'"
    };
}

/// Stale `queued` jobs of the named queues, locked (`$1` the dispatch
/// timeout in ms, `$2` the limit, `$3` the queues).
const LOST: &str = concat!(
    "SELECT id FROM jobs WHERE ",
    stale_dispatch!(),
    " AND queue = ANY($3) LIMIT $2 FOR UPDATE SKIP LOCKED"
);

/// How often this attempt's message was found lost before: its earlier
/// `queued → pending` events for lost dispatches (which record the attempt
/// number given back, one below the dispatched one).
const LOST_BEFORE: &str = "(SELECT count(*) FROM job_events e
     WHERE e.job_id = j.id AND e.from_state = 'queued' AND e.to_state = 'pending'
       AND e.attempt = j.attempt - 1 AND e.detail->>'reason' = 'dispatch_timeout')";

impl Store {
    /// Queues holding jobs `queued` for longer than `dispatch_timeout`.
    pub async fn queues_with_stale_dispatches(
        &self,
        dispatch_timeout: Duration,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT DISTINCT queue FROM jobs WHERE ",
            stale_dispatch!()
        ))
        .bind(dispatch_timeout.as_millis() as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Jobs of `queues` `queued` for longer than `dispatch_timeout`, whose
    /// task message the caller found lost (e.g. the coordinator died between
    /// commit and publish): back to `pending` with the same attempt number,
    /// or failed as undeliverable on the attempt's
    /// [`MAX_LOST_DISPATCHES`]th loss (see the module docs). One
    /// transaction, at most `limit` jobs each way.
    pub async fn requeue_lost_dispatches(
        &self,
        dispatch_timeout: Duration,
        queues: &[String],
        limit: i64,
    ) -> Result<LostDispatches, StoreError> {
        let timeout_ms = dispatch_timeout.as_millis() as i64;
        let mut tx = self.begin().await?;
        let failed: Vec<EndedAttempt> = sqlx::query_as(&format!(
            "WITH lost AS ({LOST})
             UPDATE jobs j SET state = 'failed', error = $5, finished_at = now(), lease = NULL,
                               transition_note = '{{\"reason\": \"undeliverable\"}}'
               FROM lost WHERE j.id = lost.id AND j.state = 'queued' AND {LOST_BEFORE} >= $4 - 1
             RETURNING {ENDED_COLUMNS}"
        ))
        .bind(timeout_ms)
        .bind(limit)
        .bind(queues)
        .bind(MAX_LOST_DISPATCHES)
        .bind(UNDELIVERABLE_ERROR)
        .fetch_all(&mut *tx)
        .await?;
        let undeliverable = SweepOutcome {
            rescued: failed.len(),
            transitions: end_attempts(&mut tx, &failed, JobState::Queued, JobState::Failed).await?,
            cancels: Vec::new(),
        };
        let moved: Vec<(uuid::Uuid, String, String, i32)> = sqlx::query_as(&format!(
            "WITH lost AS ({LOST})
             UPDATE jobs j SET state = 'pending', attempt = j.attempt - 1, lease = NULL, queued_at = NULL,
                               transition_note = '{{\"reason\": \"dispatch_timeout\"}}'
               FROM lost WHERE j.id = lost.id AND j.state = 'queued'
             RETURNING j.id, j.queue, j.task_type, j.attempt"
        ))
        .bind(timeout_ms)
        .bind(limit)
        .bind(queues)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let requeued = SweepOutcome {
            rescued: moved.len(),
            transitions: moved
                .into_iter()
                .map(|(job_id, queue, task_type, attempt)| Transition {
                    job_id,
                    queue,
                    task_type,
                    from: JobState::Queued,
                    to: JobState::Pending,
                    attempt,
                    seconds: None,
                })
                .collect(),
            cancels: Vec::new(),
        };
        Ok(LostDispatches {
            requeued,
            undeliverable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_limit() {
        assert!(UNDELIVERABLE_ERROR.contains(&format!(" {MAX_LOST_DISPATCHES} times ")));
    }
}
