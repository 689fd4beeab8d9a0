//! `GET /v1/stats` and the gauges reflect a known workload: exact counts
//! of waiting and dead jobs, finished counts, throughput, percentiles per
//! task type, and the age of the oldest due job of a paused queue.

use serde_json::{json, Value};
use warren_core::protocol::JobSpec;
use warren_tests::{eventually, metric_value, TestEnv, DEADLINE};

/// The object of `list` whose `key` is `name`.
fn entry<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|item| item[key] == name))
        .unwrap_or_else(|| panic!("no {key} {name} in {list}"))
}

/// An `exec` job on `default` that fails on its only attempt (built from
/// its wire form).
fn dying() -> JobSpec {
    serde_json::from_value(json!({
        "id": uuid::Uuid::now_v7(),
        "queue": "default",
        "type": "exec",
        "payload": { "cmd": ["false"] },
        "retry": { "max_attempts": 1 },
    }))
    .expect("a valid job")
}

#[tokio::test]
async fn stats_reflect_a_known_workload() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let store = env.store().await;
    // Queue "held" is paused before its jobs arrive, so they stay pending.
    sqlx::query("INSERT INTO queues (name, paused) VALUES ('held', true)")
        .execute(store.pool())
        .await
        .unwrap();
    let _worker = env.start_worker(&["default"]);

    let mut jobs: Vec<JobSpec> = (0..6)
        .map(|i| JobSpec::new("default", "echo", json!({ "i": i })))
        .collect();
    for _ in 0..2 {
        jobs.push(dying());
    }
    for _ in 0..3 {
        jobs.push(JobSpec::new("held", "sleep", json!({ "ms": 1 })));
    }
    env.submit(jobs).await;

    let api = &coordinator.api_url;
    let stats = eventually("6 completed and 2 dead", DEADLINE, || async {
        let (status, body) = env.api_get(api, "/v1/stats").await;
        assert_eq!(status, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).unwrap();
        let default = stats["queues"]
            .as_array()?
            .iter()
            .find(|q| q["queue"] == "default")?
            .clone();
        (default["finished_24h"]["completed"] == 6 && stats["dead"] == 2).then_some(stats)
    })
    .await;

    // Exact counts of waiting and dead jobs, overall and per queue.
    assert_eq!(stats["states"]["pending"], 3, "{stats}");
    assert_eq!(stats["states"]["failed"], 2, "{stats}");
    assert_eq!(stats["states"]["running"], 0, "{stats}");
    assert!(
        stats["states"].get("completed").is_none(),
        "terminal states are only counted over a window: {stats}"
    );
    let default = entry(&stats["queues"], "queue", "default");
    assert_eq!(default["dead"], 2);
    assert_eq!(default["states"]["pending"], 0);
    assert_eq!(default["finished_24h"]["failed"], 2);
    assert_eq!(default["oldest_pending_age_seconds"], 0.0);
    let held = entry(&stats["queues"], "queue", "held");
    assert_eq!(held["states"]["pending"], 3);
    assert_eq!(held["dead"], 0);
    assert!(
        held["oldest_pending_age_seconds"].as_f64().unwrap() > 0.0,
        "{held}"
    );

    // Per task type: counts, and percentiles of the jobs that ran.
    let echo = entry(&stats["task_types"], "task_type", "echo");
    assert_eq!(echo["finished_24h"]["completed"], 6);
    for timing in ["queue_wait_seconds", "run_seconds"] {
        let p = &echo[timing];
        assert_eq!(p["samples"], 6, "{timing}: {p}");
        let (p50, p95, p99) = (
            p["p50"].as_f64().unwrap(),
            p["p95"].as_f64().unwrap(),
            p["p99"].as_f64().unwrap(),
        );
        assert!(0.0 <= p50 && p50 <= p95 && p95 <= p99, "{timing}: {p}");
    }
    let exec = entry(&stats["task_types"], "task_type", "exec");
    assert_eq!(exec["finished_24h"]["failed"], 2);
    assert_eq!(exec["states"]["failed"], 2);
    assert_eq!(exec["run_seconds"]["samples"], 2);
    let sleep = entry(&stats["task_types"], "task_type", "sleep");
    assert_eq!(sleep["states"]["pending"], 3);
    assert!(sleep["run_seconds"].is_null(), "nothing ran: {sleep}");

    // Throughput and the last 24 hours.
    let minute = &stats["throughput"]["last_minute"];
    assert_eq!(
        (minute["completed"].as_i64(), minute["failed"].as_i64()),
        (Some(6), Some(2))
    );
    assert_eq!(minute["seconds"], 60.0);
    let per_second = minute["completed_per_second"].as_f64().unwrap();
    assert!((per_second - 0.1).abs() < 1e-9, "{minute}");
    assert_eq!(stats["throughput"]["last_hour"]["completed"], 6);
    assert_eq!(stats["last_24h"]["created"], 11);
    assert_eq!(stats["last_24h"]["finished"], 8);
    assert_eq!(stats["sample"]["complete"], true);
    assert_eq!(stats["sample"]["rows"], 8);

    // The gauges agree, without counting completed jobs.
    let metrics = eventually("gauges refreshed", DEADLINE, || async {
        let (_, body) = env.api_get(api, "/metrics").await;
        let held = metric_value(&body, "warren_jobs{queue=\"held\",state=\"pending\"}");
        (held == Some(3.0)).then_some(body)
    })
    .await;
    assert_eq!(
        metric_value(&metrics, "warren_jobs{queue=\"default\",state=\"failed\"}"),
        Some(2.0)
    );
    assert!(
        metric_value(
            &metrics,
            "warren_oldest_pending_age_seconds{queue=\"held\"}"
        )
        .is_some_and(|age| age > 0.0),
        "{metrics}"
    );
    assert!(!metrics.contains("warren_jobs{queue=\"default\",state=\"completed\"}"));

    // Like every /v1 route, it needs the token.
    let anonymous = reqwest::get(format!("{api}/v1/stats")).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    env.cleanup(&["default", "held"]).await;
}
