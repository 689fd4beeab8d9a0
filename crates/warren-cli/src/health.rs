//! `warren health`: the coordinator's `/health` JSON; exit 1 unless it is ok.

use std::process::ExitCode;

use crate::context::Context;
use crate::failure::CliError;
use crate::output::print_json;

/// Runs `warren health` (no token needed).
pub(crate) async fn run(ctx: &Context) -> Result<ExitCode, CliError> {
    let health = ctx.open_api()?.health().await?;
    print_json(&health)?;
    Ok(if health.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
