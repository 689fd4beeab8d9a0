//! Retention and cleanup: only finished jobs older than the cutoff go, with
//! their events; younger, unfinished and workflow jobs stay. The periodic
//! retention deletes a backlog of several batches while jobs keep flowing
//! (the batch bound itself is tested in warren-store's `cleanup` tests).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use warren_coordinator::Retention;
use warren_core::protocol::{JobSpec, Report};
use warren_core::JobState;
use warren_store::Store;
use warren_tests::{eventually, metric_value, TestEnv, DEADLINE};

/// Inserts `specs` and completes them through the store, as a coordinator
/// would have, without a worker; call it while no coordinator runs (one
/// would dispatch the jobs too). Returns their ids.
async fn completed_directly(store: &Store, specs: Vec<JobSpec>) -> Vec<Uuid> {
    let ids: Vec<Uuid> = specs.iter().map(|s| s.id).collect();
    store.insert_jobs(&specs).await.unwrap();
    let claimed = store
        .claim_for_dispatch(specs.len() as i64, 1_000_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), specs.len());
    let reports: Vec<Report> = claimed
        .iter()
        .flat_map(|d| {
            let job = d.task_message().job_ref();
            [
                Report::Started { job },
                Report::Completed {
                    job,
                    result: json!(null),
                },
            ]
        })
        .collect();
    let batch: Vec<(&str, &Report)> = reports.iter().map(|r| ("test-worker", r)).collect();
    store.apply_reports(&batch).await.unwrap();
    ids
}

