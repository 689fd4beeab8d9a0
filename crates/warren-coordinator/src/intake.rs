//! Intake: consume `Submit` envelopes in batches, fill in their queues' task
//! defaults, insert their jobs with one statement and one commit (and their
//! workflows, see [`intake_workflows`]), then acknowledge the whole batch at
//! once. Jobs their queue can take at once are dispatched by that same
//! statement ([`Store::insert_and_dispatch`](warren_store::Store::insert_and_dispatch))
//! and published from here; the dispatcher is woken for the rest.
//!
//! Several batches are written at once and landed (published, acknowledged)
//! in delivery order ([`crate::in_flight`]): a batch arriving while the
//! previous one commits does not wait for that commit.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_broker::{Consumer, Delivery, Session};
use warren_core::protocol::{decode, JobSpec, SubmitEnvelope};
use warren_store::{DispatchedJob, Inserted};

use crate::batch::{next_batch, with_db_retry, DbOutcome};
use crate::defaults;
use crate::in_flight::InFlight;
use crate::intake_workflows;
use crate::outbox::Outbox;
use crate::session::SessionError;
use crate::shared::Shared;

/// Longest wait for the batches in flight when the session fails.
const SALVAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Consumes `<ns>.submit` until the session ends.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let queue = shared.config.broker.names().submit_queue();
    let mut consumer = shared
        .consume_shared(&session, &queue, "warren-intake")
        .await?;
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
    let mut in_flight = InFlight::default();
    let failure = 'consuming: loop {
        // Wait for the oldest batch to be written or, with room for
        // another, for the next batch (`next_batch` is cancel-safe).
        let batch = tokio::select! {
            biased;
            written = in_flight.next(), if !in_flight.is_empty() => {
                match land_written(shared, consumer, outbox, token, written).await {
                    Ok(true) => continue,
                    Ok(false) => return drain(shared, consumer, outbox, token, in_flight, false).await,
                    Err(e) => break e,
                }
            }
            batch = next_batch(consumer, shared.config.batch_size, token, "intake"), if in_flight.has_room() => match batch {
                Ok(batch) => batch,
                Err(e) => break e,
            },
        };
        let Some(batch) = batch else {
            return drain(shared, consumer, outbox, token, in_flight, true).await;
        };
        let accepted = match reject_unreadable(shared, batch).await {
            Ok(accepted) => accepted,
            Err(e) => break e,
        };
        let jobs: HashSet<Uuid> = accepted
            .iter()
            .flat_map(|(_, env)| env.jobs.iter().map(|job| job.id))
            .collect();
        // The same job in two batches (a resubmission): the later one
        // would only wait on the earlier one's row locks.
        while in_flight.overlaps(&jobs) {
            let written = in_flight.next().await;
            match land_written(shared, consumer, outbox, token, written).await {
                Ok(true) => {}
                Ok(false) => return drain(shared, consumer, outbox, token, in_flight, false).await,
                Err(e) => break 'consuming e,
            }
        }
        in_flight.push(jobs, write(shared, token, accepted));
    };
    salvage(outbox, token, in_flight).await;
    Err(failure)
}

/// What writing one batch did.
struct Written {
    /// Jobs committed as `queued`, whose task messages are still to be
    /// published (even when shutdown cut the batch short).
    dispatched: Vec<DispatchedJob>,
    /// The batch's highest delivery tag, if any delivery is left to ack.
    last: Option<u64>,
    /// False when shutdown stopped the batch before all of it was written.
    finished: bool,
    /// Whether the dispatcher has work from it (jobs left waiting for room
    /// or their time, or workflows whose first steps are due).
    wake_dispatcher: bool,
}

/// Fills in task defaults, resolves workflows, inserts (and dispatches)
/// the batch's jobs, then creates its workflows.
async fn write(
    shared: &Shared,
    token: &CancellationToken,
    accepted: Vec<(Delivery, SubmitEnvelope)>,
) -> Result<Written, SessionError> {
    let unfinished = Written {
        dispatched: Vec::new(),
        last: None,
        finished: false,
        wake_dispatcher: false,
    };
    let Some(accepted) = defaults::fill_intake(shared, token, accepted).await? else {
        return Ok(unfinished);
    };
    let Some((accepted, workflows)) =
        intake_workflows::prepare_batch(shared, token, accepted).await?
    else {
        return Ok(unfinished);
    };
    let Batch { inserted, finished } = insert(shared, token, &accepted).await?;
    let left_waiting = inserted.dispatched.len() < inserted.created.len();
    let finished =
        finished && intake_workflows::insert(shared, token, &accepted, &workflows).await?;
    Ok(Written {
        dispatched: inserted.dispatched,
        last: accepted.iter().map(|(d, _)| d.delivery_tag).max(),
        finished,
        wake_dispatcher: left_waiting || !workflows.is_empty(),
    })
}

