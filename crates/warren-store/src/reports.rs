//! Applying a batch of worker reports.
//!
//! Phases keep each attempt's own order (Started → Progress → Completed or
//! Failed): all starts (explicit, and implied by a coalesced failure) in one
//! UNNEST UPDATE, then progress, then completions, then failures. A
//! coalesced completion (its attempt still `queued`) makes both moves in ONE
//! row update: `transition_via = 'running'` has the trigger check and record
//! queued → running → completed, so the job writes one row version instead
//! of two. Every UPDATE is guarded by (state, attempt, lease); a report that
//! matches no row is stale — a duplicate, out of date, or for a cancelled job.
//!
//! Each statement reaches its rows through the primary key only, whatever
//! the statistics say: the state guard is written `j.state IS NOT DISTINCT
//! FROM '…'` (the same test, as `state` is never NULL), which no index can
//! serve and no partial index's predicate follows from. Written `j.state =
//! '…'`, it let the planner read the batch's rows by scanning every job in
//! that state through a partial index (`jobs_queued_idx`,
//! `jobs_in_flight_idx`, `jobs_state_idx`) and hashing them against the
//! batch, because the statistics of a young table said hardly any job was
//! in it: every completion batch of a throughput run took that plan, 4–60
//! ms each as the scanned index filled with dead entries (see
//! docs/architecture.md, "Query plans on the hot path"). `plans.rs` checks
//! the plans of these statements.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use warren_core::protocol::{JobRef, Report, RetryDecision};
use warren_core::JobState;

use crate::retry::{schedule_retry, EndedAttempt, ENDED_COLUMNS};
use crate::{Store, StoreError, Transition};

/// What a batch of reports changed.
#[derive(Debug, Default)]
pub struct ReportOutcome {
    /// Every state change, in the order applied.
    pub transitions: Vec<Transition>,
    /// Kind (`started`, `progress`, ...) of each report that changed nothing.
    pub stale: Vec<&'static str>,
    /// Whether an attempt of a workflow step ended (completed, or failed or
    /// timed out): its workflow may have steps to release.
    pub step_ended: bool,
}

/// Longest error text kept per attempt.
const MAX_ERROR_BYTES: usize = 8 * 1024;

impl Store {
    /// Applies reports (each paired with the id of the worker that sent it)
    /// in one transaction, or, for a batch of completions only (the usual
    /// case), as one or two statements each committed on its own: no
    /// `BEGIN` and `COMMIT` round trips. Every statement is guarded by
    /// (state, attempt, lease), so if the batch is delivered again after a
    /// crash between the two, the first one's reports are simply stale.
    pub async fn apply_reports(
        &self,
        batch: &[(&str, &Report)],
    ) -> Result<ReportOutcome, StoreError> {
        let mut outcome = ReportOutcome::default();
        if batch
            .iter()
            .all(|(_, report)| matches!(report, Report::Completed { .. }))
        {
            let mut conn = self.generic().acquire().await?;
            apply_completions(&mut conn, batch, &mut outcome).await?;
            return Ok(outcome);
        }
        let mut tx = self.begin_generic().await?;
        apply_starts(&mut tx, batch, &mut outcome).await?;
        apply_progress(&mut tx, batch, &mut outcome).await?;
        apply_completions(&mut tx, batch, &mut outcome).await?;
        apply_failures(&mut tx, batch, &mut outcome).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

#[derive(sqlx::FromRow)]
struct Moved {
    id: Uuid,
    queue: String,
    task_type: String,
    attempt: i32,
    seconds: Option<f64>,
    /// Whether the job is a workflow step (read only where it matters).
    #[sqlx(default)]
    in_workflow: bool,
}

impl Moved {
    fn transition(self, from: JobState, to: JobState) -> Transition {
        Transition {
            job_id: self.id,
            queue: self.queue,
            task_type: self.task_type,
            from,
            to,
            attempt: self.attempt,
            seconds: self.seconds,
        }
    }
}

fn unzip_refs(jobs: &[JobRef]) -> (Vec<Uuid>, Vec<i32>, Vec<Uuid>) {
    let ids = jobs.iter().map(|j| j.job_id).collect();
    let attempts = jobs.iter().map(|j| j.attempt as i32).collect();
    let leases = jobs.iter().map(|j| j.lease).collect();
    (ids, attempts, leases)
}

/// Starts attempts that are `queued` (ids, attempts, leases, workers).
pub(crate) const START_QUEUED: &str =
    "UPDATE jobs j SET state = 'running', worker_id = r.worker, started_at = now(), progress_at = now()
       FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::text[]) AS r(id, attempt, lease, worker)
      WHERE j.id = r.id AND j.state IS NOT DISTINCT FROM 'queued' AND j.attempt = r.attempt AND j.lease = r.lease
     RETURNING j.id, j.queue, j.task_type, j.attempt,
               GREATEST(EXTRACT(EPOCH FROM (now() - j.run_at)), 0)::float8 AS seconds";

/// Records progress of attempts that are `queued` or `running`.
pub(crate) const RECORD_PROGRESS: &str =
    "UPDATE jobs j SET progress = COALESCE(r.percent, j.progress), stage = COALESCE(r.stage, j.stage),
                       checkpoint = COALESCE(r.checkpoint, j.checkpoint), progress_at = now()
       FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::float4[], $5::text[], $6::jsonb[])
            AS r(id, attempt, lease, percent, stage, checkpoint)
      WHERE j.id = r.id AND j.attempt = r.attempt AND j.lease = r.lease
        AND (j.state IS NOT DISTINCT FROM 'queued' OR j.state IS NOT DISTINCT FROM 'running')";

