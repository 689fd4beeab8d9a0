//! The command line: global options (each also an environment variable) and
//! one subcommand per operation.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;
use warren_client::{EventKind, QueueType, DEFAULT_AMQP_URL, DEFAULT_NAMESPACE};
use warren_core::{parse_duration, JobState};

/// Default coordinator API address.
pub(crate) const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// Warren: submit, inspect and administer jobs.
#[derive(Debug, Parser)]
#[command(name = "warren", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub(crate) global: Global,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where the coordinator and broker are, and how to print.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Coordinator HTTP API base URL.
    #[arg(long, global = true, env = "WARREN_API_URL", default_value = DEFAULT_API_URL)]
    pub(crate) api_url: String,
    /// Bearer token for the HTTP API.
    #[arg(long, global = true, env = "WARREN_API_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// RabbitMQ URL (jobs are submitted over AMQP).
    #[arg(long, global = true, env = "WARREN_AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    pub(crate) amqp_url: String,
    /// Namespace prefixed to every exchange and queue name.
    #[arg(long, global = true, env = "WARREN_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    /// RabbitMQ queue type, must match the coordinator's: quorum or classic.
    #[arg(
        long,
        global = true,
        env = "WARREN_QUEUE_TYPE",
        default_value = "quorum"
    )]
    pub(crate) queue_type: QueueType,
    /// Queue expiry (x-expires) of the deployment, must match the coordinator's.
    #[arg(long, global = true, env = "WARREN_QUEUE_EXPIRES", value_parser = warren_core::parse_duration)]
    pub(crate) queue_expires: Option<std::time::Duration>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Submit a job (or --count copies) over AMQP and print the id(s).
    Submit(SubmitArgs),
    /// Show one job.
    Status {
        /// Job id.
        id: Uuid,
    },
    /// List jobs (newest first unless --sort / --order say otherwise).
    List(ListArgs),
    /// Follow a job with a progress bar until it finishes.
    Watch {
        /// Job id.
        id: Uuid,
    },
    /// Show a job's event log, or follow events live with --follow.
    Events(EventsArgs),
    /// Cancel a job (a running one is told to stop).
    Cancel {
        /// Job id.
        id: Uuid,
        /// Who cancels (recorded in the job's event log).
        #[arg(long, env = "USER", hide_env_values = true)]
        by: Option<String>,
        /// Why (recorded in the job's event log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Give a dead (failed / timed-out) job one more attempt.
    Retry {
        /// Job id.
        id: Uuid,
    },
    /// Release a job waiting for approval.
    Approve {
        /// Job id.
        id: Uuid,
        /// Who approves (recorded in the job's event log).
        #[arg(long, env = "USER", hide_env_values = true)]
        by: Option<String>,
        /// A comment (recorded in the job's event log).
        #[arg(long)]
        comment: Option<String>,
    },
    /// List workers and their last heartbeat.
    Workers,
    /// Queue controls: list, show, pause, resume, set limits and defaults.
    Queue {
        /// What to do.
        #[command(subcommand)]
        command: crate::queue_args::QueueCommand,
    },
    /// Show the coordinator's health (exit 1 unless ok).
    Health,
    /// Job counts, throughput and timings by queue and task type.
    Stats,
    /// Delete finished jobs (and their events) older than a duration now.
    Cleanup(CleanupArgs),
    /// Benchmark a running deployment: submit N jobs, wait until all are
    /// final, print one summary line (needs WARREN_DATABASE_URL to read results).
    Bench(BenchArgs),
    /// Workflows: submit, status, watch, list, pause, resume, cancel,
    /// recover, retry a step.
    #[command(subcommand)]
    Workflow(crate::workflow::WorkflowCommand),
    /// Workflow templates: put, get, list.
    #[command(subcommand)]
    Template(crate::workflow::TemplateCommand),
}

