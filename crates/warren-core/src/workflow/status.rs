//! The workflow lifecycle (seed 000's state machine), enforced like the
//! job's: the engine checks every move against [`WorkflowStatus::successors`].
//!
//! ```text
//! pending ──→ running ──→ completed
//!   │           ├──→ paused ──→ running
//!   │           ├──→ failed ──→ recovering ──→ running
//!   │           └──→ cancelled
//!   └──→ cancelled / failed
//! ```
//!
//! Beyond the seed's diagram: `pending → cancelled|failed` (cancelled or
//! failed before any step started), `paused → cancelled`, `paused →
//! completed|failed` (steps already running when the workflow was paused
//! finish, and may settle it), and `recovering → failed|cancelled` (a
//! recovery that cannot start, or is cancelled). `completed` and `cancelled`
//! are terminal; `failed` is final until an operator recovers it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The status of one workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Created; no step released yet.
    Pending,
    /// Steps are being released as their dependencies finish.
    Running,
    /// No new step is released; running steps finish.
    Paused,
    /// Every step ended and none failed or was cancelled. Terminal.
    Completed,
    /// Every step ended and at least one failed. Recoverable.
    Failed,
    /// Cancelled by an operator. Terminal.
    Cancelled,
    /// Being reset from a step after a failure (recover, or a manual retry).
    Recovering,
}

use WorkflowStatus::*;

impl WorkflowStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [WorkflowStatus; 7] = [
        Pending, Running, Paused, Completed, Failed, Cancelled, Recovering,
    ];

    /// The statuses this one may move to.
    pub const fn successors(self) -> &'static [WorkflowStatus] {
        match self {
            Pending => &[Running, Cancelled, Failed],
            Running => &[Paused, Completed, Failed, Cancelled],
            Paused => &[Running, Cancelled, Completed, Failed],
            Failed => &[Recovering],
            Recovering => &[Running, Failed, Cancelled],
            Completed | Cancelled => &[],
        }
    }

    /// Whether `self -> to` is a legal move.
    pub fn can_transition_to(self, to: WorkflowStatus) -> bool {
        self.successors().contains(&to)
    }

    /// Checks a move, returning a typed error naming both statuses.
    pub fn transition(
        self,
        to: WorkflowStatus,
    ) -> Result<WorkflowStatus, IllegalWorkflowTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalWorkflowTransition { from: self, to })
        }
    }

    /// Every legal `(from, to)` pair.
    pub fn transitions() -> impl Iterator<Item = (WorkflowStatus, WorkflowStatus)> {
        Self::ALL
            .into_iter()
            .flat_map(|from| from.successors().iter().map(move |&to| (from, to)))
    }

    /// Completed and cancelled workflows never change again.
    pub fn is_terminal(self) -> bool {
        self.successors().is_empty()
    }

    /// Statuses in which steps may still be released or running
    /// (pending, running, paused, recovering): the "active" query.
    pub fn is_active(self) -> bool {
        matches!(self, Pending | Running | Paused | Recovering)
    }

    /// Whether a workflow in this status with `recovery_attempts` used may be
    /// recovered: it failed and has attempts left.
    pub fn is_recoverable(self, recovery_attempts: u32, max_recovery_attempts: u32) -> bool {
        self == Failed && recovery_attempts < max_recovery_attempts
    }

    /// The snake_case name used on the wire and in Postgres.
    pub const fn as_str(self) -> &'static str {
        match self {
            Pending => "pending",
            Running => "running",
            Paused => "paused",
            Completed => "completed",
            Failed => "failed",
            Cancelled => "cancelled",
            Recovering => "recovering",
        }
    }

    /// The status called `s`, if any.
    pub fn parse(s: &str) -> Option<WorkflowStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl fmt::Display for WorkflowStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move the workflow lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal workflow transition from {from} to {to}")]
pub struct IllegalWorkflowTransition {
    /// The status the workflow was in.
    pub from: WorkflowStatus,
    /// The status that was requested.
    pub to: WorkflowStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for status in WorkflowStatus::ALL {
            assert_eq!(WorkflowStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
        }
        assert_eq!(WorkflowStatus::parse("done"), None);
    }

    #[test]
    fn seed_000_moves_are_allowed() {
        for (from, to) in [
            (Pending, Running),
            (Running, Completed),
            (Running, Paused),
            (Paused, Running),
            (Running, Failed),
            (Failed, Recovering),
            (Recovering, Running),
            (Running, Cancelled),
        ] {
            assert!(from.can_transition_to(to), "{from} -> {to}");
        }
    }

    #[test]
    fn terminal_and_recoverable() {
        let terminal: Vec<_> = WorkflowStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Completed, Cancelled]);
        assert!(Failed.is_recoverable(0, 3));
        assert!(!Failed.is_recoverable(3, 3));
        assert!(!Completed.is_recoverable(0, 3));
        assert_eq!(
            Completed.transition(Running).unwrap_err().to_string(),
            "illegal workflow transition from completed to running"
        );
    }

    proptest! {
        #[test]
        fn transition_agrees_with_table(
            from in prop::sample::select(WorkflowStatus::ALL.to_vec()),
            to in prop::sample::select(WorkflowStatus::ALL.to_vec()),
        ) {
            let listed = WorkflowStatus::transitions().any(|pair| pair == (from, to));
            prop_assert_eq!(from.can_transition_to(to), listed);
            prop_assert_eq!(from.transition(to).is_ok(), listed);
            prop_assert!(from != to || !listed, "no self loops");
        }

        #[test]
        fn every_walk_can_still_end(choices in prop::collection::vec(any::<prop::sample::Index>(), 0..30)) {
            // Whatever legal moves a workflow takes from pending, it can still
            // reach a terminal status by being cancelled, or it sits in
            // `failed` waiting for an operator, which may cancel after recovering.
            let mut status = Pending;
            for choice in choices {
                let next = status.successors();
                if next.is_empty() { break; }
                status = next[choice.index(next.len())];
            }
            prop_assert!(
                status.is_terminal()
                    || status.can_transition_to(Cancelled)
                    || status.successors().iter().any(|s| s.can_transition_to(Cancelled))
            );
        }
    }
}
