//! The event stream's SQL: tailing `job_events` and `workflow_events` (both
//! take their ids from `job_events_id_seq`) in id order together with the
//! snapshot each read ran under (the coordinator's gap algorithm needs both
//! from the same statement), filtered history pages for Server-Sent Events,
//! and the single `event_publication` row that the exchange publisher claims
//! with `FOR UPDATE SKIP LOCKED`.
//!
//! Both logs are read as one: a `UNION ALL` of the same columns, a `kind`
//! column naming the source (`job` or `workflow`).
//!
//! Tail reads never scan a log whole. Planned with statistics of a young
//! `job_events` (none yet, as in the first minute of a deployment), `id >
//! $1 ORDER BY id LIMIT 5000` looked like a third of the table, and
//! PostgreSQL read it with a parallel sequential scan and a sort: 4–97 ms
//! per read in a throughput run, growing with the log. Every tail read
//! (the tailer's, and the publisher's inside its claim) therefore runs in
//! a transaction that turns sequential scans off ([`Store::begin_tail`]):
//! each read is an index range scan from the cursor.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Postgres, QueryBuilder, Row};
use uuid::Uuid;
use warren_core::protocol::{
    EventKind, StreamEvent, TransitionEvent, WorkflowTransitionEvent, PROTOCOL_VERSION,
};
use warren_core::workflow::WorkflowStatus;
use warren_core::JobState;

use crate::{Store, StoreError};

/// Columns of a job event from `job_events e`, and from `jobs j` for an
/// event written before events carried their job's columns (migration
/// `20261124000014`). `jobs` is LEFT JOINed: an event whose job row is gone
/// still streams, with an empty queue and task type.
const JOB_COLUMNS: &str = "'job'::text AS kind, e.id, e.job_id,
    COALESCE(e.queue, j.queue, '') AS queue, COALESCE(e.task_type, j.task_type, '') AS task_type,
    COALESCE(e.workflow_id, j.workflow_id) AS workflow_id,
    COALESCE(e.step_name, j.step_name) AS step_name, e.from_state::text AS from_state,
    e.to_state::text AS to_state, e.attempt, e.worker_id, e.at, e.detail,
    NULL::text AS workflow_name";

/// The same columns for a workflow event from `workflow_events we` and
/// `workflows w` (LEFT JOINed likewise).
const WORKFLOW_COLUMNS: &str = "'workflow'::text AS kind, we.id, NULL::uuid AS job_id,
    ''::text AS queue, ''::text AS task_type, we.workflow_id, NULL::text AS step_name,
    we.from_status::text AS from_state, we.to_status::text AS to_state,
    0::integer AS attempt, NULL::text AS worker_id, we.at, we.detail,
    COALESCE(w.name, '') AS workflow_name";

/// The `xmin` of the snapshot the statement runs under (a 64-bit
/// transaction id) and the newest event id of either log. In one statement
/// with the read, so both describe exactly the same view of the tables.
///
/// The snapshot's `xmax` is deliberately not used: PostgreSQL sets it to one
/// past the latest *completed* transaction, so a running transaction may
/// have a larger id. [`Store::xid_bound`] gives a true upper bound.
const SNAPSHOT: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
    GREATEST(COALESCE((SELECT max(id) FROM job_events), 0),
             COALESCE((SELECT max(id) FROM workflow_events), 0)) AS max_id";

/// The job of event `e` when the event does not carry its job's columns
/// itself (written before migration `20261124000014`), for a `LEFT JOIN
/// LATERAL`. The test on `e.queue` depends on the outer row only, so it is
/// planned as a one-time filter in front of the lookup: an event that
/// carries the columns costs no probe of `jobs`. The `LIMIT` keeps it a
/// per-event primary-key lookup: joined plainly, the planner estimated the
/// read's full `LIMIT` of events and hashed the whole `jobs` table instead
/// (a sequential scan per read: 45 ms at 40k jobs, growing with history).
const JOB_OF_EVENT: &str = "SELECT queue, task_type, workflow_id, step_name FROM jobs
     WHERE id = e.job_id AND e.queue IS NULL LIMIT 1";

/// The workflow of event `we`, likewise.
const WORKFLOW_OF_EVENT: &str = "SELECT name FROM workflows WHERE id = we.workflow_id LIMIT 1";

