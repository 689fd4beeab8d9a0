//! `/v1/stats`: one bounded report of the whole deployment.
//!
//! What is exact and what is sampled:
//! - jobs waiting, running or dead ([`COUNTED_STATES`]) are counted exactly
//!   per queue, from index ranges (see [`Store::count_unfinished_by_queue`]);
//! - finished jobs are never counted over the whole table. The report reads
//!   the most recent finished jobs of the last 24 h, newest first on
//!   `jobs_finished_idx`, at most [`SAMPLE_MAX_ROWS`] of them, and derives
//!   from that one sample the finished counts, the throughput and the
//!   percentiles. When the cap is reached the sample covers less than 24 h:
//!   `sample.complete` is false and `sample.since` says how far back it goes
//!   (the rates stay right: they are computed over the time covered);
//! - counts by task type scan at most [`BY_TYPE_MAX_ROWS`] unfinished rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use warren_core::JobState;

use crate::stats::{QueueStateCount, COUNTED_STATES, DEAD_STATES};
use crate::{Store, StoreError};

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

/// Counts by state name.
pub type StateCounts = BTreeMap<String, i64>;

/// The whole report (the `GET /v1/stats` body).
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// Database time of the report.
    pub at: DateTime<Utc>,
    /// Exact totals over all queues of the waiting, running and dead states.
    pub states: StateCounts,
    /// Dead jobs (`failed` + `timeout`), exact.
    pub dead: i64,
    /// Per queue, by name.
    pub queues: Vec<QueueStats>,
    /// Per task type, by name.
    pub task_types: Vec<TaskTypeStats>,
    /// Finishes per second.
    pub throughput: Throughput,
    /// Jobs created and finished in the last 24 h.
    pub last_24h: Last24h,
    /// What the finished-job figures were computed from.
    pub sample: SampleInfo,
}

/// One queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Exact counts of the waiting, running and dead states.
    pub states: StateCounts,
    /// Dead jobs (`failed` + `timeout`), exact.
    pub dead: i64,
    /// Age of the oldest due `pending` / `retrying` job (0 if none).
    pub oldest_pending_age_seconds: f64,
    /// Jobs finished in the sample, by final state.
    pub finished_24h: StateCounts,
}

/// One task type.
#[derive(Debug, Clone, Serialize)]
pub struct TaskTypeStats {
    /// Task type.
    pub task_type: String,
    /// Counts of the waiting, running and dead states (see `states_complete`).
    pub states: StateCounts,
    /// Jobs finished in the sample, by final state.
    pub finished_24h: StateCounts,
    /// Dispatchable (`run_at`) → started, of jobs finished in the last hour.
    pub queue_wait_seconds: Option<Percentiles>,
    /// Started → finished, of jobs completed, failed or timed out in the last hour.
    pub run_seconds: Option<Percentiles>,
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many durations.
    pub samples: i64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Finishes over the last minute and hour.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Last minute.
    pub last_minute: Rate,
    /// Last hour.
    pub last_hour: Rate,
}

/// Finishes over one period.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Seconds covered (less than the period when the sample is not complete).
    pub seconds: f64,
    /// Jobs completed in that time.
    pub completed: i64,
    /// Jobs that ended dead (`failed` or `timeout`) in that time.
    pub failed: i64,
    /// `completed / seconds`.
    pub completed_per_second: f64,
    /// `failed / seconds`.
    pub failed_per_second: f64,
}

/// The last 24 hours.
#[derive(Debug, Clone, Serialize)]
pub struct Last24h {
    /// Jobs created (by id: UUID v7 carries the creation time).
    pub created: i64,
    /// False when `created` stopped at [`CREATED_MAX_ROWS`].
    pub created_complete: bool,
    /// Jobs finished (in the sample).
    pub finished: i64,
}

/// The sample of finished jobs.
#[derive(Debug, Clone, Serialize)]
pub struct SampleInfo {
    /// Window it is drawn from.
    pub window_seconds: u64,
    /// Percentiles use the part finished within this many seconds.
    pub recent_seconds: u64,
    /// Cap on its size.
    pub max_rows: i64,
    /// Its size.
    pub rows: i64,
    /// True when it holds every job finished in the window.
    pub complete: bool,
    /// How far back it reaches.
    pub since: DateTime<Utc>,
    /// False when the counts by task type stopped at [`BY_TYPE_MAX_ROWS`] rows.
    pub task_type_states_complete: bool,
}

