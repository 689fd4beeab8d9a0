//! Read-only queries used by `warren bench` to follow a run it submitted.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

impl Store {
    /// Jobs of `queue` with id >= `first_id` (UUID v7 ids sort by creation)
    /// that reached a final state: completed, cancelled, skipped, or a dead
    /// failed/timeout (at rest those two are always dead: a retryable
    /// failure moves on to `retrying` in the same transaction).
    pub async fn count_finished_since(
        &self,
        queue: &str,
        first_id: Uuid,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM jobs
              WHERE queue = $1 AND id >= $2
                AND state IN ('completed', 'cancelled', 'skipped', 'failed', 'timeout')",
        )
        .bind(queue)
        .bind(first_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// (id, state, finished_at) of the given jobs; missing ids are absent.
    pub async fn finish_times(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, String, Option<DateTime<Utc>>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT id, state::text, finished_at FROM jobs WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
