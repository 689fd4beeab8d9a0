//! Connections whose statements run on generic plans.
//!
//! PostgreSQL plans a prepared statement again on every execution while it
//! judges a custom plan cheaper than the generic one, and for the hot-path
//! statements (many CTEs, UNNEST of a dozen arrays) planning took as long as
//! executing: 0.5–0.9 ms of planning against 0.4–0.8 ms of execution for a
//! 3-job intake INSERT. Statements written so that their generic plan is
//! sound whatever the parameters (every table reached through an index on
//! a key, every per-queue read an index probe) run on a second, small pool
//! whose connections say `plan_cache_mode = force_generic_plan` for their
//! whole session: planned once per connection, then executed as is (0.09 ms
//! to bind).
//!
//! A generic plan is made once per connection and kept until the table's
//! statistics change, so one made while `jobs` was tiny (a new deployment,
//! or statistics that say one row) scanned the whole table in every
//! per-queue probe long after it had grown: 19–31 ms p50 at 1,000 jobs/s
//! instead of 6. These connections therefore also say `enable_seqscan =
//! off`: every table their statements touch has an index for the way they
//! reach it, so no statistics can talk the planner into a scan.
//!
//! Both settings travel in the connection's startup packet, so they cost no
//! round trip; earlier they were `SET LOCAL`s at the start of each
//! transaction, which forced a transaction (`BEGIN`, `COMMIT`: two more
//! round trips) around statements that are atomic on their own.
//!
//! Generic plans do not make a statement's plan sound by themselves: the
//! statements that update jobs by key also keep their state guards out of
//! reach of every index (`reports.rs`), and `plans.rs` checks their plans.
//!
//! Not every statement qualifies: the dispatcher's claim, for one, hashes
//! the whole `jobs` table under a generic plan (its `LIMIT $1` is unknown),
//! so it keeps custom plans on the main pool; a generic-plan probe
//! ([`ANY_DUE`](crate::dispatch::ANY_DUE)) runs first and spares it when
//! nothing is due.

use sqlx::{PgPool, Postgres, Transaction};

use crate::connect::side_pool;
use crate::{Store, StoreError};

/// Connections of the generic-plan pool: intake, the coordinator's report
/// lanes and the API's job submissions use it, a handful at a time.
const GENERIC_CONNECTIONS: u32 = 5;

/// A lazily connecting pool with the options of `pool` plus the two
/// generic-plan settings.
pub(crate) fn pool_like(pool: &PgPool) -> PgPool {
    side_pool(
        pool,
        GENERIC_CONNECTIONS,
        &[
            ("plan_cache_mode", "force_generic_plan"),
            ("enable_seqscan", "off"),
        ],
    )
}

impl Store {
    /// The generic-plan pool, for single statements that are atomic on
    /// their own; only for statements whose generic plan was checked (see
    /// the module docs).
    pub(crate) fn generic(&self) -> &PgPool {
        &self.generic
    }

    /// Begins a transaction on the generic-plan pool, for several such
    /// statements that must commit together.
    pub(crate) async fn begin_generic(&self) -> Result<Transaction<'_, Postgres>, StoreError> {
        crate::begin::begin_on(&self.generic, None).await
    }
}
