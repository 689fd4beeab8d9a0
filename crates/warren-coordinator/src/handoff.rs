//! Jobs the HTTP API dispatched at creation, handed to the dispatcher of
//! the current broker session to publish.
//!
//! `POST /v1/jobs` inserts with [`Store::insert_and_dispatch`](warren_store::Store::insert_and_dispatch)
//! as intake does, so a job its queue can take at once is committed as
//! `queued` by its own INSERT (no claim transaction, no dispatcher wake-up
//! in between) and published by the dispatcher's [`Outbox`]. Only while a
//! dispatcher is running: without a broker session the API inserts jobs as
//! `pending` for the next one to claim. A hand-off the dispatcher can no
//! longer take (its session ended in between) goes back to `pending`.
//!
//! When its session ends the dispatcher closes its [`Inbox`] first, so no
//! hand-off can land after it stopped looking, then publishes what is left
//! in it (or, the session being gone, returns it to `pending`).

use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warren_broker::BrokerError;
use warren_store::DispatchedJob;

use crate::outbox::Outbox;

/// The sending side, kept in [`Shared`](crate::shared::Shared).
#[derive(Default)]
pub(crate) struct Handoff {
    sender: Mutex<Option<mpsc::UnboundedSender<Vec<DispatchedJob>>>>,
}

/// The dispatcher's receiving side.
pub(crate) struct Inbox {
    receiver: mpsc::UnboundedReceiver<Vec<DispatchedJob>>,
}

impl Handoff {
    /// Starts taking hand-offs for a new dispatcher.
    pub(crate) fn open(&self) -> Inbox {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.sender.lock().expect("handoff lock") = Some(sender);
        Inbox { receiver }
    }

    /// Whether a dispatcher takes hand-offs now.
    pub(crate) fn is_open(&self) -> bool {
        self.sender
            .lock()
            .expect("handoff lock")
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
    }

    /// Hands `jobs` (committed as `queued`) to the dispatcher; gives them
    /// back if none takes them any more.
    pub(crate) fn send(&self, jobs: Vec<DispatchedJob>) -> Result<(), Vec<DispatchedJob>> {
        if jobs.is_empty() {
            return Ok(());
        }
        match self.sender.lock().expect("handoff lock").as_ref() {
            Some(sender) => sender.send(jobs).map_err(|returned| returned.0),
            None => Err(jobs),
        }
    }
}

impl Inbox {
    /// The next hand-off (pending forever once closed and empty, so it can
    /// sit in a `select!`).
    pub(crate) async fn recv(&mut self) -> Vec<DispatchedJob> {
        match self.receiver.recv().await {
            Some(jobs) => jobs,
            None => std::future::pending().await,
        }
    }

    /// Publishes every hand-off waiting now.
    pub(crate) async fn publish_waiting(
        &mut self,
        outbox: &mut Outbox,
        token: &CancellationToken,
    ) -> Result<(), BrokerError> {
        while let Ok(jobs) = self.receiver.try_recv() {
            outbox.publish(jobs, token).await?;
        }
        Ok(())
    }

    /// Takes no more hand-offs and publishes what was handed off before
    /// (on a failed session the outbox returns it to `pending`); keeps the
    /// first error of `result` and of these publishes.
    pub(crate) async fn close(
        mut self,
        outbox: &mut Outbox,
        token: &CancellationToken,
        result: Result<(), BrokerError>,
    ) -> Result<(), BrokerError> {
        self.receiver.close();
        let mut result = result;
        while let Some(jobs) = self.receiver.recv().await {
            if let Err(e) = outbox.publish(jobs, token).await {
                result = result.and(Err(e));
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_offs_are_refused_until_a_dispatcher_opens_and_after_it_closes() {
        let handoff = Handoff::default();
        assert!(!handoff.is_open());
        let inbox = handoff.open();
        assert!(handoff.is_open());
        drop(inbox);
        assert!(!handoff.is_open());
        assert!(handoff.send(Vec::new()).is_ok(), "nothing to hand off");
    }
}
