//! The CLI's error: a message for `error: ...` and the exit code it maps to.

use std::fmt;
use std::process::ExitCode;

use warren_client::ClientError;

/// Exit code of a general failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code when the job's state forbids the requested move (HTTP 409).
pub(crate) const EXIT_CONFLICT: u8 = 2;
/// Exit code when the job (or endpoint) does not exist (HTTP 404).
pub(crate) const EXIT_NOT_FOUND: u8 = 3;

/// A failed command.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// A failure with exit code 1.
    pub(crate) fn general(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }

    /// The numeric exit code (for tests).
    #[cfg(test)]
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> CliError {
        let code = if error.is_conflict() {
            EXIT_CONFLICT
        } else if error.is_not_found() {
            EXIT_NOT_FOUND
        } else {
            EXIT_FAILURE
        };
        let message = if error.is_unauthorized() {
            format!("{error} (check WARREN_API_TOKEN or --token)")
        } else {
            error.to_string()
        };
        CliError { message, code }
    }
}
