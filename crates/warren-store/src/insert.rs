//! Intake: one multi-row INSERT per batch of submitted jobs, which also
//! dispatches the jobs whose queue can take them at once.

use sqlx::FromRow;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState;

use crate::{DispatchedJob, Store, StoreError};

/// What one intake INSERT did.
#[derive(Debug, Default)]
pub struct Inserted {
    /// Every job created (duplicates of existing ids or keys are not).
    pub created: Vec<Uuid>,
    /// The created jobs that were dispatched at creation: committed as
    /// `queued` (attempt 1, a fresh lease), their task messages still to be
    /// published, exactly as if [`Store::claim_batch`] had claimed them.
    pub dispatched: Vec<DispatchedJob>,
}

/// One created job; it was dispatched if it has a lease, and only then are
/// the other columns read.
#[derive(FromRow)]
struct CreatedRow {
    id: Uuid,
    lease: Option<Uuid>,
    queue: String,
    task_type: String,
    payload: serde_json::Value,
    timeout_ms: Option<i64>,
    max_attempts: i32,
}

impl CreatedRow {
    /// The job as the dispatcher would have claimed it, if it was dispatched.
    fn dispatched(self) -> Option<DispatchedJob> {
        Some(DispatchedJob {
            id: self.id,
            lease: self.lease?,
            queue: self.queue,
            task_type: self.task_type,
            payload: self.payload,
            attempt: 1,
            timeout_ms: self.timeout_ms,
            max_attempts: self.max_attempts,
            checkpoint: None,
            from_state: JobState::Pending.as_str().to_owned(),
            inputs: None,
        })
    }
}

impl Store {
    /// Inserts the jobs in one statement; ids (or per-queue idempotency keys)
    /// already present are skipped. Returns the ids actually created.
    /// Specs must have been validated, with their queue's task defaults
    /// already applied; retry fields still unset take the built-in defaults.
    pub async fn insert_jobs(&self, specs: &[JobSpec]) -> Result<Vec<Uuid>, StoreError> {
        Ok(self.insert_and_dispatch(specs, 0).await?.created)
    }

    /// Inserts the jobs like [`Store::insert_jobs`], and creates as `queued`
    /// (dispatched, see [`Inserted::dispatched`]) the due ones whose queue
    /// can take all of this batch's due jobs at once: it is known, not
    /// paused, has neither a cap nor a rate limit, has no due job waiting
    /// (so nothing older is overtaken), and its jobs queued or running plus
    /// these stay within `window`. Every other job is created as usual and
    /// left to the dispatcher; a `window` of 0 dispatches nothing.
    pub async fn insert_and_dispatch(
        &self,
        specs: &[JobSpec],
        window: i64,
    ) -> Result<Inserted, StoreError> {
        if specs.is_empty() {
            return Ok(Inserted::default());
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
        // One statement, committed on its own (no BEGIN/COMMIT round trips).
        let rows: Vec<CreatedRow> = sqlx::query_as(INSERT)
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
            .bind(window)
            .fetch_all(self.generic())
            .await?;
        let mut inserted = Inserted {
            created: Vec::with_capacity(rows.len()),
            dispatched: Vec::new(),
        };
        for row in rows {
            inserted.created.push(row.id);
            inserted.dispatched.extend(row.dispatched());
        }
        Ok(inserted)
    }
}

/// The intake INSERT ($19 the dispatch window). `open` holds the queues
/// that take this batch's due jobs at once; their rows are created as
/// `queued` with `event_from` staging the skipped `pending` (the creation
/// trigger records both events). Only dispatched rows (those with a lease)
/// bring their payload back. The CTEs are MATERIALIZED so each is computed
/// once: inlined, the planner re-ran `open` as a subplan for every input
/// row and every CASE that reads `now` (1.5 s for 500 jobs). "Nothing due
/// waiting" is ten index probes per queue (one per priority, as in
/// [`Store::oldest_due_by_queue`]): written as `NOT EXISTS`, it became an
/// anti-join over a sequential scan of every due job of every queue
/// (250–300 ms per batch beside a million-job backlog elsewhere).
const INSERT: &str = "WITH input AS MATERIALIZED (
     SELECT r.*, COALESCE(r.run_at, now() + r.delay_ms * interval '1 millisecond') AS due_at
       FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int2[], $7::int4[],
                   $8::int8[], $9::float8[], $10::int8[], $11::float8[], $12::int8[],
                   $13::timestamptz[], $14::int8[], $15::text[], $16::bool[], $17::jsonb[],
                   $18::int8[])
            AS r(id, queue, task_type, payload, state, priority, max_attempts,
                 base, factor, cap, jitter, timeout_ms, run_at, delay_ms, idem, approval, metadata,
                 stall_ms)),
     demand AS MATERIALIZED (
     SELECT queue, count(*) FILTER (WHERE state = 'pending' AND due_at <= now()) AS due
       FROM input GROUP BY queue),
     open AS MATERIALIZED (
     SELECT q.name
       FROM demand d
       JOIN queues q ON q.name = d.queue
      CROSS JOIN LATERAL (
            SELECT min(w.run_at) AS oldest
              FROM generate_series(0, 9) AS p(priority)
             CROSS JOIN LATERAL (SELECT b.run_at FROM jobs b
                                  WHERE b.queue = q.name AND b.priority = p.priority::int2
                                    AND b.state IN ('pending', 'retrying')
                                  ORDER BY b.run_at LIMIT 1) w) waiting
      CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM jobs f
             WHERE f.queue = q.name AND f.state IN ('queued', 'running')) busy
      WHERE $19 > 0 AND d.due > 0
        AND NOT q.paused AND q.max_in_flight IS NULL AND q.rate_limit IS NULL
        AND (waiting.oldest IS NULL OR waiting.oldest > now())
        AND busy.n + d.due <= $19),
     planned AS MATERIALIZED (
     SELECT i.*, (i.state = 'pending' AND i.due_at <= now()
                  AND EXISTS (SELECT 1 FROM open o WHERE o.name = i.queue)) AS now
       FROM input i),
     inserted AS (
     INSERT INTO jobs (id, queue, task_type, payload, state, priority, max_attempts,
                       retry_base_ms, retry_factor, retry_max_ms, retry_jitter, timeout_ms,
                       run_at, idempotency_key, requires_approval, metadata,
                       no_progress_timeout_ms, attempt, lease, queued_at, event_from)
     SELECT r.id, r.queue, r.task_type, r.payload,
            CASE WHEN r.now THEN 'queued' ELSE r.state END::job_state, r.priority, r.max_attempts,
            r.base, r.factor, r.cap, r.jitter, r.timeout_ms, r.due_at, r.idem, r.approval,
            r.metadata, r.stall_ms,
            CASE WHEN r.now THEN 1 ELSE 0 END, CASE WHEN r.now THEN gen_random_uuid() END,
            CASE WHEN r.now THEN now() END, CASE WHEN r.now THEN 'pending'::job_state END
       FROM planned r
     ON CONFLICT DO NOTHING
     RETURNING id, queue, task_type, payload, lease, timeout_ms, max_attempts),
     registered AS (
     INSERT INTO queues (name) SELECT DISTINCT queue FROM inserted
     ON CONFLICT DO NOTHING)
     SELECT id, lease, queue, task_type,
            CASE WHEN lease IS NOT NULL THEN payload ELSE 'null'::jsonb END AS payload,
            timeout_ms, max_attempts
       FROM inserted";
