//! Pacing of reconnects after sessions that fail soon after they start
//! (for example a topology declaration the broker refuses), so a persistent
//! error produces a slow retry loop rather than a hot one.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A session that lived at least this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);
const MIN_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Tracks session lifetimes and sleeps between short-lived ones.
#[derive(Debug)]
pub struct SessionPacer {
    delay: Duration,
    started: Instant,
}

impl Default for SessionPacer {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionPacer {
    /// A pacer with no delay pending.
    pub fn new() -> Self {
        Self {
            delay: MIN_DELAY,
            started: Instant::now(),
        }
    }

    /// Call when a session has been established.
    pub fn started(&mut self) {
        self.started = Instant::now();
    }

    /// Call after a session failed: waits (doubling up to 5 s) if it was
    /// short-lived. Returns false if `shutdown` was cancelled meanwhile.
    pub async fn pause(&mut self, shutdown: &CancellationToken) -> bool {
        if self.started.elapsed() >= HEALTHY_SESSION {
            self.delay = MIN_DELAY;
            return !shutdown.is_cancelled();
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
