//! `warren workflow status|list|events`: a workflow's progress with a table
//! of its steps, a page of workflows, and a workflow's status history.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use warren_client::{Workflow, WorkflowPage, WorkflowQuery};

use super::ListArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{compact_json, one_line, timestamp, timestamp_with_age, truncate};
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Longest result or error shown in a step row.
const MAX_DETAIL_CHARS: usize = 60;

/// Runs `warren workflow status`.
pub(crate) async fn status(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let workflow = ctx.api()?.get_workflow(id).await?;
    if ctx.json() {
        print_json(&workflow)?;
    } else {
        print_text(&render(&workflow, Utc::now()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `key: value` header and the table of steps.
pub(crate) fn render(workflow: &Workflow, now: DateTime<Utc>) -> String {
    let finished = workflow.completed + workflow.failed + workflow.skipped + workflow.cancelled;
    let mut rows: Vec<(&str, String)> = vec![
        ("workflow", workflow.id.to_string()),
        ("name", workflow.name.clone()),
        (
            "status",
            format!(
                "{} {}% ({finished}/{} steps finished)",
                workflow.status, workflow.percent, workflow.total
            ),
        ),
        (
            "steps",
            format!(
                "completed {} · running {} · pending {} · failed {} · skipped {} · cancelled {}",
                workflow.completed,
                workflow.running,
                workflow.pending,
                workflow.failed,
                workflow.skipped,
                workflow.cancelled
            ),
        ),
    ];
    if !workflow.current_steps.is_empty() {
        rows.push(("current", workflow.current_steps.join(", ")));
    }
    rows.push((
        "recovery",
        format!(
            "{} of {} attempts used",
            workflow.recovery_attempts, workflow.max_recovery_attempts
        ),
    ));
    if let Some(template) = &workflow.template {
        rows.push((
            "template",
            format!(
                "{} v{}",
                template["name"].as_str().unwrap_or("?"),
                template["version"]
            ),
        ));
    }
    if workflow.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        rows.push(("metadata", compact_json(&workflow.metadata, 200)));
    }
    rows.push(("created", timestamp_with_age(workflow.created_at, now)));
    if let Some(at) = workflow.finished_at {
        rows.push(("finished", timestamp_with_age(at, now)));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text: String = rows
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}", format!("{key}:")))
        .collect::<Vec<_>>()
        .join("\n");
    let mut table = Table::new(&[
        "STEP",
        "STATE",
        "ATTEMPTS",
        "RUN IF",
        "AFTER",
        "RESULT / ERROR",
    ]);
    for step in &workflow.steps {
        let detail = match (&step.error, &step.result) {
            (Some(error), _) if step.state != warren_core::JobState::Completed => {
                truncate(&one_line(error), MAX_DETAIL_CHARS)
            }
            // An `exec` result reads best as its output.
            (_, Some(result)) => match result.get("stdout").and_then(|s| s.as_str()) {
                Some(stdout) => truncate(
                    &format!("stdout: {}", one_line(stdout.trim_end())),
                    MAX_DETAIL_CHARS,
                ),
                None => compact_json(result, MAX_DETAIL_CHARS),
            },
            _ => step
                .progress
                .filter(|_| step.state == warren_core::JobState::Running)
                .map(|p| format!("{p:.0}% {}", step.stage.as_deref().unwrap_or("")))
                .unwrap_or_default(),
        };
        table.push(vec![
            step.name.clone(),
            step.state.to_string(),
            format!("{}/{}", step.attempts, step.max_attempts),
            step.run_if.clone(),
            if step.depends_on.is_empty() {
                "-".into()
            } else {
                step.depends_on.join(",")
            },
            detail,
        ]);
    }
    text.push_str("\n\n");
    text.push_str(&table.render());
    text
}

/// Runs `warren workflow list`.
pub(crate) async fn list(ctx: &Context, args: ListArgs) -> Result<ExitCode, CliError> {
    let mut metadata = Vec::with_capacity(args.meta.len());
    for pair in &args.meta {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CliError::general(format!("--meta {pair:?}: expected KEY=VALUE")))?;
        metadata.push((key.to_owned(), value.to_owned()));
    }
    let query = WorkflowQuery {
        status: args.status,
        name: args.name,
        metadata,
        before: args.before,
        limit: Some(args.limit),
    };
    let page = ctx.api()?.list_workflows(&query).await?;
    if ctx.json() {
        print_json(&page)?;
    } else {
        print_text(&render_page(&page))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render_page(page: &WorkflowPage) -> String {
    if page.workflows.is_empty() {
        return "no workflows".to_owned();
    }
    let mut table = Table::new(&[
        "ID", "NAME", "STATUS", "STEPS", "FAILED", "RECOVERY", "CREATED",
    ]);
    for w in &page.workflows {
        table.push(vec![
            w.id.to_string(),
            w.name.clone(),
            w.status.to_string(),
            format!("{}/{}", w.completed, w.total),
            w.failed.to_string(),
            format!("{}/{}", w.recovery_attempts, w.max_recovery_attempts),
            timestamp(w.created_at),
        ]);
    }
    let mut text = table.render();
    if let Some(next) = page.next {
        text.push_str(&format!("\n(more: --before {next})"));
    }
    text
}

/// Runs `warren workflow events`.
pub(crate) async fn events(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let events = ctx.api()?.workflow_events(id, 0).await?;
    if ctx.json() {
        print_json(&events)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["TRANSITION", "AT", "DETAIL"]);
    for event in &events {
        let transition = match event.from_status {
            Some(from) => format!("{from} → {}", event.to_status),
            None => format!("→ {}", event.to_status),
        };
        table.push(vec![
            transition,
            timestamp(event.at),
            event
                .detail
                .as_ref()
                .map_or("-".into(), |d| compact_json(d, 120)),
        ]);
    }
    print_text(&table.render())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn status_shows_counts_and_one_row_per_step() {
        let workflow: Workflow = serde_json::from_value(json!({
            "id": "0190b6c4-5c2e-7d2a-9f00-000000000001", "name": "etl", "status": "running",
            "percent": 50, "total": 2, "completed": 1, "failed": 0, "running": 1, "pending": 0,
            "skipped": 0, "cancelled": 0, "current_steps": ["load"], "recovery_attempts": 0,
            "max_recovery_attempts": 3, "metadata": {}, "template": null,
            "created_at": "2025-01-31T11:59:00Z", "started_at": null, "finished_at": null,
            "steps": [
                {"name": "extract", "index": 0, "state": "completed", "run_if": "all_succeeded",
                 "depends_on": [], "queue": "default", "type": "echo",
                 "job_id": "0190b6c4-5c2e-7d2a-9f00-000000000002", "attempts": 1, "max_attempts": 5,
                 "progress": 100.0, "stage": null, "error": null, "result": {"rows": 3}, "worker_id": "w"},
                {"name": "load", "index": 1, "state": "running", "run_if": "all_succeeded",
                 "depends_on": ["extract"], "queue": "default", "type": "sleep",
                 "job_id": "0190b6c4-5c2e-7d2a-9f00-000000000003", "attempts": 1, "max_attempts": 5,
                 "progress": 40.0, "stage": "copying", "error": null, "result": null, "worker_id": "w"}
            ]
        }))
        .unwrap();
        let now = Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap();
        let text = render(&workflow, now);
        assert!(
            text.contains("status:   running 50% (1/2 steps finished)"),
            "{text}"
        );
        assert!(text.contains("current:  load"), "{text}");
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("STEP"))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[1].starts_with("extract  completed  1/5") && rows[1].ends_with("{\"rows\":3}")
        );
        assert!(
            rows[2].contains("extract") && rows[2].ends_with("40% copying"),
            "{text}"
        );
    }
}
