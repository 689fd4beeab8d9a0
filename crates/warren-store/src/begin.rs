//! Transactions that a dropped caller cannot leave open.
//!
//! sqlx 0.8's PostgreSQL `BEGIN` is not cancel-safe (transact-rs/sqlx#4393,
//! fixed in sqlx-postgres 0.9.1): it counts the transaction only once the
//! `BEGIN` round trip has returned, so a caller dropped while it is in
//! flight leaves the session inside a transaction that nothing ends. The
//! pool then hands that connection to its next borrower, whose statements,
//! autocommit INSERTs and UPDATEs included, run inside it: they never
//! commit, and they keep their row locks until the connection closes.
//! Warren drops such callers routinely (a broker session that ends drops its
//! loops with the batches they were writing). The RabbitMQ-restart fault
//! test hit it once: after the restart, accepted submissions were inserted
//! into a transaction that never committed, and report batches waited on
//! its locks until the run's deadline.
//!
//! Every transaction therefore begins in a task of its own, which the
//! caller awaits. A caller dropped meanwhile leaves the task to finish the
//! `BEGIN` and drop the counted transaction, which queues the `ROLLBACK`
//! sqlx sends before the connection is used again. The cost is one task
//! spawn per transaction.

use sqlx::{PgPool, Postgres, Transaction};

use crate::{Store, StoreError};

impl Store {
    /// Begins a transaction on the main pool; cancel-safe (see the module
    /// docs). Every transaction of the store begins here or through
    /// [`Store::begin_generic`], never with `Pool::begin`.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        begin_on(&self.pool, None).await
    }
}

/// Begins a transaction on `pool`, with `statement` instead of a plain
/// `BEGIN` if given (see [`sqlx::Pool::begin_with`]); cancel-safe (see the
/// module docs).
pub(crate) async fn begin_on(
    pool: &PgPool,
    statement: Option<&'static str>,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let pool = pool.clone();
    let begun = tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    })
    .await;
    match begun {
        Ok(tx) => Ok(tx?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels the task.
        Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
    }
}

#[cfg(test)]
mod tests {
    use std::future::{poll_fn, Future};
    use std::task::Poll;

    use sqlx::postgres::PgPoolOptions;

    use super::*;

    /// Whether the pool's connection is outside a transaction: there, two
    /// statements get two transaction ids; inside one, the same.
    async fn outside_a_transaction(pool: &PgPool) -> bool {
        let mut conn = pool.acquire().await.expect("acquire");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let id: i64 = sqlx::query_scalar("SELECT txid_current()")
                .fetch_one(&mut *conn)
                .await
                .expect("query");
            ids.push(id);
        }
        ids[0] != ids[1]
    }

    /// Drops `begin` after 1 to 8 polls, which covers the moment its
    /// `BEGIN` is on the wire: the pool's one connection must never be
    /// left inside a transaction. With sqlx 0.8's own `Pool::begin` in
    /// place of `begin_on` the first round already fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_begin_dropped_half_way_leaves_no_transaction_open() {
        let url = std::env::var("WARREN_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect(&format!("{}/postgres", url.trim_end_matches('/')))
            .await
            .expect("connect");
        for round in 0..20 {
            for polls in 1..=8 {
                {
                    let mut begun = std::pin::pin!(begin_on(&pool, None));
                    for _ in 0..polls {
                        let poll = poll_fn(|cx| Poll::Ready(begun.as_mut().poll(cx))).await;
                        if poll.is_ready() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                } // dropped here, half-way or with its transaction
                assert!(
                    outside_a_transaction(&pool).await,
                    "round {round}: a begin dropped after {polls} polls left its transaction open"
                );
            }
        }
        pool.close().await;
    }
}
