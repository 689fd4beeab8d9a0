//! Killing and freezing the real processes mid-run: kill -9 of workers
//! (repeated), kill -9 of the coordinator during dispatch and report
//! handling, SIGSTOP of a worker past its lease then SIGCONT, and one of two
//! coordinators killed. Each test ends with [`Ledger::check`]: no accepted
//! job lost, each job exactly one terminal state, attempts never above the
//! maximum, extra executions at most one per fault.

use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{eventually, free_port, metric_value, Ledger, TestEnv, DEADLINE};

#[tokio::test]
async fn repeated_kill_9_of_workers() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let mut workers = vec![
        env.spawn_worker_process("default", &[]),
        env.spawn_worker_process("default", &[]),
    ];
    let specs: Vec<JobSpec> = (0..120).map(|n| ledger.job("default", n, 100)).collect();
    let ids = env.submit(specs).await;
    let kills = 3;
    for round in 1..=kills {
        TestEnv::wait_completed(&store, round * 25, DEADLINE).await;
        workers.remove(0).signal("KILL");
        workers.push(env.spawn_worker_process("default", &[]));
    }
    ledger.check("worker kill -9", &store, &ids, kills).await;
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn kill_9_of_the_coordinator_during_dispatch_and_report_handling() {
    let mut env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let fast = [("WARREN_DISPATCH_TIMEOUT", "2s")];
    let addr = || format!("127.0.0.1:{}", free_port());
    let mut coordinator = env.spawn_coordinator_process(&addr(), &fast);
    let _a = env.start_worker(&["default"]);
    let _b = env.start_worker(&["default"]);
    let specs: Vec<JobSpec> = (0..300).map(|n| ledger.job("default", n, 20)).collect();
    let ids = env.submit(specs).await;
    for threshold in [50, 150] {
        TestEnv::wait_completed(&store, threshold, DEADLINE).await;
        coordinator.signal("KILL");
        coordinator.wait_exit(DEADLINE).await;
        coordinator = env.spawn_coordinator_process(&addr(), &fast);
    }
    ledger.check("coordinator kill -9", &store, &ids, 2).await;
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn a_worker_stopped_past_its_lease_has_its_late_result_rejected() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let frozen = env.spawn_worker_process("default", &[]);
    let ids = env.submit(vec![ledger.job("default", 0, 1_500)]).await;
    let first = env
        .wait_job(&store, ids[0], "running on the frozen worker", |j| {
            j.state() == JobState::Running
        })
        .await;
    frozen.signal("STOP");
    let _survivor = env.start_worker(&["default"]);
    let done = env
        .wait_job(&store, ids[0], "completed elsewhere", |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(done.attempt, 2);
    assert_ne!(done.worker_id, first.worker_id);
    frozen.signal("CONT");
    // The frozen worker wakes with attempt 1 still in hand: its report is stale.
    eventually("late report rejected as stale", DEADLINE, || async {
        let (_, metrics) = env.api_get(&coordinator.api_url, "/metrics").await;
        let stale: f64 = ["completed", "failed"]
            .iter()
            .filter_map(|kind| {
                metric_value(
                    &metrics,
                    &format!("warren_stale_reports_total{{kind=\"{kind}\"}}"),
                )
            })
            .sum();
        (stale >= 1.0).then_some(())
    })
    .await;
    let job = store.get_job(ids[0]).await.unwrap();
    assert_eq!(
        (job.state(), job.attempt, job.worker_id),
        (JobState::Completed, 2, done.worker_id)
    );
    ledger
        .check("SIGSTOP past the lease", &store, &ids, 1)
        .await;
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn two_coordinator_processes_and_one_is_killed() {
    let mut env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let fast = [("WARREN_DISPATCH_TIMEOUT", "2s")];
    let addr = || format!("127.0.0.1:{}", free_port());
    let doomed = env.spawn_coordinator_process(&addr(), &fast);
    let _survivor = env.spawn_coordinator_process(&addr(), &fast);
    let _a = env.start_worker(&["default"]);
    let _b = env.start_worker(&["default"]);
    let started = std::time::Instant::now();
    let ids = env
        .submit((0..300).map(|n| ledger.job("default", n, 20)).collect())
        .await;
    TestEnv::wait_completed(&store, 100, DEADLINE).await;
    doomed.signal("KILL");
    ledger
        .check("two coordinators, one kill -9", &store, &ids, 1)
        .await;
    println!(
        "two coordinators: 300 jobs in {:.1}s including one coordinator kill",
        started.elapsed().as_secs_f64()
    );
    env.cleanup(&["default"]).await;
}
