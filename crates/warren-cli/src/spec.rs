//! Turning `warren submit` arguments into validated job specs: payload from
//! JSON text or a file, retries, timeout, delay, copies.

use std::io::Read;

use serde_json::Value;
use warren_core::new_job_id;
use warren_core::protocol::JobSpec;

use crate::args::SubmitArgs;
use crate::failure::CliError;

/// The job specs `args` describe: `--count` copies with distinct ids, each
/// validated as the coordinator would.
pub(crate) fn build_specs(args: &SubmitArgs) -> Result<Vec<JobSpec>, CliError> {
    if args.count > 1 && args.wait {
        return Err(CliError::general(
            "--wait follows a single job; drop --count (or --wait)",
        ));
    }
    if args.count > 1 && args.idempotency_key.is_some() {
        return Err(CliError::general(
            "--idempotency-key with --count would create only one job; drop one of them",
        ));
    }
    let template = build_spec(args, load_payload(&args.payload)?)?;
    let copies = (1..args.count).map(|_| JobSpec {
        id: new_job_id(),
        ..template.clone()
    });
    Ok(std::iter::once(template.clone()).chain(copies).collect())
}

/// One spec with a fresh id.
fn build_spec(args: &SubmitArgs, payload: Value) -> Result<JobSpec, CliError> {
    let mut spec = JobSpec::new(&args.queue, &args.task_type, payload);
    let max_attempts = match (args.max_attempts, args.max_retries) {
        (Some(attempts), _) => Some(attempts),
        (None, Some(retries)) => Some(retries.saturating_add(1)),
        (None, None) => None,
    };
    // Unset fields are left to the queue's defaults for this task type.
    spec.retry.max_attempts = max_attempts;
    spec.timeout_ms = args.timeout.map(|d| millis(d.as_millis()));
    spec.no_progress_timeout_ms = args.no_progress_timeout.map(|d| millis(d.as_millis()));
    spec.delay_ms = args.delay.map(|d| millis(d.as_millis()));
    spec.priority = args.priority;
    spec.idempotency_key = args.idempotency_key.clone();
    spec.requires_approval = args.requires_approval;
    spec.validate()
        .map_err(|e| CliError::general(format!("invalid job: {}", e.reason)))?;
    Ok(spec)
}

fn millis(ms: u128) -> u64 {
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `--payload`: JSON text, `@path` for a file or `@-` for stdin.
pub(crate) fn load_payload(arg: &str) -> Result<Value, CliError> {
    let Some(path) = arg.strip_prefix('@') else {
        return serde_json::from_str(arg).map_err(|e| {
            CliError::general(format!(
                "--payload is not valid JSON ({e}); pass JSON such as '{{\"a\": 1}}' or @FILE"
            ))
        });
    };
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::general(format!("cannot read the payload from stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::general(format!("cannot read payload file {path}: {e}")))?
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::general(format!("payload file {path} is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn submit_args(extra: &[&str]) -> SubmitArgs {
        let argv = ["warren", "submit", "--type", "echo"].iter().chain(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Submit(args) => args,
            other => panic!("parsed {other:?}"),
        }
    }

    fn one_spec(extra: &[&str]) -> JobSpec {
        let mut specs = build_specs(&submit_args(extra)).unwrap();
        assert_eq!(specs.len(), 1);
        specs.remove(0)
    }

    #[test]
    fn defaults_give_an_empty_payload_on_the_default_queue() {
        let spec = one_spec(&[]);
        assert_eq!(spec.queue, "default");
        assert_eq!(spec.task_type, "echo");
        assert_eq!(spec.payload, json!({}));
        assert!(spec.retry.is_empty());
        assert_eq!((spec.timeout_ms, spec.delay_ms), (None, None));
        assert_eq!(spec.id.get_version_num(), 7);
    }

    #[test]
    fn max_retries_counts_the_first_attempt_out() {
        assert_eq!(
            one_spec(&["--max-retries", "3"]).retry.max_attempts,
            Some(4)
        );
        assert_eq!(
            one_spec(&["--max-attempts", "2"]).retry.max_attempts,
            Some(2)
        );
        let both = [
            "warren",
            "submit",
            "--type",
            "echo",
            "--max-retries",
            "1",
            "--max-attempts",
            "2",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn durations_become_milliseconds() {
        let spec = one_spec(&[
            "--delay",
            "5s",
            "--timeout",
            "1m",
            "--no-progress-timeout",
            "20s",
        ]);
        assert_eq!(spec.delay_ms, Some(5_000));
        assert_eq!(spec.timeout_ms, Some(60_000));
        assert_eq!(spec.no_progress_timeout_ms, Some(20_000));
        assert_eq!(one_spec(&["--delay", "250ms"]).delay_ms, Some(250));
        let bad = ["warren", "submit", "--type", "echo", "--delay", "soon"];
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn the_other_options_are_carried_over() {
        let spec = one_spec(&[
            "--queue",
            "emails",
            "--priority",
            "7",
            "--idempotency-key",
            "k-1",
            "--requires-approval",
            "--payload",
            r#"{"a": [1, 2]}"#,
        ]);
        assert_eq!(spec.queue, "emails");
        assert_eq!(spec.priority, 7);
        assert_eq!(spec.idempotency_key.as_deref(), Some("k-1"));
        assert!(spec.requires_approval);
        assert_eq!(spec.payload, json!({"a": [1, 2]}));
    }

    #[test]
    fn payload_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("warren-cli-payload-{}.json", new_job_id()));
        std::fs::write(&path, r#"{"from": "file"}"#).unwrap();
        let arg = format!("@{}", path.display());
        let spec = one_spec(&["--payload", &arg]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(spec.payload, json!({"from": "file"}));

        let missing = load_payload("@/nonexistent/warren.json").unwrap_err();
        assert!(missing
            .to_string()
            .contains("cannot read payload file /nonexistent/warren.json"));
    }

    #[test]
    fn invalid_json_is_a_clear_error() {
        let err = build_specs(&submit_args(&["--payload", "{not json"])).unwrap_err();
        assert!(
            err.to_string().starts_with("--payload is not valid JSON"),
            "{err}"
        );
        assert_eq!(err.code(), 1);
    }

    #[test]
    fn invalid_specs_are_refused_before_sending() {
        for extra in [
            &["--priority", "10"][..],
            &["--queue", "bad queue"],
            &["--timeout", "0s"],
            &["--max-attempts", "0"],
        ] {
            let err = build_specs(&submit_args(extra)).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid job: "),
                "{extra:?}: {err}"
            );
        }
    }

    #[test]
    fn count_makes_distinct_copies() {
        let specs = build_specs(&submit_args(&["--count", "3", "--payload", "[1]"])).unwrap();
        assert_eq!(specs.len(), 3);
        assert!(specs[0].id != specs[1].id && specs[1].id != specs[2].id);
        assert!(specs.iter().all(|s| s.payload == json!([1])));
        assert!(build_specs(&submit_args(&["--count", "2", "--wait"])).is_err());
        assert!(build_specs(&submit_args(&["--count", "2", "--idempotency-key", "k"])).is_err());
        let zero = ["warren", "submit", "--type", "echo", "--count", "0"];
        assert!(Cli::try_parse_from(zero).is_err());
    }
}
