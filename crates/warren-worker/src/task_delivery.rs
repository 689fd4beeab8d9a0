//! One task message shared by the attempts it carries: the delivery is
//! acknowledged once each of them asked for its ack (its Started or final
//! report confirmed, or the task handed back to the queue), so a crash
//! before that returns every task of the message to the queue.

use tokio::sync::watch;
use warren_broker::{BrokerError, Delivery};

/// A delivery acknowledged when its last task settles.
pub(crate) struct TaskDelivery {
    delivery: Delivery,
    /// Tasks of the message not settled yet.
    unsettled: watch::Sender<usize>,
}

impl TaskDelivery {
    /// `delivery`, carrying `tasks` tasks.
    pub(crate) fn new(delivery: Delivery, tasks: usize) -> Self {
        TaskDelivery {
            delivery,
            unsettled: watch::Sender::new(tasks),
        }
    }

    /// `count` of the message's tasks need nothing more from the delivery;
    /// the last of them acknowledges it (awaiting the ack as
    /// [`Delivery::ack`] does).
    pub(crate) async fn settle(&self, count: usize) -> Result<(), BrokerError> {
        let mut last = false;
        self.unsettled
            .send_modify(|unsettled| last = take(unsettled, count));
        if last {
            self.delivery.ack().await
        } else {
            Ok(())
        }
    }

    /// Waits until at most `left` tasks are unsettled.
    pub(crate) async fn settled_down_to(&self, left: usize) {
        let mut unsettled = self.unsettled.subscribe();
        // The sender lives in `self`, so the channel cannot close meanwhile.
        let _ = unsettled.wait_for(|n| *n <= left).await;
    }
}

/// Takes `count` from `unsettled`; `true` when that settles the last task.
fn take(unsettled: &mut usize, count: usize) -> bool {
    debug_assert!(
        *unsettled >= count,
        "settled more tasks than the message carried"
    );
    let last = *unsettled > 0 && *unsettled <= count;
    *unsettled = unsettled.saturating_sub(count);
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_settlement_acknowledges() {
        let mut unsettled = 4;
        assert!(!take(&mut unsettled, 1));
        assert!(!take(&mut unsettled, 2));
        assert!(take(&mut unsettled, 1));
        assert_eq!(unsettled, 0);
    }
}
