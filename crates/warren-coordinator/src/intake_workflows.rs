//! The workflows of a batch of `Submit` envelopes: resolved and validated
//! before anything of the batch is inserted (an envelope with an invalid
//! workflow or unknown template is dead-lettered whole, reason
//! `invalid_workflow`), then created in one transaction after the batch's
//! jobs, before the batch is acknowledged.

use tokio_util::sync::CancellationToken;
use warren_broker::Delivery;
use warren_core::protocol::SubmitEnvelope;
use warren_store::NewWorkflow;

use crate::batch::{with_db_retry, DbOutcome};
use crate::session::SessionError;
use crate::shared::Shared;
use crate::workflows::prepare;

/// The batch's workflows, each with the index of its envelope.
pub(crate) type PreparedWorkflows = Vec<(usize, NewWorkflow)>;

/// Resolves every workflow of `accepted`; dead-letters envelopes holding an
/// invalid one and drops them from the batch. `None` on shutdown.
pub(crate) async fn prepare_batch(
    shared: &Shared,
    token: &CancellationToken,
    accepted: Vec<(Delivery, SubmitEnvelope)>,
) -> Result<Option<(Vec<(Delivery, SubmitEnvelope)>, PreparedWorkflows)>, SessionError> {
    let mut kept = Vec::with_capacity(accepted.len());
    let mut workflows = Vec::new();
    for (delivery, envelope) in accepted {
        let mut prepared = Vec::with_capacity(envelope.workflows.len());
        let mut refused = None;
        for submission in &envelope.workflows {
            match with_db_retry(shared, "intake", token, || {
                prepare(&shared.store, submission.clone(), true)
            })
            .await
            {
                DbOutcome::Done(workflow) => prepared.push(workflow),
                DbOutcome::Rejected(e) => {
                    refused = Some(e.to_string());
                    break;
                }
                DbOutcome::Shutdown => return Ok(None),
            }
        }
        if let Some(error) = refused {
            shared
                .metrics
                .rejected
                .with_label_values(&["submit", "invalid_workflow"])
                .inc();
            tracing::warn!(%error, "dead-lettering submission with an invalid workflow");
            delivery.reject().await?;
            continue;
        }
        let index = kept.len();
        workflows.extend(prepared.into_iter().map(|w| (index, w)));
        kept.push((delivery, envelope));
    }
    Ok(Some((kept, workflows)))
}

/// Creates the prepared workflows in one transaction; if the database
/// refuses that, one by one, dead-lettering the envelope of each refused
/// one. Returns false on shutdown.
pub(crate) async fn insert(
    shared: &Shared,
    token: &CancellationToken,
    accepted: &[(Delivery, SubmitEnvelope)],
    workflows: &PreparedWorkflows,
) -> Result<bool, SessionError> {
    if workflows.is_empty() {
        return Ok(true);
    }
    let all: Vec<NewWorkflow> = workflows.iter().map(|(_, w)| w.clone()).collect();
    match with_db_retry(shared, "intake", token, || {
        shared.store.insert_workflows(&all)
    })
    .await
    {
        DbOutcome::Done(created) => {
            shared
                .metrics
                .count_workflows_submitted(all.len(), created.len());
            shared.wake_workflows();
            return Ok(true);
        }
        DbOutcome::Shutdown => return Ok(false),
        DbOutcome::Rejected(e) => {
            tracing::warn!(error = %e, "workflows refused by the database; inserting one by one")
        }
    }
    let mut rejected = std::collections::HashSet::new();
    for (index, workflow) in workflows {
        if rejected.contains(index) {
            continue;
        }
        let one = std::slice::from_ref(workflow);
        match with_db_retry(shared, "intake", token, || {
            shared.store.insert_workflows(one)
        })
        .await
        {
            DbOutcome::Done(created) => shared.metrics.count_workflows_submitted(1, created.len()),
            DbOutcome::Shutdown => return Ok(false),
            DbOutcome::Rejected(e) => {
                shared
                    .metrics
                    .rejected
                    .with_label_values(&["submit", "database_refused"])
                    .inc();
                tracing::warn!(error = %e, workflow = %workflow.id, "dead-lettering submission whose workflow the database refused");
                accepted[*index].0.reject().await?;
                rejected.insert(*index);
            }
        }
    }
    shared.wake_workflows();
    Ok(true)
}
