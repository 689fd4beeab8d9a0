//! SIGTERM drains: a worker process told to stop mid-run finishes what it
//! can within `WARREN_SHUTDOWN_TIMEOUT`, hands back the rest (failed as
//! stopped, retried elsewhere) and exits 0. Twice, while jobs keep running on
//! the other worker and on each replacement; [`Ledger::check`] then holds with
//! one fault per drain. And a coordinator told to stop while submissions
//! keep arriving: it lands the batches it is writing, hands the rest back to
//! the broker for the other coordinator, and nothing runs twice.

use std::time::Duration;

use warren_core::protocol::JobSpec;
use warren_tests::{free_port, metric_value, wait_healthy, Ledger, TestEnv, DEADLINE};

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

/// Envelopes of the coordinator stop's run, and jobs in each.
const ENVELOPES: usize = 40;
const PER_ENVELOPE: usize = 10;

#[tokio::test]
async fn sigterm_of_a_coordinator_mid_burst_hands_over_and_runs_nothing_twice() {
    let mut env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let addr = || format!("127.0.0.1:{}", free_port());
    let (stopping_addr, survivor_addr) = (addr(), addr());
    let mut stopping = env.spawn_coordinator_process(&stopping_addr, &[]);
    let _survivor = env.spawn_coordinator_process(&survivor_addr, &[]);
    wait_healthy(&format!("http://{stopping_addr}")).await;
    wait_healthy(&format!("http://{survivor_addr}")).await;
    let _a = env.start_worker(&["default"]);
    let _b = env.start_worker(&["default"]);

    let mut ids = Vec::with_capacity(ENVELOPES * PER_ENVELOPE);
    for envelope in 0..ENVELOPES {
        let first = envelope * PER_ENVELOPE;
        let specs: Vec<JobSpec> = (first..first + PER_ENVELOPE)
            .map(|n| ledger.job("default", n, 20))
            .collect();
        ids.extend(env.submit(specs).await);
        if envelope == ENVELOPES / 2 {
            // Half submitted, the rest arriving while it stops: its intake
            // has batches being written or waiting.
            let (_, metrics) = env
                .api_get(&format!("http://{stopping_addr}"), "/metrics")
                .await;
            let created = "warren_jobs_submitted_total{outcome=\"created\"}";
            assert!(
                metric_value(&metrics, created) > Some(0.0),
                "the coordinator to stop took part in intake"
            );
            stopping.signal("TERM");
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(
        stopping.wait_exit(DEADLINE).await,
        Some(0),
        "the coordinator exits cleanly"
    );
    // No fault: a clean stop hands work over without losing or repeating it.
    let figures = ledger
        .check("coordinator SIGTERM mid-burst", &store, &ids, 0)
        .await;
    assert_eq!(figures.extra_executions, 0, "nothing ran twice");
    assert_eq!(figures.retried, 0, "no attempt was handed back");
    println!(
        "fault coordinator SIGTERM mid-burst: envelopes={ENVELOPES} jobs={}",
        ids.len()
    );
    env.cleanup(&["default"]).await;
}
