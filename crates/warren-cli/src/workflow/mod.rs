//! `warren workflow ...` and `warren template ...`: submit workflows (from a
//! JSON/YAML file, a template file, or a stored template), follow their
//! progress, control them, and manage stored templates. Everything goes
//! through the coordinator's HTTP API, so a submission's validation errors
//! (naming the steps or variables at fault) come straight back.

mod control;
mod file;
mod show;
mod submit;
mod template;
mod watch;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use uuid::Uuid;

use crate::context::Context;
use crate::failure::CliError;

/// `warren workflow <command>`.
#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// Submit a workflow (JSON or YAML file, a template file with --var, or
    /// a stored template with --template) and print its id.
    Submit(SubmitArgs),
    /// Show a workflow's status and every step.
    Status {
        /// Workflow id.
        id: Uuid,
    },
    /// Follow a workflow live until it finishes (exit 0 only if it completed).
    Watch {
        /// Workflow id.
        id: Uuid,
    },
    /// List workflows, newest first.
    List(ListArgs),
    /// Show a workflow's status history; with --follow, stream its status
    /// changes and its steps' job events until it completes or is cancelled.
    Events {
        /// Workflow id.
        id: Uuid,
        /// Stream live (Server-Sent Events), resuming after disconnects.
        #[arg(long, short)]
        follow: bool,
    },
    /// Pause: no further step starts; running steps finish.
    Pause {
        /// Workflow id.
        id: Uuid,
    },
    /// Resume a paused workflow.
    Resume {
        /// Workflow id.
        id: Uuid,
    },
    /// Cancel: unfinished steps are cancelled, running ones told to stop.
    Cancel {
        /// Workflow id.
        id: Uuid,
    },
    /// Recover a failed workflow from a step (that step and everything after
    /// it run again).
    Recover {
        /// Workflow id.
        id: Uuid,
        /// The step to start again from.
        #[arg(long, value_name = "STEP")]
        from_step: String,
    },
    /// Give one failed step of a failed workflow one more attempt.
    RetryStep {
        /// Workflow id.
        id: Uuid,
        /// Step name.
        step: String,
    },
}

/// `warren workflow submit`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubmitArgs {
    /// Workflow definition or template file (.json, .yaml/.yml; otherwise the
    /// content decides). Not needed with --template.
    #[arg(value_name = "FILE", required_unless_present = "template")]
    pub(crate) file: Option<std::path::PathBuf>,
    /// A template variable, `name=value` (repeatable). Values are read as the
    /// variable's declared type (numbers, true/false, JSON arrays/objects).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub(crate) vars: Vec<String>,
    /// Instantiate this stored template instead of a file.
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    pub(crate) template: Option<String>,
    /// Version of --template (default: the latest).
    #[arg(long, requires = "template")]
    pub(crate) version: Option<u32>,
    /// Client-chosen workflow id (a second submission with it creates nothing).
    #[arg(long)]
    pub(crate) id: Option<Uuid>,
    /// Wait until the workflow finishes; exit 0 only if it completed.
    #[arg(long)]
    pub(crate) wait: bool,
}

/// `warren workflow list`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    /// active, failed, recoverable, or any status name.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only workflows with this name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Only workflows whose metadata field KEY equals VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub(crate) meta: Vec<String>,
    /// Page size (the coordinator caps it at 500).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// Only workflows older than this id (the `next` cursor of the previous page).
    #[arg(long, value_name = "ID")]
    pub(crate) before: Option<Uuid>,
}

/// `warren template <command>`.
#[derive(Debug, Subcommand)]
pub(crate) enum TemplateCommand {
    /// Store a template from a JSON or YAML file (its version must be newer
    /// than the latest stored).
    Put {
        /// Template file.
        file: std::path::PathBuf,
    },
    /// Print a stored template (JSON).
    Get {
        /// Template name.
        name: String,
        /// Version (default: the latest).
        #[arg(long)]
        version: Option<u32>,
    },
    /// List stored templates (latest version of each).
    List,
}

/// Runs a `warren workflow` command.
pub(crate) async fn run(ctx: &Context, command: WorkflowCommand) -> Result<ExitCode, CliError> {
    match command {
        WorkflowCommand::Submit(args) => submit::run(ctx, args).await,
        WorkflowCommand::Status { id } => show::status(ctx, id).await,
        WorkflowCommand::Watch { id } => watch::run(ctx, id).await,
        WorkflowCommand::List(args) => show::list(ctx, args).await,
        WorkflowCommand::Events { id, follow: false } => show::events(ctx, id).await,
        WorkflowCommand::Events { id, follow: true } => {
            crate::follow::follow(ctx, warren_client::EventSource::Workflow(id)).await
        }
        WorkflowCommand::Pause { id } => control::pause(ctx, id).await,
        WorkflowCommand::Resume { id } => control::resume(ctx, id).await,
        WorkflowCommand::Cancel { id } => control::cancel(ctx, id).await,
        WorkflowCommand::Recover { id, from_step } => control::recover(ctx, id, &from_step).await,
        WorkflowCommand::RetryStep { id, step } => control::retry_step(ctx, id, &step).await,
    }
}

/// Runs a `warren template` command.
pub(crate) async fn run_template(
    ctx: &Context,
    command: TemplateCommand,
) -> Result<ExitCode, CliError> {
    match command {
        TemplateCommand::Put { file } => template::put(ctx, &file).await,
        TemplateCommand::Get { name, version } => template::get(ctx, &name, version).await,
        TemplateCommand::List => template::list(ctx).await,
    }
}
