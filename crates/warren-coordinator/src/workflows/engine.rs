//! The engine loop (see the module docs of [`super`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_store::StoreError;

use crate::shared::Shared;

/// Workflows evaluated per round.
const BATCH: i64 = 100;
/// Bytes of a task message left for everything but the payload and inputs.
const TASK_ENVELOPE_ROOM: usize = 16 * 1024;

/// Evaluates workflows until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let evaluated = match round(&shared, &shutdown).await {
            Ok(evaluated) => evaluated,
            Err(e) => {
                shared
                    .metrics
                    .database_errors
                    .with_label_values(&["workflows"])
                    .inc();
                tracing::warn!(error = %e, "workflow evaluation failed; will retry");
                0
            }
        };
        if evaluated as i64 >= BATCH {
            continue; // more may be waiting right now
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.workflow_wakeup.notified() => {}
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
        }
    }
}

/// One round: evaluates every workflow with a wakeup (up to [`BATCH`]).
/// Returns how many were evaluated (not counting those held elsewhere).
async fn round(shared: &Shared, shutdown: &CancellationToken) -> Result<usize, StoreError> {
    let ids = shared.store.workflows_to_evaluate(BATCH).await?;
    // Room for the rest of the task envelope (ids, lease, names, checkpoint).
    let max_task_bytes = shared
        .config
        .max_payload_bytes
        .saturating_sub(TASK_ENVELOPE_ROOM);
    let mut evaluated = 0;
    let mut released = 0;
    for id in ids {
        if shutdown.is_cancelled() {
            break;
        }
        let evaluation = match shared.store.evaluate_workflow(id, max_task_bytes).await {
            Ok(Some(evaluation)) => evaluation,
            Ok(None) => continue, // held by another coordinator or an operator's action
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                // This workflow only; the others still get their turn.
                shared
                    .metrics
                    .database_errors
                    .with_label_values(&["workflows"])
                    .inc();
                tracing::error!(workflow = %id, error = %e, "cannot evaluate workflow");
                continue;
            }
        };
        evaluated += 1;
        released += evaluation.released;
        let moves: Vec<(&str, &str)> = evaluation
            .moves
            .iter()
            .map(|(from, to)| (from.as_str(), to.as_str()))
            .collect();
        shared.metrics.record_workflow_moves(&moves);
        for (from, to) in &moves {
            tracing::info!(workflow = %id, from, to, "workflow status changed");
        }
        if evaluation.released + evaluation.skipped + evaluation.failed > 0 {
            tracing::debug!(
                workflow = %id,
                released = evaluation.released,
                skipped = evaluation.skipped,
                failed = evaluation.failed,
                "workflow steps settled"
            );
        }
    }
    if released > 0 {
        shared.wake_dispatcher();
    }
    Ok(evaluated)
}
