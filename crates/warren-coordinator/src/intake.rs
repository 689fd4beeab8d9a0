//! Intake: consume `Submit` envelopes in batches, fill in their queues' task
//! defaults, insert their jobs with one statement and one commit (and their
//! workflows, see [`intake_workflows`]), then acknowledge the whole batch at
//! once. Jobs their queue can take at once are dispatched by that same
//! statement ([`Store::insert_and_dispatch`](warren_store::Store::insert_and_dispatch))
//! and published from here; the dispatcher is woken for the rest.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_broker::{Consumer, Delivery, Session};
use warren_core::protocol::{decode, JobSpec, SubmitEnvelope};
use warren_store::Inserted;

use crate::batch::{next_batch, with_db_retry, DbOutcome};
use crate::defaults;
use crate::intake_workflows;
use crate::outbox::Outbox;
use crate::session::SessionError;
use crate::shared::Shared;

/// Consumes `<ns>.submit` until the session ends.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let queue = shared.config.broker.names().submit_queue();
    let prefetch = (shared.config.batch_size * 2).min(u16::MAX as usize) as u16;
    let mut consumer = session.consume(&queue, prefetch, "warren-intake").await?;
    let mut outbox = Outbox::open(shared.clone(), session.clone()).await?;
    let result = consume(&shared, &mut consumer, &mut outbox, &token).await;
    outbox.finish(result).await
}

async fn consume(
    shared: &Shared,
    consumer: &mut Consumer,
    outbox: &mut Outbox,
    token: &CancellationToken,
) -> Result<(), SessionError> {
    while let Some(batch) = next_batch(consumer, shared.config.batch_size, token, "intake").await? {
        let accepted = reject_unreadable(shared, batch).await?;
        let Some(accepted) = defaults::fill_intake(shared, token, accepted).await? else {
            return Ok(());
        };
        let Some((accepted, workflows)) =
            intake_workflows::prepare_batch(shared, token, accepted).await?
        else {
            return Ok(());
        };
        let Batch { inserted, finished } = insert(shared, token, &accepted).await?;
        let left_waiting = inserted.dispatched.len() < inserted.created.len();
        // Committed as queued: publish even if shutdown cut the batch short
        // (the envelopes are then not acked, and their redelivery creates
        // nothing twice).
        outbox.publish(inserted.dispatched, token).await?;
        if !finished || !intake_workflows::insert(shared, token, &accepted, &workflows).await? {
            return Ok(());
        }
        if let Some(last) = accepted.iter().map(|(d, _)| d.delivery_tag).max() {
            consumer.ack_up_to(last).await?;
        }
        if left_waiting || !workflows.is_empty() {
            shared.wake_dispatcher();
        }
    }
    Ok(())
}

/// What inserting a batch did.
struct Batch {
    inserted: Inserted,
    /// False when shutdown stopped it before every envelope was inserted.
    finished: bool,
}

/// Dead-letters envelopes that cannot be read or hold an invalid job; keeps the rest.
async fn reject_unreadable(
    shared: &Shared,
    batch: Vec<Delivery>,
) -> Result<Vec<(Delivery, SubmitEnvelope)>, SessionError> {
    let mut accepted = Vec::with_capacity(batch.len());
    for delivery in batch {
        let decoded = decode::<SubmitEnvelope>(&delivery.body, shared.config.max_payload_bytes)
            .map_err(|e| (e.reason(), e.to_string()))
            .and_then(
                |env| match env.jobs.iter().try_for_each(JobSpec::validate) {
                    Ok(()) => Ok(env),
                    Err(e) => Err(("invalid_job", e.to_string())),
                },
            );
        match decoded {
            Ok(envelope) => accepted.push((delivery, envelope)),
            Err((reason, message)) => {
                shared
                    .metrics
                    .rejected
                    .with_label_values(&["submit", reason])
                    .inc();
                tracing::warn!(reason, error = %message, "dead-lettering submission");
                delivery.reject().await?;
            }
        }
    }
    Ok(accepted)
}

/// Inserts (and where possible dispatches) every accepted job; an envelope
/// the database refuses (after the batch as a whole was refused) is
/// dead-lettered on its own.
async fn insert(
    shared: &Shared,
    token: &CancellationToken,
    accepted: &[(Delivery, SubmitEnvelope)],
) -> Result<Batch, SessionError> {
    let specs: Vec<JobSpec> = accepted
        .iter()
        .flat_map(|(_, env)| env.jobs.iter().cloned())
        .collect();
    let window = shared.config.dispatch_window as i64;
    let insert = |specs| shared.store.insert_and_dispatch(specs, window);
    match with_db_retry(shared, "intake", token, || insert(&specs)).await {
        DbOutcome::Done(inserted) => {
            shared
                .metrics
                .count_submitted(specs.len(), inserted.created.len());
            return Ok(Batch {
                inserted,
                finished: true,
            });
        }
        DbOutcome::Shutdown => {
            return Ok(Batch {
                inserted: Inserted::default(),
                finished: false,
            })
        }
        DbOutcome::Rejected(e) => {
            tracing::warn!(error = %e, "batch refused by the database; inserting envelopes one by one")
        }
    }
    let mut all = Inserted::default();
    for (delivery, envelope) in accepted {
        match with_db_retry(shared, "intake", token, || insert(&envelope.jobs)).await {
            DbOutcome::Done(inserted) => {
                shared
                    .metrics
                    .count_submitted(envelope.jobs.len(), inserted.created.len());
                all.created.extend(inserted.created);
                all.dispatched.extend(inserted.dispatched);
            }
            DbOutcome::Shutdown => {
                return Ok(Batch {
                    inserted: all,
                    finished: false,
                })
            }
            DbOutcome::Rejected(e) => {
                shared
                    .metrics
                    .rejected
                    .with_label_values(&["submit", "database_refused"])
                    .inc();
                tracing::warn!(error = %e, "dead-lettering submission refused by the database");
                delivery.reject().await?;
            }
        }
    }
    Ok(Batch {
        inserted: all,
        finished: true,
    })
}
