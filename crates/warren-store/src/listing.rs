//! Job listings: filters, an order from a short list that indexes serve, and
//! keyset pagination (the cursor is the last row's sort key), so a walk
//! through the pages returns every matching row exactly once, whatever the
//! order, even while rows are added.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;
use warren_core::JobState;

use crate::admin::JOB_COLUMNS;
use crate::stats::DEAD_STATES;
use crate::{JobRow, Store, StoreError};

/// Largest page any listing returns.
pub const MAX_PAGE_SIZE: i64 = 500;

/// Orders of a job listing. Each is served by an index: creation order by
/// the primary key (a UUID v7 id starts with its creation time, and the
/// `(state, id)` and `(queue, state, id)` indexes end with it; the former
/// leaves out `completed`, which the primary key serves in id order since
/// nearly every row is completed), finish order by `jobs_finished_idx`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobSort {
    /// Newest first (the default).
    #[default]
    CreatedDesc,
    /// Oldest first.
    CreatedAsc,
    /// Most recently finished first; only finished jobs.
    FinishedDesc,
    /// Earliest finished first; only finished jobs.
    FinishedAsc,
}

/// Sort field names accepted by [`JobSort::parse`].
pub const SORT_FIELDS: [&str; 2] = ["created_at", "finished_at"];
/// Sort directions accepted by [`JobSort::parse`].
pub const SORT_ORDERS: [&str; 2] = ["asc", "desc"];

impl JobSort {
    /// Reads a sort field and direction (default `desc`); the error names
    /// the accepted values.
    pub fn parse(field: &str, order: Option<&str>) -> Result<JobSort, String> {
        let descending = match order.unwrap_or("desc") {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(format!(
                    "unknown order {other:?}: expected one of {}",
                    SORT_ORDERS.join(", ")
                ))
            }
        };
        match (field, descending) {
            ("created_at", true) => Ok(JobSort::CreatedDesc),
            ("created_at", false) => Ok(JobSort::CreatedAsc),
            ("finished_at", true) => Ok(JobSort::FinishedDesc),
            ("finished_at", false) => Ok(JobSort::FinishedAsc),
            (other, _) => Err(format!(
                "unknown sort {other:?}: expected one of {}",
                SORT_FIELDS.join(", ")
            )),
        }
    }

    fn by_finish(self) -> bool {
        matches!(self, JobSort::FinishedDesc | JobSort::FinishedAsc)
    }

    fn descending(self) -> bool {
        matches!(self, JobSort::CreatedDesc | JobSort::FinishedDesc)
    }
}

/// Where the next page starts: the sort key of the last row returned.
/// Written as the row's id (creation order) or `<finished_at µs>_<id>`
/// (finish order); clients treat it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    /// The last row's `finished_at` (finish orders only).
    pub finished_at: Option<DateTime<Utc>>,
    /// The last row's id.
    pub id: Uuid,
}

impl ListCursor {
    /// The cursor after `row` in order `sort`.
    pub fn after(row: &JobRow, sort: JobSort) -> ListCursor {
        ListCursor {
            finished_at: if sort.by_finish() {
                row.finished_at
            } else {
                None
            },
            id: row.id,
        }
    }

