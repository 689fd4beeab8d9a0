//! Dispatch: claim due jobs (priority, then `run_at`) with `SKIP LOCKED`, give
//! each a fresh lease and attempt number in one commit; undo the claim for
//! jobs whose task message could not be published. Queue controls are
//! enforced here: pause, `max_in_flight` and the rate limit's token bucket.

use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;
use warren_core::protocol::{TaskMessage, PROTOCOL_VERSION};
use warren_core::JobState;

use crate::{Store, StoreError, Transition};

/// A job moved to `queued`, ready to publish.
#[derive(Debug, Clone, FromRow)]
pub struct DispatchedJob {
    /// The job.
    pub id: Uuid,
    /// Its queue (routing key).
    pub queue: String,
    /// Its task type.
    pub task_type: String,
    /// Handler input.
    pub payload: Value,
    /// The new attempt number.
    pub attempt: i32,
    /// The new lease token.
    pub lease: Uuid,
    /// Per-attempt timeout.
    pub timeout_ms: Option<i64>,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Last checkpoint, for resuming.
    pub checkpoint: Option<Value>,
    /// `pending` or `retrying` before the claim.
    pub from_state: String,
    /// A workflow step's parents' results by step name.
    pub inputs: Option<Value>,
}

impl DispatchedJob {
    /// The task message for this attempt.
    pub fn task_message(&self) -> TaskMessage {
        TaskMessage {
            v: PROTOCOL_VERSION,
            job_id: self.id,
            attempt: self.attempt as u32,
            lease: self.lease,
            queue: self.queue.clone(),
            task_type: self.task_type.clone(),
            payload: self.payload.clone(),
            timeout_ms: self.timeout_ms.map(|t| t as u64),
            max_attempts: self.max_attempts as u32,
            checkpoint: self.checkpoint.clone(),
            inputs: match &self.inputs {
                Some(Value::Object(inputs)) => inputs.clone(),
                _ => Default::default(),
            },
        }
    }

    /// The transition this claim made.
    pub fn transition(&self) -> Transition {
        Transition {
            job_id: self.id,
            queue: self.queue.clone(),
            task_type: self.task_type.clone(),
            from: self.from_state.parse().unwrap_or(JobState::Pending),
            to: JobState::Queued,
            attempt: self.attempt,
            seconds: None,
        }
    }
}

/// What one claim round did.
#[derive(Debug, Default)]
pub struct ClaimOutcome {
    /// The jobs moved to `queued`, in dispatch order.
    pub jobs: Vec<DispatchedJob>,
    /// Rate-limited queues whose bucket ran dry while due jobs (and free
    /// room under their cap) were left waiting.
    pub throttled: Vec<String>,
}

/// Whether any unpaused queue has a due job (`pending` or `retrying` with
/// `run_at <= now()`): ten index probes per queue (one per priority) on
/// `jobs_queue_dispatch_idx`, on the generic-plan pool ([`Store::any_due`]).
/// Each probe asks for the oldest due job (`ORDER BY run_at`), which that
/// index yields without a sort: without the order, a generic plan made
/// while `jobs` held a few rows and no statistics probed
/// `jobs_queue_state_idx` instead, reading every job of the queue (4–21 ms
/// per probe, ten probes a second, after 10,000 jobs of a benchmark).
/// The claim is planned afresh on every call (about 2.5 ms of planning, 1 ms
/// of execution on a small machine) and the dispatcher polls every
/// `WARREN_POLL_INTERVAL`, so an idle coordinator, or one whose jobs all go
/// out at intake, spent a few percent of a PostgreSQL core claiming nothing;
/// this probe costs about a twentieth of that.
pub(crate) const ANY_DUE: &str = "SELECT EXISTS (
     SELECT 1 FROM queues q
      CROSS JOIN generate_series(0, 9) AS p(priority)
      CROSS JOIN LATERAL (SELECT 1 FROM jobs j
                           WHERE j.queue = q.name AND j.priority = p.priority::int2
                             AND j.state IN ('pending', 'retrying') AND j.run_at <= now()
                           ORDER BY j.run_at LIMIT 1) d
      WHERE NOT q.paused)";

