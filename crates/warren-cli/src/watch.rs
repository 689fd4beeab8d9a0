//! `warren watch ID`: a live progress bar (percent, stage, state) polling
//! every 250 ms until the job finishes. Coordinator restarts show as
//! "reconnecting…" and polling carries on. Exit 0 only if the job completed.
//!
//! When stderr is not a terminal the bar is replaced by one line per change.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;
use warren_client::{watch_job, ClientError, Job, WaitEvent};

use crate::context::Context;
use crate::failure::CliError;
use crate::format::{attempts, summary, truncate};
use crate::output::{print_json, print_text};

/// Poll interval.
const POLL: Duration = Duration::from_millis(250);
/// Bar layout: spinner, bar, percent, message.
const TEMPLATE: &str = "{spinner} [{bar:30}] {pos:>3}% {wide_msg}";

/// Runs `warren watch`.
pub(crate) async fn run(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let mut view = View::new(std::io::stderr().is_terminal());
    let result = watch_job(&api, id, POLL, |event| view.show(event)).await;
    view.finish();
    let job = result?;
    if ctx.json() {
        print_json(&job)?;
    } else {
        print_text(&summary(&job))?;
    }
    Ok(if job.is_completed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A progress bar on a terminal, plain lines otherwise.
enum View {
    Bar(ProgressBar),
    /// The last line printed, to skip repeats.
    Lines(String),
}

impl View {
    fn new(terminal: bool) -> View {
        if !terminal {
            return View::Lines(String::new());
        }
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::new(100).with_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        View::Bar(bar)
    }

    fn show(&mut self, event: WaitEvent<'_>) {
        let message = match &event {
            WaitEvent::Update(job) => describe(job),
            WaitEvent::Retrying { error, retry_in } => retrying(error, *retry_in),
        };
        match self {
            View::Bar(bar) => {
                if let WaitEvent::Update(job) = event {
                    bar.set_position(percent(job));
                }
                bar.set_message(message);
            }
            View::Lines(last) => {
                let line = match event {
                    WaitEvent::Update(job) => format!("{:>3}% {message}", percent(job)),
                    WaitEvent::Retrying { .. } => message,
                };
                if *last != line {
                    eprintln!("{line}");
                    *last = line;
                }
            }
        }
    }

    fn finish(&self) {
        if let View::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// `running attempt 1/5 · resizing · host-1`.
fn describe(job: &Job) -> String {
    let mut text = format!("{} attempt {}", job.state, attempts(job));
    if let Some(stage) = &job.stage {
        text.push_str(&format!(" · {stage}"));
    }
    if let Some(worker) = &job.worker_id {
        text.push_str(&format!(" · {worker}"));
    }
    text
}

/// What a retried poll means for the user.
fn retrying(error: &ClientError, retry_in: Duration) -> String {
    let seconds = retry_in.as_secs_f32();
    if error.is_not_found() {
        format!("waiting for the coordinator to accept the job… (retry in {seconds:.1}s)")
    } else {
        let why = truncate(&error.to_string(), 120);
        format!("reconnecting… ({why}; retry in {seconds:.1}s)")
    }
}

/// The job's progress as a whole percent (100 once completed).
fn percent(job: &Job) -> u64 {
    if job.is_completed() {
        return 100;
    }
    job.progress
        .map_or(0, |p| p.clamp(0.0, 100.0).round() as u64)
}
