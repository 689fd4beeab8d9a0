//! Queue controls in the store: pause, `max_in_flight` under concurrent
//! claimers, the rate limit's token bucket (whole and fractional rates),
//! settings updates, the queue resource's counts, and delayed jobs of
//! every priority claimed once due.

mod common;

use std::collections::BTreeMap;

use common::{insert, spec, TestDb};
use serde_json::json;
use sqlx::Connection;
use warren_core::protocol::JobSpec;
use warren_store::{QueueUpdate, Store, StoreConfig, StoreError};

/// `n` due echo jobs on `queue`.
fn jobs(queue: &str, n: usize) -> Vec<JobSpec> {
    (0..n).map(|_| spec(queue)).collect()
}

async fn set(store: &Store, queue: &str, update: QueueUpdate) {
    store
        .update_queue(queue, &update)
        .await
        .expect("update_queue");
}

/// Runs raw SQL against the test database.
async fn sql(db: &TestDb, statement: &str) {
    sqlx::query(statement)
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn in_flight(db: &TestDb, queue: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE queue = $1 AND state IN ('queued', 'running')",
    )
    .bind(queue)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_paused_queue_dispatches_nothing_until_resumed() {
    let db = TestDb::new().await;
    let store = &db.store;
    set(
        store,
        "media",
        QueueUpdate {
            paused: Some(true),
            ..QueueUpdate::default()
        },
    )
    .await;
    insert(store, &jobs("media", 3)).await;
    insert(store, &jobs("default", 2)).await;

    let claimed = store.claim_for_dispatch(100, 1000).await.unwrap();
    assert!(claimed.iter().all(|j| j.queue == "default"));
    assert_eq!(claimed.len(), 2);
    assert!(
        !store.any_due().await.unwrap(),
        "the probe ignores a paused queue's due jobs"
    );

    set(
        store,
        "media",
        QueueUpdate {
            paused: Some(false),
            ..QueueUpdate::default()
        },
    )
    .await;
    let claimed = store.claim_for_dispatch(100, 1000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_in_flight_holds_with_two_coordinators_claiming_at_once() {
    let db = TestDb::new().await;
    // Two pools: two "coordinators" whose claims really run concurrently.
    let other = Store::connect_and_migrate(&StoreConfig {
        url: db.url(),
        max_connections: 2,
    })
    .await
    .unwrap();
    let cap = 3;
    set(
        &db.store,
        "q",
        QueueUpdate {
            max_in_flight: Some(Some(cap)),
            ..QueueUpdate::default()
        },
    )
    .await;
    insert(&db.store, &jobs("q", 200)).await;
    for round in 0..40 {
        let before = in_flight(&db, "q").await;
        let (a, b) = tokio::join!(
            db.store.claim_for_dispatch(10, 1000),
            other.claim_for_dispatch(10, 1000)
        );
        let claimed = (a.unwrap().len() + b.unwrap().len()) as i64;
        let after = in_flight(&db, "q").await;
        assert_eq!(after, before + claimed);
        assert!(
            after <= cap as i64,
            "round {round}: {after} in flight, cap {cap}"
        );
        // Finish a couple so the next round has room again (raw SQL: the
        // trigger still checks every move).
        sql(&db, "UPDATE jobs SET state = 'running' WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' LIMIT 2)").await;
        sql(
            &db,
            "UPDATE jobs SET state = 'completed' WHERE state = 'running'",
        )
        .await;
    }
    other.pool().close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_token_bucket_starts_full_spends_one_per_job_and_refills_at_the_rate() {
    let db = TestDb::new().await;
    let store = &db.store;
    set(
        store,
        "q",
        QueueUpdate {
            rate_limit: Some(Some(5.0)),
            ..QueueUpdate::default()
        },
    )
    .await;
    insert(store, &jobs("q", 20)).await;

    // Burst: a full bucket holds max(1, rate) = 5 tokens.
    let first = store.claim_batch(100, 1000).await.unwrap();
    assert_eq!(first.jobs.len(), 5);
    // Freeze the clock of the bucket (refilled "in the future": no refill yet).
    sql(&db, "UPDATE queues SET rate_tokens = 0, rate_refilled_at = now() + interval '1 hour' WHERE name = 'q'").await;
    let dry = store.claim_batch(100, 1000).await.unwrap();
    assert!(dry.jobs.is_empty());
    assert_eq!(dry.throttled, vec!["q".to_owned()], "counted as throttled");
    // 0.6 s at 5/s is 3 tokens.
    sql(&db, "UPDATE queues SET rate_tokens = 0, rate_refilled_at = clock_timestamp() - interval '600 ms' WHERE name = 'q'").await;
    assert_eq!(store.claim_for_dispatch(100, 1000).await.unwrap().len(), 3);
    // Never more than the burst, however long the queue was idle.
    sql(&db, "UPDATE queues SET rate_tokens = 0, rate_refilled_at = now() - interval '1 day' WHERE name = 'q'").await;
    assert_eq!(store.claim_for_dispatch(100, 1000).await.unwrap().len(), 5);
    db.cleanup().await;
}

#[tokio::test]
async fn a_fractional_rate_dispatches_one_job_per_whole_token() {
    let db = TestDb::new().await;
    let store = &db.store;
    set(
        store,
        "slow",
        QueueUpdate {
            rate_limit: Some(Some(0.5)),
            ..QueueUpdate::default()
        },
    )
    .await;
    insert(store, &jobs("slow", 5)).await;

    assert_eq!(
        store.claim_for_dispatch(100, 1000).await.unwrap().len(),
        1,
        "burst of 1"
    );
    // 1.5 s at 0.5/s: 0.75 of a token, not enough.
    sql(&db, "UPDATE queues SET rate_tokens = 0, rate_refilled_at = clock_timestamp() - interval '1500 ms' WHERE name = 'slow'").await;
    assert!(store
        .claim_for_dispatch(100, 1000)
        .await
        .unwrap()
        .is_empty());
    // 2.5 s: 1.25 tokens, capped at the burst of 1: one job, none left.
    sql(&db, "UPDATE queues SET rate_tokens = 0, rate_refilled_at = clock_timestamp() - interval '2500 ms' WHERE name = 'slow'").await;
    assert_eq!(store.claim_for_dispatch(100, 1000).await.unwrap().len(), 1);
    let left: f64 = sqlx::query_scalar("SELECT rate_tokens FROM queues WHERE name = 'slow'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(left.abs() < 1e-9, "{left} tokens left");
    // Half a token saved up plus 1.2 s (0.6 tokens) make one more.
    sql(&db, "UPDATE queues SET rate_tokens = 0.5, rate_refilled_at = clock_timestamp() - interval '1200 ms' WHERE name = 'slow'").await;
    assert_eq!(store.claim_for_dispatch(100, 1000).await.unwrap().len(), 1);
    db.cleanup().await;
}

#[tokio::test]
async fn a_rate_limit_and_a_cap_both_apply() {
    let db = TestDb::new().await;
    let store = &db.store;
    let update = QueueUpdate {
        rate_limit: Some(Some(100.0)),
        max_in_flight: Some(Some(2)),
        ..QueueUpdate::default()
    };
    set(store, "q", update).await;
    insert(store, &jobs("q", 10)).await;
    let claim = store.claim_batch(100, 1000).await.unwrap();
    assert_eq!(
        claim.jobs.len(),
        2,
        "the cap binds before the 100-token burst"
    );
    assert!(
        claim.throttled.is_empty(),
        "held back by the cap, not the rate"
    );
    let tokens: f64 = sqlx::query_scalar("SELECT rate_tokens FROM queues WHERE name = 'q'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        (98.0..=100.0).contains(&tokens),
        "only claimed jobs spend tokens: {tokens}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn updates_create_merge_and_clear_settings() {
    let db = TestDb::new().await;
    let store = &db.store;
    assert!(store.get_queue("media").await.unwrap().is_none());
    let update = QueueUpdate {
        max_in_flight: Some(Some(4)),
        rate_limit: Some(Some(0.5)),
        task_batch: Some(Some(1)),
        task_defaults: Some(
            json!({"image": {"timeout_ms": 300000}, "video": {"timeout_ms": 3600000}}),
        ),
        ..QueueUpdate::default()
    };
    let queue = store.update_queue("media", &update).await.unwrap();
    assert_eq!(
        (queue.max_in_flight, queue.rate_limit, queue.paused),
        (Some(4), Some(0.5), false)
    );
    assert_eq!(queue.task_batch, Some(1));
    assert_eq!(
        store.queue_task_batches().await.unwrap(),
        vec![("media".to_owned(), 1)]
    );
    assert_eq!(
        serde_json::to_value(&queue.task_defaults).unwrap(),
        json!({"image": {"timeout_ms": 300000}, "video": {"timeout_ms": 3600000}})
    );

    // Fields left out stay; task defaults merge per type and field.
    let update = QueueUpdate {
        paused: Some(true),
        task_defaults: Some(json!({"image": {"max_retries": 2}})),
        ..QueueUpdate::default()
    };
    let queue = store.update_queue("media", &update).await.unwrap();
    assert_eq!(
        (queue.max_in_flight, queue.rate_limit, queue.paused),
        (Some(4), Some(0.5), true)
    );
    assert_eq!(
        serde_json::to_value(queue.task_defaults["image"]).unwrap(),
        json!({"timeout_ms": 300000, "max_attempts": 3})
    );

    // Null clears.
    let update = QueueUpdate {
        max_in_flight: Some(None),
        rate_limit: Some(None),
        task_batch: Some(None),
        task_defaults: Some(json!(null)),
        ..QueueUpdate::default()
    };
    let queue = store.update_queue("media", &update).await.unwrap();
    assert_eq!(
        (queue.max_in_flight, queue.rate_limit, queue.task_batch),
        (None, None, None)
    );
    assert!(store.queue_task_batches().await.unwrap().is_empty());
    assert!(queue.task_defaults.is_empty());

    // Defaults that do not fit together are refused, and nothing changes.
    let update = QueueUpdate {
        paused: Some(false),
        task_defaults: Some(json!({"image": {"max_delay_ms": 10}})),
        ..QueueUpdate::default()
    };
    let err = store.update_queue("media", &update).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(store.get_queue("media").await.unwrap().unwrap().paused);

    let defaults = store
        .task_defaults_for(&["media", "default"])
        .await
        .unwrap();
    assert!(defaults.is_empty(), "no queue has defaults any more");
    db.cleanup().await;
}

#[tokio::test]
async fn counts_cover_every_live_state_plus_dead_and_the_oldest_wait() {
    let db = TestDb::new().await;
    let store = &db.store;
    let mut old = spec("q");
    old.run_at = Some(chrono::Utc::now() - chrono::TimeDelta::seconds(60));
    old.priority = 3;
    let mut later = spec("q");
    later.delay_ms = Some(3_600_000);
    let mut gated = spec("q");
    gated.requires_approval = true;
    insert(store, &[old, later, gated, spec("q")]).await;
    sql(&db, "INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms, retry_factor, retry_max_ms, retry_jitter)
              VALUES (gen_random_uuid(), 'q', 'echo', 'pending', 1, 0, 1, 0, 0)").await;
    // One dead job: pending → queued → running → failed with its only attempt.
    sql(
        &db,
        "UPDATE jobs SET state = 'queued', attempt = 1 WHERE max_attempts = 1",
    )
    .await;
    sql(
        &db,
        "UPDATE jobs SET state = 'running' WHERE max_attempts = 1",
    )
    .await;
    sql(
        &db,
        "UPDATE jobs SET state = 'failed', finished_at = now() WHERE max_attempts = 1",
    )
    .await;

    let queue = store
        .get_queue("q")
        .await
        .unwrap()
        .expect("registered at insert");
    let expected: BTreeMap<String, i64> = [
        ("awaiting_approval", 1),
        ("blocked", 0),
        ("pending", 3),
        ("queued", 0),
        ("running", 0),
        ("retrying", 0),
        ("failed", 1),
        ("timeout", 0),
        ("dead", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(queue.counts, expected);
    let age = queue.oldest_pending_age_ms.expect("a job is waiting");
    assert!(
        (60_000..70_000).contains(&age),
        "oldest due job waited {age} ms"
    );

    let all = store.list_queues().await.unwrap();
    assert_eq!(
        all.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        vec!["q"]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn counting_reads_no_terminal_rows() {
    let db = TestDb::new().await;
    // Many finished jobs, written without the triggers (this is fixture data).
    let mut conn = db.pool().acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, queue, task_type, state, max_attempts, retry_base_ms, retry_factor, retry_max_ms, retry_jitter, finished_at)
         SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'q' ELSE 'other' END, 'echo', 'completed', 1, 0, 1, 0, 0, now()
           FROM generate_series(1, 20000) i",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("SET session_replication_role = DEFAULT")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    insert(&db.store, &jobs("q", 5)).await;
    sql(&db, "VACUUM ANALYZE jobs").await;

    // One connection, so the statistics read are those of the queries made.
    let store = Store::connect_and_migrate(&StoreConfig {
        url: db.url(),
        max_connections: 1,
    })
    .await
    .unwrap();
    let mut stats = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let before = flushed_scans(&store, &mut stats, None).await;
    let queue = store.get_queue("q").await.unwrap().unwrap();
    assert_eq!(queue.counts["pending"], 5);
    let after = flushed_scans(&store, &mut stats, Some(before.idx_scan)).await;
    assert_eq!(
        after.seq_scan, before.seq_scan,
        "no sequential scan of jobs"
    );
    let fetched = after.idx_tup_fetch - before.idx_tup_fetch;
    assert!(
        fetched < 100,
        "{fetched} heap rows fetched for 5 live jobs among 20000"
    );
    let _ = stats.close().await;
    store.pool().close().await;
    db.cleanup().await;
}

/// Scan counters of table `jobs`.
#[derive(Debug, sqlx::FromRow)]
struct Scans {
    seq_scan: i64,
    idx_scan: i64,
    idx_tup_fetch: i64,
}

/// Flushes the statistics of `store`'s one connection and reads them from
/// another; waits until `idx_scan` has moved past `after` (the flush is
/// asynchronous).
async fn flushed_scans(store: &Store, stats: &mut sqlx::PgConnection, after: Option<i64>) -> Scans {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(store.pool())
            .await
            .unwrap();
        let scans: Scans = sqlx::query_as(
            "SELECT COALESCE(seq_scan, 0) AS seq_scan, COALESCE(idx_scan, 0) AS idx_scan,
                    COALESCE(idx_tup_fetch, 0) AS idx_tup_fetch
               FROM pg_stat_user_tables WHERE relname = 'jobs'",
        )
        .fetch_one(&mut *stats)
        .await
        .unwrap();
        if after.is_none_or(|a| scans.idx_scan > a) {
            return scans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "statistics never flushed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delayed_jobs_of_every_priority_are_claimed_once_due_and_not_before() {
    let db = TestDb::new().await;
    let store = &db.store;
    let delayed = |priority| JobSpec {
        priority,
        delay_ms: Some(3_600_000),
        ..spec("later")
    };
    let ids = insert(store, &[delayed(0), delayed(9)]).await;
    assert!(
        !store.any_due().await.unwrap(),
        "the probe: nothing is due yet"
    );
    assert!(
        store
            .claim_for_dispatch(100, 1000)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due yet"
    );
    for id in ids.iter().rev() {
        sqlx::query("UPDATE jobs SET run_at = now() - interval '1 second' WHERE id = $1")
            .bind(id)
            .execute(db.pool())
            .await
            .unwrap();
        assert!(store.any_due().await.unwrap(), "the probe sees the job due");
        let claimed = store.claim_for_dispatch(100, 1000).await.unwrap();
        assert_eq!(
            claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![*id],
            "the job that came due, whatever its priority"
        );
        assert!(!store.any_due().await.unwrap(), "claimed: nothing due");
    }
    db.cleanup().await;
}
