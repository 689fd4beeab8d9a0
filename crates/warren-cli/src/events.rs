//! `warren events ID`: a job's audit log, every page of it, as a table.
//! With `--follow`, the live stream instead (see [`crate::follow`]).

use std::process::ExitCode;

use uuid::Uuid;
use warren_client::JobEvent;

use crate::args::EventsArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{compact_json, timestamp_ms};
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Longest detail shown per event.
const MAX_DETAIL_CHARS: usize = 120;
/// Safety stop against a server that keeps answering the same page.
const MAX_PAGES: usize = 10_000;

/// Runs `warren events`.
pub(crate) async fn run(ctx: &Context, args: EventsArgs) -> Result<ExitCode, CliError> {
    match args.id {
        Some(id) if !args.follow => history(ctx, id).await,
        _ => crate::follow::run(ctx, args).await,
    }
}

/// Prints a job's whole event log.
async fn history(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let mut events: Vec<JobEvent> = Vec::new();
    let mut after = 0;
    for _ in 0..MAX_PAGES {
        let page = api.job_events(id, after).await?;
        match page.last() {
            Some(last) if last.id > after => after = last.id,
            _ => break,
        }
        events.extend(page);
    }
    if ctx.json() {
        print_json(&events)?;
    } else {
        print_text(&render(&events))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render(events: &[JobEvent]) -> String {
    if events.is_empty() {
        return "no events".to_owned();
    }
    let mut table = Table::new(&["ID", "AT", "TRANSITION", "ATTEMPT", "WORKER", "DETAIL"]);
    for event in events {
        let from = event.from_state.map(|s| s.to_string()).unwrap_or_default();
        table.push(vec![
            event.id.to_string(),
            timestamp_ms(event.at),
            format!("{from} → {}", event.to_state)
                .trim_start()
                .to_owned(),
            event.attempt.to_string(),
            event.worker_id.clone().unwrap_or_else(|| "-".into()),
            event
                .detail
                .as_ref()
                .filter(|d| !d.is_null())
                .map(|d| compact_json(d, MAX_DETAIL_CHARS))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    table.render()
}
