//! The pool's connection checks: a connection that sat idle long enough to
//! have been closed by the server (a database restart) is checked before a
//! statement runs on it, so the first request after an outage does not
//! fail on a dead connection.

mod common;

use std::time::Duration;

use common::TestDb;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_unseen() {
    let db = TestDb::new().await;
    db.store.list_queues().await.expect("first read");

    // The server ends every other session of this database, as a restart
    // would: the pool's idle connection is now dead.
    let mut admin = PgConnection::connect(&db.url()).await.expect("connect");
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate the pool's sessions");
    assert!(ended >= 1, "the pool held no connection to end");
    admin.close().await.expect("close");

    // Only connections idle for more than a second are checked before use
    // (a hot connection that died fails one statement, which the consuming
    // loops retry); this one has to age past that first.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    db.store
        .list_queues()
        .await
        .expect("a read after the server closed the idle connection");
    db.cleanup().await;
}
