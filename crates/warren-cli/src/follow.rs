//! `warren events --follow [ID]`: prints events as they happen, one line
//! each (one JSON object per line with `--json`), from the coordinator's
//! Server-Sent Events. A disconnect is retried with `Last-Event-ID`, so no
//! event is lost or repeated; reconnect notices go to stderr. Following one
//! job ends once it is completed, cancelled or skipped.

use std::io::Write;
use std::process::ExitCode;

use warren_client::{EventQuery, EventSource, Followed, TransitionEvent};
use warren_core::JobState;

use crate::args::EventsArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{compact_json, timestamp_ms, truncate};

/// Longest detail shown per event.
const MAX_DETAIL_CHARS: usize = 120;

/// Runs `warren events --follow`.
pub(crate) async fn run(ctx: &Context, args: EventsArgs) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let source = match args.id {
        Some(id) => EventSource::Job(id),
        None => EventSource::All(EventQuery {
            queue: args.queue,
            task_type: args.task_type,
            state: args.state,
            job: None,
            after: args.after,
        }),
    };
    let one_job = matches!(source, EventSource::Job(_));
    let mut follower = api.follow_events(source);
    loop {
        match follower.next().await? {
            Followed::Event(event) => {
                if !print(&event, ctx.json())? {
                    return Ok(ExitCode::SUCCESS); // the reader went away
                }
                if one_job && ends_job(event.to) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Followed::Reconnecting { error, retry_in } => {
                let why = truncate(&error.to_string(), 120);
                eprintln!(
                    "reconnecting… ({why}; retry in {:.1}s)",
                    retry_in.as_secs_f32()
                );
            }
        }
    }
}

/// States after which a job has no more events of its own.
fn ends_job(state: JobState) -> bool {
    matches!(
        state,
        JobState::Completed | JobState::Cancelled | JobState::Skipped
    )
}

/// Prints one event; `false` once stdout is closed.
fn print(event: &TransitionEvent, json: bool) -> Result<bool, CliError> {
    let line = if json {
        serde_json::to_string(event)
            .map_err(|e| CliError::general(format!("cannot encode JSON output: {e}")))?
    } else {
        line(event)
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CliError::general(format!("cannot write output: {e}"))),
    }
}

/// `1234  2026-11-23 10:00:00.123  <job>  media/resize  running → completed  attempt 1  host-1  {…}`.
fn line(event: &TransitionEvent) -> String {
    let from = event.from.map(|s| s.to_string()).unwrap_or_default();
    let transition = format!("{from} → {}", event.to).trim_start().to_owned();
    let detail = event
        .detail
        .as_ref()
        .filter(|d| !d.is_null())
        .map(|d| compact_json(d, MAX_DETAIL_CHARS))
        .unwrap_or_else(|| "-".into());
    format!(
        "{}  {}  {}  {}/{}  {transition}  attempt {}  {}  {detail}",
        event.id,
        timestamp_ms(event.at),
        event.job_id,
        event.queue,
        event.task_type,
        event.attempt,
        event.worker_id.as_deref().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_line_shows_the_transition_and_its_context() {
        let event = TransitionEvent {
            v: 1,
            id: 12,
            job_id: Uuid::nil(),
            queue: "media".into(),
            task_type: "resize".into(),
            workflow_id: None,
            step_name: None,
            from: Some(JobState::Running),
            to: JobState::Failed,
            attempt: 2,
            worker_id: Some("host-1".into()),
            at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            detail: Some(serde_json::json!({"error": "boom"})),
        };
        let text = line(&event);
        assert!(text.starts_with("12  "), "{text}");
        assert!(
            text.contains("media/resize  running → failed  attempt 2  host-1"),
            "{text}"
        );
        assert!(text.contains(r#"{"error":"boom"}"#), "{text}");
        assert!(ends_job(JobState::Completed) && !ends_job(JobState::Failed));
    }
}
