//! Per-task-type defaults of each queue (timeout, retry policy), filled into
//! submitted jobs that do not set them, at AMQP intake and at `POST /v1/jobs`,
//! and into workflow steps when a workflow is prepared (both paths).
//! Workflow steps read them from the `queues` table per workflow; jobs get
//! them through the coordinator's cache ([`crate::defaults_cache`]), so a
//! change made through any coordinator applies within milliseconds
//! everywhere.

use std::collections::{BTreeSet, HashMap};

use tokio_util::sync::CancellationToken;
use warren_broker::Delivery;
use warren_core::protocol::{InvalidJobSpec, JobSpec, SubmitEnvelope};
use warren_core::queue::{TaskDefaults as QueueTaskDefaults, TaskDefaultsByType};
use warren_store::{Store, StoreError};

use crate::batch::{with_db_retry, DbOutcome};
use crate::session::SessionError;
use crate::shared::Shared;

/// The task defaults of the queues of one batch of jobs.
pub(crate) struct TaskDefaults {
    by_queue: HashMap<String, TaskDefaultsByType>,
}

impl TaskDefaults {
    /// Reads the defaults of these queues (one query).
    pub(crate) async fn load_queues<'a>(
        store: &Store,
        queues: impl Iterator<Item = &'a str>,
    ) -> Result<TaskDefaults, StoreError> {
        let queues: BTreeSet<&str> = queues.collect();
        let by_queue = if queues.is_empty() {
            HashMap::new()
        } else {
            let queues: Vec<&str> = queues.into_iter().collect();
            store.task_defaults_for(&queues).await?
        };
        Ok(TaskDefaults { by_queue })
    }

    /// The defaults of the queues `jobs` name, from this coordinator's
    /// cache where it has them (see [`crate::defaults_cache`]), else read
    /// (one query) and cached.
    pub(crate) async fn cached<'a>(
        shared: &Shared,
        jobs: impl Iterator<Item = &'a JobSpec>,
    ) -> Result<TaskDefaults, StoreError> {
        let queues: BTreeSet<&str> = jobs.map(|j| j.queue.as_str()).collect();
        let cache = &shared.defaults_cache;
        let lookup = cache.lookup(&queues);
        let mut by_queue = lookup.found;
        if !lookup.missing.is_empty() {
            let read = shared.store.task_defaults_for(&lookup.missing).await?;
            cache.keep(lookup.generation, &lookup.missing, &read);
            by_queue.extend(read);
        }
        Ok(TaskDefaults { by_queue })
    }

    /// The defaults of `queue` for `task_type`, if it has any.
    pub(crate) fn get(&self, queue: &str, task_type: &str) -> Option<&QueueTaskDefaults> {
        self.by_queue.get(queue)?.get(task_type)
    }

    /// Fills what `job` leaves unset from its queue's defaults for its task
    /// type, then validates it again (its own fields and the defaults must
    /// fit together, e.g. a base delay under the cap).
    pub(crate) fn apply(&self, job: &mut JobSpec) -> Result<(), InvalidJobSpec> {
        let Some(defaults) = self.get(&job.queue, &job.task_type) else {
            return Ok(());
        };
        job.apply_defaults(defaults);
        job.validate().map_err(|e| InvalidJobSpec {
            id: e.id,
            reason: format!("{} (with the defaults of queue {:?})", e.reason, job.queue),
        })
    }
}

/// Intake: fills the task defaults into every accepted envelope; an envelope
/// holding a job that the defaults make invalid is dead-lettered whole
/// (`invalid_job`), like any invalid submission. `None` on shutdown.
pub(crate) async fn fill_intake(
    shared: &Shared,
    token: &CancellationToken,
    accepted: Vec<(Delivery, SubmitEnvelope)>,
) -> Result<Option<Vec<(Delivery, SubmitEnvelope)>>, SessionError> {
    let jobs = accepted.iter().flat_map(|(_, env)| env.jobs.iter());
    let defaults = match with_db_retry(shared, "intake", token, || {
        TaskDefaults::cached(shared, jobs.clone())
    })
    .await
    {
        DbOutcome::Done(defaults) => defaults,
        DbOutcome::Shutdown => return Ok(None),
        DbOutcome::Rejected(e) => {
            // Not transient: accept the batch with the built-in defaults
            // rather than hold submissions hostage to a settings problem.
            tracing::error!(error = %e, "cannot read queue task defaults; using built-in defaults");
            TaskDefaults {
                by_queue: HashMap::new(),
            }
        }
    };
    let mut kept = Vec::with_capacity(accepted.len());
    for (delivery, mut envelope) in accepted {
        match envelope.jobs.iter_mut().try_for_each(|j| defaults.apply(j)) {
            Ok(()) => kept.push((delivery, envelope)),
            Err(e) => {
                shared
                    .metrics
                    .rejected
                    .with_label_values(&["submit", "invalid_job"])
                    .inc();
                tracing::warn!(error = %e, "dead-lettering submission invalid under its queue's defaults");
                delivery.reject().await?;
            }
        }
    }
    Ok(Some(kept))
}
