//! Restarting RabbitMQ or PostgreSQL in the middle of a run loses no job:
//! every accepted job reaches `completed` exactly once.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_tests::{eventually, TestEnv};

const JOBS: usize = 400;

fn run(script: &str) {
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .status()
        .expect("run shell");
    assert!(status.success(), "`{script}` failed");
}

/// Runs JOBS sleep jobs on two workers, calls `disrupt` once a quarter has
/// completed, then checks the ledger: all completed, each exactly once.
async fn survives(disrupt: impl FnOnce() + Send + 'static) {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let _a = env.start_worker(&["default"]);
    let _b = env.start_worker(&["default"]);
    let store = env.store().await;
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|_| JobSpec::new("default", "sleep", json!({ "ms": 40 })))
        .collect();
    let ids: Vec<Uuid> = env.submit(specs).await;

    eventually("a quarter completed", Duration::from_secs(60), || async {
        (TestEnv::completed_jobs(&store).await >= JOBS / 4).then_some(())
    })
    .await;
    tokio::task::spawn_blocking(disrupt)
        .await
        .expect("disruption ran");

    let done = eventually(
        "all jobs completed after the restart",
        Duration::from_secs(180),
        || async {
            let n = TestEnv::completed_jobs(&store).await;
            (n == JOBS).then_some(n)
        },
    )
    .await;
    assert_eq!(done, JOBS);
    let ledger: Vec<(Uuid, i64, i32)> = sqlx::query_as(
        "SELECT j.id, (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.to_state = 'completed'), j.attempt FROM jobs j",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        ledger.len(),
        ids.len(),
        "no accepted job lost, none invented"
    );
    assert!(
        ledger.iter().all(|(_, completions, _)| *completions == 1),
        "each job completed exactly once"
    );
    let extra = ledger.iter().filter(|(_, _, attempt)| *attempt > 1).count();
    println!("fault ledger: jobs={JOBS} completed={done} lost=0 retried_after_fault={extra}");
    env.cleanup(&["default"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_mid_run_loses_no_job() {
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/services.sh");
    survives(move || run(&format!("rabbitmqctl -q stop && bash {services}"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fast_restart_mid_run_loses_no_job() {
    survives(|| run("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -1) main restart -m fast")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_immediate_restart_mid_run_loses_no_job() {
    survives(|| run("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -1) main restart -m immediate")).await;
}
