//! `warren workflow pause|resume|cancel|recover|retry-step`: one move each,
//! printed as `ID: from → to`. A refused move (409) exits 2, an unknown
//! workflow or step (404) 3.

use std::process::ExitCode;

use uuid::Uuid;
use warren_client::WorkflowMoved;

use crate::context::Context;
use crate::failure::CliError;
use crate::output::{print_json, print_text};

/// `warren workflow pause`.
pub(crate) async fn pause(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let moved = ctx.api()?.pause_workflow(id).await?;
    show(ctx, &moved, "")
}

/// `warren workflow resume`.
pub(crate) async fn resume(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let moved = ctx.api()?.resume_workflow(id).await?;
    show(ctx, &moved, "")
}

/// `warren workflow cancel`.
pub(crate) async fn cancel(ctx: &Context, id: Uuid) -> Result<ExitCode, CliError> {
    let moved = ctx.api()?.cancel_workflow(id).await?;
    let steps = moved
        .extra
        .get("cancelled_steps")
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    show(ctx, &moved, &format!(" ({steps} steps cancelled)"))
}

/// `warren workflow recover --from-step S`.
pub(crate) async fn recover(
    ctx: &Context,
    id: Uuid,
    from_step: &str,
) -> Result<ExitCode, CliError> {
    let moved = ctx.api()?.recover_workflow(id, from_step).await?;
    let used = moved
        .extra
        .get("recovery_attempts")
        .cloned()
        .unwrap_or_default();
    let max = moved
        .extra
        .get("max_recovery_attempts")
        .cloned()
        .unwrap_or_default();
    show(
        ctx,
        &moved,
        &format!(" (from step {from_step}; recovery {used} of {max})"),
    )
}

/// `warren workflow retry-step ID STEP`.
pub(crate) async fn retry_step(ctx: &Context, id: Uuid, step: &str) -> Result<ExitCode, CliError> {
    let retried = ctx.api()?.retry_workflow_step(id, step).await?;
    if ctx.json() {
        print_json(&retried)?;
    } else {
        print_text(&format!(
            "{id}: step {step} (job {}): {} → {}",
            retried.job_id, retried.from, retried.to
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Context, moved: &WorkflowMoved, suffix: &str) -> Result<ExitCode, CliError> {
    if ctx.json() {
        print_json(moved)?;
    } else {
        print_text(&format!(
            "{}: {} → {}{suffix}",
            moved.id, moved.from, moved.to
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
