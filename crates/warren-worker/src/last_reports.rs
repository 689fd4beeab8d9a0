//! A broker session for the last reports while a worker drains.
//!
//! Intake has stopped, but the attempts still running report their
//! outcomes (and heartbeats keep their leases) until the drain ends. If
//! the broker closes the publishing channel or the connection meanwhile,
//! those reports used to be dropped at once (no session was to come), and
//! the coordinator timed the attempts out and ran them again elsewhere. The
//! keeper watches the channel as a consuming session does and, when it
//! goes, connects again (declaring the topology) and hands the reporter the
//! new publisher, until it is told to stop once the reports are flushed.
//! A worker stopped while disconnected does not connect for this: it stops
//! at once, as before.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerConfig, BrokerError, Publisher, Session};

use crate::session::PUBLISHER_CHECK;

/// Keeps a publisher in `publisher` until `stop`; see the module docs.
/// `session` is the one intake stopped on, if any. Dropping `publisher` on
/// return tells the reporter that no session will come.
pub(crate) async fn keep_publishing(
    broker: BrokerConfig,
    mut session: Option<Box<Session>>,
    publisher: watch::Sender<Option<Publisher>>,
    stop: CancellationToken,
) {
    if session.is_none() {
        return;
    }
    loop {
        if let Some(current) = session.take() {
            let open = publisher.borrow().clone();
            let stopped = watch_channel(open, &stop).await;
            publisher.send_replace(None);
            current.close().await;
            if stopped {
                return;
            }
            tracing::warn!(
                "broker session lost while draining; reconnecting to send the last reports"
            );
        }
        let Some(new) = Session::connect_with_backoff(&broker, &stop).await else {
            return;
        };
        match open_publisher(&new).await {
            Ok(opened) => {
                publisher.send_replace(Some(opened));
                session = Some(Box::new(new));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not open a publisher while draining; retrying");
                new.close().await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(PUBLISHER_CHECK) => {}
                }
            }
        }
    }
}

/// Waits until `open` is closed (false) or `stop` (true).
async fn watch_channel(open: Option<Publisher>, stop: &CancellationToken) -> bool {
    let mut check = tokio::time::interval(PUBLISHER_CHECK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return true,
            _ = check.tick() => {}
        }
        if !open.as_ref().is_some_and(Publisher::is_open) {
            return false;
        }
    }
}

async fn open_publisher(session: &Session) -> Result<Publisher, BrokerError> {
    session.declare_core().await?;
    session.publisher().await
}
