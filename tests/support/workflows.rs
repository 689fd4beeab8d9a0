//! Helpers for workflow tests: JSON calls to the coordinator's API and
//! waiting on a workflow's progress view.

use serde_json::Value;
use uuid::Uuid;

use crate::env::TEST_TOKEN;
use crate::wait::{eventually, DEADLINE};

/// Sends `method path` with an optional JSON body and the test token;
/// returns the status and the JSON body (`Null` if the body is not JSON).
pub async fn api_json(
    method: reqwest::Method,
    api_url: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{api_url}{path}"))
        .bearer_auth(TEST_TOKEN);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("API request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs a workflow (definition or template submission); asserts 201 and
/// returns its id.
pub async fn submit_workflow(api_url: &str, body: &Value) -> Uuid {
    let (status, answer) =
        api_json(reqwest::Method::POST, api_url, "/v1/workflows", Some(body)).await;
    assert_eq!(status, 201, "workflow accepted: {answer}");
    answer["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .expect("an id")
}

/// The progress view of a workflow (`GET /v1/workflows/{id}`).
pub async fn workflow_view(api_url: &str, id: Uuid) -> Value {
    let (status, view) = api_json(
        reqwest::Method::GET,
        api_url,
        &format!("/v1/workflows/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "workflow {id}: {view}");
    view
}

/// Polls the progress view until `done` holds; returns it.
pub async fn wait_workflow(
    api_url: &str,
    id: Uuid,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, DEADLINE, || async {
        let (status, view) = api_json(
            reqwest::Method::GET,
            api_url,
            &format!("/v1/workflows/{id}"),
            None,
        )
        .await;
        (status == 200 && done(&view)).then_some(view)
    })
    .await
}

/// The step called `name` in a progress view.
pub fn step<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {view}"))
}