/// Locks the rows of the unpaused queues that have a cap or a rate limit;
/// a row another coordinator is claiming for is skipped this round.
const LOCK_LIMITED: &str = "SELECT name, rate_limit IS NOT NULL FROM queues
     WHERE NOT paused AND (max_in_flight IS NOT NULL OR rate_limit IS NOT NULL)
     ORDER BY name
     FOR NO KEY UPDATE SKIP LOCKED";

/// Claims due jobs queue by queue ($1 batch limit, $2 window, $3 the limited
/// queues this transaction locked), spends the rate-limited queues' tokens,
/// and returns the claimed jobs in dispatch order. The outer SELECT re-sorts:
/// UPDATE ... RETURNING promises no order, and the dispatcher publishes in
/// the order returned.
const CLAIM: &str = "WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now),
     room AS MATERIALIZED (
         SELECT q.name, q.rate_limit, b.tokens,
                CASE WHEN q.rate_limit IS NULL THEN f.free
                     ELSE LEAST(f.free, floor(b.tokens)::bigint) END AS allow
           FROM queues q
          CROSS JOIN clock c
          CROSS JOIN LATERAL (
                SELECT LEAST($2, COALESCE(q.max_in_flight, $2))
                         - (SELECT count(*) FROM jobs f
                             WHERE f.queue = q.name AND f.state IN ('queued', 'running')) AS free) f
          CROSS JOIN LATERAL (
                SELECT warren_rate_tokens(q.rate_limit, q.rate_tokens, q.rate_refilled_at, c.now) AS tokens) b
          WHERE NOT q.paused
            AND ((q.max_in_flight IS NULL AND q.rate_limit IS NULL) OR q.name = ANY($3))),
     due AS (
         SELECT d.id, d.state, d.priority, d.run_at
           FROM room r
          CROSS JOIN LATERAL (
                SELECT id, state, priority, run_at FROM jobs
                 WHERE queue = r.name AND state IN ('pending', 'retrying') AND run_at <= now()
                 ORDER BY priority DESC, run_at
                 LIMIT GREATEST(0, LEAST(r.allow, $1))
                 FOR UPDATE SKIP LOCKED) d
          WHERE r.allow > 0
          ORDER BY d.priority DESC, d.run_at
          LIMIT $1),
     claimed AS (
         UPDATE jobs j
            SET state = 'queued', attempt = j.attempt + 1, lease = gen_random_uuid(),
                queued_at = (SELECT now FROM clock), worker_id = NULL, started_at = NULL
           FROM due
          WHERE j.id = due.id
         RETURNING j.id, j.queue, j.task_type, j.payload, j.attempt, j.lease, j.timeout_ms,
                   j.max_attempts, j.checkpoint, due.state::text AS from_state, j.priority, j.run_at,
                   j.inputs),
     spent AS (
         UPDATE queues q
            SET rate_tokens = r.tokens - s.n, rate_refilled_at = (SELECT now FROM clock)
           FROM room r
           JOIN (SELECT queue, count(*) AS n FROM claimed GROUP BY queue) s ON s.queue = r.name
          WHERE q.name = r.name AND r.rate_limit IS NOT NULL)
     SELECT id, queue, task_type, payload, attempt, lease, timeout_ms, max_attempts, checkpoint, from_state,
            inputs
       FROM claimed ORDER BY priority DESC, run_at";

/// Of the rate-limited queues in $1, those left with less than one token
/// while due jobs wait and their in-flight count is under the cap ($2 window).
/// Runs after [`CLAIM`] in the same transaction, so it sees what it claimed.
const THROTTLED: &str = "SELECT q.name FROM queues q
     WHERE q.name = ANY($1) AND q.rate_limit IS NOT NULL
       AND warren_rate_tokens(q.rate_limit, q.rate_tokens, q.rate_refilled_at, clock_timestamp()) < 1
       AND EXISTS (SELECT 1 FROM jobs j
                    WHERE j.queue = q.name AND j.state IN ('pending', 'retrying') AND j.run_at <= now())
       AND (SELECT count(*) FROM jobs f WHERE f.queue = q.name AND f.state IN ('queued', 'running'))
           < LEAST($2, COALESCE(q.max_in_flight, $2))";