/// The first `$2` events of either log with an id above `$1`, with every
/// column. Each log is limited on its own primary key before joining, so a
/// read costs one short index range scan per log.
fn tail_sources() -> String {
    format!(
        "SELECT * FROM (
           (SELECT {JOB_COLUMNS}
              FROM (SELECT * FROM job_events WHERE id > $1 ORDER BY id LIMIT $2) e
              LEFT JOIN LATERAL ({JOB_OF_EVENT}) j ON true)
           UNION ALL
           (SELECT {WORKFLOW_COLUMNS}
              FROM (SELECT * FROM workflow_events WHERE id > $1 ORDER BY id LIMIT $2) we
              LEFT JOIN LATERAL ({WORKFLOW_OF_EVENT}) w ON true)
         ) both_logs ORDER BY id LIMIT $2"
    )
}

/// Like [`tail_sources`], ids only (the tailer's cheap mode).
const TAIL_ID_SOURCES: &str = "SELECT id FROM (
       (SELECT id FROM job_events WHERE id > $1 ORDER BY id LIMIT $2)
       UNION ALL
       (SELECT id FROM workflow_events WHERE id > $1 ORDER BY id LIMIT $2)
     ) both_logs ORDER BY id LIMIT $2";

/// What the database looked like when a tail read ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailSnapshot {
    /// `pg_snapshot_xmin`: no transaction with a smaller id was still
    /// running; each had committed (and is visible) or aborted.
    pub xmin: u64,
    /// The newest event id visible (0 when there is none).
    pub max_id: i64,
}

/// One tail read: the snapshot and the events above the cursor, in id order.
#[derive(Debug, Clone)]
pub struct Tail<T> {
    /// The snapshot the read ran under.
    pub snapshot: TailSnapshot,
    /// The events (or ids) read, ascending.
    pub events: Vec<T>,
}

/// Which events a stream wants; every field that is set must match.
///
/// `job_id`, `queue`, `task_type` and `to_state` describe jobs: when any is
/// set, workflow events do not match. `workflow_id` matches the workflow's
/// own status changes and the transitions of its steps' jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this job's events.
    pub job_id: Option<Uuid>,
    /// Only events of jobs on this queue.
    pub queue: Option<String>,
    /// Only events of jobs of this task type.
    pub task_type: Option<String>,
    /// Only moves into this job state.
    pub to_state: Option<JobState>,
    /// Only this workflow's events and its steps' job events.
    pub workflow_id: Option<Uuid>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
}

impl EventFilter {
    /// Whether `event` passes (the same test the SQL of [`Store::events_between`] makes).
    pub fn matches(&self, event: &StreamEvent) -> bool {
        if !self.wants(event.kind()) {
            return false;
        }
        match event {
            StreamEvent::Job(event) => self.matches_job(event),
            StreamEvent::Workflow(event) => self.workflow_id.is_none_or(|w| w == event.workflow_id),
        }
    }

    fn matches_job(&self, event: &TransitionEvent) -> bool {
        self.job_id.is_none_or(|id| id == event.job_id)
            && self.queue.as_ref().is_none_or(|q| *q == event.queue)
            && self
                .task_type
                .as_ref()
                .is_none_or(|t| *t == event.task_type)
            && self.to_state.is_none_or(|s| s == event.to)
            && self
                .workflow_id
                .is_none_or(|w| event.workflow_id == Some(w))
    }

    /// Whether events of `kind` can pass at all.
    pub fn wants(&self, kind: EventKind) -> bool {
        let job_only = self.job_id.is_some()
            || self.queue.is_some()
            || self.task_type.is_some()
            || self.to_state.is_some();
        self.kind.is_none_or(|k| k == kind) && (kind == EventKind::Job || !job_only)
    }

    /// Appends the job branch of a history read.
    fn push_job_branch(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        after: i64,
        upto: i64,
        limit: i64,
    ) {
        sql.push(format!(
            "(SELECT {JOB_COLUMNS} FROM job_events e LEFT JOIN LATERAL ({JOB_OF_EVENT}) j ON true
               WHERE e.id > "
        ));
        sql.push_bind(after).push(" AND e.id <= ").push_bind(upto);
        if let Some(job_id) = self.job_id {
            sql.push(" AND e.job_id = ").push_bind(job_id);
        }
        if let Some(queue) = &self.queue {
            sql.push(" AND COALESCE(e.queue, j.queue) = ")
                .push_bind(queue.clone());
        }
        if let Some(task_type) = &self.task_type {
            sql.push(" AND COALESCE(e.task_type, j.task_type) = ")
                .push_bind(task_type.clone());
        }
        if let Some(state) = self.to_state {
            sql.push(" AND e.to_state = ")
                .push_bind(state.as_str())
                .push("::job_state");
        }
        if let Some(workflow_id) = self.workflow_id {
            sql.push(" AND COALESCE(e.workflow_id, j.workflow_id) = ")
                .push_bind(workflow_id);
        }
        sql.push(" ORDER BY e.id LIMIT ").push_bind(limit).push(")");
    }

