//! The property the issue asks for: for random DAGs and random step outcomes,
//! driving a workflow with [`decide`] never starts a step before its parents
//! finished, ends every step exactly once, terminates, and yields exactly one
//! final status. Also checks that [`WorkflowSpec::validate`] only rejects
//! steps that truly never run (and, on forests, all of them).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

use super::*;

/// A random workflow: logical step `i` may depend on any `j < i` and sits at
/// position `position[i]` of `steps`, so file order differs from DAG order.
#[derive(Debug, Clone)]
struct Case {
    parents: Vec<Vec<usize>>,
    run_if: Vec<RunIf>,
    /// Whether step `i` succeeds if it runs.
    succeeds: Vec<bool>,
    /// Whether each dependency is written by name (else by index).
    by_name: Vec<bool>,
    position: Vec<usize>,
    /// Scheduling choices: which runnable step starts or which running one ends.
    picks: Vec<Index>,
}

fn any_run_if() -> impl Strategy<Value = RunIf> {
    prop_oneof![3 => Just(RunIf::AllSucceeded), 1 => Just(RunIf::AnyFailed), 1 => Just(RunIf::Always)]
}

fn any_case(max_steps: usize, max_parents: usize) -> impl Strategy<Value = Case> {
    (1..=max_steps)
        .prop_flat_map(move |n| {
            (
                prop::collection::vec(prop::collection::vec(any::<Index>(), 0..=max_parents), n),
                prop::collection::vec(any_run_if(), n),
                prop::collection::vec(prop::bool::weighted(0.7), n),
                prop::collection::vec(any::<bool>(), n),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                prop::collection::vec(any::<Index>(), 2 * n + 2),
            )
        })
        .prop_map(
            |(raw_parents, run_if, succeeds, by_name, position, picks)| {
                let parents = raw_parents
                    .into_iter()
                    .enumerate()
                    .map(|(i, picks)| {
                        let mut ps: Vec<usize> = if i == 0 {
                            Vec::new()
                        } else {
                            picks.iter().map(|p| p.index(i)).collect()
                        };
                        ps.sort_unstable();
                        ps.dedup();
                        ps
                    })
                    .collect();
                Case {
                    parents,
                    run_if,
                    succeeds,
                    by_name,
                    position,
                    picks,
                }
            },
        )
}

impl Case {
    fn n(&self) -> usize {
        self.parents.len()
    }

    fn spec(&self) -> WorkflowSpec {
        let mut steps: Vec<Option<StepSpec>> = vec![None; self.n()];
        for i in 0..self.n() {
            let depends_on = self.parents[i]
                .iter()
                .map(|&p| {
                    if self.by_name[p] {
                        StepRef::Name(format!("s{p}"))
                    } else {
                        StepRef::Index(self.position[p])
                    }
                })
                .collect();
            steps[self.position[i]] = Some(StepSpec {
                name: format!("s{i}"),
                queue: "default".into(),
                task_type: "echo".into(),
                payload: Value::Null,
                priority: 0,
                retry: None,
                timeout_ms: None,
                no_progress_timeout_ms: None,
                depends_on,
                run_if: self.run_if[i],
            });
        }
        WorkflowSpec {
            name: "sim".into(),
            max_recovery_attempts: DEFAULT_MAX_RECOVERY_ATTEMPTS,
            metadata: Default::default(),
            steps: steps.into_iter().map(Option::unwrap).collect(),
        }
    }
}

/// What a simulated run ended with.
struct Run {
    outcomes: Vec<Option<StepOutcome>>,
    started: Vec<bool>,
}

