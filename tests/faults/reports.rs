//! Duplicate, replayed and out-of-order reports change nothing: every report
//! envelope a worker process sent during a run (captured by a tap on the
//! reports exchange) is published again once the run is over, each twice,
//! newest first. The coordinator counts each report as stale and leaves
//! every job row, the event log and the ledger as they were.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;
use warren_core::protocol::{JobSpec, Report, ReportEnvelope};
use warren_store::Store;
use warren_tests::{eventually, metric_value, Ledger, Tap, TestEnv, DEADLINE};

/// Jobs in the run.
const JOBS: usize = 200;
/// Every FLAKY_EVERY-th job fails its first attempt.
const FLAKY_EVERY: usize = 5;
/// Copies of each captured envelope published again.
const COPIES: usize = 2;
/// Report kinds the coordinator counts as stale, one label each.
const KINDS: [&str; 4] = ["started", "progress", "completed", "failed"];

/// Every job row, whole, as JSON text, by id.
async fn job_rows(store: &Store) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT id, to_jsonb(j)::text FROM jobs j ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("read jobs")
}

async fn event_count(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_events")
        .fetch_one(store.pool())
        .await
        .expect("count events")
}

/// `warren_stale_reports_total` by kind.
async fn stale_reports(env: &TestEnv, api_url: &str) -> HashMap<&'static str, u64> {
    let (status, metrics) = env.api_get(api_url, "/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    KINDS
        .iter()
        .map(|kind| {
            let series = format!("warren_stale_reports_total{{kind=\"{kind}\"}}");
            (*kind, metric_value(&metrics, &series).unwrap_or(0.0) as u64)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_replayed_and_out_of_order_reports_change_nothing() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let store = env.store().await;
    let ledger = Ledger::new(&env.namespace);
    let names = env.broker_config().names();
    // Bound before anything runs, so it sees every report the worker sends.
    let tap = Tap::bind(
        &env,
        &names.reports_exchange(),
        &[warren_broker::REPORT_ROUTING_KEY],
    )
    .await;
    let _worker = env.spawn_worker_process("default", &[("WARREN_CONCURRENCY", "8")]);

    // Short jobs end within the worker's coalescing window (one Completed
    // report), long ones report Started first; flaky ones fail once.
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|n| {
            let ms = if n % 2 == 0 { 10 } else { 120 };
            if n % FLAKY_EVERY == 0 {
                ledger.flaky_job("default", n, ms)
            } else {
                ledger.job("default", n, ms)
            }
        })
        .collect();
    let ids = env.submit(specs).await;
    let before = ledger
        .check("reports, before replay", &store, &ids, 0)
        .await;
    assert!(before.retried >= JOBS / FLAKY_EVERY, "{before:?}");

    let rows = job_rows(&store).await;
    let events = event_count(&store).await;
    let executions = ledger.executions();
    let baseline = stale_reports(&env, &coordinator.api_url).await;
    // Every report was routed to the tap when it was published, before the
    // coordinator applied it, so the tap holds all of them by now.
    let captured: Vec<Vec<u8>> = tap.drain().await.into_iter().map(|m| m.body).collect();
    tap.close().await;

    let mut reports: HashMap<&str, usize> = HashMap::new();
    let mut progress_attempts = HashSet::new();
    let mut heartbeats = 0;
    for body in &captured {
        let envelope: ReportEnvelope = serde_json::from_slice(body).expect("a report envelope");
        heartbeats += usize::from(envelope.heartbeat.is_some());
        for report in &envelope.reports {
            *reports.entry(report.kind()).or_default() += 1;
            if let Report::Progress { job, .. } = report {
                progress_attempts.insert(*job);
            }
        }
    }
    let count = |kind: &str| reports.get(kind).copied().unwrap_or(0);
    assert_eq!(
        count("completed"),
        JOBS,
        "one Completed per job: {reports:?}"
    );
    assert_eq!(
        count("failed"),
        JOBS / FLAKY_EVERY,
        "one Failed per flaky job: {reports:?}"
    );

    // Each envelope twice, newest first: duplicates, replays, out of order.
    let replay: Vec<Vec<u8>> = captured
        .iter()
        .rev()
        .flat_map(|body| std::iter::repeat_n(body.clone(), COPIES))
        .collect();
    env.publish_raw_all(
        &names.reports_exchange(),
        warren_broker::REPORT_ROUTING_KEY,
        &replay,
    )
    .await;

    // Started, Completed and Failed are counted once per report. Progress
    // reports of one attempt in one coordinator batch are merged into one
    // update (and so counted once), so theirs is a range.
    let exact = ["started", "completed", "failed"];
    let grown = eventually(
        "every republished report counted as stale",
        DEADLINE,
        || async {
            let now = stale_reports(&env, &coordinator.api_url).await;
            let grown: HashMap<&str, u64> = KINDS
                .iter()
                .map(|kind| (*kind, now[kind] - baseline[kind]))
                .collect();
            let done = exact
                .iter()
                .all(|kind| grown[kind] >= (COPIES * count(kind)) as u64)
                && grown["progress"] >= progress_attempts.len() as u64;
            done.then_some(grown)
        },
    )
    .await;
    for kind in exact {
        assert_eq!(
            grown[kind],
            (COPIES * count(kind)) as u64,
            "stale {kind} reports: {grown:?}"
        );
    }
    assert!(grown["progress"] <= (COPIES * count("progress")) as u64);

    let after_rows = job_rows(&store).await;
    let changed = rows
        .iter()
        .zip(&after_rows)
        .filter(|(before, after)| before != after)
        .count();
    assert_eq!(after_rows.len(), rows.len(), "no job appeared or vanished");
    assert_eq!(changed, 0, "no job row changed");
    assert_eq!(event_count(&store).await, events, "no event written");
    assert_eq!(ledger.executions(), executions, "nothing executed again");
    assert_eq!(env.dead_letters().await, 0, "nothing dead-lettered");
    let after = ledger.check("reports, after replay", &store, &ids, 0).await;
    assert_eq!(after, before);

    let republished: usize = reports.values().sum::<usize>() * COPIES;
    println!(
        "fault replayed reports: envelopes={} with_heartbeat={heartbeats} republished_envelopes={} \
         republished_reports={republished} (started={} completed={} failed={} progress={}) \
         stale_counted={} rows_changed={changed} events={events} (unchanged) dead_lettered=0",
        captured.len(),
        replay.len(),
        COPIES * count("started"),
        COPIES * count("completed"),
        COPIES * count("failed"),
        COPIES * count("progress"),
        grown.values().sum::<u64>(),
    );
    env.cleanup(&["default"]).await;
}
