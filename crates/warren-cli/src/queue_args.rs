//! Arguments of `warren queue ...`, and turning `warren queue set` options
//! into the API's PATCH body.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use warren_client::QueuePatch;
use warren_core::queue::MAX_TASK_BATCH;

use crate::failure::CliError;

/// `warren queue` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// List queues with their settings and job counts.
    List,
    /// Show one queue: settings, task defaults and job counts.
    Show {
        /// Queue name.
        queue: String,
    },
    /// Stop dispatching the queue's jobs (running jobs finish).
    Pause {
        /// Queue name.
        queue: String,
    },
    /// Dispatch the queue's jobs again.
    Resume {
        /// Queue name.
        queue: String,
    },
    /// Change a queue's limits and per-task-type defaults (creates the queue if new).
    Set(QueueSetArgs),
}

/// `warren queue set`.
#[derive(Debug, Clone, Args)]
pub(crate) struct QueueSetArgs {
    /// Queue name.
    pub(crate) queue: String,
    /// Most jobs queued or running at once across all coordinators, or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_max_in_flight)]
    pub(crate) max_in_flight: Option<OrNone<u32>>,
    /// Most dispatches per second (fractions allowed, e.g. 0.5), or `none`.
    #[arg(long, value_name = "R|none", value_parser = parse_rate)]
    pub(crate) rate_limit: Option<OrNone<f64>>,
    /// Most tasks one task message carries (1 for long tasks over few worker
    /// slots), or `none` for the coordinators' WARREN_TASK_BATCH.
    #[arg(long, value_name = "N|none", value_parser = parse_task_batch)]
    pub(crate) task_batch: Option<OrNone<u32>>,
    /// Timeout of jobs of TYPE that set none, e.g. `image=5m` (`image=none` clears). Repeatable.
    #[arg(long, value_name = "TYPE=D|none", value_parser = parse_default_timeout)]
    pub(crate) default_timeout: Vec<(String, Option<Duration>)>,
    /// Retries of jobs of TYPE that set none, e.g. `video=2` (`video=none` clears). Repeatable.
    #[arg(long, value_name = "TYPE=N|none", value_parser = parse_default_retries)]
    pub(crate) default_max_retries: Vec<(String, Option<u32>)>,
}

impl QueueSetArgs {
    /// The PATCH body; an error when no option was given.
    pub(crate) fn patch(&self) -> Result<QueuePatch, CliError> {
        let mut defaults = Map::new();
        let mut set = |task_type: &str, field: &str, value: Value| {
            let entry = defaults
                .entry(task_type.to_owned())
                .or_insert_with(|| json!({}));
            entry[field] = value;
        };
        for (task_type, timeout) in &self.default_timeout {
            set(task_type, "timeout_ms", json!(timeout.map(millis)));
        }
        for (task_type, retries) in &self.default_max_retries {
            set(task_type, "max_retries", json!(retries));
        }
        let patch = QueuePatch {
            paused: None,
            max_in_flight: self.max_in_flight.map(|v| v.0),
            rate_limit: self.rate_limit.map(|v| v.0),
            task_batch: self.task_batch.map(|v| v.0),
            task_defaults: (!defaults.is_empty()).then_some(Value::Object(defaults)),
        };
        if patch == QueuePatch::default() {
            return Err(CliError::general(
                "nothing to change: give --max-in-flight, --rate-limit, --task-batch, --default-timeout or --default-max-retries",
            ));
        }
        Ok(patch)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `value`, or `None` for `none`.
fn or_none<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if text.eq_ignore_ascii_case("none") {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

/// A setting's new value, or `None` to clear it (given as `none`). A
/// newtype, because clap gives `Option<Option<T>>` a meaning of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrNone<T>(pub(crate) Option<T>);

fn parse_max_in_flight(text: &str) -> Result<OrNone<u32>, String> {
    or_none(text, |t| match t.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1, or none".into()),
    })
    .map(OrNone)
}

fn parse_task_batch(text: &str) -> Result<OrNone<u32>, String> {
    or_none(text, |t| match t.parse::<u32>() {
        Ok(n) if (1..=MAX_TASK_BATCH).contains(&i64::from(n)) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {MAX_TASK_BATCH}, or none"
        )),
    })
    .map(OrNone)
}

fn parse_rate(text: &str) -> Result<OrNone<f64>, String> {
    or_none(text, |t| match t.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("expected jobs per second above 0 (e.g. 5 or 0.5), or none".into()),
    })
    .map(OrNone)
}

/// `TYPE=VALUE`.
fn split_pair(text: &str) -> Result<(&str, &str), String> {
    text.split_once('=')
        .filter(|(task_type, _)| !task_type.is_empty())
        .ok_or_else(|| "expected TYPE=VALUE, e.g. image=5m".into())
}

fn parse_default_timeout(text: &str) -> Result<(String, Option<Duration>), String> {
    let (task_type, value) = split_pair(text)?;
    let timeout = or_none(value, |v| {
        warren_core::parse_duration(v).map_err(|e| e.to_string())
    })?;
    Ok((task_type.to_owned(), timeout))
}

fn parse_default_retries(text: &str) -> Result<(String, Option<u32>), String> {
    let (task_type, value) = split_pair(text)?;
    let retries = or_none(value, |v| {
        v.parse::<u32>()
            .map_err(|_| "expected a whole number of retries, or none".into())
    })?;
    Ok((task_type.to_owned(), retries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn set_args(args: &[&str]) -> Result<QueueSetArgs, clap::Error> {
        let cli = Cli::try_parse_from(["warren", "queue", "set"].iter().chain(args))?;
        match cli.command {
            Command::Queue {
                command: QueueCommand::Set(args),
            } => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn set_builds_a_merge_patch() {
        let args = set_args(&[
            "media",
            "--max-in-flight",
            "none",
            "--rate-limit",
            "0.5",
            "--default-timeout",
            "image=5m",
            "--default-timeout",
            "video=1h",
            "--default-max-retries",
            "image=2",
            "--default-max-retries",
            "video=none",
        ])
        .unwrap();
        let body = serde_json::to_value(args.patch().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "max_in_flight": null,
                "rate_limit": 0.5,
                "task_defaults": {
                    "image": {"timeout_ms": 300000, "max_retries": 2},
                    "video": {"timeout_ms": 3600000, "max_retries": null}
                }
            })
        );
    }

    #[test]
    fn set_rejects_bad_values_and_an_empty_change() {
        for bad in [
            &["q", "--max-in-flight", "0"][..],
            &["q", "--max-in-flight", "-1"],
            &["q", "--rate-limit", "0"],
            &["q", "--rate-limit", "fast"],
            &["q", "--default-timeout", "5m"],
            &["q", "--default-timeout", "image=soon"],
            &["q", "--default-max-retries", "=2"],
        ] {
            assert!(set_args(bad).is_err(), "{bad:?}");
        }
        assert!(set_args(&["q"]).unwrap().patch().is_err());
    }
}