/// One grouping-set row of the sample's aggregate.
#[derive(Debug, Clone, FromRow)]
struct SampleRow {
    set_id: i32,
    queue: Option<String>,
    task_type: Option<String>,
    state: Option<String>,
    total: i64,
    last_minute: i64,
    last_hour: i64,
    wait_samples: i64,
    wait_pcts: Option<Vec<f64>>,
    run_samples: i64,
    run_pcts: Option<Vec<f64>>,
    oldest: Option<DateTime<Utc>>,
}

/// `GROUPING(queue, task_type, state)` of each grouping set.
const BY_QUEUE_STATE: i32 = 0b010;
const BY_TYPE_STATE: i32 = 0b100;
const BY_TYPE: i32 = 0b101;
const BY_STATE: i32 = 0b110;

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

/// Everything the report is built from.
struct Parts {
    at: DateTime<Utc>,
    unfinished: Vec<QueueStateCount>,
    oldest: Vec<(String, f64)>,
    sample: Vec<SampleRow>,
    by_type: Vec<(String, String, i64)>,
    by_type_complete: bool,
    created: i64,
    created_complete: bool,
}

fn zeros(states: &[JobState]) -> StateCounts {
    states.iter().map(|s| (s.as_str().to_owned(), 0)).collect()
}

fn is_dead(state: &str) -> bool {
    DEAD_STATES.iter().any(|s| s.as_str() == state)
}

fn percentiles(samples: i64, values: &Option<Vec<f64>>) -> Option<Percentiles> {
    match values.as_deref() {
        Some([p50, p95, p99]) if samples > 0 => Some(Percentiles {
            samples,
            p50: *p50,
            p95: *p95,
            p99: *p99,
        }),
        _ => None,
    }
}

fn new_queue(name: &str) -> QueueStats {
    QueueStats {
        queue: name.to_owned(),
        states: zeros(&COUNTED_STATES),
        dead: 0,
        oldest_pending_age_seconds: 0.0,
        finished_24h: zeros(&FINISHED_STATES),
    }
}

fn new_type(name: &str) -> TaskTypeStats {
    TaskTypeStats {
        task_type: name.to_owned(),
        states: zeros(&COUNTED_STATES),
        finished_24h: zeros(&FINISHED_STATES),
        queue_wait_seconds: None,
        run_seconds: None,
    }
}

/// Finishes of `counts` over the last `period` seconds, of which `covered`
/// are in the sample.
fn rate(period: f64, covered: f64, counts: &StateCounts) -> Rate {
    let seconds = period.min(covered).max(0.0);
    let count = |state: JobState| counts.get(state.as_str()).copied().unwrap_or(0);
    let completed = count(JobState::Completed);
    let failed = DEAD_STATES.into_iter().map(count).sum();
    let per_second = |n: i64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    Rate {
        seconds,
        completed,
        failed,
        completed_per_second: per_second(completed),
        failed_per_second: per_second(failed),
    }
}