/// Completes coalesced attempts still `queued`: queued → running →
/// completed in one row version (ids, attempts, leases, results, workers).
pub(crate) const COMPLETE_QUEUED: &str =
    "UPDATE jobs j SET state = 'completed', transition_via = 'running', worker_id = r.worker,
                       started_at = now(), progress_at = now(), result = r.result, finished_at = now(),
                       progress = 100, error = NULL
       FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::jsonb[], $5::text[])
            AS r(id, attempt, lease, result, worker)
      WHERE j.id = r.id AND j.state IS NOT DISTINCT FROM 'queued' AND j.attempt = r.attempt AND j.lease = r.lease
     RETURNING j.id, j.queue, j.task_type, j.attempt,
               GREATEST(EXTRACT(EPOCH FROM (now() - j.run_at)), 0)::float8 AS waited,
               j.workflow_id IS NOT NULL AS in_workflow";

/// Completes attempts that are `running` (ids, attempts, leases, results).
pub(crate) const COMPLETE_RUNNING: &str =
    "UPDATE jobs j SET state = 'completed', result = r.result, finished_at = now(), progress = 100, error = NULL
       FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::jsonb[]) AS r(id, attempt, lease, result)
      WHERE j.id = r.id AND j.state IS NOT DISTINCT FROM 'running' AND j.attempt = r.attempt AND j.lease = r.lease
     RETURNING j.id, j.queue, j.task_type, j.attempt,
               EXTRACT(EPOCH FROM (now() - j.started_at))::float8 AS seconds,
               j.workflow_id IS NOT NULL AS in_workflow";

async fn apply_starts(
    conn: &mut PgConnection,
    batch: &[(&str, &Report)],
    out: &mut ReportOutcome,
) -> Result<(), StoreError> {
    let starts: Vec<(&str, JobRef, bool)> = batch
        .iter()
        .filter_map(|(worker, report)| match report {
            Report::Started { job } => Some((*worker, *job, true)),
            // A coalesced completion starts in `apply_completions`, in the
            // same row update that completes it.
            Report::Failed { job, .. } => Some((*worker, *job, false)),
            Report::Completed { .. } | Report::Progress { .. } => None,
        })
        .collect();
    if starts.is_empty() {
        return Ok(());
    }
    let refs: Vec<JobRef> = starts.iter().map(|s| s.1).collect();
    let (ids, attempts, leases) = unzip_refs(&refs);
    let workers: Vec<&str> = starts.iter().map(|s| s.0).collect();
    let moved: Vec<Moved> = sqlx::query_as(START_QUEUED)
        .bind(&ids)
        .bind(&attempts)
        .bind(&leases)
        .bind(&workers)
        .fetch_all(&mut *conn)
        .await?;
    let started: HashSet<Uuid> = moved.iter().map(|m| m.id).collect();
    // One explicit Started per moved job took effect; every other one (no row
    // matched, or a duplicate within this batch) is stale.
    let mut effective = HashSet::new();
    let explicit_stale = starts
        .iter()
        .filter(|s| s.2 && !(started.contains(&s.1.job_id) && effective.insert(s.1.job_id)))
        .count();
    out.stale
        .extend(std::iter::repeat_n("started", explicit_stale));
    out.transitions.extend(
        moved
            .into_iter()
            .map(|m| m.transition(JobState::Queued, JobState::Running)),
    );
    Ok(())
}

