//! Workflow execution end to end (real RabbitMQ and PostgreSQL, in-process
//! coordinator and worker): chains, fan-out / fan-in with results flowing to
//! the join, on-failure branches, retries exhausted, validation errors.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use warren_tests::{api_json, step, submit_workflow, wait_workflow, TestEnv};
use warren_worker::{HandlerError, JobContext, Registry};

/// Built-ins plus `inputs`, which returns what the step received.
fn registry() -> Registry {
    let mut registry = Registry::with_builtins();
    registry.register("inputs", |ctx: JobContext, payload: Value| async move {
        Ok::<_, HandlerError>(json!({ "inputs": ctx.inputs(), "payload": payload }))
    });
    registry
}

async fn start(env: &mut TestEnv) -> String {
    let coordinator = env.start_coordinator().await;
    let config = env.worker_config(&["default"]);
    env.start_worker_with(config, registry());
    coordinator.api_url
}

fn at(step: &Value, field: &str) -> DateTime<Utc> {
    serde_json::from_value(step[field].clone()).unwrap_or_else(|_| panic!("{field} of {step}"))
}

fn finished(view: &Value) -> bool {
    matches!(
        view["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

#[tokio::test]
async fn a_linear_chain_runs_in_order_and_passes_results_down() {
    let mut env = TestEnv::new().await;
    let api = start(&mut env).await;
    let id = submit_workflow(
        &api,
        &json!({
            "name": "chain",
            "steps": [
                {"name": "a", "queue": "default", "type": "echo", "payload": {"n": 1}},
                {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"],
                 "payload": {"prev": "${steps.a.result}", "msg": "n was ${steps.a.result.n}"}},
                {"name": "c", "queue": "default", "type": "inputs", "depends_on": [1]},
            ]
        }),
    )
    .await;
    let view = wait_workflow(&api, id, "chain finished", finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        (view["percent"].as_u64(), view["completed"].as_u64()),
        (Some(100), Some(3))
    );
    let b = step(&view, "b");
    assert_eq!(b["result"], json!({"prev": {"n": 1}, "msg": "n was 1"}));
    assert_eq!(
        step(&view, "c")["result"]["inputs"],
        json!({"b": b["result"]})
    );
    for (parent, child) in [("a", "b"), ("b", "c")] {
        assert!(
            at(step(&view, child), "started_at") >= at(step(&view, parent), "finished_at"),
            "{child} started before {parent} finished"
        );
    }
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn a_diamond_fans_out_in_parallel_and_the_join_gets_both_results() {
    let mut env = TestEnv::new().await;
    let api = start(&mut env).await;
    let sh = |script: &str| json!({"cmd": ["sh", "-c", script]});
    let id = submit_workflow(
        &api,
        &json!({
            "name": "diamond",
            "steps": [
                {"name": "split", "queue": "default", "type": "echo", "payload": {"parts": 2}},
                {"name": "left", "queue": "default", "type": "exec", "depends_on": ["split"],
                 "payload": sh("sleep 0.8; echo L")},
                {"name": "right", "queue": "default", "type": "exec", "depends_on": ["split"],
                 "payload": sh("sleep 0.8; echo R")},
                {"name": "join", "queue": "default", "type": "inputs", "depends_on": ["left", "right"],
                 "payload": {"both": "${steps.left.result.stdout}+${steps.right.result.stdout}"}},
            ]
        }),
    )
    .await;
    let view = wait_workflow(&api, id, "diamond finished", finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    let (left, right) = (step(&view, "left"), step(&view, "right"));
    assert!(
        at(left, "started_at") < at(right, "finished_at")
            && at(right, "started_at") < at(left, "finished_at"),
        "the two branches ran at the same time"
    );
    let join = step(&view, "join");
    for parent in [left, right] {
        assert!(
            at(join, "started_at") >= at(parent, "finished_at"),
            "the join waited"
        );
    }
    assert_eq!(join["result"]["payload"], json!({"both": "L\n+R\n"}));
    assert_eq!(join["result"]["inputs"]["left"]["stdout"], "L\n");
    assert_eq!(join["result"]["inputs"]["right"]["stdout"], "R\n");
    assert_eq!(join["depends_on"], json!(["left", "right"]));
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn an_on_failure_branch_runs_and_its_all_succeeded_sibling_is_skipped() {
    let mut env = TestEnv::new().await;
    let api = start(&mut env).await;
    let id = submit_workflow(
        &api,
        &json!({
            "name": "guarded",
            "steps": [
                {"name": "risky", "queue": "default", "type": "exec", "retry": {"max_attempts": 1},
                 "payload": {"cmd": ["sh", "-c", "echo broken >&2; exit 1"]}},
                {"name": "publish", "queue": "default", "type": "echo", "depends_on": ["risky"]},
                {"name": "alert", "queue": "default", "type": "inputs", "depends_on": ["risky"],
                 "run_if": "any_failed"},
                {"name": "cleanup", "queue": "default", "type": "echo", "depends_on": ["publish", "alert"],
                 "run_if": "always"},
            ]
        }),
    )
    .await;
    let view = wait_workflow(&api, id, "guarded finished", finished).await;
    assert_eq!(
        view["status"], "failed",
        "a handled failure still fails the workflow: {view}"
    );
    let states: Vec<(&str, &str)> = ["risky", "publish", "alert", "cleanup"]
        .iter()
        .map(|name| (*name, step(&view, name)["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("risky", "failed"),
            ("publish", "skipped"),
            ("alert", "completed"),
            ("cleanup", "completed")
        ]
    );
    assert_eq!(
        step(&view, "alert")["result"]["inputs"],
        json!({"risky": null})
    );
    assert!(step(&view, "risky")["error"]
        .as_str()
        .unwrap()
        .contains("exit code 1"));
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn a_step_that_exhausts_its_retries_fails_the_workflow_and_skips_what_follows() {
    let mut env = TestEnv::new().await;
    let api = start(&mut env).await;
    let id = submit_workflow(
        &api,
        &json!({
            "name": "doomed",
            "metadata": {"owner": "alice"},
            "steps": [
                {"name": "fetch", "queue": "default", "type": "flaky", "payload": {"fail_times": 9},
                 "retry": {"max_attempts": 3, "base_delay_ms": 20, "max_delay_ms": 50}},
                {"name": "parse", "queue": "default", "type": "echo", "depends_on": ["fetch"]},
                {"name": "store", "queue": "default", "type": "echo", "depends_on": ["parse"]},
            ]
        }),
    )
    .await;
    let view = wait_workflow(&api, id, "doomed finished", finished).await;
    assert_eq!(view["status"], "failed", "{view}");
    let fetch = step(&view, "fetch");
    assert_eq!(
        (fetch["state"].as_str(), fetch["attempts"].as_u64()),
        (Some("failed"), Some(3))
    );
    assert!(fetch["error"].as_str().unwrap().contains("attempt 3 of 9"));
    for name in ["parse", "store"] {
        assert_eq!(step(&view, name)["state"], "skipped", "{name}");
        assert_eq!(step(&view, name)["attempts"], 0, "{name} never ran");
    }
    assert_eq!(
        (view["failed"].as_u64(), view["skipped"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(view["percent"], 100);

    let listed = |query: &'static str| {
        let api = api.clone();
        async move {
            let (status, page) = api_json(
                reqwest::Method::GET,
                &api,
                &format!("/v1/workflows?{query}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            page["workflows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let me = vec![id.to_string()];
    assert_eq!(listed("status=failed").await, me);
    assert_eq!(listed("status=recoverable").await, me);
    assert_eq!(listed("meta.owner=alice&name=doomed").await, me);
    assert!(listed("status=active").await.is_empty());
    assert!(listed("meta.owner=bob").await.is_empty());

    let (status, events) = api_json(
        reqwest::Method::GET,
        &api,
        &format!("/v1/workflows/{id}/events"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let moves: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(moves, ["pending", "running", "failed"]);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn invalid_workflows_are_rejected_naming_the_steps_and_create_nothing() {
    let mut env = TestEnv::new().await;
    let api = start(&mut env).await;
    let step = |name: &str, deps: Value| json!({"name": name, "queue": "default", "type": "echo", "depends_on": deps});
    let cases = [
        (
            json!([
                step("a", json!(["c"])),
                step("b", json!(["a"])),
                step("c", json!(["b"]))
            ]),
            vec!["a", "b", "c", "cycle"],
        ),
        (
            json!([step("a", json!([])), step("b", json!(["nope"]))]),
            vec!["\"b\"", "nope"],
        ),
        (
            json!([step("a", json!([])), step("a", json!([]))]),
            vec!["duplicate", "\"a\""],
        ),
        (json!([step("a", json!(["a"]))]), vec!["\"a\"", "itself"]),
        (
            json!([{"name": "alarm", "queue": "default", "type": "echo", "run_if": "any_failed"},
                   step("after", json!(["alarm"]))]),
            vec!["alarm", "after"],
        ),
    ];
    for (steps, words) in cases {
        let (status, body) = api_json(
            reqwest::Method::POST,
            &api,
            "/v1/workflows",
            Some(&json!({"name": "bad", "steps": steps})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "bad_request");
        let message = body["error"]["message"].as_str().unwrap();
        for word in words {
            assert!(message.contains(word), "{message:?} should name {word}");
        }
    }
    let (status, body) = api_json(
        reqwest::Method::POST,
        &api,
        "/v1/workflows",
        Some(&json!({"steps": 3})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (_, page) = api_json(reqwest::Method::GET, &api, "/v1/workflows", None).await;
    assert_eq!(page["workflows"], json!([]), "nothing was created");
    let (status, _) = api_json(
        reqwest::Method::GET,
        &api,
        "/v1/workflows?status=bogus",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = api_json(
        reqwest::Method::GET,
        &api,
        &format!("/v1/workflows/{}", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(status, 404);
    env.cleanup(&["default"]).await;
}
