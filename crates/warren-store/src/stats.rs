//! Aggregates for metrics gauges.

use std::time::Duration;

use crate::{Store, StoreError};

impl Store {
    /// Job counts by (queue, state).
    pub async fn count_by_queue_and_state(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT queue, state::text, count(*) FROM jobs GROUP BY 1, 2")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Workers that sent a heartbeat within `window`.
    pub async fn count_live_workers(&self, window: Duration) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM workers WHERE last_heartbeat_at > now() - $1 * interval '1 millisecond'")
            .bind(window.as_millis() as i64)
            .fetch_one(&self.pool)
            .await?)
    }
}
