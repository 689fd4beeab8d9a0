//! `warren health`: the coordinator's `/health`, one line per part (or the
//! JSON with `--json`); exit 1 unless it is ok.

use std::process::ExitCode;

use crate::context::Context;
use crate::failure::CliError;
use crate::output::{print_json, print_text};

/// Runs `warren health` (no token needed).
pub(crate) async fn run(ctx: &Context) -> Result<ExitCode, CliError> {
    let health = ctx.open_api()?.health().await?;
    if ctx.json() {
        print_json(&health)?;
    } else {
        let mut lines = vec![format!("status: {}", health.status)];
        for (part, state) in &health.checks {
            let state = state
                .as_str()
                .map_or_else(|| state.to_string(), str::to_owned);
            lines.push(format!("{part}: {state}"));
        }
        print_text(&lines.join("\n"))?;
    }
    Ok(if health.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
