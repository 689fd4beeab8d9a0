//! Gap-free ordering of a log whose ids come from a sequence.
//!
//! `job_events.id` is a bigserial, so ids become visible out of commit
//! order: a transaction may take id 7, another id 8 and commit first. A
//! reader that simply asks for `id > cursor` would pass over 7 and never
//! see it. The [`GapTracker`] keeps a cursor such that every id at or below
//! it is *settled* — visible, or known never to appear — and emits ids only
//! in contiguous runs above it.
//!
//! A missing id (a gap) belongs to a transaction that has not committed yet
//! (the id will appear) or to one that aborted or skipped the value (it never
//! will). When a gap is first seen, some higher id is visible, so the
//! transaction holding the missing id had taken it — and, because events are
//! written after the job row, already had a transaction id — before that
//! read. Right after the read the reader obtains a *bound*: one more than a
//! transaction id assigned at that moment, hence above every transaction id
//! assigned before the read. Once a later snapshot's `xmin` reaches the
//! bound, every transaction that could hold the missing id has finished: if
//! it is still missing it is missing for good, and the tracker steps over it.
//!
//! The bound cannot be the read's own `pg_snapshot_xmax`: PostgreSQL sets it
//! to one past the latest *completed* transaction, and a transaction that is
//! still running may have a larger id (the simulation test below shows the
//! loss that follows).

/// Bound of a gap whose bound has not been supplied yet: never settles.
const UNKNOWN: u64 = u64::MAX;

/// A run of missing ids, `start..=end`, and the `xmin` at which every
/// transaction that could hold one of them has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    start: i64,
    end: i64,
    bound: u64,
}

impl Gap {
    fn len(&self) -> u64 {
        (self.end - self.start + 1) as u64
    }
}

/// What one read settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Advance {
    /// How many of the ids read (a prefix) are settled and may be emitted.
    pub(crate) emit: usize,
    /// Ids stepped over as permanently missing.
    pub(crate) skipped: u64,
}

/// Whether a reader should read again at once: only after a full read
/// (`read` ids of at most `batch`) that settled as a whole (`emitted` of
/// them) may more be waiting right behind. A read held up by an open gap
/// waits for the next tick instead of reading the same rows again until
/// the gap's transaction ends.
pub(crate) fn read_again_at_once(read: usize, emitted: usize, batch: i64) -> bool {
    read as i64 == batch && emitted == read
}

/// The settled cursor of one reader and the gaps it has seen above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GapTracker {
    cursor: i64,
    /// Disjoint, ascending, all above `cursor`.
    gaps: Vec<Gap>,
}

impl GapTracker {
    /// Starts at `cursor`, which must already be settled.
    pub(crate) fn new(cursor: i64) -> Self {
        Self {
            cursor,
            gaps: Vec::new(),
        }
    }

    /// Every id at or below this is settled.
    pub(crate) fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Number of gaps waiting to be resolved.
    #[cfg(test)]
    pub(crate) fn open_gaps(&self) -> usize {
        self.gaps.len()
    }

    /// Moves the cursor to `cursor` (settled by someone else, e.g. another
    /// coordinator that published meanwhile). Gaps above it stay
    /// remembered: what was learnt about them is still true.
    pub(crate) fn reset(&mut self, cursor: i64) {
        self.cursor = cursor;
        self.gaps.retain(|g| g.end > cursor);
        if let Some(first) = self.gaps.first_mut() {
            first.start = first.start.max(cursor + 1);
        }
    }

