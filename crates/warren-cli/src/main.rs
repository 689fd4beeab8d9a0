//! `warren`: the operator's command-line tool. Submits jobs over AMQP and
//! queries or administers them through the coordinator's HTTP API.
//!
//! This file only parses arguments, sets up logging and the runtime, runs the
//! command and turns its outcome into an exit code: 0 success, 1 failure,
//! 2 conflict (the job's state forbids the move), 3 not found.

mod admin;
mod args;
mod bench;
mod cleanup;
mod context;
mod events;
mod failure;
mod follow;
mod format;
mod health;
mod list;
mod output;
mod queue;
mod queue_args;
mod spec;
mod stats;
mod status;
mod submit;
mod table;
mod watch;
mod workers;
mod workflow;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::context::Context;
use crate::failure::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(CliError::general(format!("cannot start the runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => report(e),
    }
}

/// Runs one command.
async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Submit(args) => submit::run(&ctx, args).await,
        Command::Status { id } => status::run(&ctx, id).await,
        Command::List(args) => list::run(&ctx, args).await,
        Command::Watch { id } => watch::run(&ctx, id).await,
        Command::Events(args) => events::run(&ctx, args).await,
        Command::Cancel { id, by, reason } => {
            admin::run(&ctx, admin::Action::Cancel { by, reason }, id).await
        }
        Command::Retry { id } => admin::run(&ctx, admin::Action::Retry, id).await,
        Command::Approve { id, by, comment } => {
            admin::run(&ctx, admin::Action::Approve { by, comment }, id).await
        }
        Command::Workers => workers::run(&ctx).await,
        Command::Queue { command } => queue::run(&ctx, command).await,
        Command::Health => health::run(&ctx).await,
        Command::Stats => stats::run(&ctx).await,
        Command::Cleanup(args) => cleanup::run(&ctx, args).await,
        Command::Bench(args) => bench::run(&ctx, args).await,
        Command::Workflow(command) => workflow::run(&ctx, command).await,
        Command::Template(command) => workflow::run_template(&ctx, command).await,
    }
}

/// Prints `error: <message>` and returns the error's exit code.
fn report(error: CliError) -> ExitCode {
    eprintln!("error: {error}");
    error.exit_code()
}

/// Logs go to stderr, warnings and up unless `RUST_LOG` says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
