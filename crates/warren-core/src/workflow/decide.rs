//! The two rules the engine applies on every step event: whether a blocked
//! step may be released ([`decide`]) and, once every step has ended, how the
//! workflow ended ([`final_status`]). Both are pure so the property test in
//! this module can drive whole workflows through them.

use serde::{Deserialize, Serialize};

use super::{RunIf, WorkflowStatus};
use crate::state::JobState;

/// How a finished step ended, as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Its job completed.
    Succeeded,
    /// Its job failed or timed out with no attempts left.
    Failed,
    /// It never ran because its `run_if` could not be met.
    Skipped,
    /// It was cancelled (workflow cancel, or an operator cancelled its job).
    Cancelled,
}

impl StepOutcome {
    /// The outcome of a step from its job's state, or `None` while the job may
    /// still run: `failed`/`timeout` count as final only when no attempts are
    /// left (`attempts_left` = attempt < max_attempts).
    pub fn from_job(state: JobState, attempts_left: bool) -> Option<StepOutcome> {
        match state {
            JobState::Completed => Some(StepOutcome::Succeeded),
            JobState::Skipped => Some(StepOutcome::Skipped),
            JobState::Cancelled => Some(StepOutcome::Cancelled),
            JobState::Failed | JobState::Timeout if !attempts_left => Some(StepOutcome::Failed),
            _ => None,
        }
    }

    /// The snake_case name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Cancelled => "cancelled",
        }
    }
}

/// What to do with a blocked step now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Its dependencies have not finished in a way that settles it yet.
    Wait,
    /// Release it: its job becomes pending.
    Run,
    /// It will never run: its job becomes skipped.
    Skip,
}

/// What to do with a blocked step given its parents' outcomes (`None` = that
/// parent has not finished yet).
///
/// - `all_succeeded`: run when every parent succeeded; skip as soon as any
///   parent failed, was skipped or cancelled, even while others still run.
/// - `any_failed`: wait until every parent has finished; run if any failed,
///   otherwise skip. With no parents it can never run (validation rejects it).
/// - `always`: run once every parent has finished, however.
///
/// A step with no parents runs at once unless it is `any_failed`.
pub fn decide(run_if: RunIf, parents: &[Option<StepOutcome>]) -> Decision {
    let all_finished = parents.iter().all(Option::is_some);
    match run_if {
        RunIf::AllSucceeded => {
            if parents
                .iter()
                .any(|p| matches!(p, Some(o) if *o != StepOutcome::Succeeded))
            {
                Decision::Skip
            } else if all_finished {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        RunIf::AnyFailed if !all_finished => Decision::Wait,
        RunIf::AnyFailed if parents.contains(&Some(StepOutcome::Failed)) => Decision::Run,
        RunIf::AnyFailed => Decision::Skip,
        RunIf::Always if all_finished => Decision::Run,
        RunIf::Always => Decision::Wait,
    }
}

/// How a workflow ended, once every step has (`None` while any has not):
/// `failed` if any step failed, else `cancelled` if any was cancelled, else
/// `completed`.
///
/// A failure handled by an `any_failed` step still leaves the workflow
/// `failed`, even when the handler succeeds: the failed step did not do its
/// work, and a failed workflow is what `recover` and the "failed" queries act
/// on. Skipped steps do not fail a workflow.
pub fn final_status(steps: &[Option<StepOutcome>]) -> Option<WorkflowStatus> {
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        outcomes.push((*step)?);
    }
    Some(if outcomes.contains(&StepOutcome::Failed) {
        WorkflowStatus::Failed
    } else if outcomes.contains(&StepOutcome::Cancelled) {
        WorkflowStatus::Cancelled
    } else {
        WorkflowStatus::Completed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use StepOutcome::*;

    const S: Option<StepOutcome> = Some(Succeeded);
    const F: Option<StepOutcome> = Some(Failed);
    const K: Option<StepOutcome> = Some(Skipped);
    const C: Option<StepOutcome> = Some(Cancelled);
    const N: Option<StepOutcome> = None;

    #[test]
    fn all_succeeded_skips_early_and_runs_when_all_succeeded() {
        let d = |p: &[Option<StepOutcome>]| decide(RunIf::AllSucceeded, p);
        assert_eq!(d(&[]), Run);
        assert_eq!(d(&[S, S]), Run);
        assert_eq!(d(&[S, N]), Wait);
        assert_eq!(d(&[F, N]), Skip);
        assert_eq!(d(&[N, K]), Skip);
        assert_eq!(d(&[S, C]), Skip);
    }

    #[test]
    fn any_failed_waits_for_every_parent() {
        let d = |p: &[Option<StepOutcome>]| decide(RunIf::AnyFailed, p);
        assert_eq!(d(&[]), Skip);
        assert_eq!(d(&[F, N]), Wait);
        assert_eq!(d(&[F, S]), Run);
        assert_eq!(d(&[S, K, C]), Skip);
    }

    #[test]
    fn always_runs_once_everything_finished() {
        let d = |p: &[Option<StepOutcome>]| decide(RunIf::Always, p);
        assert_eq!(d(&[]), Run);
        assert_eq!(d(&[F, K, C, S]), Run);
        assert_eq!(d(&[F, N]), Wait);
    }

    #[test]
    fn final_status_prefers_failed_then_cancelled() {
        assert_eq!(final_status(&[S, N]), None);
        assert_eq!(final_status(&[S, K]), Some(WorkflowStatus::Completed));
        assert_eq!(final_status(&[S, C, K]), Some(WorkflowStatus::Cancelled));
        // The on-failure handler succeeded; the workflow still failed.
        assert_eq!(final_status(&[F, S, C]), Some(WorkflowStatus::Failed));
    }

    #[test]
    fn outcome_from_job_state() {
        assert_eq!(StepOutcome::from_job(JobState::Completed, true), S);
        assert_eq!(StepOutcome::from_job(JobState::Failed, true), None);
        assert_eq!(StepOutcome::from_job(JobState::Failed, false), F);
        assert_eq!(StepOutcome::from_job(JobState::Timeout, false), F);
        assert_eq!(StepOutcome::from_job(JobState::Skipped, false), K);
        assert_eq!(StepOutcome::from_job(JobState::Cancelled, true), C);
        assert_eq!(StepOutcome::from_job(JobState::Running, false), None);
        assert_eq!(StepOutcome::from_job(JobState::Blocked, false), None);
    }
}
