//! Restarting RabbitMQ or PostgreSQL in the middle of a run loses no job.
//! RabbitMQ is restarted mid-burst: jobs are still being submitted while it
//! goes down, and the submitter reconnects and submits again what the
//! broker had not confirmed. PostgreSQL is restarted (fast, then immediate
//! shutdown) while jobs run. A coordinator process and two worker processes
//! ride it out; [`Ledger::check`] then holds with one fault.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout, Instant};
use uuid::Uuid;
use warren_broker::BrokerConfig;
use warren_client::Submitter;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_store::Store;
use warren_tests::{eventually, free_port, ChildGuard, Ledger, TestEnv, DEADLINE};

/// Jobs of a PostgreSQL run; the fewest a RabbitMQ burst submits.
const JOBS: usize = 400;
/// How long each job sleeps before it records its execution.
const JOB_MS: u64 = 20;
/// Jobs per submission of the burst.
const BATCH: usize = 20;
/// Pause between two submissions of the burst.
const PACE: Duration = Duration::from_millis(20);
/// Jobs confirmed when RabbitMQ is restarted.
const RESTART_AT: usize = 100;
/// Batches the burst still submits once it reconnected after the outage.
const BATCHES_AFTER_OUTAGE: usize = 3;
/// How long one connect or one confirmed submission may take.
const BROKER_CALL: Duration = Duration::from_secs(10);
/// How long the submitter keeps trying to reconnect.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(120);
/// Lease and dispatch timeout of the runs with an outage longer than the
/// lease: longer than a worker's reconnection backoff and the coordinator's
/// database retry backoff (at most 5 s each) plus a heartbeat, shorter than
/// the outage.
const OUTAGE_LEASE: &str = "8s";
/// How long PostgreSQL stays stopped in the run with the longer outage.
const POSTGRES_DOWN: Duration = Duration::from_secs(12);
/// How long RabbitMQ stays stopped before it is started again (the start
/// itself takes several seconds more): the outage outlasts the lease.
const RABBITMQ_DOWN: Duration = Duration::from_secs(5);
/// Ledger token of the job that runs through the RabbitMQ outage.
const THROUGH_OUTAGE: usize = 1_000_000;

fn run(script: &str) {
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .status()
        .expect("run shell");
    assert!(status.success(), "`{script}` failed");
}

/// Stops RabbitMQ, keeps it down for `down` more, then starts it again.
fn restart_rabbitmq(down: Duration) {
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/services.sh");
    run(&format!(
        "rabbitmqctl -q stop && sleep {:.1} && bash {services}",
        down.as_secs_f64()
    ));
}

/// `pg_ctlcluster <action>` on the machine's newest cluster.
fn pg_ctlcluster(action: &str) -> String {
    format!("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -1) main {action}")
}

fn restart_postgres(mode: &str) {
    run(&pg_ctlcluster(&format!("restart -m {mode}")));
}

/// Stops PostgreSQL (fast), keeps it down for `down`, starts it again.
fn stop_postgres_for(down: Duration) {
    run(&format!(
        "{} && sleep {:.1} && {}",
        pg_ctlcluster("stop -m fast"),
        down.as_secs_f64(),
        pg_ctlcluster("start")
    ));
}

/// Submits a ledger job that sleeps through an outage and waits until it runs.
async fn start_job_through_outage(env: &TestEnv, store: &Store, ledger: &Ledger) -> Uuid {
    let through = env
        .submit(vec![ledger.job("default", THROUGH_OUTAGE, 25_000)])
        .await[0];
    env.wait_job(store, through, "the long job running", |j| {
        j.state() == JobState::Running
    })
    .await;
    through
}

/// Asserts that the job that ran through an outage finished on its first
/// attempt with no timeout: its worker was silent then, not gone.
async fn assert_kept_its_lease(store: &Store, through: Uuid) {
    let long = store.get_job(through).await.expect("the long job");
    let timeouts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND to_state = 'timeout'",
    )
    .bind(through)
    .fetch_one(store.pool())
    .await
    .expect("timeouts of the long job");
    assert_eq!(
        (long.attempt, timeouts),
        (1, 0),
        "the job that ran through the outage kept its lease: its worker was silent, not gone"
    );
}

