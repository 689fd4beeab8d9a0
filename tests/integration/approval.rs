//! The approval gate records who approved (or cancelled) a job, and why,
//! in the job's event log; bodies are optional and bounded.

use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::TestEnv;

fn gated() -> JobSpec {
    let mut spec = JobSpec::new("default", "echo", json!({}));
    spec.requires_approval = true;
    spec
}

/// The detail of the job's event that moved it to `to`.
async fn detail(env: &TestEnv, api: &str, id: Uuid, to: &str) -> Value {
    let (status, body) = env.api_get(api, &format!("/v1/jobs/{id}/events")).await;
    assert_eq!(status, 200, "{body}");
    let events: Value = serde_json::from_str(&body).unwrap();
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to_state"] == to)
        .unwrap_or_else(|| panic!("no event to {to}: {events}"))["detail"]
        .clone()
}

#[tokio::test]
async fn approvals_and_cancels_record_who_and_why() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let api = &coordinator.api_url;
    let ids = env.submit(vec![gated(), gated(), gated(), gated()]).await;
    for id in &ids {
        env.wait_job(&store, *id, "awaiting approval", |j| {
            j.state() == JobState::AwaitingApproval
        })
        .await;
    }

    // Invalid notes are refused and the job keeps waiting.
    for body in [
        json!({ "by": "" }),
        json!({ "by": "x".repeat(101) }),
        json!({ "by": "alice", "comment": "x".repeat(1001) }),
        json!({ "by": "alice", "reason": "approve takes a comment" }),
        json!("alice"),
    ] {
        let response = env
            .api_post_json(api, &format!("/v1/jobs/{}/approve", ids[0]), &body)
            .await;
        assert_eq!(response.status, 400, "{body}: {:?}", response.json);
        assert_eq!(response.json["error"]["code"], "bad_request");
    }
    assert_eq!(
        store.get_job(ids[0]).await.unwrap().state(),
        JobState::AwaitingApproval
    );

    let response = env
        .api_post_json(
            api,
            &format!("/v1/jobs/{}/approve", ids[0]),
            &json!({ "by": "alice", "comment": "checked the payload" }),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.json);
    assert_eq!(response.json["to"], "pending");
    assert_eq!(
        detail(&env, api, ids[0], "pending").await,
        json!({ "by": "alice", "comment": "checked the payload" })
    );
    env.wait_job(&store, ids[0], "approved job ran", |j| {
        j.state() == JobState::Completed
    })
    .await;

    // Without a body the event still says the API did it.
    let (status, body) = env
        .api_post(api, &format!("/v1/jobs/{}/approve", ids[1]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        detail(&env, api, ids[1], "pending").await,
        json!({ "by": "api" })
    );

    let response = env
        .api_post_json(
            api,
            &format!("/v1/jobs/{}/cancel", ids[2]),
            &json!({ "by": "bob", "reason": "duplicate of another job" }),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.json);
    assert_eq!(
        detail(&env, api, ids[2], "cancelled").await,
        json!({ "by": "bob", "reason": "duplicate of another job" })
    );

    // A refused move with a note is still a 409 naming both states.
    let response = env
        .api_post_json(
            api,
            &format!("/v1/jobs/{}/approve", ids[2]),
            &json!({ "by": "carol" }),
        )
        .await;
    assert_eq!(response.status, 409);
    let message = response.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cancelled") && message.contains("pending"),
        "{message}"
    );
    env.cleanup(&["default"]).await;
}