/// One attempt's merged progress: (attempt, percent, stage, checkpoint).
type MergedProgress<'a> = (JobRef, Option<f32>, Option<&'a str>, Option<&'a Value>);

/// Progress is accepted while the attempt is `queued` too: a worker that
/// coalesces Started into its final report may send progress first, and the
/// matching lease already proves the report belongs to this attempt.
async fn apply_progress(
    conn: &mut PgConnection,
    batch: &[(&str, &Report)],
    out: &mut ReportOutcome,
) -> Result<(), StoreError> {
    // Several updates for one attempt in a batch merge field by field; the latest wins.
    let mut merged: Vec<MergedProgress<'_>> = Vec::new();
    for (_, report) in batch {
        let Report::Progress {
            job,
            percent,
            stage,
            checkpoint,
        } = report
        else {
            continue;
        };
        match merged.iter_mut().find(|m| m.0 == *job) {
            Some(m) => {
                m.1 = percent.or(m.1);
                m.2 = stage.as_deref().or(m.2);
                m.3 = checkpoint.as_ref().or(m.3);
            }
            None => merged.push((*job, *percent, stage.as_deref(), checkpoint.as_ref())),
        }
    }
    if merged.is_empty() {
        return Ok(());
    }
    let refs: Vec<JobRef> = merged.iter().map(|m| m.0).collect();
    let (ids, attempts, leases) = unzip_refs(&refs);
    let percents: Vec<Option<f32>> = merged.iter().map(|m| m.1).collect();
    let stages: Vec<Option<&str>> = merged.iter().map(|m| m.2).collect();
    let checkpoints: Vec<Option<Value>> = merged.iter().map(|m| m.3.cloned()).collect();
    let updated = sqlx::query(RECORD_PROGRESS)
        .bind(&ids)
        .bind(&attempts)
        .bind(&leases)
        .bind(&percents)
        .bind(&stages)
        .bind(&checkpoints)
        .execute(&mut *conn)
        .await?;
    let stale = refs.len().saturating_sub(updated.rows_affected() as usize);
    out.stale.extend(std::iter::repeat_n("progress", stale));
    Ok(())
}

/// Completes attempts in two guarded UNNEST UPDATEs, each row updated once:
/// first the coalesced ones still `queued` (queued → running → completed in
/// one row version, both events written by the trigger), then, of the rest
/// (if any), the ones already `running`. An attempt whose explicit Started came in this batch
/// was moved by [`apply_starts`] and is completed by the second statement.
async fn apply_completions(
    conn: &mut PgConnection,
    batch: &[(&str, &Report)],
    out: &mut ReportOutcome,
) -> Result<(), StoreError> {
    let mut refs = Vec::new();
    let mut results = Vec::new();
    let mut workers = Vec::new();
    for (worker, report) in batch {
        if let Report::Completed { job, result } = report {
            refs.push(*job);
            results.push(result.clone());
            workers.push(*worker);
        }
    }
    if refs.is_empty() {
        return Ok(());
    }
    let (ids, attempts, leases) = unzip_refs(&refs);
    let implied: Vec<ImpliedStart> = sqlx::query_as(COMPLETE_QUEUED)
        .bind(&ids)
        .bind(&attempts)
        .bind(&leases)
        .bind(&results)
        .bind(&workers)
        .fetch_all(&mut *conn)
        .await?;
    // The rest may be running. A job just completed above cannot match
    // again, so it is left out (a batch of coalesced completions only, the
    // usual case, then costs one statement).
    let done: HashSet<Uuid> = implied.iter().map(|i| i.id).collect();
    let rest: Vec<(JobRef, &Value)> = refs
        .iter()
        .zip(&results)
        .filter(|(job, _)| !done.contains(&job.job_id))
        .map(|(job, result)| (*job, result))
        .collect();
    let moved = if rest.is_empty() {
        Vec::new()
    } else {
        complete_running(conn, &rest).await?
    };
    out.step_ended |= implied.iter().any(|i| i.in_workflow) || moved.iter().any(|m| m.in_workflow);
    out.stale.extend(std::iter::repeat_n(
        "completed",
        refs.len().saturating_sub(implied.len() + moved.len()),
    ));
    for started in implied {
        out.transitions.extend(started.transitions());
    }
    out.transitions.extend(
        moved
            .into_iter()
            .map(|m| m.transition(JobState::Running, JobState::Completed)),
    );
    Ok(())
}

