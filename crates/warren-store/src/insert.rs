//! Intake: one multi-row INSERT per batch of submitted jobs.

use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState;

use crate::{Store, StoreError};

impl Store {
    /// Inserts the jobs in one statement; ids (or per-queue idempotency keys)
    /// already present are skipped. Returns the ids actually created.
    /// Specs must have been validated, with their queue's task defaults
    /// already applied; retry fields still unset take the built-in defaults.
    pub async fn insert_jobs(&self, specs: &[JobSpec]) -> Result<Vec<Uuid>, StoreError> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let n = specs.len();
        let mut ids = Vec::with_capacity(n);
        let mut queues = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut payloads = Vec::with_capacity(n);
        let mut states = Vec::with_capacity(n);
        let mut priorities = Vec::with_capacity(n);
        let mut max_attempts = Vec::with_capacity(n);
        let mut bases = Vec::with_capacity(n);
        let mut factors = Vec::with_capacity(n);
        let mut caps = Vec::with_capacity(n);
        let mut jitters = Vec::with_capacity(n);
        let mut timeouts = Vec::with_capacity(n);
        let mut stalls = Vec::with_capacity(n);
        let mut run_ats = Vec::with_capacity(n);
        let mut delays = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut approvals = Vec::with_capacity(n);
        let mut metadata = Vec::with_capacity(n);
        for spec in specs {
            let initial = if spec.requires_approval {
                JobState::AwaitingApproval
            } else {
                JobState::Pending
            };
            ids.push(spec.id);
            queues.push(spec.queue.as_str());
            types.push(spec.task_type.as_str());
            payloads.push(spec.payload.clone());
            states.push(initial.as_str());
            priorities.push(spec.priority);
            let retry = spec.retry_policy();
            max_attempts.push(retry.max_attempts as i32);
            bases.push(retry.base_delay_ms as i64);
            factors.push(retry.factor);
            caps.push(retry.max_delay_ms as i64);
            jitters.push(retry.jitter);
            timeouts.push(spec.timeout_ms.map(|t| t as i64));
            stalls.push(spec.no_progress_timeout_ms.map(|t| t as i64));
            run_ats.push(spec.run_at);
            delays.push(spec.delay_ms.unwrap_or(0) as i64);
            keys.push(spec.idempotency_key.as_deref());
            approvals.push(spec.requires_approval);
            metadata.push((!spec.metadata.is_null()).then(|| spec.metadata.clone()));
        }
        // New queue names are registered in `queues`, which dispatch walks.
        let created = sqlx::query_scalar(
            "WITH inserted AS (
             INSERT INTO jobs (id, queue, task_type, payload, state, priority, max_attempts,
                               retry_base_ms, retry_factor, retry_max_ms, retry_jitter, timeout_ms,
                               run_at, idempotency_key, requires_approval, metadata,
                               no_progress_timeout_ms)
             SELECT r.id, r.queue, r.task_type, r.payload, r.state::job_state, r.priority, r.max_attempts,
                    r.base, r.factor, r.cap, r.jitter, r.timeout_ms,
                    COALESCE(r.run_at, now() + r.delay_ms * interval '1 millisecond'),
                    r.idem, r.approval, r.metadata, r.stall_ms
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int2[], $7::int4[],
                         $8::int8[], $9::float8[], $10::int8[], $11::float8[], $12::int8[],
                         $13::timestamptz[], $14::int8[], $15::text[], $16::bool[], $17::jsonb[],
                         $18::int8[])
                  AS r(id, queue, task_type, payload, state, priority, max_attempts,
                       base, factor, cap, jitter, timeout_ms, run_at, delay_ms, idem, approval, metadata,
                       stall_ms)
             ON CONFLICT DO NOTHING
             RETURNING id, queue),
             registered AS (
                 INSERT INTO queues (name) SELECT DISTINCT queue FROM inserted
                 ON CONFLICT DO NOTHING)
             SELECT id FROM inserted",
        )
        .bind(&ids)
        .bind(&queues)
        .bind(&types)
        .bind(&payloads)
        .bind(&states)
        .bind(&priorities)
        .bind(&max_attempts)
        .bind(&bases)
        .bind(&factors)
        .bind(&caps)
        .bind(&jitters)
        .bind(&timeouts)
        .bind(&run_ats)
        .bind(&delays)
        .bind(&keys)
        .bind(&approvals)
        .bind(&metadata)
        .bind(&stalls)
        .fetch_all(&self.pool)
        .await?;
        Ok(created)
    }
}
