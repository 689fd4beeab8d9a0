//! Helpers shared by the consuming loops: collecting a batch of deliveries
//! and retrying database work without losing or blocking messages.

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use warren_broker::{Consumer, Delivery};
use warren_store::StoreError;

use crate::session::SessionError;
use crate::shared::Shared;

/// Waits for one delivery, then takes whatever else is already buffered, up
/// to `max`. `Ok(None)` means shutdown was requested.
///
/// Cancel-safe: the only await is for the first delivery; the rest are
/// taken without yielding, so dropping the call never drops a delivery.
pub(crate) async fn next_batch(
    consumer: &mut Consumer,
    max: usize,
    token: &CancellationToken,
    name: &'static str,
) -> Result<Option<Vec<Delivery>>, SessionError> {
    let first = tokio::select! {
        _ = token.cancelled() => return Ok(None),
        next = consumer.next() => next.ok_or(SessionError::ConsumerEnded(name))??,
    };
    let mut batch = vec![first];
    while batch.len() < max {
        match consumer.next().now_or_never() {
            Some(Some(delivery)) => batch.push(delivery?),
            Some(None) | None => break,
        }
    }
    Ok(Some(batch))
}

/// The result of database work attempted until it stops failing transiently.
pub(crate) enum DbOutcome<T> {
    /// It succeeded.
    Done(T),
    /// It failed for a reason retrying cannot fix (the input is bad).
    Rejected(StoreError),
    /// Shutdown was requested while waiting to retry.
    Shutdown,
}

/// Runs `work` until it succeeds, retrying transient failures (connection
/// loss, database restart) with capped exponential backoff. Messages stay
/// unacknowledged meanwhile, so nothing is lost and nothing is dead-lettered
/// merely because the database was briefly away.
pub(crate) async fn with_db_retry<T, F, Fut>(
    shared: &Shared,
    name: &'static str,
    token: &CancellationToken,
    mut work: F,
) -> DbOutcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match work().await {
            Ok(value) => return DbOutcome::Done(value),
            Err(e) if !e.is_transient() => return DbOutcome::Rejected(e),
            Err(e) => {
                shared.hearing.database_failed();
                shared
                    .metrics
                    .database_errors
                    .with_label_values(&[name])
                    .inc();
                tracing::warn!(target: "warren::db", loop_name = name, error = %e, retry_in = ?delay, "database unavailable; retrying");
            }
        }
        tokio::select! {
            _ = token.cancelled() => return DbOutcome::Shutdown,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
