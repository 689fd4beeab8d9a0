//! Runs the built `warren` binary: help, argument errors and a coordinator
//! that is not there. Behaviour against a live coordinator is covered by the
//! workspace's end-to-end tests.

use std::process::{Command, Output};

/// Runs `warren` with `args` and a clean Warren environment.
fn warren(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warren"));
    for var in [
        "WARREN_API_URL",
        "WARREN_API_TOKEN",
        "WARREN_AMQP_URL",
        "WARREN_NAMESPACE",
        "WARREN_QUEUE_TYPE",
    ] {
        command.env_remove(var);
    }
    command.args(args).output().expect("the warren binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let output = warren(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in [
        "submit", "status", "list", "watch", "events", "cancel", "retry", "approve", "workers",
        "health", "stats", "cleanup", "queue",
    ] {
        assert!(text.contains(command), "help lacks {command}:\n{text}");
    }
    assert!(text.contains("WARREN_API_TOKEN"));
}

#[test]
fn submit_with_invalid_json_fails_before_connecting() {
    // An unreachable broker proves nothing was attempted: the error is the payload's.
    let output = warren(&[
        "submit",
        "--type",
        "echo",
        "--payload",
        "{not json",
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:1/%2f",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("error: --payload is not valid JSON"),
        "{err}"
    );
}

#[test]
fn status_against_a_closed_port_names_the_connection() {
    let output = warren(&[
        "status",
        "0190b6c4-5c2e-7d2a-9f00-000000000001",
        "--api-url",
        "http://127.0.0.1:1",
        "--token",
        "s3cret-token",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cannot connect to the coordinator at http://127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn api_commands_without_a_token_name_the_variable() {
    let output = warren(&["workers", "--api-url", "http://127.0.0.1:1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("WARREN_API_TOKEN"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_arguments_are_usage_errors_not_panics() {
    for args in [
        &["status", "not-a-uuid"][..],
        &["list", "--state", "bogus"],
        &["submit"],
    ] {
        let output = warren(args);
        assert!(!output.status.success(), "{args:?}");
        assert!(!stderr(&output).contains("panicked"), "{args:?}");
    }
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let output = warren(&[
        "submit",
        "--type",
        "echo",
        "--amqp-url",
        "amqp://guest:s3cret@127.0.0.1:1/%2f",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cannot connect to the broker at amqp://guest:***@127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}
