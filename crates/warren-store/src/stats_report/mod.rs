//! `/v1/stats`: one bounded report of the whole deployment.
//!
//! What is exact and what is sampled:
//! - jobs waiting, running or dead ([`COUNTED_STATES`]) are counted exactly
//!   per queue, in one pass over the rows in those states (see
//!   [`Store::count_unfinished_by_queue`]);
//! - finished jobs are never counted over the whole table. The report reads
//!   the most recent finished jobs of the last 24 h, newest first on
//!   `jobs_finished_idx`, at most [`SAMPLE_MAX_ROWS`] of them, and derives
//!   from that one sample the finished counts, the throughput and the
//!   percentiles. When the cap is reached the sample covers less than 24 h:
//!   `sample.complete` is false and `sample.since` says how far back it goes
//!   (the rates stay right: they are computed over the time covered);
//! - counts by task type scan at most [`BY_TYPE_MAX_ROWS`] unfinished rows.

mod assemble;
mod model;

use chrono::{DateTime, Utc};
use warren_core::JobState;

use crate::stats::COUNTED_STATES;
use crate::{Store, StoreError};
use assemble::{assemble, Parts, SampleRow};
pub use model::*;

/// Most finished jobs one report reads.
pub const SAMPLE_MAX_ROWS: i64 = 50_000;
/// Most unfinished rows read for the counts by task type.
pub const BY_TYPE_MAX_ROWS: i64 = 100_000;
/// Most ids read to count the jobs created in the last 24 h.
pub const CREATED_MAX_ROWS: i64 = 1_000_000;
/// How far back finished jobs are read.
pub const WINDOW_SECONDS: u64 = 24 * 3600;
/// Percentiles cover the jobs finished this recently.
pub const RECENT_SECONDS: u64 = 3600;

/// States a job can finish in (a dead `failed` / `timeout` has `finished_at` too).
const FINISHED_STATES: [JobState; 5] = [
    JobState::Completed,
    JobState::Failed,
    JobState::Timeout,
    JobState::Cancelled,
    JobState::Skipped,
];

impl Store {
    /// Builds the report; see the module documentation for its bounds.
    pub async fn stats_report(&self) -> Result<StatsReport, StoreError> {
        let at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await?;
        let unfinished = self.count_unfinished_by_queue().await?;
        let oldest = self.oldest_due_by_queue().await?;
        let sample = self.finished_sample().await?;
        let (by_type, by_type_complete) = self.count_unfinished_by_type().await?;
        let (created, created_complete) = self.count_created_last_24h().await?;
        Ok(assemble(Parts {
            at,
            unfinished,
            oldest,
            sample,
            by_type,
            by_type_complete,
            created,
            created_complete,
        }))
    }

    async fn finished_sample(&self) -> Result<Vec<SampleRow>, StoreError> {
        Ok(sqlx::query_as(
            "WITH s AS MATERIALIZED (
                SELECT state::text AS state, queue, task_type, finished_at,
                       CASE WHEN started_at IS NOT NULL
                            THEN GREATEST(EXTRACT(EPOCH FROM started_at - run_at), 0)::float8 END AS wait,
                       CASE WHEN started_at IS NOT NULL AND state IN ('completed', 'failed', 'timeout')
                            THEN GREATEST(EXTRACT(EPOCH FROM finished_at - started_at), 0)::float8 END AS run,
                       finished_at > now() - $3 * interval '1 second' AS recent
                  FROM jobs
                 WHERE finished_at > now() - $1 * interval '1 second'
                 ORDER BY finished_at DESC
                 LIMIT $2)
             SELECT GROUPING(queue, task_type, state)::int4 AS set_id, queue, task_type, state,
                    count(*) AS total,
                    count(*) FILTER (WHERE finished_at > now() - interval '1 minute') AS last_minute,
                    count(*) FILTER (WHERE finished_at > now() - interval '1 hour') AS last_hour,
                    count(wait) FILTER (WHERE recent) AS wait_samples,
                    percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY wait)
                        FILTER (WHERE recent) AS wait_pcts,
                    count(run) FILTER (WHERE recent) AS run_samples,
                    percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY run)
                        FILTER (WHERE recent) AS run_pcts,
                    min(finished_at) AS oldest
               FROM s
              GROUP BY GROUPING SETS ((queue, state), (task_type, state), (task_type), (state))",
        )
        .bind(WINDOW_SECONDS as f64)
        .bind(SAMPLE_MAX_ROWS)
        .bind(RECENT_SECONDS as f64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (task type, state, count) over at most [`BY_TYPE_MAX_ROWS`] unfinished
    /// rows (`jobs_state_idx`), and whether that was all of them.
    async fn count_unfinished_by_type(
        &self,
    ) -> Result<(Vec<(String, String, i64)>, bool), StoreError> {
        let states: Vec<&str> = COUNTED_STATES.iter().map(|s| s.as_str()).collect();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT task_type, state::text, count(*)
               FROM (SELECT task_type, state FROM jobs
                      WHERE state = ANY($1::job_state[]) LIMIT $2) t
              GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(&states)
        .bind(BY_TYPE_MAX_ROWS + 1)
        .fetch_all(&self.pool)
        .await?;
        let seen: i64 = rows.iter().map(|r| r.2).sum();
        Ok((rows, seen <= BY_TYPE_MAX_ROWS))
    }

    /// Jobs created in the last 24 h, counted on the primary key: a UUID v7
    /// starts with its creation time in milliseconds, so the ids at or above
    /// the smallest v7 id of 24 h ago are the recent ones (index-only).
    async fn count_created_last_24h(&self) -> Result<(i64, bool), StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (
                SELECT 1 FROM jobs
                 WHERE id >= (lpad(to_hex((EXTRACT(EPOCH FROM now() - $1 * interval '1 second') * 1000)::int8), 12, '0')
                              || '00000000000000000000')::uuid
                 LIMIT $2) t",
        )
        .bind(WINDOW_SECONDS as f64)
        .bind(CREATED_MAX_ROWS + 1)
        .fetch_one(&self.pool)
        .await?;
        Ok((n.min(CREATED_MAX_ROWS), n <= CREATED_MAX_ROWS))
    }
}
