//! `warren queue list|show|pause|resume|set`: queue controls through the
//! coordinator's API. `list` prints one table row per queue; the others
//! print the queue as aligned `key: value` lines (or its JSON with `--json`).

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value};
use warren_client::Queue;
use warren_core::format_duration;

use crate::context::Context;
use crate::failure::CliError;
use crate::output::{print_json, print_text};
use crate::queue_args::QueueCommand;
use crate::table::Table;

/// Runs one `warren queue` subcommand.
pub(crate) async fn run(ctx: &Context, command: QueueCommand) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let queue = match command {
        QueueCommand::List => {
            let queues = api.queues().await?;
            if ctx.json() {
                print_json(&queues)?;
            } else {
                print_text(&render_list(&queues))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        QueueCommand::Show { queue } => api.queue(&queue).await?,
        QueueCommand::Pause { queue } => api.pause_queue(&queue).await?,
        QueueCommand::Resume { queue } => api.resume_queue(&queue).await?,
        QueueCommand::Set(args) => api.update_queue(&args.queue, &args.patch()?).await?,
    };
    if ctx.json() {
        print_json(&queue)?;
    } else {
        print_text(&render_one(&queue))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Job counts shown as table columns, in lifecycle order.
const COLUMNS: [&str; 5] = ["pending", "queued", "running", "retrying", "dead"];

fn render_list(queues: &[Queue]) -> String {
    if queues.is_empty() {
        return "no queues".to_owned();
    }
    let mut header = vec!["QUEUE", "DISPATCH", "MAX IN FLIGHT", "RATE/S"];
    let upper: Vec<String> = COLUMNS.iter().map(|c| c.to_uppercase()).collect();
    header.extend(upper.iter().map(String::as_str));
    header.push("OLDEST WAIT");
    let mut table = Table::new(&header);
    for queue in queues {
        let mut row = vec![
            queue.name.clone(),
            dispatch(queue).to_owned(),
            limit(queue.max_in_flight.map(|n| n.to_string())),
            limit(queue.rate_limit.map(|r| r.to_string())),
        ];
        row.extend(COLUMNS.iter().map(|c| count(queue, c).to_string()));
        row.push(wait(queue));
        table.push(row);
    }
    table.render()
}

fn render_one(queue: &Queue) -> String {
    let counts: Vec<String> = queue
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    let rows = [
        ("queue", queue.name.clone()),
        ("dispatch", dispatch(queue).to_owned()),
        (
            "max in flight",
            limit(queue.max_in_flight.map(|n| n.to_string())),
        ),
        (
            "rate limit",
            limit(queue.rate_limit.map(|r| format!("{r}/s"))),
        ),
        (
            "task batch",
            queue.task_batch.map_or_else(
                || "coordinator default".to_owned(),
                |n| format!("{n} a message"),
            ),
        ),
        (
            "jobs",
            if counts.is_empty() {
                "none waiting or running".to_owned()
            } else {
                counts.join(", ")
            },
        ),
        ("oldest wait", wait(queue)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text = rows
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}", format!("{key}:")))
        .collect::<Vec<_>>()
        .join("\n");
    if queue.task_defaults.is_empty() {
        text.push_str(&format!("\n{:<width$} none", "task defaults:"));
    } else {
        text.push_str("\ntask defaults:\n");
        text.push_str(&render_defaults(queue));
    }
    text
}

fn render_defaults(queue: &Queue) -> String {
    let mut table = Table::new(&["  TYPE", "TIMEOUT", "MAX ATTEMPTS", "BACKOFF"]);
    for (task_type, defaults) in &queue.task_defaults {
        table.push(vec![
            format!("  {task_type}"),
            millis(defaults, "timeout_ms"),
            defaults
                .get("max_attempts")
                .map_or_else(|| "-".to_owned(), Value::to_string),
            backoff(defaults),
        ]);
    }
    table.render()
}

/// `base 1s ×2 max 1m jitter 0.1`, only the parts that are set.
fn backoff(defaults: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    if defaults.contains_key("base_delay_ms") {
        parts.push(format!("base {}", millis(defaults, "base_delay_ms")));
    }
    if let Some(factor) = defaults.get("factor") {
        parts.push(format!("×{factor}"));
    }
    if defaults.contains_key("max_delay_ms") {
        parts.push(format!("max {}", millis(defaults, "max_delay_ms")));
    }
    if let Some(jitter) = defaults.get("jitter") {
        parts.push(format!("jitter {jitter}"));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A millisecond field as a duration (`5m`), or `-`.
fn millis(defaults: &Map<String, Value>, field: &str) -> String {
    defaults.get(field).and_then(Value::as_u64).map_or_else(
        || "-".to_owned(),
        |ms| format_duration(Duration::from_millis(ms)),
    )
}

fn dispatch(queue: &Queue) -> &'static str {
    if queue.paused {
        "paused"
    } else {
        "active"
    }
}

fn limit(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

fn count(queue: &Queue, state: &str) -> i64 {
    queue.counts.get(state).copied().unwrap_or(0)
}

fn wait(queue: &Queue) -> String {
    queue.oldest_pending_age_ms.map_or_else(
        || "-".to_owned(),
        |ms| format_duration(Duration::from_secs((ms.max(0) as u64) / 1000)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn media() -> Queue {
        serde_json::from_value(json!({
            "name": "media", "paused": true, "max_in_flight": 4, "rate_limit": 0.5,
            "task_defaults": {
                "image": {"timeout_ms": 300000, "max_attempts": 3},
                "video": {"timeout_ms": 3600000, "base_delay_ms": 1000, "factor": 2.0}
            },
            "counts": {"awaiting_approval": 0, "pending": 12, "queued": 1, "running": 3, "dead": 2},
            "oldest_pending_age_ms": 95000
        }))
        .unwrap()
    }

    #[test]
    fn list_is_one_row_per_queue() {
        assert_eq!(
            render_list(&[media()]),
            "QUEUE  DISPATCH  MAX IN FLIGHT  RATE/S  PENDING  QUEUED  RUNNING  RETRYING  DEAD  OLDEST WAIT\n\
             media  paused    4              0.5     12       1       3        0         2     95s"
        );
        assert_eq!(render_list(&[]), "no queues");
    }

    #[test]
    fn show_lists_settings_counts_and_defaults() {
        assert_eq!(
            render_one(&media()),
            "queue:         media\n\
             dispatch:      paused\n\
             max in flight: 4\n\
             rate limit:    0.5/s\n\
             task batch:    coordinator default\n\
             jobs:          dead 2, pending 12, queued 1, running 3\n\
             oldest wait:   95s\n\
             task defaults:\n  \
             TYPE   TIMEOUT  MAX ATTEMPTS  BACKOFF\n  \
             image  5m       3             -\n  \
             video  1h       -             base 1s ×2.0"
        );
    }
}
