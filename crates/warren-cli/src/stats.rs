//! `warren stats`: job counts by queue and task type, throughput and
//! timings, from `GET /v1/stats`.

use std::process::ExitCode;

use warren_client::{Percentiles, Rate, StateCounts, Stats};

use crate::context::Context;
use crate::failure::CliError;
use crate::format::timestamp;
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Runs `warren stats`.
pub(crate) async fn run(ctx: &Context) -> Result<ExitCode, CliError> {
    let stats = ctx.api()?.stats().await?;
    if ctx.json() {
        print_json(&stats)?;
    } else {
        print_text(&render(&stats))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn count(states: &StateCounts, state: &str) -> String {
    states.get(state).copied().unwrap_or(0).to_string()
}

/// `850µs`, `12ms`, `1.5s`, `3m05s`, `2h10m`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 0.001 => format!("{:.0}µs", s * 1e6),
        s if s < 1.0 => format!("{:.0}ms", s * 1e3),
        s if s < 60.0 => format!("{s:.1}s"),
        s if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        s => format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

fn percentiles(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "{} / {} / {}",
            duration(p.p50),
            duration(p.p95),
            duration(p.p99)
        ),
        None => "-".to_owned(),
    }
}

fn rate(name: &str, rate: &Rate) -> String {
    format!(
        "{name}: {:.2} completed/s, {:.2} failed/s ({} and {} in {})",
        rate.completed_per_second,
        rate.failed_per_second,
        rate.completed,
        rate.failed,
        duration(rate.seconds)
    )
}

fn render(stats: &Stats) -> String {
    let mut queues = Table::new(&[
        "QUEUE",
        "AWAITING",
        "PENDING",
        "QUEUED",
        "RUNNING",
        "RETRYING",
        "DEAD",
        "OLDEST DUE",
        "DONE 24H",
        "DIED 24H",
    ]);
    for q in &stats.queues {
        let died = q.finished_24h.get("failed").copied().unwrap_or(0)
            + q.finished_24h.get("timeout").copied().unwrap_or(0);
        queues.push(vec![
            q.queue.clone(),
            count(&q.states, "awaiting_approval"),
            count(&q.states, "pending"),
            count(&q.states, "queued"),
            count(&q.states, "running"),
            count(&q.states, "retrying"),
            q.dead.to_string(),
            if q.oldest_pending_age_seconds > 0.0 {
                duration(q.oldest_pending_age_seconds)
            } else {
                "-".to_owned()
            },
            count(&q.finished_24h, "completed"),
            died.to_string(),
        ]);
    }
    let mut types = Table::new(&[
        "TYPE",
        "PENDING",
        "RUNNING",
        "DEAD",
        "DONE 24H",
        "WAIT P50 / P95 / P99",
        "RUN P50 / P95 / P99",
    ]);
    for t in &stats.task_types {
        let dead = t.states.get("failed").copied().unwrap_or(0)
            + t.states.get("timeout").copied().unwrap_or(0);
        types.push(vec![
            t.task_type.clone(),
            count(&t.states, "pending"),
            count(&t.states, "running"),
            dead.to_string(),
            count(&t.finished_24h, "completed"),
            percentiles(&t.queue_wait_seconds),
            percentiles(&t.run_seconds),
        ]);
    }
    let sample = &stats.sample;
    let coverage = if sample.complete {
        "all of them".to_owned()
    } else {
        format!(
            "the latest {} (at most {}), back to {}",
            sample.rows,
            sample.max_rows,
            timestamp(sample.since)
        )
    };
    [
        format!("jobs at {} ({} dead)", timestamp(stats.at), stats.dead),
        String::new(),
        if stats.queues.is_empty() {
            "no queues".to_owned()
        } else {
            queues.render()
        },
        String::new(),
        if stats.task_types.is_empty() {
            "no task types".to_owned()
        } else {
            types.render()
        },
        String::new(),
        rate("last minute", &stats.throughput.last_minute),
        rate("last hour", &stats.throughput.last_hour),
        format!(
            "last 24h: {}{} created, {} finished (finished jobs read: {coverage})",
            stats.last_24h.created,
            if stats.last_24h.created_complete {
                ""
            } else {
                "+"
            },
            stats.last_24h.finished,
        ),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0.0005), "500µs");
        assert_eq!(duration(0.012), "12ms");
        assert_eq!(duration(1.54), "1.5s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(7_800.0), "2h10m");
    }
}
