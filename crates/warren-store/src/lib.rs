//! All of Warren's SQL. Every state change is one guarded UPDATE
//! (`... WHERE state = $from AND attempt = $n AND lease = $L ... RETURNING`);
//! a statement that touches no row means a stale or duplicate request and is
//! reported as such, never as a crash. Hot-path writes are multi-row
//! statements (UNNEST) so a batch costs one round trip and one commit.

mod admin;
mod bench;
mod connect;
mod dispatch;
mod error;
mod events;
mod heartbeat;
mod insert;
mod model;
mod reports;
mod retry;
mod stats;
mod sweep;

pub use admin::OperatorMove;
pub use connect::{redact_database_url, StoreConfig};
pub use dispatch::DispatchedJob;
pub use error::StoreError;
pub use events::{EventFilter, PublicationClaim, Tail, TailSnapshot};
pub use heartbeat::HeartbeatOutcome;
pub use model::{JobEvent, JobFilter, JobRow, Transition, WorkerRow, MAX_PAGE_SIZE};
pub use reports::ReportOutcome;
pub use sweep::SweepOutcome;

use sqlx::PgPool;

/// Handle to the Warren database. Cheap to clone (a pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Wraps an existing pool (migrations must already be applied).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool, for health checks and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