    /// Reads a cursor written for order `sort`.
    pub fn parse(text: &str, sort: JobSort) -> Result<ListCursor, String> {
        let invalid = || format!("invalid cursor {text:?} for this sort");
        if !sort.by_finish() {
            let id = Uuid::parse_str(text).map_err(|_| invalid())?;
            return Ok(ListCursor {
                finished_at: None,
                id,
            });
        }
        let (micros, id) = text.split_once('_').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(ListCursor {
            finished_at: Some(DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?),
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }
}

impl fmt::Display for ListCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.finished_at {
            Some(at) => write!(f, "{}_{}", at.timestamp_micros(), self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// What to list. Every filter is optional; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this task type.
    pub task_type: Option<String>,
    /// Only steps of this workflow.
    pub workflow_id: Option<Uuid>,
    /// Only dead jobs (`failed` / `timeout` at rest).
    pub dead: bool,
    /// Order.
    pub sort: JobSort,
    /// Start after this row (the previous page's last row).
    pub cursor: Option<ListCursor>,
    /// Page size, clamped to 1..=[`MAX_PAGE_SIZE`].
    pub limit: i64,
}

/// One page and the cursor of the next (None on the last page).
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The rows.
    pub jobs: Vec<JobRow>,
    /// Pass back as [`JobFilter::cursor`] for the next page.
    pub next: Option<ListCursor>,
}

impl Store {
    /// One page of jobs. The statement holds only the conditions in use, so
    /// each combination is planned on its own and can use its index.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
        let mut sql =
            QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE true"));
        if let Some(state) = filter.state {
            sql.push(" AND state = ")
                .push_bind(state.as_str())
                .push("::job_state");
        }
        if filter.dead {
            let dead: Vec<&str> = DEAD_STATES.iter().map(|s| s.as_str()).collect();
            sql.push(" AND state = ANY(")
                .push_bind(dead)
                .push("::job_state[])");
        }
        if let Some(queue) = &filter.queue {
            sql.push(" AND queue = ").push_bind(queue.clone());
        }
        if let Some(task_type) = &filter.task_type {
            sql.push(" AND task_type = ").push_bind(task_type.clone());
        }
        if let Some(workflow) = filter.workflow_id {
            sql.push(" AND workflow_id = ").push_bind(workflow);
        }
        let (cmp, dir) = if filter.sort.descending() {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if filter.sort.by_finish() {
            sql.push(" AND finished_at IS NOT NULL");
            if let Some(ListCursor {
                finished_at: Some(at),
                id,
            }) = filter.cursor
            {
                // The first condition lets the index range start at the cursor.
                sql.push(format!(" AND finished_at {cmp}= "))
                    .push_bind(at)
                    .push(format!(" AND (finished_at, id) {cmp} ("))
                    .push_bind(at)
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
            sql.push(format!(" ORDER BY finished_at {dir}, id {dir}"));
        } else {
            if let Some(cursor) = filter.cursor {
                sql.push(format!(" AND id {cmp} ")).push_bind(cursor.id);
            }
            sql.push(format!(" ORDER BY id {dir}"));
        }
        sql.push(" LIMIT ").push_bind(limit);
        let jobs: Vec<JobRow> = sql.build_query_as().fetch_all(&self.pool).await?;
        let next = (jobs.len() as i64 == limit)
            .then(|| jobs.last().map(|row| ListCursor::after(row, filter.sort)))
            .flatten();
        Ok(JobPage { jobs, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_come_from_the_allowlist() {
        assert_eq!(JobSort::parse("created_at", None), Ok(JobSort::CreatedDesc));
        assert_eq!(
            JobSort::parse("finished_at", Some("asc")),
            Ok(JobSort::FinishedAsc)
        );
        let err = JobSort::parse("priority", None).unwrap_err();
        assert!(err.contains("created_at, finished_at"), "{err}");
        let err = JobSort::parse("created_at", Some("up")).unwrap_err();
        assert!(err.contains("asc, desc"), "{err}");
    }

    #[test]
    fn cursors_round_trip_for_their_sort_only() {
        let id = Uuid::now_v7();
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let by_finish = ListCursor {
            finished_at: Some(at),
            id,
        };
        let text = by_finish.to_string();
        assert_eq!(
            ListCursor::parse(&text, JobSort::FinishedAsc),
            Ok(by_finish)
        );
        assert!(ListCursor::parse(&text, JobSort::CreatedDesc).is_err());
        let by_id = ListCursor {
            finished_at: None,
            id,
        };
        assert_eq!(by_id.to_string(), id.to_string());
        assert_eq!(
            ListCursor::parse(&id.to_string(), JobSort::CreatedAsc),
            Ok(by_id)
        );
        assert!(ListCursor::parse(&id.to_string(), JobSort::FinishedDesc).is_err());
        assert!(ListCursor::parse("12_x", JobSort::FinishedDesc).is_err());
    }
}