    /// Takes one read: `ids` are the ascending ids above the cursor that a
    /// statement saw under a snapshot with `xmin`. Returns how many of them
    /// (a prefix) are settled, and moves the cursor past them. Gaps seen for
    /// the first time wait for [`GapTracker::set_bound`].
    pub(crate) fn advance(&mut self, ids: &[i64], xmin: u64) -> Advance {
        let runs = self.missing_runs(ids);
        let mut advance = Advance::default();
        let mut runs_left = runs.iter().peekable();
        for (index, &id) in ids.iter().enumerate() {
            debug_assert!(id > self.cursor, "ids are read above the cursor");
            if id > self.cursor + 1 {
                let gap = **runs_left
                    .peek()
                    .expect("every jump in the ids is a missing run");
                debug_assert_eq!((gap.start, gap.end), (self.cursor + 1, id - 1));
                if xmin < gap.bound {
                    break; // a transaction that may hold these ids may still run
                }
                runs_left.next();
                advance.skipped += gap.len();
            }
            self.cursor = id;
            advance.emit = index + 1;
        }
        self.gaps = runs_left.copied().collect();
        advance
    }

    /// Whether the last read found gaps that need a bound.
    pub(crate) fn needs_bound(&self) -> bool {
        self.gaps.iter().any(|g| g.bound == UNKNOWN)
    }

    /// Gives the gaps first seen in the last read their bound: one more than
    /// a transaction id assigned after that read.
    pub(crate) fn set_bound(&mut self, bound: u64) {
        for gap in self.gaps.iter_mut().filter(|g| g.bound == UNKNOWN) {
            gap.bound = bound;
        }
    }

    /// The missing runs between the cursor and the last id read, each with
    /// the bound of the gaps already known when they cover it entirely
    /// (the latest of them), else unknown.
    fn missing_runs(&self, ids: &[i64]) -> Vec<Gap> {
        let mut runs = Vec::new();
        let mut previous = self.cursor;
        for &id in ids {
            if id > previous + 1 {
                let (start, end) = (previous + 1, id - 1);
                runs.push(Gap {
                    start,
                    end,
                    bound: self.known_bound(start, end).unwrap_or(UNKNOWN),
                });
            }
            previous = previous.max(id);
        }
        runs
    }

