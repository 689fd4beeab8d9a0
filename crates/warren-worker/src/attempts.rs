//! The attempts this process began, so that a copy of one delivered again
//! is settled instead of run again.
//!
//! A task message is acknowledged once its attempt's Started or final
//! report is confirmed. When the session dies in between (RabbitMQ
//! restarted, the connection dropped), the ack is lost with it and the
//! broker delivers the message again, often to this worker's next
//! session. The attempt's reports are safe meanwhile (the reporter
//! outlives sessions and publishes them in the next one), so running the
//! copy would only execute the job a second time: the RabbitMQ-restart
//! fault test measured 35 such runs among 601 jobs.
//!
//! An attempt is known by its job, number and lease: a dispatch of the
//! same attempt again (a task message taken for lost) carries a new lease
//! and runs. A copy of an attempt whose delivery is settled is settled at
//! once; a copy of one still waiting for its first confirm is settled with
//! it. The record is bounded: it keeps the latest attempts, enough to
//! cover every message unacknowledged when a session dies (at most the
//! worker's concurrency, all begun shortly before).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use warren_core::protocol::JobRef;

/// Attempts remembered at the least.
pub(crate) const MIN_REMEMBERED: usize = 16_384;

/// What to do with a delivered attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// Not seen before: run it.
    Run,
    /// A copy of an attempt whose delivery is settled: settle this one now.
    SettleNow,
    /// A copy of an attempt not settled yet: it is settled with the first.
    Deferred,
}

/// The attempts begun here; `D` is a delivery's share to settle later.
pub(crate) struct Attempts<D> {
    inner: Mutex<Inner<D>>,
    capacity: usize,
}

struct Inner<D> {
    entries: HashMap<JobRef, Entry<D>>,
    /// Oldest first, for eviction.
    order: VecDeque<JobRef>,
}

struct Entry<D> {
    settled: bool,
    /// Copies delivered before the first settled.
    copies: Vec<D>,
}

impl<D> Attempts<D> {
    /// A record of at least `capacity` attempts (never fewer than
    /// [`MIN_REMEMBERED`]).
    pub(crate) fn new(capacity: usize) -> Self {
        Attempts {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.max(MIN_REMEMBERED),
        }
    }

    /// Records that `job` was delivered with `copy` as its share of the
    /// delivery; see [`Begin`].
    pub(crate) fn begin(&self, job: JobRef, copy: D) -> Begin {
        let mut inner = self.inner.lock().expect("attempts poisoned");
        if let Some(entry) = inner.entries.get_mut(&job) {
            if entry.settled {
                return Begin::SettleNow;
            }
            entry.copies.push(copy);
            return Begin::Deferred;
        }
        inner.entries.insert(
            job,
            Entry {
                settled: false,
                copies: Vec::new(),
            },
        );
        inner.order.push_back(job);
        inner.evict(self.capacity);
        Begin::Run
    }

    /// Marks `job`'s delivery settled; returns the copies to settle with it.
    pub(crate) fn settled(&self, job: JobRef) -> Vec<D> {
        let mut inner = self.inner.lock().expect("attempts poisoned");
        match inner.entries.get_mut(&job) {
            Some(entry) => {
                entry.settled = true;
                std::mem::take(&mut entry.copies)
            }
            None => Vec::new(),
        }
    }

    /// Attempts remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().expect("attempts poisoned").entries.len()
    }
}

impl<D> Inner<D> {
    /// Forgets the oldest settled attempts beyond `capacity`. Unsettled ones
    /// (running, at most the worker's concurrency) are kept and moved to
    /// the back.
    fn evict(&mut self, capacity: usize) {
        let mut looked = 0;
        while self.entries.len() > capacity && looked < self.order.len() {
            let oldest = self.order.pop_front().expect("order holds every entry");
            if self.entries.get(&oldest).is_some_and(|e| !e.settled) {
                self.order.push_back(oldest);
                looked += 1;
            } else {
                self.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn attempt(n: u32) -> JobRef {
        JobRef {
            job_id: Uuid::from_u128(u128::from(n)),
            attempt: 1,
            lease: Uuid::from_u128(1),
        }
    }

    #[test]
    fn a_copy_before_the_first_settles_waits_for_it_and_one_after_settles_at_once() {
        let attempts = Attempts::new(0);
        assert_eq!(attempts.begin(attempt(1), "first"), Begin::Run);
        assert_eq!(attempts.begin(attempt(1), "second"), Begin::Deferred);
        assert_eq!(attempts.settled(attempt(1)), vec!["second"]);
        assert_eq!(attempts.begin(attempt(1), "third"), Begin::SettleNow);
        assert!(attempts.settled(attempt(1)).is_empty());
    }

    #[test]
    fn another_lease_or_attempt_of_the_same_job_runs() {
        let attempts = Attempts::new(0);
        let first = attempt(1);
        assert_eq!(attempts.begin(first, ()), Begin::Run);
        let redispatched = JobRef {
            lease: Uuid::from_u128(2),
            ..first
        };
        let retried = JobRef {
            attempt: 2,
            ..first
        };
        assert_eq!(attempts.begin(redispatched, ()), Begin::Run);
        assert_eq!(attempts.begin(retried, ()), Begin::Run);
    }

    #[test]
    fn the_oldest_settled_attempts_are_forgotten_and_running_ones_kept() {
        let attempts = Attempts::new(0);
        // Attempt 0 keeps running while many more begin and settle.
        assert_eq!(attempts.begin(attempt(0), ()), Begin::Run);
        for n in 1..=MIN_REMEMBERED as u32 + 10 {
            assert_eq!(attempts.begin(attempt(n), ()), Begin::Run);
            attempts.settled(attempt(n));
        }
        assert!(attempts.len() <= MIN_REMEMBERED + 1);
        assert_eq!(
            attempts.begin(attempt(0), ()),
            Begin::Deferred,
            "the running attempt is remembered"
        );
        assert_eq!(
            attempts.begin(attempt(1), ()),
            Begin::Run,
            "the oldest settled one was forgotten"
        );
        assert_eq!(
            attempts.begin(attempt(MIN_REMEMBERED as u32 + 10), ()),
            Begin::SettleNow,
            "the newest is remembered"
        );
    }
}