/// `warren bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Number of jobs (with --ceilings: messages through the broker).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) jobs: usize,
    /// Queue (a worker must consume it).
    #[arg(long, default_value = "bench")]
    pub(crate) queue: String,
    /// Task type; the default `echo` is a no-op.
    #[arg(long = "type", default_value = "echo")]
    pub(crate) task_type: String,
    /// Payload of every job (JSON).
    #[arg(long, default_value = "{}")]
    pub(crate) payload: String,
    /// Submitter connections (with --ceilings: publishing connections).
    #[arg(long, default_value_t = 4)]
    pub(crate) submitters: usize,
    /// Jobs per Submit envelope.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Target rate in jobs/s (default: as fast as possible).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// With --rate: spread the submitters' envelopes over each interval, as
    /// independent clients send, instead of all at the same instant.
    #[arg(long)]
    pub(crate) stagger: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "10m", value_parser = warren_core::parse_duration)]
    pub(crate) deadline: std::time::Duration,
    /// How submitters send: `amqp` publishes envelopes to the submit queue
    /// (accepted on the broker's confirm); `http` posts them to `POST
    /// /v1/jobs` of `--api-url` (accepted on the coordinator's commit;
    /// needs the token).
    #[arg(long, value_enum, default_value_t = Via::Amqp)]
    pub(crate) via: Via,
    /// Measure the machine instead of Warren: the broker's confirmed
    /// messages/s through one scratch queue and the database's durable
    /// commits/s and rows/s in a scratch table from 16 connections (both
    /// removed afterwards). No coordinator or worker is needed.
    #[arg(long)]
    pub(crate) ceilings: bool,
    /// Database of the deployment, read for results.
    #[arg(
        long,
        env = "WARREN_DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/warren",
        hide_env_values = true
    )]
    pub(crate) database_url: String,
}

/// How `warren bench` submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// AMQP, to the submit queue.
    Amqp,
    /// HTTP, to `POST /v1/jobs`.
    Http,
}

/// `warren submit`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubmitArgs {
    /// Queue to run on.
    #[arg(long, short, default_value = "default")]
    pub(crate) queue: String,
    /// Task type (the handler that runs it), e.g. echo, sleep, exec.
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub(crate) task_type: String,
    /// Handler input: JSON, or @FILE to read it from a file (@- for stdin).
    #[arg(long, short, default_value = "{}", value_name = "JSON|@FILE")]
    pub(crate) payload: String,
    /// Retries after the first attempt (attempts = retries + 1).
    #[arg(long, value_name = "N", conflicts_with = "max_attempts")]
    pub(crate) max_retries: Option<u32>,
    /// Total attempts, counting the first.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// Per-attempt timeout, e.g. 30s, 5m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Option<Duration>,
    /// Time out an attempt that reports no progress for this long, e.g. 1m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) no_progress_timeout: Option<Duration>,
    /// Priority 0-9, higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) priority: i16,
    /// Do not run before this long from now, e.g. 5s.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) delay: Option<Duration>,
    /// Key unique per queue: a second job with it is not created.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// Hold the job until `warren approve`.
    #[arg(long)]
    pub(crate) requires_approval: bool,
    /// Wait until the job finishes; exit 0 only if it completed.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Submit N copies (distinct ids) in one batch.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) count: u32,
}

/// `warren events`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EventsArgs {
    /// Job id (required unless --follow).
    #[arg(required_unless_present = "follow")]
    pub(crate) id: Option<Uuid>,
    /// Stream events as they happen (Server-Sent Events), reconnecting after
    /// a disconnect without losing any. With an ID: the job's history, then
    /// live until it is completed, cancelled or skipped. Without: every
    /// job's transitions and workflow's status changes from now on, until
    /// interrupted.
    #[arg(long, short)]
    pub(crate) follow: bool,
    /// Only jobs on this queue (--follow without an ID).
    #[arg(long, requires = "follow", conflicts_with = "id")]
    pub(crate) queue: Option<String>,
    /// Only jobs of this task type (--follow without an ID).
    #[arg(
        long = "type",
        value_name = "TYPE",
        requires = "follow",
        conflicts_with = "id"
    )]
    pub(crate) task_type: Option<String>,
    /// Only moves into this state (--follow without an ID).
    #[arg(long, value_parser = parse_state, requires = "follow", conflicts_with = "id")]
    pub(crate) state: Option<JobState>,
    /// Only this workflow's status changes and its steps' job events
    /// (--follow without an ID).
    #[arg(
        long,
        value_name = "WORKFLOW_ID",
        requires = "follow",
        conflicts_with = "id"
    )]
    pub(crate) workflow: Option<Uuid>,
    /// Only `job` or `workflow` events (--follow without an ID). --queue,
    /// --type and --state select job events.
    #[arg(long, value_parser = parse_kind, requires = "follow", conflicts_with = "id")]
    pub(crate) kind: Option<EventKind>,
    /// Start after this event id (0: from the beginning) instead of now
    /// (--follow without an ID).
    #[arg(
        long,
        value_name = "EVENT_ID",
        requires = "follow",
        conflicts_with = "id"
    )]
    pub(crate) after: Option<i64>,
}