/// Completes the attempts of `rest` that are `running`.
async fn complete_running(
    conn: &mut PgConnection,
    rest: &[(JobRef, &Value)],
) -> Result<Vec<Moved>, StoreError> {
    let refs: Vec<JobRef> = rest.iter().map(|(job, _)| *job).collect();
    let (ids, attempts, leases) = unzip_refs(&refs);
    let results: Vec<&Value> = rest.iter().map(|(_, result)| *result).collect();
    let moved = sqlx::query_as(COMPLETE_RUNNING)
        .bind(&ids)
        .bind(&attempts)
        .bind(&leases)
        .bind(&results)
        .fetch_all(&mut *conn)
        .await?;
    Ok(moved)
}

/// A coalesced attempt completed straight from `queued`.
#[derive(sqlx::FromRow)]
struct ImpliedStart {
    id: Uuid,
    queue: String,
    task_type: String,
    attempt: i32,
    /// Seconds from due to start (the start's figure); the run took none.
    waited: Option<f64>,
    in_workflow: bool,
}

impl ImpliedStart {
    /// The two moves its one row update made, as separate UPDATEs reported them.
    fn transitions(self) -> [Transition; 2] {
        let started = Transition {
            job_id: self.id,
            queue: self.queue,
            task_type: self.task_type,
            from: JobState::Queued,
            to: JobState::Running,
            attempt: self.attempt,
            seconds: self.waited,
        };
        let completed = Transition {
            from: JobState::Running,
            to: JobState::Completed,
            seconds: Some(0.0),
            ..started.clone()
        };
        [started, completed]
    }
}

async fn apply_failures(
    conn: &mut PgConnection,
    batch: &[(&str, &Report)],
    out: &mut ReportOutcome,
) -> Result<(), StoreError> {
    for (_, report) in batch {
        let Report::Failed { job, failure } = report else {
            continue;
        };
        let to = if failure.timed_out {
            JobState::Timeout
        } else {
            JobState::Failed
        };
        let error = truncate(&failure.error, MAX_ERROR_BYTES);
        let ended: Option<EndedAttempt> = sqlx::query_as(&format!(
            "UPDATE jobs j SET state = $4::job_state, error = $5, finished_at = now()
              WHERE j.id = $1 AND j.state IS NOT DISTINCT FROM 'running' AND j.attempt = $2 AND j.lease = $3
             RETURNING {ENDED_COLUMNS}"
        ))
        .bind(job.job_id)
        .bind(job.attempt as i32)
        .bind(job.lease)
        .bind(to.as_str())
        .bind(error)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(ended) = ended else {
            out.stale.push("failed");
            continue;
        };
        // Failures are rare: any wakes the workflow engine, which finds
        // nothing to do if the job was not a step.
        out.step_ended = true;
        out.transitions
            .push(ended.transition(JobState::Running, to));
        let hint = match failure.retry {
            RetryDecision::Fatal => continue,
            RetryDecision::Retryable => None,
            RetryDecision::RetryAfter { ms } => Some(Duration::from_millis(ms)),
        };
        if let Some(retry) = schedule_retry(conn, &ended, to, hint).await? {
            out.transitions.push(retry);
        }
    }
    Ok(())
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
