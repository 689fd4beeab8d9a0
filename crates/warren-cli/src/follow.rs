//! `warren events --follow [ID]` and `warren workflow events ID --follow`:
//! prints events as they happen, one line each (one JSON object per line
//! with `--json`), from the coordinator's Server-Sent Events: job transitions
//! and workflow status changes. A disconnect is retried with
//! `Last-Event-ID`, so no event is lost or repeated; reconnect notices go to
//! stderr. Following one job ends once it is completed, cancelled or
//! skipped; following one workflow, once it is completed or cancelled.

use std::io::Write;
use std::process::ExitCode;

use warren_client::{
    EventQuery, EventSource, Followed, StreamEvent, TransitionEvent, WorkflowTransitionEvent,
};
use warren_core::workflow::WorkflowStatus;
use warren_core::JobState;

use crate::args::EventsArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{compact_json, timestamp_ms, truncate};

/// Longest detail shown per event.
const MAX_DETAIL_CHARS: usize = 120;

/// Runs `warren events --follow`.
pub(crate) async fn run(ctx: &Context, args: EventsArgs) -> Result<ExitCode, CliError> {
    let source = match args.id {
        Some(id) => EventSource::Job(id),
        None => EventSource::All(EventQuery {
            queue: args.queue,
            task_type: args.task_type,
            state: args.state,
            job: None,
            workflow: args.workflow,
            kind: args.kind,
            after: args.after,
        }),
    };
    follow(ctx, source).await
}

/// Prints the events of `source` until it ends (one job or workflow) or
/// the reader goes away.
pub(crate) async fn follow(ctx: &Context, source: EventSource) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let ends = |event: &StreamEvent| match (&source, event) {
        (EventSource::Job(_), StreamEvent::Job(e)) => ends_job(e.to),
        (EventSource::Workflow(id), StreamEvent::Workflow(e)) => {
            e.workflow_id == *id && ends_workflow(e.to)
        }
        _ => false,
    };
    let mut follower = api.follow_events(source.clone());
    loop {
        match follower.next().await? {
            Followed::Event(event) => {
                if !print(&event, ctx.json())? {
                    return Ok(ExitCode::SUCCESS); // the reader went away
                }
                if ends(&event) {
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

/// Statuses after which a workflow has no more events (a failed one may
/// still be recovered).
fn ends_workflow(status: WorkflowStatus) -> bool {
    matches!(
        status,
        WorkflowStatus::Completed | WorkflowStatus::Cancelled
    )
}

/// Prints one event; `false` once stdout is closed. JSON lines carry a
/// `kind` (`job` or `workflow`) beside the event's own fields.
fn print(event: &StreamEvent, json: bool) -> Result<bool, CliError> {
    let line = if json {
        let mut value = serde_json::to_value(event)
            .map_err(|e| CliError::general(format!("cannot encode JSON output: {e}")))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("kind".into(), event.kind().as_str().into());
        }
        value.to_string()
    } else {
        match event {
            StreamEvent::Job(event) => line(event),
            StreamEvent::Workflow(event) => workflow_line(event),
        }
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
    let detail = detail(event.detail.as_ref());
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

/// `1240  2026-11-23 10:00:01.456  <workflow>  workflow dataset-build  running → completed  -`.
fn workflow_line(event: &WorkflowTransitionEvent) -> String {
    let from = event.from.map(|s| s.as_str()).unwrap_or_default();
    let transition = format!("{from} → {}", event.to.as_str())
        .trim_start()
        .to_owned();
    format!(
        "{}  {}  {}  workflow {}  {transition}  {}",
        event.id,
        timestamp_ms(event.at),
        event.workflow_id,
        if event.name.is_empty() {
            "-"
        } else {
            &event.name
        },
        detail(event.detail.as_ref()),
    )
}

/// An event's detail, compact, or `-`.
fn detail(detail: Option<&serde_json::Value>) -> String {
    detail
        .filter(|d| !d.is_null())
        .map(|d| compact_json(d, MAX_DETAIL_CHARS))
        .unwrap_or_else(|| "-".into())
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

    #[test]
    fn a_workflow_line_names_the_workflow_and_its_move() {
        let event = WorkflowTransitionEvent {
            v: 1,
            id: 40,
            workflow_id: Uuid::nil(),
            name: "dataset-build".into(),
            from: Some(WorkflowStatus::Running),
            to: WorkflowStatus::Failed,
            at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            detail: None,
        };
        let text = workflow_line(&event);
        assert!(text.starts_with("40  "), "{text}");
        assert!(
            text.ends_with("workflow dataset-build  running → failed  -"),
            "{text}"
        );
        assert!(ends_workflow(WorkflowStatus::Completed) && !ends_workflow(WorkflowStatus::Failed));
    }
}
