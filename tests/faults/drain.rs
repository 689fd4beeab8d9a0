//! SIGTERM drains: a worker process told to stop mid-run finishes what it
//! can within `WARREN_SHUTDOWN_TIMEOUT`, hands back the rest (failed as
//! stopped, retried elsewhere) and exits 0. Twice, while jobs keep running on
//! the other worker and on each replacement; [`Ledger::check`] then holds with
//! one fault per drain.

use std::time::Duration;

use warren_core::protocol::JobSpec;
use warren_tests::{Ledger, TestEnv, DEADLINE};

/// Jobs of the run: most short, every tenth longer than the shutdown timeout.
const JOBS: usize = 200;
/// Worker settings of the run: a drain waits this long for running jobs.
const WORKER: [(&str, &str); 3] = [
    ("WARREN_SHUTDOWN_TIMEOUT", "1500ms"),
    ("WARREN_CANCEL_GRACE", "500ms"),
    ("WARREN_CONCURRENCY", "8"),
];

#[tokio::test]
async fn sigterm_drains_hand_back_what_cannot_finish_and_lose_nothing() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let mut workers = vec![
        env.spawn_worker_process("default", &WORKER),
        env.spawn_worker_process("default", &WORKER),
    ];
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|n| {
            let ms = if n % 10 == 0 { 4_000 } else { 100 };
            ledger.job("default", n, ms)
        })
        .collect();
    let ids = env.submit(specs).await;

    let drains = 2;
    for round in 1..=drains {
        let threshold = round * JOBS / 4;
        TestEnv::wait_completed(&store, threshold, DEADLINE).await;
        let mut draining = workers.remove(0);
        draining.signal("TERM");
        workers.push(env.spawn_worker_process("default", &WORKER));
        assert_eq!(
            draining.wait_exit(Duration::from_secs(15)).await,
            Some(0),
            "drain {round}: the worker exits cleanly"
        );
    }

    let figures = ledger.check("SIGTERM drain", &store, &ids, drains).await;
    let handed_back: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT job_id) FROM job_events
          WHERE from_state = 'running' AND to_state = 'failed' AND detail->>'error' LIKE '%stopped%'",
    )
    .fetch_one(store.pool())
    .await
    .expect("handed-back attempts");
    assert_eq!(
        figures.retried as i64, handed_back,
        "every retried job had an attempt a drain handed back"
    );
    println!("fault SIGTERM drain: drains={drains} handed_back={handed_back}");
    env.cleanup(&["default"]).await;
}
