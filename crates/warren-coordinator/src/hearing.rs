//! Whether this coordinator can currently hear its workers.
//!
//! Everything a worker says — heartbeats, `Started`, the final report —
//! reaches the database through RabbitMQ and this process's report loop.
//! While the broker or the database is away, silence proves nothing: a
//! worker's heartbeats and results wait in its reporter or in the reports
//! queue. The checks that read silence as loss (a lease whose heartbeats
//! stopped, a deadline passed without a result, a dispatch never started)
//! therefore wait until the broker session has been up, and the database
//! reachable without a break, for a full window (`WARREN_LEASE_TIMEOUT`):
//! long enough for every live worker to reconnect, send a heartbeat and
//! flush what it buffered. Before this, a RabbitMQ outage longer than the
//! lease timed out the jobs of every live worker the moment the
//! coordinator reconnected, and they ran again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use warren_store::StoreError;

/// Since when the broker session has been up and the database reachable.
#[derive(Debug, Default)]
pub(crate) struct Hearing {
    broker_since: Mutex<Option<Instant>>,
    database_since: Mutex<Option<Instant>>,
}

impl Hearing {
    /// A broker session is up (its loops are running).
    pub(crate) fn broker_up(&self) {
        mark_up(&self.broker_since);
    }

    /// The broker session ended.
    pub(crate) fn broker_down(&self) {
        *lock(&self.broker_since) = None;
    }

    /// A database call succeeded (the interruption, if any, is over).
    pub(crate) fn database_ok(&self) {
        mark_up(&self.database_since);
    }

    /// A database call failed for a transient reason.
    pub(crate) fn database_failed(&self) {
        *lock(&self.database_since) = None;
    }

    /// Records how a database call went: a success starts the clock if it
    /// is stopped, a transient failure stops it, any other error (bad
    /// input) says nothing about reachability.
    pub(crate) fn database_call<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => self.database_ok(),
            Err(e) if e.is_transient() => self.database_failed(),
            Err(_) => {}
        }
    }

    /// Whether both have been up without a break for at least `window`.
    pub(crate) fn heard_for(&self, window: Duration) -> bool {
        let up = |since: &Mutex<Option<Instant>>| {
            lock(since).is_some_and(|since| since.elapsed() >= window)
        };
        up(&self.broker_since) && up(&self.database_since)
    }
}

/// Starts the clock unless it is already running.
fn mark_up(since: &Mutex<Option<Instant>>) {
    lock(since).get_or_insert_with(Instant::now);
}

fn lock(since: &Mutex<Option<Instant>>) -> std::sync::MutexGuard<'_, Option<Instant>> {
    // The guarded value is a plain Option; a panic elsewhere cannot leave it torn.
    since
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(20);

    #[tokio::test(start_paused = true)]
    async fn hears_only_after_both_were_up_for_a_whole_window() {
        let hearing = Hearing::default();
        assert!(!hearing.heard_for(WINDOW), "nothing up yet");
        hearing.broker_up();
        hearing.database_ok();
        tokio::time::advance(WINDOW - Duration::from_millis(1)).await;
        assert!(!hearing.heard_for(WINDOW));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(hearing.heard_for(WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn a_break_in_either_restarts_the_window() {
        let hearing = Hearing::default();
        hearing.broker_up();
        hearing.database_ok();
        tokio::time::advance(WINDOW).await;
        assert!(hearing.heard_for(WINDOW));

        hearing.broker_down();
        assert!(!hearing.heard_for(WINDOW), "broker gone");
        hearing.broker_up();
        tokio::time::advance(WINDOW / 2).await;
        assert!(!hearing.heard_for(WINDOW), "broker back for half a window");
        tokio::time::advance(WINDOW / 2).await;
        assert!(hearing.heard_for(WINDOW));

        hearing.database_failed();
        hearing.database_ok();
        assert!(!hearing.heard_for(WINDOW), "database just back");
        tokio::time::advance(WINDOW).await;
        assert!(hearing.heard_for(WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_successes_do_not_restart_the_window() {
        let hearing = Hearing::default();
        hearing.broker_up();
        hearing.database_ok();
        tokio::time::advance(WINDOW / 2).await;
        hearing.database_ok();
        hearing.broker_up();
        tokio::time::advance(WINDOW / 2).await;
        assert!(hearing.heard_for(WINDOW));
    }
}