/// Moves the jobs' `finished_at` `seconds` into the past.
async fn finished_ago(store: &Store, ids: &[Uuid], seconds: i64) {
    sqlx::query(
        "UPDATE jobs SET finished_at = now() - $2 * interval '1 second' WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(seconds)
    .execute(store.pool())
    .await
    .unwrap();
}

async fn event_counts(store: &Store, ids: &[Uuid]) -> HashMap<Uuid, i64> {
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT job_id, count(*) FROM job_events WHERE job_id = ANY($1) GROUP BY 1")
            .bind(ids)
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows.into_iter().collect()
}

async fn existing(store: &Store, ids: &[Uuid]) -> Vec<Uuid> {
    let mut found: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(store.pool())
        .await
        .unwrap();
    found.sort();
    found
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[tokio::test]
async fn manual_cleanup_deletes_only_old_finished_jobs_with_their_events() {
    let mut env = TestEnv::new().await;
    let store = env.store().await;
    // Completed before any coordinator runs, so none of them is dispatched.
    let done = completed_directly(
        &store,
        (0..5)
            .map(|_| JobSpec::new("default", "echo", json!({})))
            .collect(),
    )
    .await;
    let mut config = env.coordinator_config();
    config.retention = Retention {
        completed: None,
        failed: None,
        cancelled: None,
        ..Retention::default()
    };
    let coordinator = env.start_coordinator_with(config).await;
    let api = &coordinator.api_url;
    let (old_done, young_done, workflow_step) = (&done[..3], done[3], done[4]);
    let gated: Vec<JobSpec> = (0..3)
        .map(|_| {
            let mut spec = JobSpec::new("default", "echo", json!({}));
            spec.requires_approval = true;
            spec
        })
        .collect();
    let gated_ids = env.submit(gated).await;
    for id in &gated_ids {
        env.wait_job(&store, *id, "awaiting approval", |j| {
            j.state() == JobState::AwaitingApproval
        })
        .await;
    }
    let (cancelled_old, cancelled_young, waiting) = (gated_ids[0], gated_ids[1], gated_ids[2]);
    for id in [cancelled_old, cancelled_young] {
        let (status, body) = env.api_post(api, &format!("/v1/jobs/{id}/cancel")).await;
        assert_eq!(status, 200, "{body}");
    }
    sqlx::query("UPDATE jobs SET workflow_id = $2 WHERE id = $1")
        .bind(workflow_step)
        .bind(Uuid::now_v7())
        .execute(store.pool())
        .await
        .unwrap();
    let mut old: Vec<Uuid> = old_done.to_vec();
    old.extend([cancelled_old, workflow_step, waiting]);
    finished_ago(&store, &old, 7200).await;
    let all: Vec<Uuid> = done.iter().copied().chain(gated_ids.clone()).collect();
    let events_before = event_counts(&store, &all).await;

    // Bad requests name the problem and delete nothing.
    for (body, needle) in [
        (json!({ "older_than": "soon" }), "older_than"),
        (
            json!({ "older_than": "1h", "states": ["pending"] }),
            "completed, failed, timeout, cancelled, skipped",
        ),
        (json!({ "older_than": "1h", "states": [] }), "states"),
        (
            json!({ "older_than": "1h", "everything": true }),
            "everything",
        ),
        (json!({}), "older_than"),
    ] {
        let response = env.api_post_json(api, "/v1/cleanup", &body).await;
        assert_eq!(response.status, 400, "{body}: {:?}", response.json);
        let message = response.json["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(existing(&store, &all).await, sorted(all.clone()));

    // Only the states asked for.
    let response = env
        .api_post_json(
            api,
            "/v1/cleanup",
            &json!({ "older_than": "1h", "states": ["cancelled"] }),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.json);
    assert_eq!(response.json["deleted_jobs"], 1);
    assert_eq!(
        response.json["deleted_events"],
        events_before[&cancelled_old]
    );
    assert_eq!(response.json["complete"], true);

    // Then every finished state: the three old completed jobs.
    let response = env
        .api_post_json(api, "/v1/cleanup", &json!({ "older_than": "1h" }))
        .await;
    assert_eq!(response.status, 200, "{:?}", response.json);
    assert_eq!(response.json["deleted_jobs"], 3);
    let old_events: i64 = old_done.iter().map(|id| events_before[id]).sum();
    assert_eq!(response.json["deleted_events"], old_events);

    let kept = sorted(vec![young_done, workflow_step, cancelled_young, waiting]);
    assert_eq!(
        existing(&store, &all).await,
        kept,
        "younger, unfinished and workflow jobs stay"
    );
    let events_after = event_counts(&store, &all).await;
    for id in old_done.iter().chain([&cancelled_old]) {
        assert!(!events_after.contains_key(id), "events of {id} are gone");
    }
    for id in &kept {
        assert_eq!(events_after[id], events_before[id], "events of {id} stay");
    }

    let (_, metrics) = env.api_get(api, "/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            "warren_cleanup_deleted_total{state=\"completed\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "warren_cleanup_deleted_total{state=\"cancelled\"}"
        ),
        Some(1.0)
    );
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn periodic_retention_deletes_a_backlog_while_jobs_flow() {
    let mut env = TestEnv::new().await;
    let store = env.store().await;
    // A backlog larger than one batch, already past its retention.
    let backlog = completed_directly(
        &store,
        (0..2_500)
            .map(|_| JobSpec::new("default", "echo", json!({})))
            .collect(),
    )
    .await;
    finished_ago(&store, &backlog, 60).await;
    let step =
        completed_directly(&store, vec![JobSpec::new("default", "echo", json!({}))]).await[0];
    sqlx::query("UPDATE jobs SET workflow_id = $2 WHERE id = $1")
        .bind(step)
        .bind(Uuid::now_v7())
        .execute(store.pool())
        .await
        .unwrap();
    finished_ago(&store, &[step], 60).await;

    let mut config = env.coordinator_config();
    config.retention = Retention {
        completed: Some(Duration::from_secs(1)),
        failed: Some(Duration::from_secs(1)),
        cancelled: Some(Duration::from_secs(1)),
        interval: Duration::from_millis(200),
    };
    let coordinator = env.start_coordinator_with(config).await;
    let _worker = env.start_worker(&["default"]);
    let api = &coordinator.api_url;

    // Jobs keep flowing while the backlog is deleted.
    let flowing: Vec<JobSpec> = (0..200)
        .map(|_| JobSpec::new("default", "echo", json!({})))
        .collect();
    env.submit(flowing).await;

    let completed =
        "warren_job_transitions_total{from=\"running\",queue=\"default\",to=\"completed\"}";
    eventually("the flowing jobs completed", DEADLINE, || async {
        let (_, metrics) = env.api_get(api, "/metrics").await;
        (metric_value(&metrics, completed) == Some(200.0)).then_some(())
    })
    .await;
    eventually(
        "backlog and finished flowing jobs deleted",
        DEADLINE,
        || async {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
                .fetch_one(store.pool())
                .await
                .ok()?;
            (left == 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        existing(&store, &[step]).await,
        vec![step],
        "workflow steps are kept"
    );
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(orphans, 0, "events go with their jobs");
    let (_, metrics) = env.api_get(api, "/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            "warren_cleanup_deleted_total{state=\"completed\"}"
        ),
        Some(2_700.0),
        "{metrics}"
    );
    env.cleanup(&["default"]).await;
}
