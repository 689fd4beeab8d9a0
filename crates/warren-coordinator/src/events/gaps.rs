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
//! read's snapshot: its transaction id is below the snapshot's `xmax`. Once a
//! later snapshot's `xmin` reaches that remembered `xmax`, every such
//! transaction has finished, so if the id is still missing it is missing for
//! good and the tracker steps over it.

/// A run of missing ids, `start..=end`, first seen under a snapshot whose
/// `xmax` was `seen_xmax`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    start: i64,
    end: i64,
    seen_xmax: u64,
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
    /// remembered: what was seen about them is still true.
    pub(crate) fn reset(&mut self, cursor: i64) {
        self.cursor = cursor;
        self.gaps.retain(|g| g.end > cursor);
        if let Some(first) = self.gaps.first_mut() {
            first.start = first.start.max(cursor + 1);
        }
    }

    /// Takes one read: `ids` are the ascending ids above the cursor that a
    /// statement saw under a snapshot with `xmin` and `xmax`. Returns how
    /// many of them (a prefix) are settled, and moves the cursor past them.
    pub(crate) fn advance(&mut self, ids: &[i64], xmin: u64, xmax: u64) -> Advance {
        let runs = self.missing_runs(ids, xmax);
        let mut advance = Advance::default();
        let mut runs_left = runs.iter().peekable();
        for (index, &id) in ids.iter().enumerate() {
            debug_assert!(id > self.cursor, "ids are read above the cursor");
            if id > self.cursor + 1 {
                let gap = **runs_left
                    .peek()
                    .expect("every jump in the ids is a missing run");
                debug_assert_eq!((gap.start, gap.end), (self.cursor + 1, id - 1));
                if xmin < gap.seen_xmax {
                    break; // a transaction that may hold these ids is still running
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

    /// The missing runs between the cursor and the last id read, each with
    /// the `xmax` under which it was first seen: inherited from the gaps
    /// already known when they cover it entirely, else the current one (the
    /// later, the more careful).
    fn missing_runs(&self, ids: &[i64], xmax: u64) -> Vec<Gap> {
        let mut runs = Vec::new();
        let mut previous = self.cursor;
        for &id in ids {
            if id > previous + 1 {
                let (start, end) = (previous + 1, id - 1);
                runs.push(Gap {
                    start,
                    end,
                    seen_xmax: self.first_seen(start, end).unwrap_or(xmax),
                });
            }
            previous = previous.max(id);
        }
        runs
    }

    /// The latest `seen_xmax` of the known gaps overlapping `start..=end`,
    /// if they cover all of it.
    fn first_seen(&self, start: i64, end: i64) -> Option<u64> {
        let mut covered = 0u64;
        let mut seen = None;
        for gap in &self.gaps {
            let (from, to) = (gap.start.max(start), gap.end.min(end));
            if from <= to {
                covered += (to - from + 1) as u64;
                seen = seen.max(Some(gap.seen_xmax));
            }
        }
        (covered == (end - start + 1) as u64)
            .then_some(seen)
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contiguous_run_is_emitted_whole() {
        let mut t = GapTracker::new(10);
        let a = t.advance(&[11, 12, 13], 5, 9);
        assert_eq!(
            a,
            Advance {
                emit: 3,
                skipped: 0
            }
        );
        assert_eq!(t.cursor(), 13);
        assert_eq!(t.advance(&[], 5, 9), Advance::default());
    }

    #[test]
    fn a_gap_stops_emission_until_the_missing_id_commits() {
        let mut t = GapTracker::new(0);
        // 2 is held by a running transaction (xid 100); xmax is 105.
        assert_eq!(t.advance(&[1, 3, 4], 100, 105).emit, 1);
        assert_eq!(t.cursor(), 1);
        assert_eq!(t.open_gaps(), 1);
        // Still running: nothing moves however often we look.
        assert_eq!(t.advance(&[3, 4, 5], 100, 110).emit, 0);
        // It commits: 2 appears and everything behind it follows, in order.
        let a = t.advance(&[2, 3, 4, 5], 110, 111);
        assert_eq!(
            a,
            Advance {
                emit: 4,
                skipped: 0
            }
        );
        assert_eq!((t.cursor(), t.open_gaps()), (5, 0));
    }

    #[test]
    fn an_aborted_id_is_stepped_over_once_every_older_transaction_finished() {
        let mut t = GapTracker::new(0);
        assert_eq!(t.advance(&[1, 3], 100, 105).emit, 1);
        // xmin has not reached the xmax under which the gap was first seen.
        assert_eq!(t.advance(&[3], 104, 120).emit, 0);
        // Now it has: the remembered xmax (105) counts, not the current (130).
        let a = t.advance(&[3], 105, 130);
        assert_eq!(
            a,
            Advance {
                emit: 1,
                skipped: 1
            }
        );
        assert_eq!((t.cursor(), t.open_gaps()), (3, 0));
    }

    #[test]
    fn a_long_aborted_run_is_stepped_over_at_once() {
        let mut t = GapTracker::new(0);
        assert_eq!(t.advance(&[501, 502], 50, 60).emit, 0);
        let a = t.advance(&[501, 502, 503], 60, 70);
        assert_eq!(
            a,
            Advance {
                emit: 3,
                skipped: 500
            }
        );
        assert_eq!(t.cursor(), 503);
    }

    #[test]
    fn later_gaps_keep_the_xmax_they_were_first_seen_with() {
        let mut t = GapTracker::new(0);
        // Gaps at 2 and 4, both first seen under xmax 10.
        assert_eq!(t.advance(&[1, 3, 5], 8, 10).emit, 1);
        // Under xmin 10 both are settled, although the current xmax is 50.
        let a = t.advance(&[3, 5, 6], 10, 50);
        assert_eq!(
            a,
            Advance {
                emit: 3,
                skipped: 2
            }
        );
        assert_eq!(t.cursor(), 6);
    }

    #[test]
    fn a_gap_seen_later_gets_the_later_xmax() {
        let mut t = GapTracker::new(0);
        assert_eq!(t.advance(&[1, 3], 8, 10).emit, 1);
        // 5 is missing for the first time now, under xmax 40.
        let a = t.advance(&[3, 4, 6], 10, 40);
        assert_eq!(
            a,
            Advance {
                emit: 2,
                skipped: 1
            }
        );
        assert_eq!(t.cursor(), 4);
        assert_eq!(t.advance(&[6], 39, 45).emit, 0);
        assert_eq!(
            t.advance(&[6], 40, 45),
            Advance {
                emit: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn a_run_partly_filled_keeps_its_first_sighting_for_the_rest() {
        let mut t = GapTracker::new(0);
        assert_eq!(t.advance(&[1, 5], 8, 10).emit, 1); // 2..=4 missing
                                                       // 3 commits; 2 and 4 are still missing and still date from xmax 10.
        let a = t.advance(&[3, 5], 10, 90);
        assert_eq!(
            a,
            Advance {
                emit: 2,
                skipped: 2
            }
        );
        assert_eq!(t.cursor(), 5);
    }

    #[test]
    fn reset_moves_the_cursor_and_keeps_gaps_above_it() {
        let mut t = GapTracker::new(0);
        assert_eq!(t.advance(&[1, 3, 6], 8, 10).emit, 1); // gaps 2, 4..=5
        t.reset(4);
        assert_eq!(t.cursor(), 4);
        assert_eq!(t.open_gaps(), 1);
        assert_eq!(
            t.advance(&[6], 10, 11),
            Advance {
                emit: 1,
                skipped: 1
            }
        );
    }

    /// A simulated database: transactions get an xid when they begin, then
    /// take ids from a sequence, then commit or abort, in any interleaving.
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
            next_id: i64,
            /// Running transactions: (xid, ids taken).
            running: Vec<(u64, Vec<i64>)>,
            committed: BTreeSet<i64>,
        }

        impl Database {
            fn pick(&self, n: usize) -> Option<usize> {
                (!self.running.is_empty()).then(|| n % self.running.len())
            }

            /// (ids above `after`, at most `limit`), xmin, xmax.
            fn read(&self, after: i64, limit: usize) -> (Vec<i64>, u64, u64) {
                let xmax = self.next_xid;
                let xmin = self.running.iter().map(|t| t.0).min().unwrap_or(xmax);
                let ids = self.committed.range(after + 1..).take(limit).copied();
                (ids.collect(), xmin, xmax)
            }
        }

        fn read(db: &Database, tracker: &mut GapTracker, emitted: &mut Vec<i64>) {
            let (ids, xmin, xmax) = db.read(tracker.cursor(), 4);
            let advance = tracker.advance(&ids, xmin, xmax);
            emitted.extend_from_slice(&ids[..advance.emit]);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn every_committed_id_is_emitted_once_in_order(ops in prop::collection::vec(op(), 1..120)) {
                let mut db = Database { next_xid: 100, next_id: 1, ..Database::default() };
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
                            let (_, ids) = db.running.remove(i);
                            db.committed.extend(ids);
                        },
                        Op::Abort(n) => if let Some(i) = db.pick(n) {
                            db.running.remove(i);
                        },
                        Op::Read => read(&db, &mut tracker, &mut emitted),
                    }
                    // Nothing emitted may ever be followed by a smaller id.
                    prop_assert!(emitted.windows(2).all(|w| w[0] < w[1]), "{emitted:?}");
                }
                // Everything finishes; the reader catches up.
                for (_, ids) in std::mem::take(&mut db.running) {
                    db.committed.extend(ids);
                }
                for _ in 0..200 {
                    read(&db, &mut tracker, &mut emitted);
                }
                let expected: Vec<i64> = db.committed.iter().copied().collect();
                prop_assert_eq!(emitted, expected);
            }
        }
    }
}
