//! Transactions whose statements run on generic plans.
//!
//! PostgreSQL plans a prepared statement again on every execution while it
//! judges a custom plan cheaper than the generic one, and for the hot-path
//! statements (many CTEs, UNNEST of a dozen arrays) planning took as long as
//! executing: 0.5–0.9 ms of planning against 0.4–0.8 ms of execution for a
//! 3-job intake INSERT. Statements written so that their generic plan is
//! sound whatever the parameters (every table reached through an index on
//! a key, every per-queue read an index probe) run in a transaction that
//! says `SET LOCAL plan_cache_mode = force_generic_plan`: planned once per
//! connection, then executed as is (0.09 ms to bind).
//!
//! A generic plan is made once per connection and kept until the table's
//! statistics change, so one made while `jobs` was tiny (a new deployment,
//! or statistics that say one row) scanned the whole table in every
//! per-queue probe long after it had grown: 19–31 ms p50 at 1,000 jobs/s
//! instead of 6. These transactions therefore also say `SET LOCAL
//! enable_seqscan = off`: every table they touch has an index for the way
//! they reach it, so no statistics can talk the planner into a scan.
//!
//! Not every statement qualifies: the dispatcher's claim, for one, hashes
//! the whole `jobs` table under a generic plan (its `LIMIT $1` is unknown),
//! so it keeps custom plans.

use sqlx::{Postgres, Transaction};

use crate::{Store, StoreError};

impl Store {
    /// Begins a transaction whose statements use generic plans; only for
    /// statements whose generic plan was checked (see the module docs).
    /// `BEGIN` and the `SET LOCAL`s go in one simple query: one round trip.
    pub(crate) async fn begin_generic(&self) -> Result<Transaction<'_, Postgres>, StoreError> {
        Ok(self
            .pool
            .begin_with(
                "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off",
            )
            .await?)
    }
}