    /// The latest bound of the known gaps overlapping `start..=end`, if they
    /// cover all of it.
    fn known_bound(&self, start: i64, end: i64) -> Option<u64> {
        let mut covered = 0u64;
        let mut bound = None;
        for gap in &self.gaps {
            let (from, to) = (gap.start.max(start), gap.end.min(end));
            if from <= to {
                covered += (to - from + 1) as u64;
                bound = bound.max(Some(gap.bound));
            }
        }
        (covered == (end - start + 1) as u64)
            .then_some(bound)
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One read under `xmin`, then the bound a reader fetches after it
    /// (one past a transaction id assigned then) if new gaps need one.
    fn read(t: &mut GapTracker, ids: &[i64], xmin: u64, bound: u64) -> Advance {
        let advance = t.advance(ids, xmin);
        if t.needs_bound() {
            t.set_bound(bound);
        }
        advance
    }

    fn settled(emit: usize, skipped: u64) -> Advance {
        Advance { emit, skipped }
    }

    #[test]
    fn only_a_full_read_that_settled_whole_is_followed_at_once() {
        assert!(read_again_at_once(100, 100, 100));
        assert!(!read_again_at_once(100, 40, 100), "held up by a gap");
        assert!(!read_again_at_once(60, 60, 100), "caught up");
        assert!(!read_again_at_once(0, 0, 100));
    }

    #[test]
    fn a_contiguous_run_is_emitted_whole() {
        let mut t = GapTracker::new(10);
        assert_eq!(read(&mut t, &[11, 12, 13], 5, 9), settled(3, 0));
        assert_eq!(t.cursor(), 13);
        assert!(!t.needs_bound());
        assert_eq!(read(&mut t, &[], 5, 9), Advance::default());
    }

    #[test]
    fn a_gap_stops_emission_until_the_missing_id_commits() {
        let mut t = GapTracker::new(0);
        // 2 is held by a running transaction (xid 100); the bound is 106.
        assert_eq!(t.advance(&[1, 3, 4], 100).emit, 1);
        assert!(t.needs_bound());
        t.set_bound(106);
        assert_eq!((t.cursor(), t.open_gaps()), (1, 1));
        // Still running: nothing moves however often we look.
        assert_eq!(read(&mut t, &[3, 4, 5], 100, 120).emit, 0);
        // It commits: 2 appears and everything behind it follows, in order.
        assert_eq!(read(&mut t, &[2, 3, 4, 5], 110, 130), settled(4, 0));
        assert_eq!((t.cursor(), t.open_gaps()), (5, 0));
    }

    #[test]
    fn an_aborted_id_is_stepped_over_once_xmin_reaches_the_bound() {
        let mut t = GapTracker::new(0);
        assert_eq!(read(&mut t, &[1, 3], 100, 105).emit, 1);
        assert_eq!(read(&mut t, &[3], 104, 120).emit, 0);
        // The bound from the first sighting (105) counts, not a later one.
        assert_eq!(read(&mut t, &[3], 105, 130), settled(1, 1));
        assert_eq!((t.cursor(), t.open_gaps()), (3, 0));
    }

    #[test]
    fn a_gap_without_a_bound_never_settles() {
        let mut t = GapTracker::new(0);
        assert_eq!(t.advance(&[1, 3], 100).emit, 1);
        assert_eq!(t.advance(&[3], u64::MAX - 1).emit, 0);
        assert!(t.needs_bound());
    }

    #[test]
    fn a_long_aborted_run_is_stepped_over_at_once() {
        let mut t = GapTracker::new(0);
        assert_eq!(read(&mut t, &[501, 502], 50, 60).emit, 0);
        assert_eq!(read(&mut t, &[501, 502, 503], 60, 70), settled(3, 500));
        assert_eq!(t.cursor(), 503);
    }

    #[test]
    fn later_gaps_keep_the_bound_of_their_first_sighting() {
        let mut t = GapTracker::new(0);
        // Gaps at 2 and 4, both first seen before transaction 9 was assigned.
        assert_eq!(read(&mut t, &[1, 3, 5], 8, 10).emit, 1);
        assert_eq!(read(&mut t, &[3, 5, 6], 10, 50), settled(3, 2));
        assert_eq!(t.cursor(), 6);
    }

    #[test]
    fn a_gap_seen_later_gets_a_later_bound() {
        let mut t = GapTracker::new(0);
        assert_eq!(read(&mut t, &[1, 3], 8, 10).emit, 1);
        // 5 is missing for the first time now; its bound is 40.
        assert_eq!(read(&mut t, &[3, 4, 6], 10, 40), settled(2, 1));
        assert_eq!(t.cursor(), 4);
        assert_eq!(read(&mut t, &[6], 39, 45).emit, 0);
        assert_eq!(read(&mut t, &[6], 40, 45), settled(1, 1));
    }

    #[test]
    fn a_run_partly_filled_keeps_its_first_sighting_for_the_rest() {
        let mut t = GapTracker::new(0);
        assert_eq!(read(&mut t, &[1, 5], 8, 10).emit, 1); // 2..=4 missing
                                                          // 3 commits; 2 and 4 are still missing and still date from bound 10.
        assert_eq!(read(&mut t, &[3, 5], 10, 90), settled(2, 2));
        assert_eq!(t.cursor(), 5);
    }

    #[test]
    fn reset_moves_the_cursor_and_keeps_gaps_above_it() {
        let mut t = GapTracker::new(0);
        assert_eq!(read(&mut t, &[1, 3, 6], 8, 10).emit, 1); // gaps 2, 4..=5
        t.reset(4);
        assert_eq!(t.cursor(), 4);
        assert_eq!(t.open_gaps(), 1);
        assert_eq!(read(&mut t, &[6], 10, 11), settled(1, 1));
    }

    /// A simulated database: transactions get an xid when they begin, then
    /// take ids from a sequence, then commit or abort, in any interleaving;
    /// snapshots are computed as PostgreSQL computes them. (Using the
    /// snapshot's `xmax` as the bound instead of a freshly assigned id makes
    /// this test fail: ids are lost.)
    mod simulation {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::GapTracker;

        #[derive(Debug, Clone)]
        enum Op {
            Begin,
            Take(usize),
            Commit(usize),
            Abort(usize),
            Read,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                2 => Just(Op::Begin),
                4 => any::<usize>().prop_map(Op::Take),
                2 => any::<usize>().prop_map(Op::Commit),
                1 => any::<usize>().prop_map(Op::Abort),
                3 => Just(Op::Read),
            ]
        }

        #[derive(Default)]
        struct Database {
            next_xid: u64,
            latest_completed: u64,
            next_id: i64,
            /// Running transactions: (xid, ids taken).
            running: Vec<(u64, Vec<i64>)>,
            committed: BTreeSet<i64>,
        }

        impl Database {
            fn pick(&self, n: usize) -> Option<usize> {
                (!self.running.is_empty()).then(|| n % self.running.len())
            }

            /// (ids above `after`, at most `limit`), xmin.
            fn read(&self, after: i64, limit: usize) -> (Vec<i64>, u64) {
                // As PostgreSQL computes them: xmax is one past the latest
                // *completed* transaction, not the next one to be assigned.
                let xmax = self.latest_completed + 1;
                let xmin = self
                    .running
                    .iter()
                    .map(|t| t.0)
                    .filter(|x| *x < xmax)
                    .min()
                    .unwrap_or(xmax);
                let ids = self.committed.range(after + 1..).take(limit).copied();
                (ids.collect(), xmin)
            }
        }

        /// What a reader does: one read, then — if it found new gaps — a
        /// transaction that takes an id and rolls back, for the bound.
        fn read(db: &mut Database, tracker: &mut GapTracker, emitted: &mut Vec<i64>) {
            let (ids, xmin) = db.read(tracker.cursor(), 4);
            let advance = tracker.advance(&ids, xmin);
            emitted.extend_from_slice(&ids[..advance.emit]);
            if tracker.needs_bound() {
                let xid = db.next_xid;
                db.next_xid += 1;
                db.latest_completed = db.latest_completed.max(xid);
                tracker.set_bound(xid + 1);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn every_committed_id_is_emitted_once_in_order(ops in prop::collection::vec(op(), 1..120)) {
                let mut db = Database { next_xid: 100, latest_completed: 99, next_id: 1, ..Database::default() };
                let mut tracker = GapTracker::new(0);
                let mut emitted = Vec::new();
                for op in ops {
                    match op {
                        Op::Begin => {
                            db.running.push((db.next_xid, Vec::new()));
                            db.next_xid += 1;
                        }
                        Op::Take(n) => if let Some(i) = db.pick(n) {
                            db.running[i].1.push(db.next_id);
                            db.next_id += 1;
                        },
                        Op::Commit(n) => if let Some(i) = db.pick(n) {
                            let (xid, ids) = db.running.remove(i);
                            db.latest_completed = db.latest_completed.max(xid);
                            db.committed.extend(ids);
                        },
                        Op::Abort(n) => if let Some(i) = db.pick(n) {
                            let (xid, _) = db.running.remove(i);
                            db.latest_completed = db.latest_completed.max(xid);
                        },
                        Op::Read => read(&mut db, &mut tracker, &mut emitted),
                    }
                    // Nothing emitted may ever be followed by a smaller id.
                    prop_assert!(emitted.windows(2).all(|w| w[0] < w[1]), "{emitted:?}");
                }
                // Everything finishes; the reader catches up.
                for (xid, ids) in std::mem::take(&mut db.running) {
                    db.latest_completed = db.latest_completed.max(xid);
                    db.committed.extend(ids);
                }
                for _ in 0..200 {
                    read(&mut db, &mut tracker, &mut emitted);
                }
                let expected: Vec<i64> = db.committed.iter().copied().collect();
                prop_assert_eq!(emitted, expected);
            }
        }
    }
}
