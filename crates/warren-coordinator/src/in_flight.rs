//! Batches written concurrently, settled in delivery order: the pattern of
//! intake and report handling.
//!
//! A loop that consumes in batches and writes each in one transaction need
//! not wait for one batch's commit (a WAL flush) before it reads and writes
//! the next; PostgreSQL flushes concurrent commits together. Acks must still
//! go out in delivery order, since a batch is acknowledged with one
//! multi-ack that covers every earlier delivery: [`InFlight::next`] yields
//! outcomes oldest first. A batch that concerns a job an earlier batch in
//! flight also concerns is started only after that batch ended
//! ([`InFlight::overlaps`]): reports of one attempt apply in the order sent,
//! and two writes of the same row would only wait on each other's locks.
//! A loop that failed and acknowledges nothing more takes what is left in
//! any order ([`InFlight::into_unordered`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;

use futures_util::future::{join, Join, Ready};
use futures_util::stream::{self, FuturesUnordered, Stream, StreamExt};
use uuid::Uuid;

/// Batches a loop writes at once.
pub(crate) const BATCHES_IN_FLIGHT: usize = 3;

/// A batch with its place in delivery order.
type Numbered<F> = Join<F, Ready<u64>>;

/// Batches being written, in delivery order, with the jobs each concerns.
pub(crate) struct InFlight<F: Future> {
    batches: FuturesUnordered<Numbered<F>>,
    /// Outcomes of batches that ended before an earlier one, by number.
    ended: BTreeMap<u64, F::Output>,
    jobs: VecDeque<HashSet<Uuid>>,
    /// Number of the oldest batch not yielded yet.
    oldest: u64,
}

impl<F: Future> Default for InFlight<F> {
    fn default() -> Self {
        Self {
            batches: FuturesUnordered::new(),
            ended: BTreeMap::new(),
            jobs: VecDeque::new(),
            oldest: 0,
        }
    }
}

impl<F: Future> InFlight<F> {
    /// Whether no batch is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Whether another batch may start.
    pub(crate) fn has_room(&self) -> bool {
        self.jobs.len() < BATCHES_IN_FLIGHT
    }

    /// Whether a batch in flight concerns any of `jobs`.
    pub(crate) fn overlaps(&self, jobs: &HashSet<Uuid>) -> bool {
        self.jobs.iter().any(|earlier| !earlier.is_disjoint(jobs))
    }

    /// Starts tracking `batch`, which concerns `jobs`.
    pub(crate) fn push(&mut self, jobs: HashSet<Uuid>, batch: F) {
        let number = self.oldest + self.jobs.len() as u64;
        self.jobs.push_back(jobs);
        self.batches
            .push(join(batch, futures_util::future::ready(number)));
    }

    /// The oldest batch's outcome. Only called while batches are in flight
    /// (cancel-safe: dropped before it is ready, the batch stays tracked).
    pub(crate) async fn next(&mut self) -> F::Output {
        loop {
            if let Some(outcome) = self.ended.remove(&self.oldest) {
                self.oldest += 1;
                self.jobs.pop_front();
                return outcome;
            }
            // No await between taking an outcome and storing it.
            let (outcome, number) = self
                .batches
                .next()
                .await
                .expect("called only while batches are in flight");
            self.ended.insert(number, outcome);
        }
    }

    /// Every outcome not yielded yet, each as soon as its batch ends,
    /// whatever the order: for a loop that failed and acknowledges nothing
    /// more, so that a batch still waiting (on a lock, say) does not hold
    /// back the outcomes of later ones.
    pub(crate) fn into_unordered(self) -> impl Stream<Item = F::Output> {
        stream::iter(self.ended.into_values()).chain(self.batches.map(|(outcome, _)| outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    fn ids(n: u128) -> HashSet<Uuid> {
        [Uuid::from_u128(n)].into()
    }

    #[tokio::test]
    async fn outcomes_come_in_push_order_whatever_order_batches_end_in() {
        let mut in_flight = InFlight::default();
        let (first_tx, first) = oneshot::channel::<u32>();
        let (second_tx, second) = oneshot::channel::<u32>();
        in_flight.push(ids(1), first.map(|r| r.unwrap()).boxed());
        in_flight.push(ids(2), second.map(|r| r.unwrap()).boxed());
        second_tx.send(2).unwrap();
        assert!(
            in_flight.next().now_or_never().is_none(),
            "the second batch ended, but the first is still in flight"
        );
        first_tx.send(1).unwrap();
        assert_eq!(in_flight.next().await, 1);
        assert_eq!(in_flight.next().await, 2);
        assert!(in_flight.is_empty());
    }

    #[tokio::test]
    async fn room_and_overlap_follow_what_is_in_flight() {
        let mut in_flight = InFlight::default();
        for n in 0..BATCHES_IN_FLIGHT as u128 {
            assert!(in_flight.has_room());
            in_flight.push(ids(n), std::future::ready(n));
        }
        assert!(!in_flight.has_room());
        assert!(in_flight.overlaps(&ids(0)));
        assert!(!in_flight.overlaps(&ids(99)));
        assert_eq!(in_flight.next().await, 0);
        assert!(in_flight.has_room());
        assert!(
            !in_flight.overlaps(&ids(0)),
            "an ended batch no longer holds its jobs"
        );
    }

    #[tokio::test]
    async fn unordered_outcomes_do_not_wait_for_an_earlier_batch() {
        let mut in_flight = InFlight::default();
        let (first_tx, first) = oneshot::channel::<u32>();
        let (second_tx, second) = oneshot::channel::<u32>();
        let (third_tx, third) = oneshot::channel::<u32>();
        in_flight.push(ids(1), first.map(|r| r.unwrap()).boxed());
        in_flight.push(ids(2), second.map(|r| r.unwrap()).boxed());
        in_flight.push(ids(3), third.map(|r| r.unwrap()).boxed());
        third_tx.send(3).unwrap();
        assert!(in_flight.next().now_or_never().is_none());
        let mut remaining = Box::pin(in_flight.into_unordered());
        assert_eq!(
            remaining.next().await,
            Some(3),
            "ended while the first waited"
        );
        second_tx.send(2).unwrap();
        assert_eq!(remaining.next().await, Some(2));
        first_tx.send(1).unwrap();
        assert_eq!(remaining.next().await, Some(1));
        assert_eq!(remaining.next().await, None);
    }
}
