//! All of Warren's SQL. Every state change is one guarded UPDATE
//! (`... WHERE state = $from AND attempt = $n AND lease = $L ... RETURNING`);
//! a statement that touches no row means a stale or duplicate request and is
//! reported as such, never as a crash. Hot-path writes are multi-row
//! statements (UNNEST) so a batch costs one round trip and one commit.

mod admin;
mod begin;
mod bench;
mod cleanup;
mod connect;
mod dispatch;
mod error;
mod events;
mod generic;
mod heartbeat;
mod insert;
mod listing;
mod lost_dispatch;
mod model;
#[cfg(test)]
mod plans;
mod queues;
mod reports;
mod retry;
mod stats;
mod stats_report;
mod sweep;
mod workflows;

pub use admin::{MoveNote, OperatorMove};
pub use cleanup::{CleanupBatch, CLEANABLE_STATES};
pub use connect::{redact_database_url, StoreConfig};
pub use dispatch::{ClaimOutcome, DispatchedJob};
pub use error::StoreError;
pub use events::{EventFilter, PublicationClaim, Tail, TailSnapshot};
pub use heartbeat::HeartbeatOutcome;
pub use insert::Inserted;
pub use listing::{
    JobFilter, JobPage, JobSort, ListCursor, MAX_PAGE_SIZE, SORT_FIELDS, SORT_ORDERS,
};
pub use lost_dispatch::{LostDispatches, MAX_LOST_DISPATCHES, UNDELIVERABLE_ERROR};
pub use model::{JobEvent, JobRow, Transition, WorkerRow};
pub use queues::{
    DefaultsNews, QueueInfo, QueueUpdate, TaskDefaultsListener, MAX_QUEUES_LISTED,
    TASK_DEFAULTS_CHANNEL,
};
pub use reports::ReportOutcome;
pub use stats::{QueueStateCount, COUNTED_STATES, DEAD_STATES};
pub use stats_report::{
    Last24h, Percentiles, QueueStats, Rate, SampleInfo, StateCounts, StatsReport, TaskTypeStats,
    Throughput, BY_TYPE_MAX_ROWS, CREATED_MAX_ROWS, RECENT_SECONDS, SAMPLE_MAX_ROWS,
    WINDOW_SECONDS,
};
pub use sweep::SweepOutcome;
pub use workflows::{
    Cancelled, Evaluation, NewWorkflow, StatusFilter, StepRetried, StepRow, TemplateRow,
    TemplateSummary, WorkflowEvent, WorkflowFilter, WorkflowRow, WorkflowSummary,
};

use sqlx::PgPool;

/// Handle to the Warren database. Cheap to clone (a pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Connections whose statements run on generic plans, for the hot path
    /// only (the `generic` module explains which statements qualify).
    generic: PgPool,
}

impl Store {
    /// Wraps an existing pool (migrations must already be applied); the
    /// generic-plan pool connects lazily with the same options.
    pub fn from_pool(pool: PgPool) -> Self {
        let generic = generic::pool_like(&pool);
        Self { pool, generic }
    }

    /// The underlying pool, for health checks and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.reach().await.is_ok()
    }

    /// Runs a trivial query: `Ok` when the database answers.
    pub async fn reach(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
