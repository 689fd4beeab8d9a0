//! Operating workflows end to end: pause / resume, cancel mid-run, recover
//! from a step (and its limit), retrying one step, templates with bad and
//! good variables, and submission over AMQP.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::{encode, SubmitEnvelope, WorkflowSubmission};
use warren_core::workflow::WorkflowSpec;
use warren_tests::{
    api_json, eventually, step, submit_workflow, wait_workflow, workflow_view, TestEnv, DEADLINE,
};

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |view| view["status"] == status
}

fn step_is(name: &'static str, state: &'static str) -> impl Fn(&Value) -> bool {
    move |view| step(view, name)["state"] == state
}

async fn post(api: &str, path: String, body: Option<Value>) -> (u16, Value) {
    api_json(Method::POST, api, &path, body.as_ref()).await
}

/// Pending wakeups of a workflow: 0 once the engine has handled every step
/// event so far.
async fn wakeups(env: &TestEnv, id: Uuid) -> i64 {
    let store = env.store().await;
    let n = sqlx::query_scalar("SELECT count(*) FROM workflow_wakeups WHERE workflow_id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    n
}

#[tokio::test]
async fn a_paused_workflow_starts_no_new_step_until_resumed() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let id = submit_workflow(
        &api,
        &json!({
            "name": "pausable",
            "steps": [
                {"name": "first", "queue": "default", "type": "sleep", "payload": {"ms": 1000}},
                {"name": "second", "queue": "default", "type": "echo", "depends_on": ["first"]},
            ]
        }),
    )
    .await;
    wait_workflow(&api, id, "first running", step_is("first", "running")).await;
    let (status, moved) = post(&api, format!("/v1/workflows/{id}/pause"), None).await;
    assert_eq!(
        (status, &moved["from"], &moved["to"]),
        (200, &json!("running"), &json!("paused"))
    );

    // The running step finishes; the engine handles that event (no wakeup
    // left) and still releases nothing.
    wait_workflow(&api, id, "first completed", step_is("first", "completed")).await;
    eventually("step event handled", DEADLINE, || async {
        (wakeups(&env, id).await == 0).then_some(())
    })
    .await;
    let view = workflow_view(&api, id).await;
    assert_eq!(
        (
            view["status"].as_str(),
            step(&view, "second")["state"].as_str()
        ),
        (Some("paused"), Some("blocked"))
    );
    let (status, _) = post(&api, format!("/v1/workflows/{id}/pause"), None).await;
    assert_eq!(status, 409, "pausing twice is an illegal move");

    let (status, _) = post(&api, format!("/v1/workflows/{id}/resume"), None).await;
    assert_eq!(status, 200);
    let view = wait_workflow(&api, id, "completed after resume", status_is("completed")).await;
    assert_eq!(step(&view, "second")["state"], "completed");
    let (_, events) = api_json(
        Method::GET,
        &api,
        &format!("/v1/workflows/{id}/events"),
        None,
    )
    .await;
    let moves: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        moves,
        ["pending", "running", "paused", "running", "completed"]
    );
    assert_eq!(events["events"][2]["detail"], json!({"by": "api"}));
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn cancelling_mid_run_stops_running_steps_and_leaves_nothing_unfinished() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let id = submit_workflow(
        &api,
        &json!({
            "name": "cancellable",
            "steps": [
                {"name": "long", "queue": "default", "type": "sleep", "payload": {"ms": 30000}},
                {"name": "other", "queue": "default", "type": "sleep", "payload": {"ms": 30000}},
                {"name": "after", "queue": "default", "type": "echo", "depends_on": ["long", "other"]},
            ]
        }),
    )
    .await;
    wait_workflow(&api, id, "both running", |v| {
        step(v, "long")["state"] == "running" && step(v, "other")["state"] == "running"
    })
    .await;
    let (status, moved) = post(&api, format!("/v1/workflows/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (&moved["to"], &moved["cancelled_steps"]),
        (&json!("cancelled"), &json!(3))
    );
    let view = workflow_view(&api, id).await;
    assert_eq!(view["status"], "cancelled");
    for s in view["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "cancelled", "{s}");
    }
    // The worker was told to stop: it reports nothing running any more.
    let store = env.store().await;
    eventually("the worker stopped both sleeps", DEADLINE, || async {
        let running: i64 =
            sqlx::query_scalar("SELECT COALESCE(sum(running), 0)::int8 FROM workers")
                .fetch_one(store.pool())
                .await
                .ok()?;
        (running == 0).then_some(())
    })
    .await;
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE workflow_id = $1 AND state NOT IN ('cancelled', 'completed', 'skipped')",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(unfinished, 0);
    let (status, body) = post(&api, format!("/v1/workflows/{id}/resume"), None).await;
    assert_eq!(status, 409);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("from cancelled to running"));
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn recovery_reruns_a_step_and_what_follows_and_stops_at_its_limit() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let marker = std::env::temp_dir().join(format!("warren-marker-{}", env.namespace));
    let _ = std::fs::remove_file(&marker);
    let spec = |name: &str, recoveries: u32| {
        json!({
            "name": name, "max_recovery_attempts": recoveries,
            "steps": [
                {"name": "a", "queue": "default", "type": "echo", "payload": {"v": 1}},
                {"name": "b", "queue": "default", "type": "exec", "depends_on": ["a"],
                 "retry": {"max_attempts": 1},
                 "payload": {"cmd": ["sh", "-c", format!("test -f {}", marker.display())]}},
                {"name": "c", "queue": "default", "type": "echo", "depends_on": ["b"],
                 "payload": {"b": "${steps.b.result.exit_code}"}},
            ]
        })
    };
    let recoverable = submit_workflow(&api, &spec("recoverable", 1)).await;
    let exhausted = submit_workflow(&api, &spec("never", 0)).await;
    let retried = submit_workflow(&api, &spec("retried", 1)).await;
    let mut before = Vec::new();
    for id in [recoverable, exhausted, retried] {
        before.push(wait_workflow(&api, id, "failed at b", status_is("failed")).await);
    }
    assert_eq!(step(&before[0], "c")["state"], "skipped");
    std::fs::write(&marker, b"").unwrap();

    // Recover from b: b and c run again as new jobs, a is kept.
    let (status, body) = post(
        &api,
        format!("/v1/workflows/{recoverable}/recover"),
        Some(json!({"from_step": "nope"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &api,
        format!("/v1/workflows/{recoverable}/recover"),
        Some(json!({"from_step": "b"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recovery_attempts"], 1);
    let view = wait_workflow(&api, recoverable, "recovered", status_is("completed")).await;
    assert_eq!(view["recovery_attempts"], 1);
    assert_eq!(step(&view, "a")["job_id"], step(&before[0], "a")["job_id"]);
    for name in ["b", "c"] {
        assert_ne!(
            step(&view, name)["job_id"],
            step(&before[0], name)["job_id"],
            "{name} re-ran"
        );
    }
    assert_eq!(step(&view, "c")["result"], json!({"b": 0}));
    let (status, body) = post(
        &api,
        format!("/v1/workflows/{recoverable}/recover"),
        Some(json!({"from_step": "b"})),
    )
    .await;
    assert_eq!(status, 409, "a completed workflow is not recovered: {body}");

    // No recovery attempts: refused with a 409 that says why.
    let (status, body) = post(
        &api,
        format!("/v1/workflows/{exhausted}/recover"),
        Some(json!({"from_step": "b"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("recovery attempts (0 of 0)"));
    assert_eq!(workflow_view(&api, exhausted).await["status"], "failed");

    // Retrying the failed step's job (the jobs API) retries it in place
    // and resets what follows; it is not a recovery attempt.
    let b_job = step(&before[2], "b")["job_id"].as_str().unwrap().to_owned();
    let (status, body) = post(&api, format!("/v1/jobs/{b_job}/retry"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["from"], &body["to"]),
        (&json!("failed"), &json!("retrying"))
    );
    let view = wait_workflow(&api, retried, "retried", status_is("completed")).await;
    assert_eq!(step(&view, "b")["job_id"], json!(b_job));
    assert_eq!(step(&view, "b")["attempts"], 2);
    assert_eq!(view["recovery_attempts"], 0);
    let _ = std::fs::remove_file(&marker);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn templates_reject_bad_variables_by_name_and_run_with_good_ones() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let template = json!({
        "name": "greet", "version": 1, "description": "says hello",
        "variables": [
            {"name": "who", "type": "string", "required": true},
            {"name": "times", "type": "integer", "default": 2}
        ],
        "workflow": {
            "name": "greet-${who}",
            "metadata": {"who": "${who}"},
            "steps": [
                {"name": "hello", "queue": "default", "type": "echo",
                 "payload": {"text": "hello ${who}", "times": "${times}"}},
                {"name": "bye", "queue": "default", "type": "echo", "depends_on": ["hello"],
                 "payload": {"after": "${steps.hello.result.text}"}}
            ]
        }
    });
    let put = |body: Value| {
        let api = api.clone();
        async move { api_json(Method::PUT, &api, "/v1/templates/greet", Some(&body)).await }
    };
    assert_eq!(put(template.clone()).await.0, 201);
    assert_eq!(
        put(template.clone()).await.0,
        200,
        "the same version again is a no-op"
    );
    let mut changed = template.clone();
    changed["description"] = json!("changed");
    let (status, body) = put(changed).await;
    assert_eq!(status, 409, "{body}");
    let mut undeclared = template.clone();
    undeclared["version"] = json!(2);
    undeclared["workflow"]["steps"][0]["payload"]["x"] = json!("${nobody}");
    let (status, body) = put(undeclared).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nobody"));

    let rejected = [
        (json!({}), "who"),
        (json!({"who": 7}), "who"),
        (json!({"who": "x", "times": "twice"}), "times"),
        (json!({"who": "x", "whom": "y"}), "whom"),
    ];
    for (variables, name) in rejected {
        let (status, body) = post(
            &api,
            "/v1/workflows".into(),
            Some(json!({"template": "greet", "variables": variables})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{message:?} should name {name}");
    }
    let (status, _) = post(
        &api,
        "/v1/workflows".into(),
        Some(json!({"template": "nope", "variables": {}})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, page) = api_json(Method::GET, &api, "/v1/workflows", None).await;
    assert_eq!(page["workflows"], json!([]), "nothing was created");

    let id = submit_workflow(
        &api,
        &json!({"template": "greet", "variables": {"who": "ada"}}),
    )
    .await;
    let view = wait_workflow(&api, id, "greeted", status_is("completed")).await;
    assert_eq!(view["name"], "greet-ada");
    assert_eq!(view["template"], json!({"name": "greet", "version": 1}));
    assert_eq!(view["metadata"], json!({"who": "ada"}));
    assert_eq!(
        step(&view, "hello")["result"],
        json!({"text": "hello ada", "times": 2})
    );
    assert_eq!(step(&view, "bye")["result"], json!({"after": "hello ada"}));
    let (_, list) = api_json(Method::GET, &api, "/v1/templates", None).await;
    assert_eq!(list["templates"][0]["name"], "greet");
    let (_, got) = api_json(Method::GET, &api, "/v1/templates/greet?version=1", None).await;
    assert_eq!(got["description"], "says hello");
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn workflows_submitted_over_amqp_run_once_and_invalid_ones_are_dead_lettered() {
    let mut env = TestEnv::new().await;
    let api = env.start_coordinator().await.api_url;
    env.start_worker(&["default"]);
    let spec: WorkflowSpec = serde_json::from_value(json!({
        "name": "by-message",
        "steps": [
            {"name": "a", "queue": "default", "type": "echo", "payload": 1},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]}
        ]
    }))
    .unwrap();
    let submission = WorkflowSubmission::spec(spec);
    let id = submission.id.unwrap();
    let envelope = encode(&SubmitEnvelope::with_workflows(vec![submission.clone()]));
    let names = env.broker_config().names();
    let publish = |body: Vec<u8>| {
        let env = &env;
        let exchange = names.submit_exchange();
        async move {
            env.publish_raw(&exchange, warren_broker::SUBMIT_ROUTING_KEY, &body)
                .await
        }
    };
    let submitter = warren_client::Submitter::connect_with(env.broker_config())
        .await
        .unwrap();
    assert_eq!(
        submitter
            .submit_workflows(vec![submission.clone()])
            .await
            .unwrap(),
        vec![id]
    );
    submitter.close().await;
    wait_workflow(&api, id, "completed", status_is("completed")).await;
    publish(envelope).await; // a redelivery or client retry: nothing new

    let mut cyclic = json!({
        "v": 1, "jobs": [],
        "workflows": [{"id": Uuid::now_v7(), "name": "loop", "steps": [
            {"name": "x", "queue": "default", "type": "echo", "depends_on": ["y"]},
            {"name": "y", "queue": "default", "type": "echo", "depends_on": ["x"]}
        ]}]
    });
    publish(serde_json::to_vec(&cyclic).unwrap()).await;
    cyclic["workflows"][0] = json!({"id": Uuid::now_v7(), "template": "missing"});
    publish(serde_json::to_vec(&cyclic).unwrap()).await;
    eventually("two submissions dead-lettered", DEADLINE, || async {
        (env.dead_letters().await == 2).then_some(())
    })
    .await;
    let (_, page) = api_json(Method::GET, &api, "/v1/workflows", None).await;
    assert_eq!(page["workflows"].as_array().unwrap().len(), 1);
    env.cleanup(&["default"]).await;
}