fn assemble(parts: Parts) -> StatsReport {
    let mut states = zeros(&COUNTED_STATES);
    let mut queues: BTreeMap<String, QueueStats> = BTreeMap::new();
    for row in &parts.unfinished {
        let queue = queues
            .entry(row.queue.clone())
            .or_insert_with(|| new_queue(&row.queue));
        queue.states.insert(row.state.clone(), row.count);
        if is_dead(&row.state) {
            queue.dead += row.count;
        }
        *states.entry(row.state.clone()).or_default() += row.count;
    }
    for (name, age) in &parts.oldest {
        queues
            .entry(name.clone())
            .or_insert_with(|| new_queue(name))
            .oldest_pending_age_seconds = *age;
    }
    let mut types: BTreeMap<String, TaskTypeStats> = BTreeMap::new();
    for (name, state, count) in &parts.by_type {
        types
            .entry(name.clone())
            .or_insert_with(|| new_type(name))
            .states
            .insert(state.clone(), *count);
    }

    let mut finished = zeros(&FINISHED_STATES);
    let (mut minute, mut hour) = (zeros(&FINISHED_STATES), zeros(&FINISHED_STATES));
    let mut oldest_finish: Option<DateTime<Utc>> = None;
    for row in &parts.sample {
        match (row.set_id, &row.queue, &row.task_type, &row.state) {
            (BY_QUEUE_STATE, Some(name), _, Some(state)) => {
                queues
                    .entry(name.clone())
                    .or_insert_with(|| new_queue(name))
                    .finished_24h
                    .insert(state.clone(), row.total);
            }
            (BY_TYPE_STATE, _, Some(name), Some(state)) => {
                types
                    .entry(name.clone())
                    .or_insert_with(|| new_type(name))
                    .finished_24h
                    .insert(state.clone(), row.total);
            }
            (BY_TYPE, _, Some(name), _) => {
                let entry = types.entry(name.clone()).or_insert_with(|| new_type(name));
                entry.queue_wait_seconds = percentiles(row.wait_samples, &row.wait_pcts);
                entry.run_seconds = percentiles(row.run_samples, &row.run_pcts);
            }
            (BY_STATE, _, _, Some(state)) => {
                finished.insert(state.clone(), row.total);
                minute.insert(state.clone(), row.last_minute);
                hour.insert(state.clone(), row.last_hour);
                oldest_finish = match (oldest_finish, row.oldest) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            _ => {}
        }
    }

    let rows: i64 = finished.values().sum();
    // A sample that reached its cap may have left older finishes out.
    let complete = rows < SAMPLE_MAX_ROWS;
    let since = match (complete, oldest_finish) {
        (false, Some(oldest)) => oldest,
        _ => parts.at - chrono::Duration::seconds(WINDOW_SECONDS as i64),
    };
    let covered = (parts.at - since).num_milliseconds() as f64 / 1e3;
    let dead = DEAD_STATES
        .iter()
        .map(|s| states.get(s.as_str()).copied().unwrap_or(0))
        .sum();
    StatsReport {
        at: parts.at,
        dead,
        states,
        queues: queues.into_values().collect(),
        task_types: types.into_values().collect(),
        throughput: Throughput {
            last_minute: rate(60.0, covered, &minute),
            last_hour: rate(3600.0, covered, &hour),
        },
        last_24h: Last24h {
            created: parts.created,
            created_complete: parts.created_complete,
            finished: rows,
        },
        sample: SampleInfo {
            window_seconds: WINDOW_SECONDS,
            recent_seconds: RECENT_SECONDS,
            max_rows: SAMPLE_MAX_ROWS,
            rows,
            complete,
            since,
            task_type_states_complete: parts.by_type_complete,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_state(state: &str, total: i64, last_minute: i64, oldest: DateTime<Utc>) -> SampleRow {
        SampleRow {
            set_id: BY_STATE,
            queue: None,
            task_type: None,
            state: Some(state.to_owned()),
            total,
            last_minute,
            last_hour: total,
            wait_samples: 0,
            wait_pcts: None,
            run_samples: 0,
            run_pcts: None,
            oldest: Some(oldest),
        }
    }

    fn parts(at: DateTime<Utc>, sample: Vec<SampleRow>) -> Parts {
        Parts {
            at,
            unfinished: Vec::new(),
            oldest: Vec::new(),
            sample,
            by_type: Vec::new(),
            by_type_complete: true,
            created: 0,
            created_complete: true,
        }
    }

    #[test]
    fn a_full_sample_gives_rates_over_the_time_it_covers() {
        let at = Utc::now();
        let oldest = at - chrono::Duration::seconds(30);
        let report = assemble(parts(
            at,
            vec![
                by_state(
                    "completed",
                    SAMPLE_MAX_ROWS - 10,
                    SAMPLE_MAX_ROWS - 10,
                    oldest,
                ),
                by_state("failed", 10, 10, oldest + chrono::Duration::seconds(1)),
            ],
        ));
        assert!(!report.sample.complete);
        assert_eq!(report.sample.since, oldest);
        let minute = &report.throughput.last_minute;
        assert_eq!(minute.seconds, 30.0);
        assert_eq!(minute.completed, SAMPLE_MAX_ROWS - 10);
        assert_eq!(minute.failed, 10);
        assert!((minute.completed_per_second - (SAMPLE_MAX_ROWS - 10) as f64 / 30.0).abs() < 1e-6);
        assert_eq!(report.throughput.last_hour.seconds, 30.0);
    }

    #[test]
    fn a_partial_sample_covers_the_whole_window() {
        let at = Utc::now();
        let report = assemble(parts(
            at,
            vec![by_state(
                "completed",
                120,
                60,
                at - chrono::Duration::seconds(3000),
            )],
        ));
        assert!(report.sample.complete);
        assert_eq!(
            report.sample.since,
            at - chrono::Duration::seconds(WINDOW_SECONDS as i64)
        );
        assert_eq!(report.throughput.last_minute.seconds, 60.0);
        assert_eq!(report.throughput.last_minute.completed_per_second, 1.0);
        assert_eq!(report.throughput.last_hour.seconds, 3600.0);
        assert_eq!(report.last_24h.finished, 120);
        assert_eq!(report.states.len(), COUNTED_STATES.len());
    }
}
