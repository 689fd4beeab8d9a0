//! Creating the job rows of workflow steps (at submission, and again for the
//! steps a recovery resets), and waking the engine.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use warren_core::workflow::{Dag, StepSpec, WorkflowSpec};
use warren_core::RetryPolicy;

/// The retry policy a step's job gets.
pub(crate) fn retry_policy(step: &StepSpec) -> RetryPolicy {
    step.retry.unwrap_or_default()
}

/// Inserts one `blocked` job row for each step in `indices`, and registers
/// their queues. Returns the new job ids, in the order of `indices`.
pub(crate) async fn insert_step_rows(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    spec: &WorkflowSpec,
    dag: &Dag,
    indices: &[usize],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let n = indices.len();
    let mut ids = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut bases = Vec::with_capacity(n);
    let mut factors = Vec::with_capacity(n);
    let mut caps = Vec::with_capacity(n);
    let mut jitters = Vec::with_capacity(n);
    let mut timeouts = Vec::with_capacity(n);
    let mut stalls = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    let mut parents = Vec::with_capacity(n);
    for &index in indices {
        let step = &spec.steps[index];
        let policy = retry_policy(step);
        ids.push(warren_core::new_job_id());
        queues.push(step.queue.as_str());
        types.push(step.task_type.as_str());
        payloads.push(step.payload.clone());
        priorities.push(step.priority);
        max_attempts.push(policy.max_attempts as i32);
        bases.push(policy.base_delay_ms as i64);
        factors.push(policy.factor);
        caps.push(policy.max_delay_ms as i64);
        jitters.push(policy.jitter);
        timeouts.push(step.timeout_ms.map(|t| t as i64));
        stalls.push(step.no_progress_timeout_ms.map(|t| t as i64));
        names.push(step.name.as_str());
        positions.push(index as i32);
        let parent_names: Vec<&str> = dag
            .parents(index)
            .iter()
            .map(|&p| spec.steps[p].name.as_str())
            .collect();
        parents.push(Value::from(parent_names));
    }
    sqlx::query(
        "WITH inserted AS (
             INSERT INTO jobs (id, queue, task_type, payload, state, priority, max_attempts,
                               retry_base_ms, retry_factor, retry_max_ms, retry_jitter, timeout_ms,
                               no_progress_timeout_ms, workflow_id, step_name, step_index, depends_on)
             SELECT r.id, r.queue, r.task_type, r.payload, 'blocked', r.priority, r.max_attempts,
                    r.base, r.factor, r.cap, r.jitter, r.timeout_ms, r.stall_ms,
                    $13, r.step_name, r.step_index,
                    ARRAY(SELECT jsonb_array_elements_text(r.parents))
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int2[], $6::int4[],
                         $7::int8[], $8::float8[], $9::int8[], $10::float8[], $11::int8[],
                         $12::text[], $14::int4[], $15::jsonb[], $16::int8[])
                  AS r(id, queue, task_type, payload, priority, max_attempts,
                       base, factor, cap, jitter, timeout_ms, step_name, step_index, parents,
                       stall_ms)
             RETURNING queue)
         INSERT INTO queues (name) SELECT DISTINCT queue FROM inserted ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&queues)
    .bind(&types)
    .bind(&payloads)
    .bind(&priorities)
    .bind(&max_attempts)
    .bind(&bases)
    .bind(&factors)
    .bind(&caps)
    .bind(&jitters)
    .bind(&timeouts)
    .bind(&names)
    .bind(workflow_id)
    .bind(&positions)
    .bind(&parents)
    .bind(&stalls)
    .execute(&mut *conn)
    .await?;
    Ok(ids)
}

/// Asks the engine to evaluate `workflow_id` (committed with the caller's
/// transaction, so a crash loses nothing).
pub(crate) async fn wake(conn: &mut PgConnection, workflow_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO workflow_wakeups (workflow_id) VALUES ($1)")
        .bind(workflow_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks the current rows of `names` superseded (recovery replaces them by
/// fresh rows). Returns the states they were in.
pub(crate) async fn supersede_steps(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    names: &[&str],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE jobs SET superseded_at = now()
          WHERE workflow_id = $1 AND superseded_at IS NULL AND step_name = ANY($2)
         RETURNING step_name, state::text",
    )
    .bind(workflow_id)
    .bind(names)
    .fetch_all(conn)
    .await
}
