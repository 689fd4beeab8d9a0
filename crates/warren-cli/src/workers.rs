//! `warren workers`: every known worker with its queues, load and how long
//! ago it last sent a heartbeat.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use warren_client::Worker;

use crate::context::Context;
use crate::failure::CliError;
use crate::format::age;
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Runs `warren workers`.
pub(crate) async fn run(ctx: &Context) -> Result<ExitCode, CliError> {
    let workers = ctx.api()?.workers().await?;
    if ctx.json() {
        print_json(&workers)?;
    } else {
        print_text(&render(&workers, Utc::now()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render(workers: &[Worker], now: DateTime<Utc>) -> String {
    if workers.is_empty() {
        return "no workers".to_owned();
    }
    let mut table = Table::new(&["ID", "QUEUES", "CONCURRENCY", "RUNNING", "LAST HEARTBEAT"]);
    for worker in workers {
        table.push(vec![
            worker.id.clone(),
            worker.queues.join(","),
            worker.concurrency.to_string(),
            worker.running.to_string(),
            age(worker.last_heartbeat_at, now),
        ]);
    }
    table.render()
}
