//! One broker session of a worker: declare topology, hand the reporter a
//! publisher, consume the task queues and the control queue. Task messages
//! (one task or several) are decoded here; unreadable ones are
//! dead-lettered on first delivery.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warren_broker::{BrokerError, Consumer, Delivery, Publisher, Session};
use warren_core::protocol::{decode, decode_tasks, ControlKind, ControlMessage};

use crate::executor::Executor;
use crate::hand_back::HandBack;
use crate::task_delivery::TaskDelivery;
use crate::WorkerConfig;

/// How often the session checks that its publishing channel is open.
pub(crate) const PUBLISHER_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How a session ended.
pub(crate) enum SessionEnd {
    /// Intake was stopped for shutdown; the session stays open for reports
    /// and the task still handling cancels must be aborted when done.
    Draining(Box<Session>, tokio::task::JoinHandle<()>),
    /// The connection failed; reconnect.
    Failed(BrokerError),
}

/// Everything a session needs from the worker.
pub(crate) struct SessionDeps<'a> {
    pub(crate) config: &'a WorkerConfig,
    pub(crate) executor: &'a Arc<Executor>,
    pub(crate) publisher: &'a watch::Sender<Option<Publisher>>,
    pub(crate) permits: &'a Arc<Semaphore>,
    pub(crate) tracker: &'a TaskTracker,
    pub(crate) stop_intake: &'a CancellationToken,
}

/// Runs one session until intake stops (shutdown) or the connection fails.
pub(crate) async fn run(session: Session, deps: SessionDeps<'_>) -> SessionEnd {
    match consume(&session, &deps).await {
        Ok(control) => SessionEnd::Draining(Box::new(session), control),
        Err(e) => {
            deps.publisher.send_replace(None);
            session.close().await;
            SessionEnd::Failed(e)
        }
    }
}

async fn consume(
    session: &Session,
    deps: &SessionDeps<'_>,
) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
    let config = deps.config;
    session.declare_core().await?;
    let mut consumers = Vec::new();
    for queue in &config.queues {
        session.declare_task_queue(queue).await?;
        let tag = format!("{}.{}", config.worker_id, queue);
        // Tasks end concurrently and out of order: their acks go in bulk.
        consumers.push(
            session
                .consume_batched(
                    &config.broker.names().task_queue(queue),
                    config.concurrency,
                    &tag,
                )
                .await?,
        );
    }
    let control_queue = session.declare_control_queue(&config.worker_id).await?;
    let mut control = session
        .consume(&control_queue, 16, &format!("{}.ctl", config.worker_id))
        .await?;
    let publisher = session.publisher().await?;
    deps.publisher.send_replace(Some(publisher.clone()));
    tracing::info!(queues = ?config.queues, concurrency = config.concurrency, "worker consuming");

    // A channel the broker closed (a channel-level error, such as a publish
    // to an exchange deleted meanwhile) leaves the connection up: the
    // reporter would retry on it forever while this loop kept taking
    // tasks whose results could never leave. Checked every second; a new
    // session declares the topology again.
    let mut publisher_check = tokio::time::interval(PUBLISHER_CHECK);
    // A free execution slot is taken before the next task is pulled, so a
    // saturated worker leaves tasks in the broker yet still handles cancels.
    let mut slot = None;
    loop {
        tokio::select! {
            _ = deps.stop_intake.cancelled() => break,
            _ = publisher_check.tick() => {
                if !publisher.is_open() {
                    tracing::warn!("the broker closed the publishing channel; reconnecting");
                    return Err(BrokerError::ChannelClosed);
                }
            }
            permit = deps.permits.clone().acquire_owned(), if slot.is_none() => {
                slot = Some(permit.expect("semaphore never closed"));
            }
            delivery = next_from_any(&mut consumers), if slot.is_some() => {
                let delivery = delivery.ok_or(BrokerError::ConnectionClosed)??;
                handle_task(deps, delivery, slot.take().expect("guarded by if")).await?;
            }
            delivery = control.next() => {
                let delivery = delivery.ok_or(BrokerError::ConnectionClosed)??;
                handle_control(deps, &delivery);
                delivery.ack().await?;
            }
        }
    }
    // Stop intake on every queue at once; prefetched but unstarted
    // deliveries are returned to their queues by the broker.
    for consumer in &consumers {
        let _ = consumer.cancel().await;
    }
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(std::time::Duration::ZERO, next_from_any(&mut consumers)).await
    {
        let _ = delivery.requeue().await;
    }
    // Keep handling cancels while draining.
    let executor = deps.executor.clone();
    Ok(tokio::spawn(async move {
        while let Some(Ok(delivery)) = control.next().await {
            if let Ok(message) = decode::<ControlMessage>(&delivery.body, 64 * 1024) {
                executor.cancel(message.job_id, message.attempt);
            }
            let _ = delivery.ack().await;
        }
    }))
}

/// The next delivery from whichever task consumer has one.
async fn next_from_any(consumers: &mut [Consumer]) -> Option<Result<Delivery, BrokerError>> {
    let mut pending: FuturesUnordered<_> = consumers.iter_mut().map(|c| c.next()).collect();
    pending.next().await.flatten()
}

/// Starts the tasks of one message: the first on `permit`, as many more as
/// there are free slots, and hands the rest back to the queue.
async fn handle_task(
    deps: &SessionDeps<'_>,
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
) -> Result<(), BrokerError> {
    let mut tasks = match decode_tasks(&delivery.body, deps.config.max_payload_bytes) {
        Ok(tasks) => tasks,
        Err(e) => {
            deps.executor
                .metrics
                .rejected
                .with_label_values(&["tasks", e.reason()])
                .inc();
            tracing::warn!(reason = e.reason(), error = %e, "dead-lettering task message");
            return delivery.reject().await;
        }
    };
    let mut permits = vec![permit];
    while permits.len() < tasks.len() {
        match deps.permits.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    let rest = tasks.split_off(permits.len());
    let delivery = Arc::new(TaskDelivery::new(delivery, tasks.len() + rest.len()));
    for (task, permit) in tasks.into_iter().zip(permits) {
        let executor = deps.executor.clone();
        let delivery = delivery.clone();
        deps.tracker.spawn(async move {
            executor.execute(delivery, task).await;
            drop(permit);
        });
    }
    if !rest.is_empty() {
        let hand_back = HandBack {
            publisher: deps.publisher.borrow().clone(),
            exchange: deps.config.broker.names().tasks_exchange(),
            executor: deps.executor.clone(),
            tracker: deps.tracker.clone(),
        };
        hand_back.spawn(delivery, rest);
    }
    Ok(())
}

fn handle_control(deps: &SessionDeps<'_>, delivery: &Delivery) {
    match decode::<ControlMessage>(&delivery.body, 64 * 1024) {
        Ok(ControlMessage {
            kind: ControlKind::Cancel,
            job_id,
            attempt,
            reason,
            ..
        }) => {
            let found = deps.executor.cancel(job_id, attempt);
            tracing::info!(job = %job_id, attempt, reason, found, "cancel requested");
        }
        Err(e) => {
            deps.executor
                .metrics
                .rejected
                .with_label_values(&["control", e.reason()])
                .inc();
            tracing::warn!(error = %e, "ignoring unreadable control message");
        }
    }
}