    /// Appends the workflow branch of a history read.
    fn push_workflow_branch(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        after: i64,
        upto: i64,
        limit: i64,
    ) {
        sql.push(format!(
            "(SELECT {WORKFLOW_COLUMNS} FROM workflow_events we
               LEFT JOIN LATERAL ({WORKFLOW_OF_EVENT}) w ON true WHERE we.id > "
        ));
        sql.push_bind(after).push(" AND we.id <= ").push_bind(upto);
        if let Some(workflow_id) = self.workflow_id {
            sql.push(" AND we.workflow_id = ").push_bind(workflow_id);
        }
        sql.push(" ORDER BY we.id LIMIT ")
            .push_bind(limit)
            .push(")");
    }
}

/// The exchange publisher's claim on the `event_publication` row: an open
/// transaction holding its row lock. Dropping it rolls back (releases).
#[derive(Debug)]
pub struct PublicationClaim {
    tx: sqlx::Transaction<'static, Postgres>,
    cursor: Option<i64>,
}

impl Store {
    /// Reads up to `limit` events with an id above `after`, with the
    /// snapshot of the same statement.
    pub async fn tail_events(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Tail<StreamEvent>, StoreError> {
        let mut tx = self.begin_tail().await?;
        let tail = tail_events(&mut *tx, after, limit).await?;
        tx.commit().await?;
        Ok(tail)
    }

    /// Like [`Store::tail_events`] with ids only: enough to track which ids
    /// are settled when nobody needs the events themselves.
    pub async fn tail_event_ids(&self, after: i64, limit: i64) -> Result<Tail<i64>, StoreError> {
        let sql = format!(
            "WITH snap AS ({SNAPSHOT}), ev AS ({TAIL_ID_SOURCES})
             SELECT snap.xmin, snap.max_id, ev.id
               FROM snap LEFT JOIN ev ON true ORDER BY ev.id"
        );
        let mut tx = self.begin_tail().await?;
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let snapshot = snapshot_of(&rows)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(id) = row.try_get::<Option<i64>, _>("id")? {
                events.push(id);
            }
        }
        Ok(Tail { snapshot, events })
    }

