//! The broker session: one AMQP connection carrying intake, report handling,
//! dispatch and control. When any of them fails (connection lost, channel
//! closed), all are stopped and a new session is built with backoff.
//! Unacknowledged messages return to their queues, so nothing is lost.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use warren_broker::{BrokerError, Session, SessionPacer};

use crate::shared::Shared;
use crate::{control, dispatcher, events, intake, redispatch, reports};

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the {0} consumer stopped")]
    ConsumerEnded(&'static str),
}

/// Runs sessions until `shutdown` is cancelled.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut connected_before = false;
    let mut pacer = SessionPacer::new();
    while let Some(session) = Session::connect_with_backoff(&shared.config.broker, &shutdown).await
    {
        if connected_before {
            shared.metrics.broker_reconnects.inc();
        }
        connected_before = true;
        pacer.started();
        let session = Arc::new(session);
        let result = run_session(&shared, &session, &shutdown).await;
        shared.metrics.broker_connected.set(0);
        shared.hearing.broker_down();
        session.close().await;
        match result {
            Ok(()) if shutdown.is_cancelled() => break,
            Ok(()) => tracing::warn!("broker session ended; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "broker session failed; reconnecting"),
        }
        if !pacer.pause(&shutdown).await {
            break;
        }
    }
}

async fn run_session(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    session.declare_core().await?;
    let token = shutdown.child_token();
    let mut loops = JoinSet::new();
    loops.spawn(intake::run(shared.clone(), session.clone(), token.clone()));
    loops.spawn(reports::run(shared.clone(), session.clone(), token.clone()));
    loops.spawn(dispatcher::run(
        shared.clone(),
        session.clone(),
        token.clone(),
    ));
    loops.spawn(control::run(shared.clone(), session.clone(), token.clone()));
    loops.spawn(redispatch::run(
        shared.clone(),
        session.clone(),
        token.clone(),
    ));
    loops.spawn(events::publisher::run(
        shared.clone(),
        session.clone(),
        token.clone(),
    ));
    shared.metrics.broker_connected.set(1);
    shared.hearing.broker_up();
    tracing::info!("broker session up");
    let mut result = Ok(());
    while let Some(joined) = loops.join_next().await {
        // The first loop to end ends the session: stop the others.
        token.cancel();
        match joined {
            Ok(Err(e)) if result.is_ok() => result = Err(e),
            Err(panic) if result.is_ok() => {
                tracing::error!(error = %panic, "coordinator loop panicked");
                result = Err(SessionError::ConsumerEnded("panicked"));
            }
            _ => {}
        }
    }
    result
}
