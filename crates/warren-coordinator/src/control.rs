//! Sends control messages (cancel) to workers' exclusive control queues.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_broker::Session;
use warren_core::protocol::encode;

use crate::session::SessionError;
use crate::shared::Shared;

/// Drains the control channel while the session is up.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    token: CancellationToken,
) -> Result<(), SessionError> {
    let publisher = session.broadcast_publisher().await?;
    let names = shared.config.broker.names();
    let mut rx = shared.control_rx.lock().await;
    loop {
        let request = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            request = rx.recv() => match request {
                Some(request) => request,
                None => return Ok(()),
            },
        };
        let queue = names.control_queue(&request.worker_id);
        tracing::debug!(job = %request.message.job_id, worker = %request.worker_id, reason = %request.message.reason, "sending cancel");
        // Fire and forget: a lost cancel is re-sent after the next heartbeat.
        let _unawaited = publisher
            .publish("", &queue, &encode(&request.message))
            .await?;
    }
}
