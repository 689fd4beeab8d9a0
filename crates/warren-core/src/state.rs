//! The job lifecycle: every state a job can be in and the only moves between
//! them. The same table is created by the migration (`job_transitions`) and a
//! trigger rejects any other move, so neither Rust nor raw SQL can corrupt a
//! job's lifecycle. A test checks the two tables agree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of one job (mirrors the Postgres ENUM `job_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Submitted with `requires_approval`; waits for an operator.
    AwaitingApproval,
    /// A workflow step waiting on its dependencies. It fails without running
    /// if its payload cannot be built from its parents' results.
    Blocked,
    /// Accepted; dispatchable once `run_at <= now()`.
    Pending,
    /// A task message for attempt n (lease L) was published.
    Queued,
    /// A worker reported Started for (n, L).
    Running,
    /// Attempt n failed.
    Failed,
    /// Attempt n exceeded its deadline or lost its worker's heartbeat.
    Timeout,
    /// Waiting for `run_at` (backoff) before the next attempt.
    Retrying,
    /// Finished successfully; the result is stored. Terminal.
    Completed,
    /// Cancelled by an operator or a workflow. Terminal.
    Cancelled,
    /// A workflow step that will not run. Terminal.
    Skipped,
}

use JobState::*;

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 11] = [
        AwaitingApproval,
        Blocked,
        Pending,
        Queued,
        Running,
        Failed,
        Timeout,
        Retrying,
        Completed,
        Cancelled,
        Skipped,
    ];

    /// States a job may be created in.
    pub const INITIAL: [JobState; 3] = [AwaitingApproval, Blocked, Pending];

    /// The states this state may move to (DESIGN.md §2).
    pub const fn successors(self) -> &'static [JobState] {
        match self {
            AwaitingApproval => &[Pending, Cancelled],
            Blocked => &[Pending, Skipped, Cancelled, Failed],
            Pending => &[Queued, Cancelled],
            Queued => &[Running, Pending, Failed, Cancelled],
            Running => &[Completed, Failed, Timeout, Cancelled],
            Failed => &[Retrying, Cancelled],
            Timeout => &[Retrying, Cancelled],
            Retrying => &[Queued, Cancelled],
            Completed | Cancelled | Skipped => &[],
        }
    }

    /// Whether `self -> to` is a legal move.
    pub fn can_transition_to(self, to: JobState) -> bool {
        self.successors().contains(&to)
    }

    /// Checks a move, returning a typed error naming both states.
    pub fn transition(self, to: JobState) -> Result<JobState, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// Every legal `(from, to)` pair.
    pub fn transitions() -> impl Iterator<Item = (JobState, JobState)> {
        Self::ALL
            .into_iter()
            .flat_map(|from| from.successors().iter().map(move |&to| (from, to)))
    }

    /// Completed, cancelled and skipped jobs never change again.
    pub fn is_terminal(self) -> bool {
        self.successors().is_empty()
    }

    /// States an operator may cancel a job from.
    pub fn is_cancellable(self) -> bool {
        self.can_transition_to(Cancelled)
    }

    /// The snake_case name used on the wire and in Postgres.
    pub const fn as_str(self) -> &'static str {
        match self {
            AwaitingApproval => "awaiting_approval",
            Blocked => "blocked",
            Pending => "pending",
            Queued => "queued",
            Running => "running",
            Failed => "failed",
            Timeout => "timeout",
            Retrying => "retrying",
            Completed => "completed",
            Cancelled => "cancelled",
            Skipped => "skipped",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// A move the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal job transition from {from} to {to}")]
pub struct IllegalTransition {
    /// The state the job was in.
    pub from: JobState,
    /// The state that was requested.
    pub to: JobState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = JobState> {
        prop::sample::select(JobState::ALL.to_vec())
    }

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!("bogus".parse::<JobState>().is_err());
    }

    #[test]
    fn terminal_states_are_exactly_completed_cancelled_skipped() {
        let terminal: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Completed, Cancelled, Skipped]);
    }

    #[test]
    fn error_names_both_states() {
        let err = Completed.transition(Running).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal job transition from completed to running"
        );
    }

    proptest! {
        #[test]
        fn transition_agrees_with_table(from in any_state(), to in any_state()) {
            let listed = JobState::transitions().any(|pair| pair == (from, to));
            prop_assert_eq!(from.can_transition_to(to), listed);
            prop_assert_eq!(from.transition(to).is_ok(), listed);
        }

        #[test]
        fn no_self_loops_and_nothing_leaves_a_terminal_state(from in any_state(), to in any_state()) {
            if from == to || from.is_terminal() {
                prop_assert!(!from.can_transition_to(to));
            }
        }

        #[test]
        fn every_walk_from_an_initial_state_can_still_end(
            start in prop::sample::select(JobState::INITIAL.to_vec()),
            choices in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            // Follow random legal moves; whatever state a walk reaches, a
            // terminal state stays reachable (cancel is always possible from a
            // non-terminal state), so no job can get stuck forever.
            let mut state = start;
            for choice in choices {
                let next = state.successors();
                if next.is_empty() { break; }
                state = next[choice.index(next.len())];
            }
            prop_assert!(state.is_terminal() || state.is_cancellable());
        }
    }
}