/// [`land`]s a batch's outcome, passing on the error of a failed write.
async fn land_written(
    shared: &Shared,
    consumer: &Consumer,
    outbox: &mut Outbox,
    token: &CancellationToken,
    written: Result<Written, SessionError>,
) -> Result<bool, SessionError> {
    land(shared, consumer, outbox, token, written?).await
}

/// Publishes a written batch's dispatched jobs and acknowledges it. False
/// when shutdown cut it short: it stays unacknowledged (its redelivery
/// creates nothing twice), and so does every later batch.
async fn land(
    shared: &Shared,
    consumer: &Consumer,
    outbox: &mut Outbox,
    token: &CancellationToken,
    written: Written,
) -> Result<bool, SessionError> {
    outbox.publish(written.dispatched, token).await?;
    if !written.finished {
        return Ok(false);
    }
    if let Some(last) = written.last {
        consumer.ack_up_to(last).await?;
    }
    if written.wake_dispatcher {
        shared.wake_dispatcher();
    }
    Ok(true)
}

/// After shutdown: lands every batch still in flight, in order, while
/// `acking` and each one was written whole; from the first one cut short
/// on, only publishes what was committed as `queued` (the rest stays
/// unacknowledged, and its redelivery creates nothing twice). A failure on
/// the way [`salvage`]s the rest.
async fn drain<F>(
    shared: &Shared,
    consumer: &Consumer,
    outbox: &mut Outbox,
    token: &CancellationToken,
    mut in_flight: InFlight<F>,
    mut acking: bool,
) -> Result<(), SessionError>
where
    F: Future<Output = Result<Written, SessionError>>,
{
    while !in_flight.is_empty() {
        let landed = match in_flight.next().await {
            Ok(written) if acking => land(shared, consumer, outbox, token, written).await,
            Ok(written) => outbox
                .publish(written.dispatched, token)
                .await
                .map(|()| false)
                .map_err(SessionError::from),
            Err(e) => Err(e),
        };
        match landed {
            Ok(landed) => acking = acking && landed,
            Err(e) => {
                salvage(outbox, token, in_flight).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// After a failure that ends the session: hands the outbox whatever the
/// batches still in flight commit as `queued`, acknowledging nothing (the
/// broker redelivers those envelopes, and their jobs exist once). Batches
/// are taken as they end, in any order, so one waiting (on a row lock, or
/// the database) does not hold back the committed jobs of later ones,
/// which would otherwise sit `queued` without a message until the
/// dispatch timeout (found by the RabbitMQ-restart fault test: 20 such
/// jobs in 3 of 12 runs). The outbox publishes them if its channel still
/// works and returns them to `pending` at once if not. Gives up after
/// [`SALVAGE_WAIT`]: a write still unfinished then is dropped, rolling its
/// transaction back, or, if it committed meanwhile, left to the
/// lost-dispatch sweep.
async fn salvage<F>(outbox: &mut Outbox, token: &CancellationToken, in_flight: InFlight<F>)
where
    F: Future<Output = Result<Written, SessionError>>,
{
    let remaining = in_flight.into_unordered();
    tokio::pin!(remaining);
    let deadline = tokio::time::sleep(SALVAGE_WAIT);
    tokio::pin!(deadline);
    loop {
        let written = tokio::select! {
            _ = &mut deadline => {
                tracing::warn!(wait = ?SALVAGE_WAIT, "intake writes still unfinished after the session failed; dropped");
                return;
            }
            written = remaining.next() => match written {
                Some(written) => written,
                None => return,
            },
        };
        if let Ok(written) = written {
            // Its error is the session's, reported already.
            let _ = outbox.publish(written.dispatched, token).await;
        }
    }
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
