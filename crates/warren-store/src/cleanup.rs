//! Retention: deleting old finished jobs and their events in small batches.
//!
//! A batch is one statement: it locks up to `limit` of the oldest matching
//! rows with `FOR UPDATE SKIP LOCKED` (so two coordinators cleaning at once
//! take different rows and never wait on each other), deletes them, and
//! deletes their events. Workflow steps are never deleted here: they go with
//! their workflow.

use std::time::Duration;

use warren_core::JobState;

use crate::{Store, StoreError};

/// States a job can be deleted in: the terminal ones, and the dead ones
/// (`failed` / `timeout` at rest have no automatic attempt left).
pub const CLEANABLE_STATES: [JobState; 5] = [
    JobState::Completed,
    JobState::Failed,
    JobState::Timeout,
    JobState::Cancelled,
    JobState::Skipped,
];

/// What one batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupBatch {
    /// Jobs deleted.
    pub jobs: u64,
    /// Their events deleted.
    pub events: u64,
}

impl Store {
    /// Deletes up to `limit` jobs in `state` that finished more than
    /// `older_than` ago (database clock), oldest first, with their events.
    /// Rows locked by another transaction are skipped, not waited for. A
    /// state outside [`CLEANABLE_STATES`] deletes nothing. One range scan
    /// of `jobs_retention_idx`.
    pub async fn delete_finished(
        &self,
        state: JobState,
        older_than: Duration,
        limit: i64,
    ) -> Result<CleanupBatch, StoreError> {
        if !CLEANABLE_STATES.contains(&state) {
            return Ok(CleanupBatch::default());
        }
        let (jobs, events): (i64, i64) = sqlx::query_as(
            "WITH doomed AS (
                SELECT id FROM jobs
                 WHERE state = $1::job_state AND workflow_id IS NULL
                   AND finished_at IS NOT NULL
                   AND finished_at < now() - $2 * interval '1 millisecond'
                 ORDER BY finished_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED),
             jobs_gone AS (
                DELETE FROM jobs j USING doomed d WHERE j.id = d.id RETURNING j.id),
             events_gone AS (
                DELETE FROM job_events e USING jobs_gone g WHERE e.job_id = g.id RETURNING 1)
             SELECT (SELECT count(*) FROM jobs_gone), (SELECT count(*) FROM events_gone)",
        )
        .bind(state.as_str())
        .bind(older_than.as_millis().min(i64::MAX as u128) as i64)
        .bind(limit.max(1))
        .fetch_one(&self.pool)
        .await?;
        Ok(CleanupBatch {
            jobs: jobs as u64,
            events: events as u64,
        })
    }
}
