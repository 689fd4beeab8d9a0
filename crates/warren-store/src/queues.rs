//! Queue controls: a queue's settings with its job counts (the API's queue
//! resource), changing them (pause, cap, rate limit, tasks per message,
//! task defaults), and the task defaults intake fills into new jobs. Dispatch enforces the settings
//! (see `dispatch.rs`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::FromRow;
use warren_core::queue::{patch_task_defaults, TaskDefaults, TaskDefaultsByType};

use crate::connect::side_pool;
use crate::stats::COUNTED_STATES;
use crate::{Store, StoreError};

/// Most queues one listing returns.
pub const MAX_QUEUES_LISTED: i64 = 1_000;

/// The channel on which a change to any queue's task defaults is announced
/// (at commit; the payload is the queue's name).
pub const TASK_DEFAULTS_CHANNEL: &str = "warren_task_defaults";

/// A queue's settings and its jobs: the API's queue resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Whether dispatch skips it (running jobs still finish).
    pub paused: bool,
    /// Cap on its jobs queued or running, across all coordinators.
    pub max_in_flight: Option<i32>,
    /// Dispatches per second, across all coordinators.
    pub rate_limit: Option<f64>,
    /// Most tasks one task message of this queue carries; `None` leaves it
    /// to the coordinators' `WARREN_TASK_BATCH`.
    pub task_batch: Option<i32>,
    /// Defaults filled into its jobs that do not set them, by task type.
    pub task_defaults: TaskDefaultsByType,
    /// Jobs per non-terminal state, plus `dead` (failed or timed out with no
    /// attempt left). Every key is present.
    pub counts: BTreeMap<String, i64>,
    /// How long its oldest due job (pending or retrying, `run_at` passed)
    /// has waited for dispatch; `None` when nothing is waiting.
    pub oldest_pending_age_ms: Option<i64>,
}

/// A change to a queue's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueUpdate {
    /// Pause or resume.
    pub paused: Option<bool>,
    /// `Some(None)` removes the cap.
    pub max_in_flight: Option<Option<i32>>,
    /// `Some(None)` removes the rate limit.
    pub rate_limit: Option<Option<f64>>,
    /// `Some(None)` leaves the queue to `WARREN_TASK_BATCH` again.
    pub task_batch: Option<Option<i32>>,
    /// A JSON merge patch of the task defaults (see
    /// [`patch_task_defaults`]); `Null` clears them all.
    pub task_defaults: Option<Value>,
}

/// Hears the announcements on [`TASK_DEFAULTS_CHANNEL`].
pub struct TaskDefaultsListener {
    listener: PgListener,
}

/// What a [`TaskDefaultsListener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsNews {
    /// Some queue's task defaults changed.
    Changed,
    /// The connection was lost and made again (listening again): changes
    /// made meanwhile were not heard.
    Reconnected,
}

impl TaskDefaultsListener {
    /// Waits for the next announcement. An error means the listener could
    /// not reconnect; it should be dropped and a new one made.
    pub async fn next(&mut self) -> Result<DefaultsNews, StoreError> {
        Ok(match self.listener.try_recv().await? {
            Some(_) => DefaultsNews::Changed,
            None => DefaultsNews::Reconnected,
        })
    }
}

#[derive(FromRow)]
struct QueueRecord {
    name: String,
    paused: bool,
    max_in_flight: Option<i32>,
    rate_limit: Option<f64>,
    task_batch: Option<i32>,
    task_defaults: Value,
    counts: Value,
    dead: i64,
    oldest_ms: Option<i64>,
}

/// One row per queue ($2 one name, or NULL for all; at most $3), counting
/// its jobs per non-terminal state ($1) through the (queue, state) index and
/// finding its oldest due job with one probe per priority of the dispatch
/// index, so neither terminal rows nor a whole backlog are read.
const SELECT_QUEUES: &str =
    "SELECT q.name, q.paused, q.max_in_flight, q.rate_limit, q.task_batch, q.task_defaults,
            c.counts, d.dead, o.oldest_ms
       FROM queues q
      CROSS JOIN LATERAL (
            SELECT COALESCE(jsonb_object_agg(s.state, s.n), '{}'::jsonb) AS counts
              FROM (SELECT state::text AS state, count(*) AS n FROM jobs
                     WHERE queue = q.name AND state = ANY($1::job_state[])
                     GROUP BY state) s) c
      CROSS JOIN LATERAL (
            SELECT count(*) AS dead FROM jobs
             WHERE queue = q.name AND state IN ('failed', 'timeout')
               AND (attempt >= max_attempts OR finished_at IS NOT NULL)) d
      CROSS JOIN LATERAL (
            SELECT (EXTRACT(EPOCH FROM now() - min(w.run_at)) * 1000)::int8 AS oldest_ms
              FROM generate_series(0, 9) p
             CROSS JOIN LATERAL (
                   SELECT run_at FROM jobs
                    WHERE queue = q.name AND state IN ('pending', 'retrying')
                      AND priority = p AND run_at <= now()
                    ORDER BY run_at LIMIT 1) w) o
      WHERE ($2::text IS NULL OR q.name = $2)
      ORDER BY q.name
      LIMIT $3";

