//! Authentication of every `/v1` route over real HTTP: no token and a wrong
//! token get 401; the read-only token may use every GET and gets 403 on
//! every mutating route, which then changes nothing; the admin token reads
//! everything. A new route is one line in [`ROUTES`].

use serde_json::{json, Value};
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{api_call, eventually, TestEnv, DEADLINE, TEST_READ_TOKEN, TEST_TOKEN};

/// Every route under `/v1`: method and path, with `{job}` and `{queue}`
/// standing for an existing job and queue.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job}"),
    ("GET", "/v1/jobs/{job}/events"),
    ("POST", "/v1/jobs/{job}/cancel"),
    ("POST", "/v1/jobs/{job}/retry"),
    ("POST", "/v1/jobs/{job}/approve"),
    ("GET", "/v1/workers"),
    ("GET", "/v1/queues"),
    ("GET", "/v1/queues/{queue}"),
    ("PATCH", "/v1/queues/{queue}"),
    ("POST", "/v1/queues/{queue}/pause"),
    ("POST", "/v1/queues/{queue}/resume"),
    ("GET", "/v1/stats"),
    ("POST", "/v1/cleanup"),
    ("POST", "/v1/workflows"),
    ("GET", "/v1/workflows"),
    ("GET", "/v1/workflows/{workflow}"),
    ("GET", "/v1/workflows/{workflow}/events"),
    ("POST", "/v1/workflows/{workflow}/pause"),
    ("POST", "/v1/workflows/{workflow}/resume"),
    ("POST", "/v1/workflows/{workflow}/cancel"),
    ("POST", "/v1/workflows/{workflow}/recover"),
    ("POST", "/v1/workflows/{workflow}/steps/{step}/retry"),
    ("GET", "/v1/templates"),
    ("GET", "/v1/templates/{template}"),
    ("PUT", "/v1/templates/{template}"),
    ("GET", "/v1/openapi.json"),
];

/// Name of the template the test stores; `{template}` in [`ROUTES`].
const TEMPLATE: &str = "auth-template";

/// A one-step workflow on queue "default" (which has no worker).
fn workflow() -> Value {
    json!({ "name": "auth-flow", "steps": [{ "name": "only", "queue": "default", "type": "echo" }] })
}

/// Version `version` of a one-step template.
fn template(version: u32) -> Value {
    json!({ "name": TEMPLATE, "version": version, "workflow": workflow() })
}

/// A body a mutating route would accept from the admin token, so a 403 is
/// not a validation error in disguise.
fn body_for(method: &str, path: &str) -> Option<String> {
    match (method, path) {
        ("POST", "/v1/jobs") => {
            let spec = JobSpec::new("default", "echo", json!({}));
            Some(json!({ "v": 1, "jobs": [spec] }).to_string())
        }
        ("PATCH", _) => Some(json!({ "paused": true, "max_in_flight": 1 }).to_string()),
        ("POST", "/v1/cleanup") => Some(json!({ "older_than": "1h" }).to_string()),
        ("POST", "/v1/workflows") => Some(workflow().to_string()),
        ("POST", "/v1/workflows/{workflow}/recover") => {
            Some(json!({ "from_step": "only" }).to_string())
        }
        ("PUT", "/v1/templates/{template}") => Some(template(2).to_string()),
        _ => None,
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_route_checks_the_token_and_the_read_only_role() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = coordinator.api_url.as_str();
    let store = env.store().await;
    // A job that stays put (no worker): awaiting approval on queue "default".
    let mut gated = JobSpec::new("default", "echo", json!({}));
    gated.requires_approval = true;
    let job = env.submit(vec![gated]).await[0];
    env.wait_job(&store, job, "accepted", |j| {
        j.state() == JobState::AwaitingApproval
    })
    .await;

    let (status, created) = api_call(
        api,
        "POST",
        "/v1/workflows",
        Some(TEST_TOKEN),
        Some(&workflow().to_string()),
    )
    .await;
    assert_eq!(status, 201, "workflow created: {created}");
    let flow = created["id"].as_str().expect("workflow id").to_owned();
    let path = format!("/v1/templates/{TEMPLATE}");
    let (status, stored) = api_call(
        api,
        "PUT",
        &path,
        Some(TEST_TOKEN),
        Some(&template(1).to_string()),
    )
    .await;
    assert_eq!(status, 201, "template stored: {stored}");
    let flow_path = format!("/v1/workflows/{flow}");
    // The engine starts it (pending -> running); its step then waits for a worker.
    eventually("the workflow running", DEADLINE, || async {
        let (_, progress) = api_call(api, "GET", &flow_path, Some(TEST_TOKEN), None).await;
        (progress["status"] == "running").then_some(())
    })
    .await;

    for (method, template) in ROUTES {
        let path = template
            .replace("{job}", &job.to_string())
            .replace("{queue}", "default")
            .replace("{workflow}", &flow)
            .replace("{step}", "only")
            .replace("{template}", TEMPLATE);
        let body = body_for(method, template);
        let route = format!("{method} {template}");

        let (status, answer) = api_call(api, method, &path, None, body.as_deref()).await;
        assert_eq!(
            (status, code(&answer)),
            (401, "unauthorized"),
            "{route} without a token"
        );
        let wrong = Some("not-the-token-0123456789");
        let (status, answer) = api_call(api, method, &path, wrong, body.as_deref()).await;
        assert_eq!(
            (status, code(&answer)),
            (401, "unauthorized"),
            "{route} with a wrong token"
        );
        let (status, answer) = api_call(api, method, &path, Some(&TEST_TOKEN[1..]), None).await;
        assert_eq!(
            (status, code(&answer)),
            (401, "unauthorized"),
            "{route} with a token prefix"
        );

        let (status, answer) =
            api_call(api, method, &path, Some(TEST_READ_TOKEN), body.as_deref()).await;
        if *method == "GET" {
            assert_eq!(status, 200, "{route} with the read-only token: {answer}");
            let (status, answer) = api_call(api, method, &path, Some(TEST_TOKEN), None).await;
            assert_eq!(status, 200, "{route} with the admin token: {answer}");
        } else {
            assert_eq!(
                (status, code(&answer)),
                (403, "forbidden"),
                "{route} with the read-only token"
            );
        }
    }

    // The refused mutations changed nothing.
    assert_eq!(
        store.get_job(job).await.unwrap().state(),
        JobState::AwaitingApproval
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE workflow_id IS NULL")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 1, "the refused POST /v1/jobs created nothing");
    let (_, queue) = api_call(
        api,
        "GET",
        "/v1/queues/default",
        Some(TEST_READ_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (&queue["paused"], &queue["max_in_flight"]),
        (&json!(false), &Value::Null)
    );
    let workflows: i64 = sqlx::query_scalar("SELECT count(*) FROM workflows")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        workflows, 1,
        "the refused POST /v1/workflows created nothing"
    );
    let (_, after) = api_call(api, "GET", &flow_path, Some(TEST_TOKEN), None).await;
    assert_eq!(
        after["status"], "running",
        "refused workflow moves changed nothing"
    );
    let (_, latest) = api_call(api, "GET", &path, Some(TEST_TOKEN), None).await;
    assert_eq!(
        latest["version"], 1,
        "the refused PUT stored no template version"
    );
    // Health and metrics stay open.
    for open in ["/health", "/metrics"] {
        let (status, _) = api_call(api, "GET", open, None, None).await;
        assert_eq!(status, 200, "{open}");
    }
    env.cleanup(&["default"]).await;
}
