//! Turning the report's query results into a [`StatsReport`]: per-queue and
//! per-type entries with zeros for every state, and rates over the time the
//! sample covers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use warren_core::JobState;

use super::model::*;
use super::{FINISHED_STATES, RECENT_SECONDS, SAMPLE_MAX_ROWS, WINDOW_SECONDS};
use crate::stats::{QueueStateCount, COUNTED_STATES, DEAD_STATES};

/// One grouping-set row of the sample's aggregate.
#[derive(Debug, Clone, FromRow)]
pub(super) struct SampleRow {
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

/// Everything the report is built from.
pub(super) struct Parts {
    pub(super) at: DateTime<Utc>,
    pub(super) unfinished: Vec<QueueStateCount>,
    pub(super) oldest: Vec<(String, f64)>,
    pub(super) sample: Vec<SampleRow>,
    pub(super) by_type: Vec<(String, String, i64)>,
    pub(super) by_type_complete: bool,
    pub(super) created: i64,
    pub(super) created_complete: bool,
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

pub(super) fn assemble(parts: Parts) -> StatsReport {
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
