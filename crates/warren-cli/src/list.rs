//! `warren list`: one page of jobs as a table, with the cursor of the next
//! page.

use std::process::ExitCode;

use warren_client::{JobPage, JobQuery};

use crate::args::ListArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{attempts, timestamp};
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Runs `warren list`.
pub(crate) async fn run(ctx: &Context, args: ListArgs) -> Result<ExitCode, CliError> {
    let query = JobQuery {
        state: args.state,
        queue: args.queue,
        task_type: args.task_type,
        workflow: args.workflow,
        dead: args.dead,
        sort: args.sort,
        order: args.order,
        cursor: args.cursor,
        limit: Some(args.limit),
    };
    let page = ctx.api()?.list(&query).await?;
    if ctx.json() {
        print_json(&page)?;
    } else {
        print_text(&render(&page))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The table plus, when there is more, how to get the next page.
fn render(page: &JobPage) -> String {
    if page.jobs.is_empty() {
        return "no jobs".to_owned();
    }
    let mut table = Table::new(&[
        "ID", "STATE", "QUEUE", "TYPE", "ATTEMPT", "CREATED", "FINISHED",
    ]);
    for job in &page.jobs {
        table.push(vec![
            job.id.to_string(),
            job.state.to_string(),
            job.queue.clone(),
            job.task_type.clone(),
            attempts(job),
            timestamp(job.created_at),
            job.finished_at.map(timestamp).unwrap_or_default(),
        ]);
    }
    let mut text = table.render();
    if let Some(next) = &page.next {
        text.push_str(&format!("\n(more: --cursor {next})"));
    }
    text
}
