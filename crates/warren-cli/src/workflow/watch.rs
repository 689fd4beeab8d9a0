//! `warren workflow watch ID`: the workflow's steps drawn live, one progress
//! bar per step (state, attempts, stage or error) under a header line with
//! the workflow's status, polled every 500 ms until the workflow finishes.
//! A coordinator restart shows as "reconnecting…" and polling carries on.
//! When stderr is not a terminal, one line per change is printed instead.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use uuid::Uuid;
use warren_client::{wait_for_workflow, ApiClient, Workflow, WorkflowStep, WorkflowWaitEvent};
use warren_core::workflow::WorkflowStatus;
use warren_core::JobState;

use super::show;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::{one_line, truncate};
use crate::output::{print_json, print_text};

/// Poll interval.
const POLL: Duration = Duration::from_millis(500);

/// Runs `warren workflow watch`.
pub(crate) async fn run(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let workflow = follow(&api, id).await?;
    if ctx.json() {
        print_json(&workflow)?;
    } else {
        print_text(&show::render(&workflow, chrono::Utc::now()))?;
    }
    Ok(exit_code(&workflow))
}

/// Draws the workflow on stderr until it finishes; returns the final view.
pub(crate) async fn follow(api: &ApiClient, id: Uuid) -> Result<Workflow, CliError> {
    let mut view = View::new(std::io::stderr().is_terminal());
    let result = wait_for_workflow(api, id, POLL, |event| match event {
        WorkflowWaitEvent::Update(workflow) => view.update(workflow),
        WorkflowWaitEvent::Retrying { error, retry_in } => {
            let why = truncate(&error.to_string(), 100);
            view.note(&format!(
                "reconnecting… ({why}; retry in {:.1}s)",
                retry_in.as_secs_f32()
            ));
        }
    })
    .await;
    view.finish();
    Ok(result?)
}

/// 0 if the workflow completed, 1 otherwise.
pub(crate) fn exit_code(workflow: &Workflow) -> ExitCode {
    if workflow.status == WorkflowStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Live bars on a terminal, change lines otherwise.
enum View {
    Bars {
        multi: MultiProgress,
        header: ProgressBar,
        steps: HashMap<String, ProgressBar>,
    },
    Lines {
        /// Last line printed per step (and "" for the workflow).
        last: HashMap<String, String>,
    },
}

impl View {
    fn new(terminal: bool) -> View {
        if !terminal {
            return View::Lines {
                last: HashMap::new(),
            };
        }
        let multi = MultiProgress::new();
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        header.enable_steady_tick(Duration::from_millis(100));
        View::Bars {
            multi,
            header,
            steps: HashMap::new(),
        }
    }

    fn update(&mut self, workflow: &Workflow) {
        let headline = headline(workflow);
        match self {
            View::Bars {
                multi,
                header,
                steps,
            } => {
                header.set_message(headline);
                let width = workflow
                    .steps
                    .iter()
                    .map(|s| s.name.chars().count())
                    .max()
                    .unwrap_or(4);
                for step in &workflow.steps {
                    let bar = steps.entry(step.name.clone()).or_insert_with(|| {
                        let template =
                            format!("  {{prefix:<{width}}} [{{bar:24}}] {{pos:>3}}% {{wide_msg}}");
                        let style = ProgressStyle::with_template(&template)
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> ");
                        let bar = multi.add(ProgressBar::new(100).with_style(style));
                        bar.set_prefix(step.name.clone());
                        bar
                    });
                    bar.set_position(percent(step));
                    bar.set_message(describe(step));
                }
            }
            View::Lines { last } => {
                let mut say = |key: &str, line: String| {
                    if last.get(key) != Some(&line) {
                        eprintln!("{line}");
                        last.insert(key.to_owned(), line);
                    }
                };
                say("", headline);
                for step in &workflow.steps {
                    say(&step.name, format!("  {}: {}", step.name, describe(step)));
                }
            }
        }
    }

    fn note(&mut self, message: &str) {
        match self {
            View::Bars { header, .. } => header.set_message(message.to_owned()),
            View::Lines { .. } => eprintln!("{message}"),
        }
    }

    fn finish(&self) {
        if let View::Bars { header, steps, .. } = self {
            header.finish();
            for bar in steps.values() {
                bar.finish();
            }
        }
    }
}

/// `etl · running · 40% · 2/5 finished · current: load`.
fn headline(workflow: &Workflow) -> String {
    let finished = workflow.completed + workflow.failed + workflow.skipped + workflow.cancelled;
    let mut text = format!(
        "{} · {} · {}% · {finished}/{} steps finished",
        workflow.name, workflow.status, workflow.percent, workflow.total
    );
    if !workflow.current_steps.is_empty() {
        text.push_str(&format!(
            " · current: {}",
            workflow.current_steps.join(", ")
        ));
    }
    text
}

/// `running attempt 1/3 · resizing` or `failed attempt 3/3 · exit code 1`.
fn describe(step: &WorkflowStep) -> String {
    let mut text = step.state.to_string();
    if step.attempts > 0 {
        text.push_str(&format!(" attempt {}/{}", step.attempts, step.max_attempts));
    }
    match step.state {
        JobState::Running => {
            if let Some(stage) = &step.stage {
                text.push_str(&format!(" · {stage}"));
            }
        }
        JobState::Failed | JobState::Timeout | JobState::Retrying => {
            if let Some(error) = &step.error {
                text.push_str(&format!(" · {}", truncate(&one_line(error), 80)));
            }
        }
        JobState::Blocked if !step.depends_on.is_empty() => {
            text.push_str(&format!(" · after {}", step.depends_on.join(", ")));
        }
        _ => {}
    }
    text
}

/// A step's bar position: its reported progress, 100 once it completed.
fn percent(step: &WorkflowStep) -> u64 {
    match step.state {
        JobState::Completed => 100,
        _ => step
            .progress
            .map_or(0, |p| p.clamp(0.0, 100.0).round() as u64),
    }
}
