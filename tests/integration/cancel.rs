//! Cancellation: queued jobs never run; a running job's handler is told
//! and stops; illegal cancels are refused with 409.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{eventually, metric_value, TestEnv, DEADLINE};
use warren_worker::{HandlerError, Registry};

#[tokio::test]
async fn cancelling_a_running_job_stops_its_handler() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let started = Arc::new(Notify::new());
    let stopped = Arc::new(Notify::new());
    let mut registry = Registry::new();
    let (on_start, on_stop) = (started.clone(), stopped.clone());
    registry.register("block", move |ctx, _| {
        let (on_start, on_stop) = (on_start.clone(), on_stop.clone());
        async move {
            on_start.notify_one();
            ctx.cancelled().await;
            on_stop.notify_one();
            Err(HandlerError::retryable("cancelled"))
        }
    });
    let config = env.worker_config(&["default"]);
    let _worker = env.start_worker_with(config, registry);
    let store = env.store().await;
    let id = env
        .submit(vec![JobSpec::new("default", "block", json!({}))])
        .await[0];
    tokio::time::timeout(DEADLINE, started.notified())
        .await
        .expect("handler started");
    env.wait_job(&store, id, "running", |j| j.state() == JobState::Running)
        .await;

    let (status, body) = env
        .api_post(&coordinator.api_url, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(DEADLINE, stopped.notified())
        .await
        .expect("handler was told to stop");
    // The handler's late "failed" report is stale: the job stays cancelled.
    let stale = eventually("stale report counted", DEADLINE, || async {
        let (_, metrics) = env.api_get(&coordinator.api_url, "/metrics").await;
        let stale = metric_value(&metrics, "warren_stale_reports_total{kind=\"failed\"}");
        (stale >= Some(1.0)).then_some(())
    });
    stale.await;
    assert_eq!(
        store.get_job(id).await.unwrap().state(),
        JobState::Cancelled
    );

    let (status, body) = env
        .api_post(&coordinator.api_url, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 409);
    assert!(body.contains("from cancelled to cancelled"), "{body}");
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn cancelled_delayed_job_never_runs() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let delayed = JobSpec {
        delay_ms: Some(1_500),
        ..JobSpec::new("default", "echo", json!({}))
    };
    let id = env.submit(vec![delayed]).await[0];
    env.wait_job(&store, id, "accepted", |j| j.state() == JobState::Pending)
        .await;
    let (status, _) = env
        .api_post(&coordinator.api_url, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 200);
    // A later job on the same queue completes, and the cancelled one never started.
    let later = JobSpec {
        delay_ms: Some(2_000),
        ..JobSpec::new("default", "echo", json!({}))
    };
    let later = env.submit(vec![later]).await[0];
    env.wait_job(&store, later, "later job completed", |j| {
        j.state() == JobState::Completed
    })
    .await;
    let job = store.get_job(id).await.unwrap();
    assert_eq!((job.state(), job.attempt), (JobState::Cancelled, 0));
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn api_requires_the_token_and_answers_unknown_jobs_with_404() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let url = format!("{}/v1/jobs/{}", coordinator.api_url, uuid::Uuid::now_v7());
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = reqwest::Client::new()
        .get(&url)
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (status, body) = env
        .api_get(&coordinator.api_url, &url[coordinator.api_url.len()..])
        .await;
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
    let (status, _) = env
        .api_get(&coordinator.api_url, "/v1/jobs/not-a-uuid")
        .await;
    assert_eq!(status, 400);
    let client = reqwest::Client::new();
    let huge = format!(
        r#"{{"v":1,"jobs":[],"pad":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let too_large = client
        .post(format!("{}/v1/jobs", coordinator.api_url))
        .bearer_auth(warren_tests::TEST_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status().as_u16(), 413);
    assert!(too_large
        .text()
        .await
        .unwrap()
        .contains("\"code\":\"payload_too_large\""));
    let (status, body) = env
        .api_get(&coordinator.api_url, "/v1/jobs?limit=abc")
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("\"code\":\"bad_request\""), "{body}");
    let health = reqwest::get(format!("{}/health", coordinator.api_url))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200, "health needs no token");
    env.cleanup(&[]).await;
}
