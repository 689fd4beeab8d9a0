//! [`WorkflowSpec::validate`]: everything checked before a workflow is
//! created, in the order a reader would fix things: the workflow's own
//! fields, each step's fields, names, dependencies, cycles, steps that can
//! never run, and payload references.

use std::collections::HashMap;

use super::reference::{parse_references, ReferenceError};
use super::{
    Dag, RunIf, StepRef, WorkflowError, WorkflowSpec, MAX_RECOVERY_ATTEMPTS_LIMIT, MAX_STEPS,
};
use crate::names::validate_name;

impl WorkflowSpec {
    /// Checks the definition and returns its dependency graph.
    ///
    /// Each step is checked as the job it becomes (queue, type, priority,
    /// retry, timeout); payload size is the caller's business.
    pub fn validate(&self) -> Result<Dag, WorkflowError> {
        validate_name("workflow name", &self.name)?;
        if self.max_recovery_attempts > MAX_RECOVERY_ATTEMPTS_LIMIT {
            return Err(WorkflowError::InvalidField {
                field: "max_recovery_attempts",
                reason: format!(
                    "{} is above the limit of {MAX_RECOVERY_ATTEMPTS_LIMIT}",
                    self.max_recovery_attempts
                ),
            });
        }
        if self.steps.is_empty() {
            return Err(WorkflowError::Empty);
        }
        if self.steps.len() > MAX_STEPS {
            return Err(WorkflowError::TooManySteps {
                max: MAX_STEPS,
                got: self.steps.len(),
            });
        }
        self.check_steps()?;
        let index = self.index_names()?;
        let parents = self.resolve_dependencies(&index)?;
        let dag = Dag::build(self.steps.iter().map(|s| s.name.clone()).collect(), parents)?;
        self.check_satisfiable(&dag)?;
        self.check_references(&dag)?;
        Ok(dag)
    }

    fn check_steps(&self) -> Result<(), WorkflowError> {
        for step in &self.steps {
            let invalid = |reason: String| WorkflowError::InvalidStep {
                step: step.name.clone(),
                reason,
            };
            validate_name("step name", &step.name).map_err(|e| invalid(e.to_string()))?;
            if step.name.contains('.') {
                return Err(invalid(
                    "step names may not contain '.' (references use it as a separator)".into(),
                ));
            }
            step.job_spec().validate().map_err(|e| invalid(e.reason))?;
        }
        Ok(())
    }

    fn index_names(&self) -> Result<HashMap<&str, usize>, WorkflowError> {
        let mut index = HashMap::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            if index.insert(step.name.as_str(), i).is_some() {
                return Err(WorkflowError::DuplicateStep {
                    name: step.name.clone(),
                });
            }
        }
        Ok(index)
    }

    /// Each step's parents as sorted, de-duplicated indices (naming a step
    /// twice, by name and by index, is harmless).
    fn resolve_dependencies(
        &self,
        index: &HashMap<&str, usize>,
    ) -> Result<Vec<Vec<usize>>, WorkflowError> {
        let mut all = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let mut parents = Vec::with_capacity(step.depends_on.len());
            for dependency in &step.depends_on {
                let parent = match dependency {
                    StepRef::Name(name) => index.get(name.as_str()).copied(),
                    StepRef::Index(at) => (*at < self.steps.len()).then_some(*at),
                }
                .ok_or_else(|| WorkflowError::UnknownDependency {
                    step: step.name.clone(),
                    dependency: dependency.to_string(),
                })?;
                if parent == i {
                    return Err(WorkflowError::SelfDependency {
                        step: step.name.clone(),
                    });
                }
                parents.push(parent);
            }
            parents.sort_unstable();
            parents.dedup();
            all.push(parents);
        }
        Ok(all)
    }

    /// Rejects steps that cannot run under any outcome of the others.
    ///
    /// A step *can run* if: `always`; `all_succeeded` and every parent can run
    /// (a step that runs can succeed); `any_failed` and some parent can run (a
    /// step that runs can fail). The only root cause is an `any_failed` step
    /// without parents; everything that needs it is reported with it.
    ///
    /// Parents are treated as independent, so this never rejects a step that
    /// could run. It does not catch steps that need contradictory outcomes of a
    /// shared ancestor (both its success and its failure); deciding that in
    /// general is NP-hard, and such a step is simply skipped at run time.
    fn check_satisfiable(&self, dag: &Dag) -> Result<(), WorkflowError> {
        let mut can_run = vec![false; dag.len()];
        for &i in dag.topological_order() {
            let mut parents = dag.parents(i).iter().map(|&p| can_run[p]);
            can_run[i] = match self.steps[i].run_if {
                RunIf::Always => true,
                RunIf::AllSucceeded => parents.all(|ok| ok),
                RunIf::AnyFailed => parents.any(|ok| ok),
            };
        }
        let never: Vec<usize> = dag
            .topological_order()
            .iter()
            .copied()
            .filter(|&i| !can_run[i])
            .collect();
        if never.is_empty() {
            return Ok(());
        }
        let name = |i: &usize| self.steps[*i].name.clone();
        let (roots, rest): (Vec<usize>, Vec<usize>) =
            never.iter().partition(|&&i| dag.parents(i).is_empty());
        let roots: Vec<String> = roots.iter().map(name).collect();
        let mut reason = format!(
            "{} {} run_if any_failed without dependencies, so nothing can fail before {}",
            roots.join(", "),
            if roots.len() == 1 { "uses" } else { "use" },
            if roots.len() == 1 { "it" } else { "them" },
        );
        if !rest.is_empty() {
            let rest: Vec<String> = rest.iter().map(name).collect();
            reason.push_str(&format!(
                "; {} can only run after {}",
                rest.join(", "),
                if roots.len() == 1 { "it" } else { "them" }
            ));
        }
        Err(WorkflowError::Unsatisfiable {
            steps: never.iter().map(name).collect(),
            reason,
        })
    }

    /// Every `${steps.X.result...}` must be well formed and name a step that
    /// finishes before the referring one starts (an ancestor).
    fn check_references(&self, dag: &Dag) -> Result<(), WorkflowError> {
        for (i, step) in self.steps.iter().enumerate() {
            let bad = |reference: String, reason: String| WorkflowError::BadReference {
                step: step.name.clone(),
                reference,
                reason,
            };
            let references = match parse_references(&step.payload) {
                Ok(references) if references.is_empty() => continue,
                Ok(references) => references,
                Err(ReferenceError::Malformed { reference, reason }) => {
                    return Err(bad(reference, reason))
                }
                Err(other) => return Err(bad(String::new(), other.to_string())),
            };
            let ancestors = dag.ancestors(i);
            for reference in references {
                match dag.index_of(&reference.step) {
                    None => {
                        return Err(bad(reference.raw, format!("there is no step named {:?}", reference.step)))
                    }
                    Some(target) if !ancestors.contains(&target) => {
                        return Err(bad(
                            reference.raw,
                            format!(
                                "step {:?} is not upstream of step {:?}: add it to depends_on (directly or through another step)",
                                reference.step, step.name
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}
