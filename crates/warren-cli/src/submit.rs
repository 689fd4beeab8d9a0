//! `warren submit`: publish job(s) over AMQP, print the ids, optionally wait
//! for the job to finish.

use std::process::ExitCode;
use std::time::Duration;

use warren_client::{wait_for_terminal, Job};

use crate::args::SubmitArgs;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{attempts, compact_json, one_line, summary, truncate};
use crate::output::{print_json, print_text};
use crate::spec::build_specs;

/// How often `--wait` polls the job.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// Longest result shown in the `--wait` summary.
const MAX_RESULT_CHARS: usize = 500;

/// Runs `warren submit`.
pub(crate) async fn run(ctx: &Context, args: SubmitArgs) -> Result<ExitCode, CliError> {
    let specs = build_specs(&args)?;
    // Check the token before submitting: failing after would leave a job behind.
    let api = if args.wait { Some(ctx.api()?) } else { None };
    let submitter = ctx.submitter().await?;
    let submitted = submitter.submit_batch(specs).await;
    submitter.close().await;
    let ids = submitted?;

    let Some(api) = api else {
        if ctx.json() {
            print_json(&ids)?;
        } else {
            print_text(
                &ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    };

    let id = ids[0];
    if !ctx.json() {
        print_text(&id.to_string())?;
    }
    let job = wait_for_terminal(&api, id, WAIT_POLL, report_change).await?;
    if ctx.json() {
        print_json(&job)?;
    } else {
        print_text(&final_summary(&job))?;
    }
    Ok(if job.is_completed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A state change, on stderr so stdout stays the id and the outcome.
fn report_change(job: &Job) {
    let mut line = format!("{}: {} (attempt {})", job.id, job.state, attempts(job));
    if let Some(worker) = &job.worker_id {
        line.push_str(&format!(" on {worker}"));
    }
    if let (Some(error), false) = (&job.error, job.is_completed()) {
        line.push_str(&format!(": {}", truncate(&one_line(error), 200)));
    }
    eprintln!("{line}");
}

/// The outcome: state, attempts, error and (truncated) result.
fn final_summary(job: &Job) -> String {
    let mut text = summary(job);
    if let Some(result) = &job.result {
        text.push_str(&format!(
            "\nresult: {}",
            compact_json(result, MAX_RESULT_CHARS)
        ));
    }
    text
}