impl Store {
    /// Every queue (at most [`MAX_QUEUES_LISTED`]), by name. A queue exists
    /// once a job was submitted to it or its settings were changed.
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        self.select_queues(None, MAX_QUEUES_LISTED).await
    }

    /// One queue, or `None` if it does not exist.
    pub async fn get_queue(&self, name: &str) -> Result<Option<QueueInfo>, StoreError> {
        Ok(self.select_queues(Some(name), 1).await?.pop())
    }

    /// Changes a queue's settings, creating the queue if it is new (the name
    /// must have been validated). Task defaults are merged under the row's
    /// lock, so concurrent changes to different task types both survive.
    /// Invalid resulting defaults are [`StoreError::Invalid`].
    pub async fn update_queue(
        &self,
        name: &str,
        update: &QueueUpdate,
    ) -> Result<QueueInfo, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO queues (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let stored: Value =
            sqlx::query_scalar("SELECT task_defaults FROM queues WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        let defaults = match &update.task_defaults {
            None => None,
            Some(Value::Null) => Some(TaskDefaultsByType::new()),
            Some(patch) => Some(
                patch_task_defaults(&read_task_defaults(name, stored), patch)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
            ),
        };
        let defaults =
            defaults.map(|d| serde_json::to_value(d).expect("task defaults serialize to JSON"));
        sqlx::query(
            "UPDATE queues
                SET paused = COALESCE($2, paused),
                    max_in_flight = CASE WHEN $3 THEN $4 ELSE max_in_flight END,
                    rate_limit = CASE WHEN $5 THEN $6 ELSE rate_limit END,
                    task_defaults = COALESCE($7, task_defaults),
                    task_batch = CASE WHEN $8 THEN $9 ELSE task_batch END,
                    updated_at = now()
              WHERE name = $1",
        )
        .bind(name)
        .bind(update.paused)
        .bind(update.max_in_flight.is_some())
        .bind(update.max_in_flight.flatten())
        .bind(update.rate_limit.is_some())
        .bind(update.rate_limit.flatten())
        .bind(defaults)
        .bind(update.task_batch.is_some())
        .bind(update.task_batch.flatten())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_queue(name)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("queue {name:?} vanished")))
    }

    /// Task defaults of the given queues (queues without any are absent),
    /// for filling into new jobs.
    pub async fn task_defaults_for(
        &self,
        queues: &[&str],
    ) -> Result<HashMap<String, TaskDefaultsByType>, StoreError> {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "SELECT name, task_defaults FROM queues
              WHERE name = ANY($1) AND task_defaults <> '{}'::jsonb",
        )
        .bind(queues)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, stored)| {
                let defaults = read_task_defaults(&name, stored);
                (name, defaults)
            })
            .collect())
    }

    /// A listener for [`TASK_DEFAULTS_CHANNEL`], on a connection of its own
    /// (it holds none of the pool's): a coordinator that caches task
    /// defaults drops its cache on each notification.
    pub async fn listen_for_task_defaults(&self) -> Result<TaskDefaultsListener, StoreError> {
        let own = side_pool(&self.pool, 1, &[]);
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(TASK_DEFAULTS_CHANNEL).await?;
        Ok(TaskDefaultsListener { listener })
    }

    /// (queue, task_batch) of every queue that sets its own `task_batch`.
    pub async fn queue_task_batches(&self) -> Result<Vec<(String, i32)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, task_batch FROM queues WHERE task_batch IS NOT NULL
              ORDER BY name LIMIT $1",
        )
        .bind(MAX_QUEUES_LISTED)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (queue, paused) of every queue, for the `warren_queue_paused` gauge.
    pub async fn queue_pause_flags(&self) -> Result<Vec<(String, bool)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, paused FROM queues ORDER BY name LIMIT $1")
                .bind(MAX_QUEUES_LISTED)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn select_queues(
        &self,
        name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<QueueInfo>, StoreError> {
        let states: Vec<&str> = COUNTED_STATES.iter().map(|s| s.as_str()).collect();
        let records: Vec<QueueRecord> = sqlx::query_as(SELECT_QUEUES)
            .bind(&states)
            .bind(name)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(records.into_iter().map(QueueInfo::from).collect())
    }
}

impl From<QueueRecord> for QueueInfo {
    fn from(record: QueueRecord) -> Self {
        let mut counts: BTreeMap<String, i64> = COUNTED_STATES
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        if let Value::Object(found) = record.counts {
            for (state, n) in found {
                counts.insert(state, n.as_i64().unwrap_or(0));
            }
        }
        counts.insert("dead".to_owned(), record.dead);
        QueueInfo {
            task_defaults: read_task_defaults(&record.name, record.task_defaults),
            name: record.name,
            paused: record.paused,
            max_in_flight: record.max_in_flight,
            rate_limit: record.rate_limit,
            task_batch: record.task_batch,
            counts,
            oldest_pending_age_ms: record.oldest_ms,
        }
    }
}

/// Reads stored task defaults; an entry that is not valid (the column was
/// edited by hand) is skipped with a warning rather than failing intake.
fn read_task_defaults(queue: &str, stored: Value) -> TaskDefaultsByType {
    let Value::Object(entries) = stored else {
        return TaskDefaultsByType::new();
    };
    entries
        .into_iter()
        .filter_map(
            |(task_type, entry)| match serde_json::from_value::<TaskDefaults>(entry) {
                Ok(defaults) => Some((task_type, defaults)),
                Err(e) => {
                    tracing::warn!(queue, task_type, error = %e, "ignoring invalid task defaults");
                    None
                }
            },
        )
        .collect()
}
