//! Turning finish times into the summary line.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::submit::Submitted;

/// (id, state, finished_at) as read from the jobs table.
pub(crate) type Row = (Uuid, String, Option<DateTime<Utc>>);

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Jobs submitted.
    pub jobs: usize,
    /// Submission throughput (jobs/s, publisher-confirmed).
    pub submitted_per_s: f64,
    /// End-to-end throughput: jobs / (last completion − first submission).
    pub completed_per_s: f64,
    /// Median submit→completed latency.
    pub p50_ms: f64,
    /// 90th percentile latency.
    pub p90_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Jobs that ended in a state other than completed.
    pub failed: usize,
    /// Jobs submitted but missing or unfinished at the deadline.
    pub lost: usize,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warren-bench jobs={} submitted_per_s={:.0} completed_per_s={:.0} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} (submit→completed) failed={} lost={}",
            self.jobs, self.submitted_per_s, self.completed_per_s, self.p50_ms, self.p90_ms, self.p99_ms, self.failed, self.lost
        )
    }
}

pub(crate) fn summarise(
    jobs: usize,
    submitted: &[Submitted],
    rows: &[Row],
    started: SystemTime,
    submit_elapsed: Duration,
) -> BenchReport {
    let sent: HashMap<Uuid, SystemTime> = submitted.iter().map(|s| (s.id, s.at)).collect();
    let mut latencies = Vec::with_capacity(rows.len());
    let mut failed = 0;
    let mut last_finish = started;
    let mut finished = 0;
    for (id, state, finished_at) in rows {
        let Some(done) = finished_at.map(SystemTime::from) else {
            continue;
        };
        finished += 1;
        last_finish = last_finish.max(done);
        if state != "completed" {
            failed += 1;
            continue;
        }
        if let Some(at) = sent.get(id) {
            latencies.push(done.duration_since(*at).unwrap_or_default().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let total = last_finish
        .duration_since(started)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-9);
    BenchReport {
        jobs,
        submitted_per_s: jobs as f64 / submit_elapsed.as_secs_f64().max(1e-9),
        completed_per_s: finished as f64 / total,
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        failed,
        lost: jobs - finished,
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn unfinished_jobs_are_lost_and_non_completed_are_failed() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let submitted: Vec<Submitted> = ids.iter().map(|&id| Submitted { id, at: t0 }).collect();
        let at = |ms| Some(DateTime::<Utc>::from(t0 + Duration::from_millis(ms)));
        let rows = vec![
            (ids[0], "completed".into(), at(10)),
            (ids[1], "failed".into(), at(20)),
        ];
        let report = summarise(3, &submitted, &rows, t0, Duration::from_secs(1));
        assert_eq!((report.failed, report.lost), (1, 1));
        assert_eq!(report.p50_ms, 10.0);
        assert!(report.to_string().starts_with("warren-bench jobs=3 "));
    }
}