    /// A page of events with `after < id <= upto` that pass `filter`,
    /// oldest first, at most `limit` (capped at [`crate::MAX_PAGE_SIZE`] × 4).
    pub async fn events_between(
        &self,
        filter: &EventFilter,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<StreamEvent>, StoreError> {
        let limit = limit.clamp(1, crate::MAX_PAGE_SIZE * 4);
        let (jobs, workflows) = (
            filter.wants(EventKind::Job),
            filter.wants(EventKind::Workflow),
        );
        if !jobs && !workflows {
            return Ok(Vec::new());
        }
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new("SELECT * FROM (");
        if jobs {
            filter.push_job_branch(&mut sql, after, upto, limit);
        }
        if jobs && workflows {
            sql.push(" UNION ALL ");
        }
        if workflows {
            filter.push_workflow_branch(&mut sql, after, upto, limit);
        }
        sql.push(") both_logs ORDER BY id LIMIT ").push_bind(limit);
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(event_of).collect()
    }

    /// The id just before a workflow's first event (its own or a step's), to
    /// stream its history from; `None` when it has no event.
    pub async fn workflow_stream_start(
        &self,
        workflow_id: Uuid,
    ) -> Result<Option<i64>, StoreError> {
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT LEAST(
                 (SELECT min(id) FROM workflow_events WHERE workflow_id = $1),
                 (SELECT min(e.id) FROM jobs j JOIN job_events e ON e.job_id = j.id
                   WHERE j.workflow_id = $1))",
        )
        .bind(workflow_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(first.map(|id| id - 1))
    }

    /// The current snapshot and newest event id, without reading events.
    pub async fn event_snapshot(&self) -> Result<TailSnapshot, StoreError> {
        event_snapshot(&self.pool).await
    }

    /// One more than a transaction id assigned now (in a transaction that is
    /// rolled back at once): greater than the id of every transaction that
    /// had one before the call. Once a snapshot's `xmin` reaches it, all of
    /// those have finished. Costs one transaction id.
    pub async fn xid_bound(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let xid: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
            .fetch_one(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(xid as u64 + 1)
    }

    /// A transaction for tail reads: sequential scans off (see the module
    /// docs), set with the `BEGIN` in one round trip.
    async fn begin_tail(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        crate::begin::begin_on(&self.pool, Some("BEGIN; SET LOCAL enable_seqscan = off")).await
    }

    /// Claims the right to publish events: `None` when another coordinator
    /// holds it. The claim is a transaction; keep it short. Its reads plan
    /// without sequential scans (see the module docs).
    pub async fn claim_event_publication(&self) -> Result<Option<PublicationClaim>, StoreError> {
        let mut tx = self.begin_tail().await?;
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT cursor FROM event_publication WHERE id = 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some((cursor,)) => Ok(Some(PublicationClaim { tx, cursor })),
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    /// The published cursor (`None` until the first publisher set it).
    pub async fn event_publication_cursor(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM event_publication WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }
}

impl PublicationClaim {
    /// The cursor as claimed: every event up to it was published (or is
    /// permanently missing). `None` until initialised.
    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    /// [`Store::event_snapshot`] inside the claim's transaction.
    pub async fn snapshot(&mut self) -> Result<TailSnapshot, StoreError> {
        event_snapshot(&mut *self.tx).await
    }

    /// [`Store::tail_events`] inside the claim's transaction.
    pub async fn tail_events(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Tail<StreamEvent>, StoreError> {
        tail_events(&mut *self.tx, after, limit).await
    }

    /// Stores `cursor` and commits, releasing the claim.
    pub async fn advance(mut self, cursor: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE event_publication SET cursor = $1, published_at = now() WHERE id = 1")
            .bind(cursor)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }

    /// Releases the claim without changing anything.
    pub async fn release(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

async fn tail_events<'e>(
    executor: impl PgExecutor<'e>,
    after: i64,
    limit: i64,
) -> Result<Tail<StreamEvent>, StoreError> {
    let sources = tail_sources();
    let sql = format!(
        "WITH snap AS ({SNAPSHOT}), ev AS ({sources})
         SELECT snap.xmin, snap.max_id, ev.*
           FROM snap LEFT JOIN ev ON true ORDER BY ev.id"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    let snapshot = snapshot_of(&rows)?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<i64>, _>("id")?.is_some() {
            events.push(event_of(row)?);
        }
    }
    Ok(Tail { snapshot, events })
}

async fn event_snapshot<'e>(executor: impl PgExecutor<'e>) -> Result<TailSnapshot, StoreError> {
    let rows = sqlx::query(SNAPSHOT).fetch_all(executor).await?;
    snapshot_of(&rows)
}

/// The snapshot columns (the same on every row; there is always one row).
fn snapshot_of(rows: &[PgRow]) -> Result<TailSnapshot, StoreError> {
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    let xid = |name: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(name)?;
        Ok(value as u64)
    };
    Ok(TailSnapshot {
        xmin: xid("xmin")?,
        max_id: row.try_get("max_id")?,
    })
}

fn event_of(row: &PgRow) -> Result<StreamEvent, StoreError> {
    let kind: String = row.try_get("kind")?;
    let from: Option<String> = row.try_get("from_state")?;
    let to: String = row.try_get("to_state")?;
    let id: i64 = row.try_get("id")?;
    let at = row.try_get::<DateTime<Utc>, _>("at")?;
    let detail = row.try_get::<Option<Value>, _>("detail")?;
    if kind == EventKind::Workflow.as_str() {
        return Ok(StreamEvent::Workflow(WorkflowTransitionEvent {
            v: PROTOCOL_VERSION,
            id,
            workflow_id: row.try_get("workflow_id")?,
            name: row.try_get("workflow_name")?,
            from: from.as_deref().map(workflow_status).transpose()?,
            to: workflow_status(&to)?,
            at,
            detail,
        }));
    }
    let attempt: i32 = row.try_get("attempt")?;
    Ok(StreamEvent::Job(TransitionEvent {
        v: PROTOCOL_VERSION,
        id,
        job_id: row.try_get("job_id")?,
        queue: row.try_get("queue")?,
        task_type: row.try_get("task_type")?,
        workflow_id: row.try_get("workflow_id")?,
        step_name: row.try_get("step_name")?,
        from: from.as_deref().map(job_state).transpose()?,
        to: job_state(&to)?,
        attempt: attempt.max(0) as u32,
        worker_id: row.try_get("worker_id")?,
        at,
        detail,
    }))
}

/// A job state name read from the database.
fn job_state(text: &str) -> Result<JobState, StoreError> {
    text.parse()
        .map_err(|e: warren_core::state::UnknownState| sqlx::Error::Decode(e.into()).into())
}

/// A workflow status name read from the database.
fn workflow_status(text: &str) -> Result<WorkflowStatus, StoreError> {
    WorkflowStatus::parse(text).ok_or_else(|| {
        sqlx::Error::Decode(format!("unknown workflow status {text:?}").into()).into()
    })
}
