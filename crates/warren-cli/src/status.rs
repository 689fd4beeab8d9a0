//! `warren status ID`: a job's key fields as aligned `key: value` lines, or
//! the API's JSON with `--json`.

use std::process::ExitCode;

use chrono::Utc;
use uuid::Uuid;
use warren_client::Job;

use crate::context::Context;
use crate::failure::CliError;
use crate::format::{attempts, compact_json, one_line, progress, timestamp_with_age};
use crate::output::{print_json, print_text};

/// Longest result shown.
const MAX_RESULT_CHARS: usize = 500;

/// Runs `warren status`.
pub(crate) async fn run(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let job = ctx.api()?.get_job(id).await?;
    if ctx.json() {
        print_json(&job)?;
    } else {
        print_text(&render(&job, Utc::now()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The aligned `key: value` lines; absent values are left out.
fn render(job: &Job, now: chrono::DateTime<Utc>) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", job.id.to_string()),
        ("state", job.state.to_string()),
        ("queue", job.queue.clone()),
        ("type", job.task_type.clone()),
        ("attempt", attempts(job)),
        ("priority", job.priority.to_string()),
    ];
    let mut optional = |key, value: Option<String>| {
        if let Some(value) = value {
            rows.push((key, value));
        }
    };
    optional("progress", progress(job));
    optional("worker", job.worker_id.clone());
    optional("error", job.error.as_deref().map(one_line));
    optional(
        "result",
        job.result
            .as_ref()
            .map(|r| compact_json(r, MAX_RESULT_CHARS)),
    );
    optional("idempotency", job.idempotency_key.clone());
    optional("created", Some(timestamp_with_age(job.created_at, now)));
    optional(
        "run at",
        (job.run_at > now).then(|| timestamp_with_age(job.run_at, now)),
    );
    optional("queued", job.queued_at.map(|t| timestamp_with_age(t, now)));
    optional(
        "started",
        job.started_at.map(|t| timestamp_with_age(t, now)),
    );
    optional(
        "finished",
        job.finished_at.map(|t| timestamp_with_age(t, now)),
    );
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(key, value)| format!("{:<width$} {value}", format!("{key}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn shows_present_fields_aligned() {
        let job: Job = serde_json::from_value(json!({
            "id": "0190b6c4-5c2e-7d2a-9f00-000000000001", "queue": "default",
            "task_type": "echo", "state": "completed", "payload": {}, "priority": 0,
            "attempt": 1, "max_attempts": 5, "timeout_ms": null,
            "run_at": "2025-01-31T11:59:00Z", "worker_id": "host-1", "progress": 100.0,
            "stage": null, "checkpoint": null, "result": {"a": 1}, "error": null,
            "idempotency_key": null, "requires_approval": false, "metadata": null,
            "created_at": "2025-01-31T11:59:00Z", "queued_at": null,
            "started_at": null, "finished_at": "2025-01-31T11:59:58Z"
        }))
        .unwrap();
        let now = Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap();
        let text = render(&job, now);
        let expected = "\
id:       0190b6c4-5c2e-7d2a-9f00-000000000001
state:    completed
queue:    default
type:     echo
attempt:  1/5
priority: 0
progress: 100%
worker:   host-1
result:   {\"a\":1}
created:  2025-01-31 11:59:00.000Z (1m ago)
finished: 2025-01-31 11:59:58.000Z (2s ago)";
        assert_eq!(text, expected);
    }
}
