//! `warren cleanup --older-than D [--state S]...`: deletes finished jobs and
//! their events now. The coordinator bounds each call, so this repeats the
//! call until it reports that nothing older is left.

use std::process::ExitCode;

use warren_client::Cleanup;
use warren_core::format_duration;

use crate::args::CleanupArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::output::{print_json, print_text};

/// Most calls one run makes (each deletes at most 20,000 jobs).
const MAX_CALLS: usize = 10_000;

/// Runs `warren cleanup`.
pub(crate) async fn run(ctx: &Context, args: CleanupArgs) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let older_than = format_duration(args.older_than);
    let mut total = Cleanup {
        deleted_jobs: 0,
        deleted_events: 0,
        complete: false,
    };
    for _ in 0..MAX_CALLS {
        let step = api.cleanup(&older_than, &args.states).await?;
        total.deleted_jobs += step.deleted_jobs;
        total.deleted_events += step.deleted_events;
        total.complete = step.complete;
        if step.complete {
            break;
        }
    }
    if ctx.json() {
        print_json(&total)?;
    } else {
        print_text(&format!(
            "deleted {} jobs and {} events that finished more than {older_than} ago",
            total.deleted_jobs, total.deleted_events
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
