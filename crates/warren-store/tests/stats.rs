//! Aggregates: exact counts of unfinished and dead jobs per queue, the
//! oldest due job per queue, and the report built from a known set of jobs.

mod common;

use common::*;
use serde_json::json;
use warren_core::protocol::JobSpec;

fn count(rows: &[warren_store::QueueStateCount], queue: &str, state: &str) -> i64 {
    rows.iter()
        .find(|r| r.queue == queue && r.state == state)
        .unwrap_or_else(|| panic!("no row for {queue}/{state}"))
        .count
}

#[tokio::test]
async fn unfinished_counts_are_exact_and_skip_terminal_states() {
    let db = TestDb::new().await;
    let store = &db.store;
    let done: Vec<JobSpec> = (0..5).map(|_| spec("alpha")).collect();
    finish_all(store, &done, |i| i == 0).await;
    let waiting: Vec<JobSpec> = (0..3).map(|_| spec("beta")).collect();
    insert(store, &waiting).await;
    let mut gated = spec("alpha");
    gated.requires_approval = true;
    submit(store, gated).await;

    let rows = store.count_unfinished_by_queue().await.unwrap();
    assert_eq!(
        rows.len(),
        2 * 8,
        "every queue × counted state, zeros included"
    );
    assert_eq!(count(&rows, "alpha", "failed"), 1);
    assert_eq!(count(&rows, "alpha", "awaiting_approval"), 1);
    assert_eq!(count(&rows, "alpha", "pending"), 0);
    assert_eq!(count(&rows, "beta", "pending"), 3);
    assert!(rows.iter().all(|r| r.state != "completed"));
    db.cleanup().await;
}

#[tokio::test]
async fn the_oldest_due_job_is_found_across_priorities() {
    let db = TestDb::new().await;
    let store = &db.store;
    let mut low = spec("q");
    low.priority = 0;
    let mut high = spec("q");
    high.priority = 9;
    let mut later = spec("q");
    later.delay_ms = Some(3_600_000);
    insert(store, &[low.clone(), high, later]).await;
    submit(store, spec("idle")).await;
    // The low-priority job has waited longest.
    sqlx::query("UPDATE jobs SET run_at = now() - interval '90 seconds' WHERE id = $1")
        .bind(low.id)
        .execute(db.pool())
        .await
        .unwrap();
    store.claim_for_dispatch(10, 1).await.unwrap();

    let ages: std::collections::HashMap<String, f64> = store
        .oldest_due_by_queue()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let q = ages["q"];
    assert!((90.0..120.0).contains(&q), "{q}");
    assert_eq!(ages["idle"], 0.0, "its only job was dispatched (window 1)");
    db.cleanup().await;
}

#[tokio::test]
async fn the_report_counts_a_known_set_of_jobs() {
    let db = TestDb::new().await;
    let store = &db.store;
    let jobs: Vec<JobSpec> = (0..6)
        .map(|i| JobSpec::new("default", if i < 4 { "echo" } else { "resize" }, json!({})))
        .collect();
    let ids = finish_all(store, &jobs, |i| i == 5).await;
    // One echo finished two hours ago: counted for the day, not the hour.
    finished_ago(store, &[ids[0]], 7200.0).await;
    insert(store, &[spec("default"), spec("other")]).await;

    let report = store.stats_report().await.unwrap();
    assert_eq!(report.states["pending"], 2);
    assert_eq!(report.states["failed"], 1);
    assert_eq!(report.dead, 1);
    assert!(!report.states.contains_key("completed"));
    let names: Vec<&str> = report.queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["default", "other"]);
    let default = &report.queues[0];
    assert_eq!(default.finished_24h["completed"], 5);
    assert_eq!(default.finished_24h["failed"], 1);
    assert_eq!(default.states["pending"], 1);
    assert_eq!(default.dead, 1);

    let echo = report
        .task_types
        .iter()
        .find(|t| t.task_type == "echo")
        .unwrap();
    assert_eq!(echo.finished_24h["completed"], 4);
    assert_eq!(echo.states["pending"], 2, "the two new jobs are echo jobs");
    let run = echo.run_seconds.expect("echo ran");
    assert_eq!(
        run.samples, 3,
        "the one finished two hours ago is not recent"
    );
    let resize = report
        .task_types
        .iter()
        .find(|t| t.task_type == "resize")
        .unwrap();
    assert_eq!(resize.finished_24h["failed"], 1);
    assert_eq!(resize.run_seconds.unwrap().samples, 2);

    assert_eq!(report.throughput.last_minute.completed, 4);
    assert_eq!(report.throughput.last_minute.failed, 1);
    assert_eq!(report.throughput.last_hour.completed, 4);
    assert_eq!(report.last_24h.created, 8);
    assert!(report.last_24h.created_complete);
    assert_eq!(report.last_24h.finished, 6);
    assert!(report.sample.complete);
    assert_eq!(report.sample.rows, 6);
    assert!(report.sample.task_type_states_complete);
    db.cleanup().await;
}
