//! `GET /v1/jobs` over HTTP: filters, the sort allowlist, the page cap,
//! unknown parameters, and cursor walks that return every row exactly once
//! for each sort. Also: a wrong method on a known route is a JSON 405.

use std::collections::HashSet;

use serde_json::{json, Value};
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::TestEnv;

/// Walks `query` with pages of `limit`; returns the ids in order.
async fn walk(env: &TestEnv, api: &str, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/jobs?{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, body) = env.api_get(api, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= limit);
        ids.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

async fn error(env: &TestEnv, api: &str, path: &str) -> (u16, String) {
    let (status, body) = env.api_get(api, path).await;
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    (
        status,
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
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
async fn job_listing_filters_sorts_and_pages_over_http() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let api = &coordinator.api_url;

    let mut specs: Vec<JobSpec> = (0..9)
        .map(|i| JobSpec::new("default", "echo", json!({ "i": i })))
        .collect();
    for _ in 0..3 {
        specs.push(dying());
    }
    let mut gated = JobSpec::new("other", "echo", json!({}));
    gated.requires_approval = true;
    specs.push(gated.clone());
    let ids = env.submit(specs).await;
    for id in &ids[..12] {
        env.wait_job(&store, *id, "finished", |j| j.finished_at.is_some())
            .await;
    }
    env.wait_job(&store, gated.id, "waiting", |j| {
        j.state() == JobState::AwaitingApproval
    })
    .await;
    let workflow = uuid::Uuid::now_v7();
    sqlx::query("UPDATE jobs SET workflow_id = $1 WHERE id = ANY($2)")
        .bind(workflow)
        .bind(&ids[..2])
        .execute(store.pool())
        .await
        .unwrap();

    let all: HashSet<String> = ids.iter().map(|id| id.to_string()).collect();
    let set = |ids: &[uuid::Uuid]| ids.iter().map(|id| id.to_string()).collect::<HashSet<_>>();

    // Every sort walks every matching row exactly once, in order.
    for (query, expected_len) in [
        ("sort=created_at&order=desc", 13),
        ("sort=created_at&order=asc", 13),
        ("sort=finished_at&order=desc", 12),
        ("sort=finished_at&order=asc", 12),
    ] {
        let full = walk(&env, api, query, 100).await;
        assert_eq!(full.len(), expected_len, "{query}");
        for limit in [1, 5] {
            assert_eq!(
                walk(&env, api, query, limit).await,
                full,
                "{query} by {limit}"
            );
        }
        assert_eq!(
            full.iter().cloned().collect::<HashSet<_>>().len(),
            full.len()
        );
        assert!(full.iter().all(|id| all.contains(id)));
    }
    let newest = walk(&env, api, "sort=created_at", 100).await;
    let mut by_id = newest.clone();
    by_id.sort();
    by_id.reverse();
    assert_eq!(newest, by_id, "newest first by default");

    // Filters.
    let walked = |query: &'static str| {
        let env = &env;
        async move {
            walk(env, api, query, 100)
                .await
                .into_iter()
                .collect::<HashSet<_>>()
        }
    };
    assert_eq!(walked("dead=true").await, set(&ids[9..12]));
    assert_eq!(walked("type=exec").await, set(&ids[9..12]));
    assert_eq!(walked("type=echo&state=completed").await, set(&ids[..9]));
    assert_eq!(walked("queue=other").await, set(&[gated.id]));
    assert_eq!(
        walk(&env, api, &format!("workflow={workflow}"), 1)
            .await
            .into_iter()
            .collect::<HashSet<_>>(),
        set(&ids[..2])
    );
    assert_eq!(
        walked("dead=true&sort=finished_at&order=asc").await,
        set(&ids[9..12])
    );
    // The first API's `before` cursor still pages the default order.
    let first = walk(&env, api, "state=completed", 100).await;
    let (status, body) = env
        .api_get(
            api,
            &format!("/v1/jobs?state=completed&before={}", first[0]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), first.len() - 1);

    // Refusals name what is allowed.
    let (status, message) = error(&env, api, "/v1/jobs?sort=priority").await;
    assert_eq!(status, 400);
    assert!(message.contains("created_at, finished_at"), "{message}");
    let (status, message) = error(&env, api, "/v1/jobs?sort=created_at&order=sideways").await;
    assert_eq!(status, 400);
    assert!(message.contains("asc, desc"), "{message}");
    let (status, message) = error(&env, api, "/v1/jobs?limit=501").await;
    assert_eq!(status, 400);
    assert!(message.contains("between 1 and 500"), "{message}");
    assert_eq!(error(&env, api, "/v1/jobs?limit=0").await.0, 400);
    let (status, message) = error(&env, api, "/v1/jobs?stat=failed").await;
    assert_eq!(status, 400);
    assert!(message.contains("stat"), "{message}");
    assert_eq!(error(&env, api, "/v1/jobs?dead=maybe").await.0, 400);
    assert_eq!(error(&env, api, "/v1/jobs?workflow=nope").await.0, 400);
    assert_eq!(
        error(&env, api, "/v1/jobs?sort=finished_at&cursor=nope")
            .await
            .0,
        400
    );
    let (status, message) = error(
        &env,
        api,
        &format!("/v1/jobs?sort=finished_at&before={}", ids[0]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.contains("cursor"), "{message}");
    env.cleanup(&["default", "other"]).await;
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_json_405() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = &coordinator.api_url;
    for (method, path) in [
        ("DELETE", "/v1/jobs"),
        ("GET", "/v1/cleanup"),
        ("PUT", "/v1/stats"),
        (
            "GET",
            "/v1/jobs/0190b6c4-5c2e-7d2a-9f00-000000000001/approve",
        ),
        ("POST", "/health"),
        ("DELETE", "/metrics"),
    ] {
        let response = env.api_call(api, method, path).await;
        assert_eq!(response.status, 405, "{method} {path}: {:?}", response.json);
        assert_eq!(
            response.json["error"]["code"], "method_not_allowed",
            "{method} {path}: {:?}",
            response.json
        );
        assert!(
            response.allow.is_some(),
            "{method} {path} names the allowed methods"
        );
    }
    let unknown = env.api_call(api, "GET", "/v1/nothing-here").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["error"]["code"], "not_found");
    env.cleanup(&[]).await;
}