/// Drives the workflow like the engine: after every event, settle blocked
/// steps with `decide` (skips may cascade), then start one runnable step or
/// finish one running step, as `picks` chooses.
fn simulate(case: &Case, succeeds: &[bool], picks: &[Index]) -> Result<Run, TestCaseError> {
    let n = case.n();
    let mut outcomes: Vec<Option<StepOutcome>> = vec![None; n];
    let mut ended = vec![0u32; n];
    let mut started = vec![false; n];
    let mut running: Vec<usize> = Vec::new();
    let decision = |outcomes: &[Option<StepOutcome>], i: usize| {
        let ps: Vec<Option<StepOutcome>> = case.parents[i].iter().map(|&p| outcomes[p]).collect();
        decide(case.run_if[i], &ps)
    };
    // At most one start and one finish per step, plus the final check.
    for round in 0..=2 * n {
        loop {
            let mut changed = false;
            for i in 0..n {
                if !started[i] && outcomes[i].is_none() && decision(&outcomes, i) == Decision::Skip
                {
                    outcomes[i] = Some(StepOutcome::Skipped);
                    ended[i] += 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let runnable: Vec<usize> = (0..n)
            .filter(|&i| {
                !started[i] && outcomes[i].is_none() && decision(&outcomes, i) == Decision::Run
            })
            .collect();
        if runnable.is_empty() && running.is_empty() {
            prop_assert!(
                ended.iter().all(|&e| e == 1),
                "every step ends exactly once: {ended:?}"
            );
            return Ok(Run { outcomes, started });
        }
        let choice = picks
            .get(round)
            .map_or(0, |p| p.index(runnable.len() + running.len()));
        if let Some(&step) = runnable.get(choice) {
            for &p in &case.parents[step] {
                prop_assert!(
                    outcomes[p].is_some(),
                    "s{step} started before its parent s{p} ended"
                );
            }
            started[step] = true;
            running.push(step);
        } else {
            let step = running.remove(choice - runnable.len());
            prop_assert!(outcomes[step].is_none(), "s{step} ended twice");
            outcomes[step] = Some(if succeeds[step] {
                StepOutcome::Succeeded
            } else {
                StepOutcome::Failed
            });
            ended[step] += 1;
        }
    }
    Err(TestCaseError::fail("the simulation did not terminate"))
}

/// The steps validation says can never run (empty when it accepts).
fn rejected(case: &Case) -> Result<Vec<usize>, TestCaseError> {
    let spec = case.spec();
    match spec.validate() {
        Ok(dag) => {
            for i in 0..case.n() {
                let mut expected: Vec<usize> =
                    case.parents[i].iter().map(|&p| case.position[p]).collect();
                expected.sort_unstable();
                prop_assert_eq!(dag.parents(case.position[i]), &expected[..]);
            }
            let order = dag.topological_order();
            for (k, &step) in order.iter().enumerate() {
                for p in dag.parents(step) {
                    prop_assert!(
                        order[..k].contains(p),
                        "topological order puts a parent late"
                    );
                }
            }
            Ok(Vec::new())
        }
        Err(WorkflowError::Unsatisfiable { steps, .. }) => {
            Ok(steps.iter().map(|s| s[1..].parse().unwrap()).collect())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "unexpected rejection: {other}"
        ))),
    }
}

/// Which steps run under at least one assignment of outcomes (exhaustive, so
/// only for small workflows).
fn ever_ran(case: &Case) -> Result<Vec<bool>, TestCaseError> {
    let n = case.n();
    let mut ever = vec![false; n];
    for bits in 0u32..(1 << n) {
        let succeeds: Vec<bool> = (0..n).map(|i| bits & (1 << i) != 0).collect();
        let run = simulate(case, &succeeds, &[])?;
        for (ran, started) in ever.iter_mut().zip(run.started) {
            *ran |= started;
        }
    }
    Ok(ever)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_workflows_run_in_dependency_order_and_end_once(case in any_case(14, 3)) {
        let run = simulate(&case, &case.succeeds, &case.picks)?;
        for i in 0..case.n() {
            let ps: Vec<StepOutcome> = case.parents[i].iter().map(|&p| run.outcomes[p].unwrap()).collect();
            let should_run = match case.run_if[i] {
                RunIf::AllSucceeded => ps.iter().all(|&o| o == StepOutcome::Succeeded),
                RunIf::AnyFailed => ps.contains(&StepOutcome::Failed),
                RunIf::Always => true,
            };
            prop_assert_eq!(run.started[i], should_run, "s{} ran against its run_if", i);
            let expected = match (run.started[i], case.succeeds[i]) {
                (false, _) => StepOutcome::Skipped,
                (true, true) => StepOutcome::Succeeded,
                (true, false) => StepOutcome::Failed,
            };
            prop_assert_eq!(run.outcomes[i], Some(expected));
        }
        let status = final_status(&run.outcomes);
        prop_assert!(status.is_some_and(|s| s.is_terminal() || s == WorkflowStatus::Failed));
        // Exactly one terminal status, and the right one.
        let expected = if run.outcomes.contains(&Some(StepOutcome::Failed)) {
            WorkflowStatus::Failed
        } else {
            WorkflowStatus::Completed
        };
        prop_assert_eq!(status, Some(expected));

        // Validation never rejects a step that ran.
        for step in rejected(&case)? {
            prop_assert!(!run.started[step], "validation rejected s{} but it ran", step);
        }
    }

    #[test]
    fn validation_finds_exactly_the_never_running_steps_of_a_forest(case in any_case(7, 1)) {
        // With at most one parent per step, outcomes are uncorrelated and the
        // check is exact: compare with every outcome assignment.
        let n = case.n();
        let ever_ran = ever_ran(&case)?;
        let mut never: Vec<usize> = (0..n).filter(|&i| !ever_ran[i]).collect();
        let mut rejected = rejected(&case)?;
        never.sort_unstable();
        rejected.sort_unstable();
        prop_assert_eq!(rejected, never);
    }

    #[test]
    fn validation_rejections_are_sound_on_small_dags(case in any_case(7, 3)) {
        let ever_ran = ever_ran(&case)?;
        for step in rejected(&case)? {
            prop_assert!(!ever_ran[step], "s{} was rejected but can run", step);
        }
    }
}

#[test]
fn contradictory_branches_are_accepted_and_skipped_at_run_time() {
    // join needs both `ok` (x succeeded) and `handler` (x failed): it can
    // never run, which validation (documented) does not detect.
    let case = Case {
        parents: vec![vec![], vec![0], vec![0], vec![1, 2]],
        run_if: vec![
            RunIf::AllSucceeded,
            RunIf::AllSucceeded,
            RunIf::AnyFailed,
            RunIf::AllSucceeded,
        ],
        succeeds: vec![true; 4],
        by_name: vec![true; 4],
        position: vec![0, 1, 2, 3],
        picks: Vec::new(),
    };
    assert!(case.spec().validate().is_ok());
    for x_succeeds in [true, false] {
        let run = simulate(&case, &[x_succeeds, true, true, true], &[]).unwrap();
        assert_eq!(run.outcomes[3], Some(StepOutcome::Skipped));
    }
}
