//! Dispatches whose task message may or may not be in the broker: it was
//! sent, but the connection went (or the confirm did not come in time)
//! before the broker answered.
//!
//! Returning such a job to `pending` at once, as for a publish the broker
//! refused, re-dispatched it under a new lease while the broker often kept
//! the first message: a RabbitMQ restart or a cluster node going away then
//! ran those jobs twice. They stay `queued` instead, remembered here, and
//! the lost-dispatch check ([`crate::redispatch`]) returns them to
//! `pending` only once the message cannot be anywhere: after this
//! coordinator has heard workers for a whole lease, their queue has
//! consumers, no ready messages and workers with free slots. A message the
//! broker kept is run meanwhile, and its report completes the job; the
//! check then forgets it (its job is no longer `queued` under that lease).
//!
//! The record is bounded; beyond [`MAX_UNCERTAIN`] jobs (or if this
//! coordinator dies) the lost-dispatch check's own timeout covers them.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::IntGauge;
use uuid::Uuid;

/// Uncertain dispatches remembered at most.
pub(crate) const MAX_UNCERTAIN: usize = 100_000;

/// Uncertain dispatches by queue: (job id, lease), their count kept in
/// `warren_unconfirmed_dispatches`.
pub(crate) struct Uncertain {
    jobs: Mutex<Held>,
    gauge: IntGauge,
}

#[derive(Default)]
struct Held {
    by_queue: HashMap<String, Vec<(Uuid, Uuid)>>,
    count: usize,
}

impl Uncertain {
    /// An empty record whose size `gauge` shows.
    pub(crate) fn new(gauge: IntGauge) -> Self {
        gauge.set(0);
        Uncertain {
            jobs: Mutex::new(Held::default()),
            gauge,
        }
    }

    /// Remembers `jobs` of `queue`; returns those there was no room for.
    pub(crate) fn add(&self, queue: &str, mut jobs: Vec<(Uuid, Uuid)>) -> Vec<(Uuid, Uuid)> {
        let mut held = self.jobs.lock().expect("uncertain dispatches poisoned");
        let room = MAX_UNCERTAIN.saturating_sub(held.count).min(jobs.len());
        let overflow = jobs.split_off(room);
        if !jobs.is_empty() {
            held.count += jobs.len();
            held.by_queue
                .entry(queue.to_owned())
                .or_default()
                .extend(jobs);
            self.gauge.set(held.count as i64);
        }
        overflow
    }

    /// Queues with uncertain dispatches.
    pub(crate) fn queues(&self) -> Vec<String> {
        let held = self.jobs.lock().expect("uncertain dispatches poisoned");
        held.by_queue.keys().cloned().collect()
    }

    /// Takes the uncertain dispatches of `queue`.
    pub(crate) fn take(&self, queue: &str) -> Vec<(Uuid, Uuid)> {
        let mut held = self.jobs.lock().expect("uncertain dispatches poisoned");
        let taken = held.by_queue.remove(queue).unwrap_or_default();
        held.count -= taken.len();
        self.gauge.set(held.count as i64);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uncertain() -> Uncertain {
        Uncertain::new(IntGauge::new("held", "held").expect("gauge"))
    }

    fn jobs(n: usize) -> Vec<(Uuid, Uuid)> {
        (0..n)
            .map(|i| (Uuid::from_u128(i as u128), Uuid::from_u128(0)))
            .collect()
    }

    #[test]
    fn jobs_are_kept_by_queue_until_taken() {
        let uncertain = uncertain();
        assert!(uncertain.add("a", jobs(2)).is_empty());
        assert!(uncertain.add("b", jobs(1)).is_empty());
        let mut queues = uncertain.queues();
        queues.sort();
        assert_eq!(queues, ["a", "b"]);
        assert_eq!(uncertain.gauge.get(), 3);
        assert_eq!(uncertain.take("a"), jobs(2));
        assert!(uncertain.take("a").is_empty());
        assert_eq!(uncertain.queues(), ["b"]);
        assert_eq!(uncertain.gauge.get(), 1);
    }

    #[test]
    fn beyond_the_bound_jobs_are_handed_back() {
        let uncertain = uncertain();
        assert!(uncertain.add("a", jobs(MAX_UNCERTAIN - 1)).is_empty());
        assert_eq!(uncertain.add("b", jobs(3)).len(), 2, "room for one");
        assert_eq!(uncertain.add("c", jobs(1)).len(), 1, "full");
        assert_eq!(uncertain.queues().len(), 2, "no empty entry for c");
        assert_eq!(uncertain.gauge.get(), MAX_UNCERTAIN as i64);
    }
}
