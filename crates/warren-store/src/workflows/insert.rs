//! Submission: a workflow row `pending`, one `blocked` job row per step and
//! a wakeup for the engine, in one transaction. The engine starts it.

use serde_json::Value;
use uuid::Uuid;
use warren_core::workflow::WorkflowSpec;

use super::rows::{insert_step_rows, wake};
use crate::{Store, StoreError};

/// A validated workflow to create.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    /// Client-chosen id; a second submission with it creates nothing.
    pub id: Uuid,
    /// The concrete spec; must have passed [`WorkflowSpec::validate`].
    pub spec: WorkflowSpec,
    /// The template (name, version) it was instantiated from, if any.
    pub template: Option<(String, u32)>,
}

impl Store {
    /// Creates the workflows whose ids are new, all in one transaction.
    /// Returns the ids actually created (a known id is skipped).
    pub async fn insert_workflows(
        &self,
        workflows: &[NewWorkflow],
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut created = Vec::new();
        if workflows.is_empty() {
            return Ok(created);
        }
        let mut tx = self.begin().await?;
        for workflow in workflows {
            let dag = workflow
                .spec
                .validate()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let spec = serde_json::to_value(&workflow.spec)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let (template_name, template_version) = match &workflow.template {
                Some((name, version)) => (Some(name.as_str()), Some(*version as i32)),
                None => (None, None),
            };
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO workflows (id, name, status, spec, metadata, max_recovery_attempts,
                                        template_name, template_version)
                 VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id",
            )
            .bind(workflow.id)
            .bind(&workflow.spec.name)
            .bind(&spec)
            .bind(Value::Object(workflow.spec.metadata.clone()))
            .bind(workflow.spec.max_recovery_attempts.min(i32::MAX as u32) as i32)
            .bind(template_name)
            .bind(template_version)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                continue;
            }
            let all: Vec<usize> = (0..workflow.spec.steps.len()).collect();
            insert_step_rows(&mut tx, workflow.id, &workflow.spec, &dag, &all).await?;
            wake(&mut tx, workflow.id).await?;
            created.push(workflow.id);
        }
        tx.commit().await?;
        Ok(created)
    }
}
