//! Reading workflows: one with its steps, filtered listings, history.

use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::model::{
    StatusFilter, StepRow, WorkflowEvent, WorkflowFilter, WorkflowRow, WorkflowSummary,
};
use crate::{Store, StoreError, MAX_PAGE_SIZE};

impl Store {
    /// One workflow.
    pub async fn get_workflow(&self, id: Uuid) -> Result<WorkflowRow, StoreError> {
        sqlx::query_as(
            "SELECT id, name, status::text AS status, spec, metadata, max_recovery_attempts,
                    recovery_attempts, template_name, template_version, created_at, started_at,
                    finished_at
               FROM workflows WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::Missing(format!("workflow {id} not found")))
    }

    /// The current row of every step of a workflow, in spec order.
    pub async fn workflow_steps(&self, id: Uuid) -> Result<Vec<StepRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT step_name AS name, step_index AS index, id AS job_id, state::text AS state,
                    attempt, max_attempts, queue, task_type,
                    COALESCE(depends_on, '{}') AS depends_on, progress, stage, error, result,
                    worker_id, started_at, finished_at
               FROM jobs WHERE workflow_id = $1 AND superseded_at IS NULL
              ORDER BY step_index",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of workflows, newest first, with step counts.
    pub async fn list_workflows(
        &self,
        filter: &WorkflowFilter,
    ) -> Result<Vec<WorkflowSummary>, StoreError> {
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT w.id, w.name, w.status::text AS status, w.metadata, w.recovery_attempts,
                    w.max_recovery_attempts, w.template_name, w.template_version,
                    c.total, c.completed, c.failed, w.created_at, w.started_at, w.finished_at
               FROM workflows w
               CROSS JOIN LATERAL (
                    SELECT count(*) AS total,
                           count(*) FILTER (WHERE state = 'completed') AS completed,
                           count(*) FILTER (WHERE state IN ('failed', 'timeout')
                                              AND finished_at IS NOT NULL) AS failed
                      FROM jobs WHERE workflow_id = w.id AND superseded_at IS NULL) c
              WHERE true",
        );
        match &filter.status {
            None => {}
            Some(StatusFilter::Active) => {
                sql.push(" AND w.status IN ('pending', 'running', 'paused', 'recovering')");
            }
            Some(StatusFilter::Recoverable) => {
                sql.push(
                    " AND w.status = 'failed' AND w.recovery_attempts < w.max_recovery_attempts",
                );
            }
            Some(StatusFilter::Is(status)) => {
                sql.push(" AND w.status::text = ").push_bind(status.clone());
            }
        }
        if let Some(name) = &filter.name {
            sql.push(" AND w.name = ").push_bind(name.clone());
        }
        for (key, value) in &filter.metadata {
            let as_text = serde_json::json!({ key: value });
            sql.push(" AND (w.metadata @> ").push_bind(as_text);
            if let Ok(parsed) = serde_json::from_str::<Value>(value) {
                sql.push(" OR w.metadata @> ")
                    .push_bind(serde_json::json!({ key: parsed }));
            }
            sql.push(")");
        }
        if let Some(before) = filter.before {
            sql.push(" AND w.id < ").push_bind(before);
        }
        sql.push(" ORDER BY w.id DESC LIMIT ")
            .push_bind(filter.limit.clamp(1, MAX_PAGE_SIZE));
        Ok(sql.build_query_as().fetch_all(&self.pool).await?)
    }

    /// A workflow's status history after cursor `after`, oldest first.
    pub async fn workflow_events(
        &self,
        id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<WorkflowEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, workflow_id, from_status::text AS from_status, to_status::text AS to_status, at, detail
               FROM workflow_events WHERE workflow_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit.clamp(1, MAX_PAGE_SIZE))
        .fetch_all(&self.pool)
        .await?)
    }
}