/// Claimed jobs (ids, leases) whose task was not published, back to
/// `pending`. Reached by primary key only (the state test is written so
/// that no index serves it; see `reports.rs`).
pub(crate) const UNCLAIM: &str =
    "UPDATE jobs j SET state = 'pending', attempt = j.attempt - 1, lease = NULL, queued_at = NULL,
                       transition_note = '{\"reason\": \"publish_failed\"}'
       FROM UNNEST($1::uuid[], $2::uuid[]) AS r(id, lease)
      WHERE j.id = r.id AND j.state IS NOT DISTINCT FROM 'queued' AND j.lease = r.lease";

impl Store {
    /// Claims up to `limit` due jobs and moves them to `queued` with
    /// `attempt + 1` and a fresh lease; see [`Store::claim_batch`].
    pub async fn claim_for_dispatch(
        &self,
        limit: i64,
        window: i64,
    ) -> Result<Vec<DispatchedJob>, StoreError> {
        Ok(self.claim_batch(limit, window).await?.jobs)
    }

    /// Claims up to `limit` due jobs (priority, then `run_at`) and moves them
    /// to `queued` with `attempt + 1`, a fresh lease and `queued_at` from the
    /// database clock, in one transaction. Paused queues contribute nothing.
    /// Every other queue contributes at most its free room: `window` (or its
    /// `max_in_flight`, if lower) minus its jobs already queued or running,
    /// so the backlog stays in PostgreSQL instead of piling up in RabbitMQ;
    /// a rate-limited queue also at most the whole tokens in its bucket.
    ///
    /// Limits hold across coordinators: the rows of queues with a cap or a
    /// rate limit are locked (`SKIP LOCKED`) before anything is counted, and
    /// the claim runs as a later statement, whose snapshot therefore sees
    /// every claim committed by whoever held the lock before.
    pub async fn claim_batch(&self, limit: i64, window: i64) -> Result<ClaimOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let limited: Vec<(String, bool)> = sqlx::query_as(LOCK_LIMITED).fetch_all(&mut *tx).await?;
        let locked: Vec<&str> = limited.iter().map(|(name, _)| name.as_str()).collect();
        let jobs = sqlx::query_as::<_, DispatchedJob>(CLAIM)
            .bind(limit)
            .bind(window)
            .bind(&locked)
            .fetch_all(&mut *tx)
            .await?;
        let rated: Vec<&str> = limited
            .iter()
            .filter(|(_, rated)| *rated)
            .map(|(name, _)| name.as_str())
            .collect();
        let throttled = if rated.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(THROTTLED)
                .bind(&rated)
                .bind(window)
                .fetch_all(&mut *tx)
                .await?
        };
        tx.commit().await?;
        Ok(ClaimOutcome { jobs, throttled })
    }

    /// Whether any unpaused queue has a job due now (`ANY_DUE`): a cheap
    /// question to ask before [`Store::claim_batch`], which is planned
    /// afresh on every call.
    pub async fn any_due(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(ANY_DUE)
            .fetch_one(self.generic())
            .await?)
    }

    /// Returns jobs whose task message was not confirmed by the broker to
    /// `pending` (same attempt number again, lease cleared), guarded by lease.
    pub async fn unclaim(&self, jobs: &[(Uuid, Uuid)]) -> Result<u64, StoreError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let (ids, leases): (Vec<Uuid>, Vec<Uuid>) = jobs.iter().copied().unzip();
        let done = sqlx::query(UNCLAIM)
            .bind(&ids)
            .bind(&leases)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Those of `jobs` (id, lease) still `queued` under that lease: the
    /// others started, ended or were dispatched again.
    pub async fn still_queued(
        &self,
        jobs: &[(Uuid, Uuid)],
    ) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, leases): (Vec<Uuid>, Vec<Uuid>) = jobs.iter().copied().unzip();
        Ok(sqlx::query_as(
            "SELECT j.id, j.lease FROM jobs j
               JOIN UNNEST($1::uuid[], $2::uuid[]) AS r(id, lease) ON j.id = r.id
              WHERE j.lease = r.lease AND j.state IS NOT DISTINCT FROM 'queued'",
        )
        .bind(&ids)
        .bind(&leases)
        .fetch_all(&self.pool)
        .await?)
    }
}