/// A coordinator process with `extra` environment (waited for until
/// healthy) and two worker processes on `default`.
async fn start_processes(env: &TestEnv, extra: &[(&str, &str)]) -> Vec<ChildGuard> {
    let addr = format!("127.0.0.1:{}", free_port());
    let coordinator = env.spawn_coordinator_process(&addr, extra);
    let health = format!("http://{addr}/health");
    eventually("coordinator healthy", DEADLINE, || async {
        let response = reqwest::get(&health).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    vec![
        coordinator,
        env.spawn_worker_process("default", &[]),
        env.spawn_worker_process("default", &[]),
    ]
}

/// Runs JOBS ledger jobs, restarts PostgreSQL with `mode` once a quarter
/// completed, then checks the ledger.
async fn postgres_restart_mid_run(mode: &'static str) {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let _processes = start_processes(&env, &[]).await;
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|n| ledger.job("default", n, JOB_MS))
        .collect();
    let ids = env.submit(specs).await;
    TestEnv::wait_completed(&store, JOBS / 4, Duration::from_secs(60)).await;
    let at_restart = TestEnv::completed_jobs(&store).await;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || restart_postgres(mode))
        .await
        .expect("restart ran");
    let restart = started.elapsed();
    ledger
        .check(&format!("postgres {mode} restart"), &store, &ids, 1)
        .await;
    println!(
        "fault postgres {mode} restart: completed_at_restart={at_restart} restart took {:.1}s, \
         all done {:.1}s after it began",
        restart.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    env.cleanup(&["default"]).await;
}

/// What a burst submitted, and what it took.
#[derive(Default)]
struct Burst {
    /// Every job submitted, in order.
    submitted: Vec<Uuid>,
    /// Every job the broker confirmed.
    confirmed: Vec<Uuid>,
    /// Submissions that failed and were made again on a new connection.
    resubmissions: usize,
    /// Batches confirmed after the first failure.
    after_outage: usize,
}

/// A submitter, connected with backoff; panics after RECONNECT_DEADLINE.
async fn connect(config: &BrokerConfig) -> Submitter {
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(Ok(submitter)) =
            timeout(BROKER_CALL, Submitter::connect_with(config.clone())).await
        {
            return submitter;
        }
        assert!(
            start.elapsed() < RECONNECT_DEADLINE,
            "submitter not reconnected within {RECONNECT_DEADLINE:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Submits ledger jobs, BATCH every PACE, each batch again on a new
/// connection until the broker confirms it. Goes on until at least JOBS were
/// submitted and BATCHES_AFTER_OUTAGE batches went through after a failure,
/// or, if it never saw one, BATCHES_AFTER_OUTAGE batches after `restarted`
/// was set: a burst that stopped at a fixed count could end before a slow
/// `rabbitmqctl stop` took the broker down. `confirmed` follows the count.
async fn burst(
    config: BrokerConfig,
    ledger: Arc<Ledger>,
    confirmed: Arc<AtomicUsize>,
    restarted: Arc<AtomicBool>,
) -> Burst {
    let mut out = Burst::default();
    let mut submitter = Some(connect(&config).await);
    let mut after_restart = 0;
    while (out.submitted.len() < JOBS || out.after_outage < BATCHES_AFTER_OUTAGE)
        && after_restart < BATCHES_AFTER_OUTAGE
    {
        let first = out.submitted.len();
        let specs: Vec<JobSpec> = (first..first + BATCH)
            .map(|n| ledger.job("default", n, JOB_MS))
            .collect();
        out.submitted.extend(specs.iter().map(|spec| spec.id));
        loop {
            let current = match submitter.take() {
                Some(current) => current,
                None => connect(&config).await,
            };
            match timeout(BROKER_CALL, current.submit_batch(specs.clone())).await {
                Ok(Ok(ids)) => {
                    submitter = Some(current);
                    out.confirmed.extend(ids);
                    if out.resubmissions > 0 {
                        out.after_outage += 1;
                    }
                    break;
                }
                // The batch may or may not have been taken: the ids make a
                // second submission harmless.
                _ => {
                    out.resubmissions += 1;
                    let _ = timeout(BROKER_CALL, current.close()).await;
                }
            }
        }
        confirmed.store(out.confirmed.len(), Ordering::SeqCst);
        if restarted.load(Ordering::SeqCst) {
            after_restart += 1;
        }
        tokio::time::sleep(PACE).await;
    }
    if let Some(submitter) = submitter {
        submitter.close().await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_mid_burst_loses_no_job() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Arc::new(Ledger::new(&env.namespace));
    // The lease and the dispatch timeout are shorter than the outage (10-15 s
    // here). Silence during it proves nothing, so the returning coordinator
    // must wait until it has heard workers for a whole lease before it times
    // out a lease or takes a queued job for lost; without that wait it timed
    // out the running jobs of live workers whose heartbeats could not reach
    // it, and re-dispatched jobs whose reports were still on their way,
    // either a second extra run beside the redelivery of the tasks that were
    // unacknowledged when the broker stopped. 8 s covers a worker's
    // reconnection backoff (at most 5 s) plus a heartbeat.
    let patient = [
        ("WARREN_LEASE_TIMEOUT", OUTAGE_LEASE),
        ("WARREN_DISPATCH_TIMEOUT", OUTAGE_LEASE),
    ];
    let _processes = start_processes(&env, &patient).await;
    // A job running from before the outage until after it: its worker's
    // heartbeats cannot arrive for longer than the lease, yet it is alive.
    let through = start_job_through_outage(&env, &store, &ledger).await;
    let confirmed = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let submitting = tokio::spawn(burst(
        env.broker_config(),
        ledger.clone(),
        confirmed.clone(),
        restarted.clone(),
    ));
    eventually(
        &format!("{RESTART_AT} jobs confirmed"),
        DEADLINE,
        || async { (confirmed.load(Ordering::SeqCst) >= RESTART_AT).then_some(()) },
    )
    .await;
    let at_restart = confirmed.load(Ordering::SeqCst);
    assert!(
        !submitting.is_finished(),
        "the restart begins while jobs are being submitted"
    );
    let started = Instant::now();
    tokio::task::spawn_blocking(|| restart_rabbitmq(RABBITMQ_DOWN))
        .await
        .expect("restart ran");
    let restart = started.elapsed();
    restarted.store(true, Ordering::SeqCst);
    let burst = submitting.await.expect("burst ran");

    assert!(
        burst.resubmissions > 0 && burst.after_outage >= BATCHES_AFTER_OUTAGE,
        "the burst went on through the outage ({} resubmissions, {} batches after it, {} jobs)",
        burst.resubmissions,
        burst.after_outage,
        burst.submitted.len()
    );
    let mut submitted = burst.submitted.clone();
    let mut accepted = burst.confirmed.clone();
    submitted.sort();
    accepted.sort();
    assert_eq!(accepted, submitted, "every batch was confirmed in the end");
    accepted.push(through);
    ledger
        .check("rabbitmq restart mid-burst", &store, &accepted, 1)
        .await;
    assert_kept_its_lease(&store, through).await;
    // Dispatches returned to pending after the outage, by why: refused or
    // unsent publishes at once, unconfirmed ones once found lost, and any
    // left for the dispatch timeout (intake used to strand a few batches).
    let returned: Vec<(String, i64)> = sqlx::query_as(
        "SELECT detail->>'reason', count(*) FROM job_events
          WHERE from_state = 'queued' AND to_state = 'pending' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .expect("count returned dispatches");
    println!(
        "fault rabbitmq restart mid-burst: submitted={} confirmed_at_restart={at_restart} \
         failed_submissions={} batches_after_outage={} returned_to_pending={returned:?} \
         restart took {:.1}s, all done {:.1}s after it began",
        burst.submitted.len(),
        burst.resubmissions,
        burst.after_outage,
        restart.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    env.cleanup(&["default"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fast_restart_mid_run_loses_no_job() {
    postgres_restart_mid_run("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_immediate_restart_mid_run_loses_no_job() {
    postgres_restart_mid_run("immediate").await;
}

/// PostgreSQL stopped for longer than the lease: the report loop cannot
/// write heartbeats meanwhile, so when the database returns every running
/// job looks silent for longer than its lease. The sweeper must wait until
/// the coordinator has reached the database for a whole lease (the report
/// loop catches up first) before it reads that silence as loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_longer_than_the_lease_times_out_no_live_job() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let patient = [
        ("WARREN_LEASE_TIMEOUT", OUTAGE_LEASE),
        ("WARREN_DISPATCH_TIMEOUT", OUTAGE_LEASE),
    ];
    let _processes = start_processes(&env, &patient).await;
    let through = start_job_through_outage(&env, &store, &ledger).await;
    let mut ids = env
        .submit(
            (0..JOBS)
                .map(|n| ledger.job("default", n, JOB_MS))
                .collect(),
        )
        .await;
    TestEnv::wait_completed(&store, JOBS / 4, Duration::from_secs(60)).await;
    let started = Instant::now();
    tokio::task::spawn_blocking(|| stop_postgres_for(POSTGRES_DOWN))
        .await
        .expect("outage ran");
    let outage = started.elapsed();
    ids.push(through);
    ledger
        .check("postgres down longer than the lease", &store, &ids, 1)
        .await;
    assert_kept_its_lease(&store, through).await;
    println!(
        "fault postgres down longer than the lease: outage {:.1}s with a {OUTAGE_LEASE} lease, \
         all done {:.1}s after it began",
        outage.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    env.cleanup(&["default"]).await;
}