/// `warren list`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    /// Only jobs in this state (pending, running, failed, ...).
    #[arg(long, value_parser = parse_state)]
    pub(crate) state: Option<JobState>,
    /// Only jobs on this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only jobs of this task type.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) task_type: Option<String>,
    /// Only steps of this workflow.
    #[arg(long, value_name = "ID")]
    pub(crate) workflow: Option<Uuid>,
    /// Only dead jobs (failed / timed out, no attempt left).
    #[arg(long)]
    pub(crate) dead: bool,
    /// Order by creation or by finish (finished jobs only).
    #[arg(long, value_parser = ["created_at", "finished_at"])]
    pub(crate) sort: Option<String>,
    /// Direction of the order.
    #[arg(long, value_parser = ["asc", "desc"])]
    pub(crate) order: Option<String>,
    /// Page size, 1-500.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub(crate) limit: u32,
    /// Start after this cursor (the `next` of the previous page).
    #[arg(long, value_name = "CURSOR", alias = "before")]
    pub(crate) cursor: Option<String>,
}

/// `warren cleanup`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CleanupArgs {
    /// Delete jobs that finished longer ago than this, e.g. 7d, 12h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) older_than: Duration,
    /// Only jobs in this state (repeatable; default: every finished state:
    /// completed, failed, timeout, cancelled, skipped).
    #[arg(long = "state", value_parser = parse_state)]
    pub(crate) states: Vec<JobState>,
}

/// Reads a job state, listing the valid names when it is not one.
fn parse_kind(text: &str) -> Result<EventKind, String> {
    text.parse()
}

fn parse_state(text: &str) -> Result<JobState, String> {
    text.parse().map_err(|_| {
        let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state (expected one of: {})", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "warren",
            "status",
            "0190b6c4-5c2e-7d2a-9f00-000000000001",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Status { .. }));
    }

    #[test]
    fn events_needs_an_id_unless_following() {
        assert!(Cli::try_parse_from(["warren", "events"]).is_err());
        let cli = Cli::try_parse_from(["warren", "events", "--follow", "--queue", "q"]).unwrap();
        let Command::Events(args) = cli.command else {
            panic!()
        };
        assert!(args.follow && args.id.is_none());
        assert_eq!(args.queue.as_deref(), Some("q"));
        let id = "0190b6c4-5c2e-7d2a-9f00-000000000001";
        assert!(Cli::try_parse_from(["warren", "events", id, "--queue", "q"]).is_err());
        assert!(Cli::try_parse_from(["warren", "events", id, "-f"]).is_ok());
    }

    #[test]
    fn states_are_parsed() {
        let cli = Cli::try_parse_from(["warren", "list", "--state", "running"]).unwrap();
        let Command::List(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.state, Some(JobState::Running));
        assert!(Cli::try_parse_from(["warren", "list", "--state", "bogus"]).is_err());
    }

    #[test]
    fn list_sorts_and_limits_are_checked() {
        assert!(Cli::try_parse_from(["warren", "list", "--sort", "priority"]).is_err());
        assert!(Cli::try_parse_from(["warren", "list", "--limit", "501"]).is_err());
        let cli = Cli::try_parse_from([
            "warren",
            "list",
            "--type",
            "echo",
            "--dead",
            "--sort",
            "finished_at",
            "--order",
            "asc",
        ])
        .unwrap();
        let Command::List(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.task_type.as_deref(), Some("echo"));
        assert!(args.dead);
    }

    #[test]
    fn cleanup_takes_days_and_repeated_states() {
        let cli = Cli::try_parse_from([
            "warren",
            "cleanup",
            "--older-than",
            "7d",
            "--state",
            "completed",
            "--state",
            "cancelled",
        ])
        .unwrap();
        let Command::Cleanup(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.older_than, Duration::from_secs(7 * 86_400));
        assert_eq!(args.states, vec![JobState::Completed, JobState::Cancelled]);
        assert!(Cli::try_parse_from(["warren", "cleanup"]).is_err());
    }
}
