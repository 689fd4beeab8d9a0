//! Writing results: JSON documents for `--json`, and a guard against
//! `warren ... | head` turning a closed pipe into a panic.

use std::io::Write;

use serde::Serialize;

use crate::failure::CliError;

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::general(format!("cannot encode JSON output: {e}")))?;
    print_text(&text)
}

/// Prints `text` (plus a newline) on stdout; a closed pipe is not an error.
pub(crate) fn print_text(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::general(format!("cannot write output: {e}"))),
    }
}
