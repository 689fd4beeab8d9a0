//! From a submission (a definition, or a template and its variables) to a
//! concrete workflow ready to insert. Everything is validated before
//! anything is created: the definition (naming the steps at fault), or the
//! template's variables (naming the variables at fault). Steps get their
//! queue's task defaults (timeout, retry) for what they leave unset, like
//! jobs.

use uuid::Uuid;
use warren_core::protocol::{WorkflowSource, WorkflowSubmission};
use warren_core::workflow::Template;
use warren_store::{NewWorkflow, Store, StoreError};

use crate::defaults::TaskDefaults;

/// Resolves and validates `submission`. A missing id is an error when
/// `require_id` (AMQP: the id is what makes a redelivery harmless), else a
/// fresh one is chosen. Errors: [`StoreError::Invalid`] for a bad definition,
/// bad variables or queue defaults a step cannot take,
/// [`StoreError::Missing`] for an unknown template, or a database error
/// while reading the template or the defaults.
pub(crate) async fn prepare(
    store: &Store,
    submission: WorkflowSubmission,
    require_id: bool,
) -> Result<NewWorkflow, StoreError> {
    let id = match submission.id {
        Some(id) => id,
        None if require_id => {
            return Err(StoreError::Invalid(
                "a workflow submitted over AMQP needs a client-chosen id".into(),
            ))
        }
        None => Uuid::now_v7(),
    };
    let (mut spec, template) = match submission.source {
        WorkflowSource::Spec(spec) => (spec, None),
        WorkflowSource::Template(reference) => {
            let row = store
                .get_template(&reference.template, reference.version)
                .await?;
            let template: Template = serde_json::from_value(row.spec).map_err(|e| {
                StoreError::Config(format!(
                    "stored template {:?} version {} is unreadable: {e}",
                    row.name, row.version
                ))
            })?;
            let spec = template
                .instantiate(&reference.variables)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            (spec, Some((row.name, row.version as u32)))
        }
    };
    let defaults =
        TaskDefaults::load_queues(store, spec.steps.iter().map(|s| s.queue.as_str())).await?;
    for step in &mut spec.steps {
        if let Some(d) = defaults.get(&step.queue, &step.task_type) {
            step.apply_defaults(d).map_err(|e| {
                StoreError::Invalid(format!(
                    "step {:?}: {e} (with the defaults of queue {:?})",
                    step.name, step.queue
                ))
            })?;
        }
    }
    spec.validate()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(NewWorkflow { id, spec, template })
}
