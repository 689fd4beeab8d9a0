//! Workflow status changes on the event stream: published to `<ns>.events`
//! as `workflow.<status>`, served over Server-Sent Events as `event:
//! workflow` in one id order with the job transitions (the workflow's
//! `completed` after its last step's), followed per workflow at
//! `/v1/workflows/{id}/events` with resume, and by the CLI.

use serde_json::{json, Value};
use uuid::Uuid;
use warren_client::{ApiClient, EventKind, EventQuery, EventSource, StreamEvent};
use warren_core::workflow::WorkflowStatus;
use warren_store::Store;
use warren_tests::{
    read_stream_until, submit_workflow, wait_workflow, Cli, EventsTap, TestEnv, DEADLINE,
    TEST_TOKEN,
};

fn pair(name: &str) -> Value {
    json!({
        "name": name,
        "steps": [
            {"name": "a", "queue": "default", "type": "echo", "payload": {"n": 1}},
            {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]},
        ]
    })
}

/// The ids of a workflow's own events and of its steps' job events, in order.
async fn workflow_event_ids(store: &Store, id: Uuid) -> (Vec<i64>, Vec<i64>) {
    let own =
        sqlx::query_scalar("SELECT id FROM workflow_events WHERE workflow_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(store.pool())
            .await
            .expect("workflow_events");
    let steps = sqlx::query_scalar(
        "SELECT e.id FROM job_events e JOIN jobs j ON j.id = e.job_id
          WHERE j.workflow_id = $1 ORDER BY e.id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .expect("job_events of the steps");
    (own, steps)
}

fn ids(events: &[StreamEvent]) -> Vec<i64> {
    events.iter().map(StreamEvent::id).collect()
}

/// Whether `events` hold the workflow `id` reaching `status`.
fn reached(events: &[StreamEvent], id: Uuid, status: WorkflowStatus) -> bool {
    events
        .iter()
        .any(|e| matches!(e, StreamEvent::Workflow(w) if w.workflow_id == id && w.to == status))
}

#[tokio::test]
async fn workflow_status_changes_reach_the_exchange_and_the_stream_in_one_order() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let tap = EventsTap::bind(&env, &["workflow.*"]).await;
    let mut live = api
        .event_stream(&EventSource::All(EventQuery::default()), None)
        .await
        .unwrap();
    let mut workflows_only = api
        .event_stream(
            &EventSource::All(EventQuery {
                kind: Some(EventKind::Workflow),
                ..EventQuery::default()
            }),
            None,
        )
        .await
        .unwrap();

    let id = submit_workflow(&coordinator.api_url, &pair("pair")).await;
    wait_workflow(&coordinator.api_url, id, "workflow completed", |v| {
        v["status"] == "completed"
    })
    .await;
    let (own, steps) = workflow_event_ids(&store, id).await;
    let mut union: Vec<i64> = own.iter().chain(&steps).copied().collect();
    union.sort_unstable();

    // SSE: both kinds in one increasing order, the completion last.
    let seen = read_stream_until(&mut live, DEADLINE, |events| {
        reached(events, id, WorkflowStatus::Completed)
    })
    .await;
    let seen_ids = ids(&seen);
    assert!(seen_ids.windows(2).all(|w| w[0] < w[1]), "{seen_ids:?}");
    assert_eq!(
        seen_ids, union,
        "every event of the workflow and its steps, once"
    );
    let statuses: Vec<(Option<WorkflowStatus>, WorkflowStatus, &str)> = seen
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Workflow(w) => Some((w.from, w.to, w.name.as_str())),
            StreamEvent::Job(_) => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (None, WorkflowStatus::Pending, "pair"),
            (
                Some(WorkflowStatus::Pending),
                WorkflowStatus::Running,
                "pair"
            ),
            (
                Some(WorkflowStatus::Running),
                WorkflowStatus::Completed,
                "pair"
            ),
        ]
    );
    let last_step_completed = seen
        .iter()
        .filter_map(StreamEvent::as_job)
        .find(|e| e.step_name.as_deref() == Some("b") && e.to.as_str() == "completed")
        .expect("step b completed")
        .id;
    assert!(
        *own.last().unwrap() > last_step_completed,
        "the workflow completes after its last step"
    );
    let only = read_stream_until(&mut workflows_only, DEADLINE, |events| {
        reached(events, id, WorkflowStatus::Completed)
    })
    .await;
    assert_eq!(
        ids(&only),
        own,
        "kind=workflow carries the workflow events only"
    );

    // The exchange: one routing key per status, the same events.
    let messages = tap.collect(own.len(), DEADLINE).await;
    let keys: Vec<&str> = messages.iter().map(|m| m.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        ["workflow.pending", "workflow.running", "workflow.completed"]
    );
    let published: Vec<i64> = messages
        .iter()
        .flat_map(|m| m.workflows.iter().map(|e| e.id))
        .collect();
    assert_eq!(published, own);
    assert!(messages
        .iter()
        .flat_map(|m| &m.workflows)
        .all(|e| e.workflow_id == id && e.name == "pair"));
    tap.close().await;
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn one_workflow_is_followed_from_its_first_event_resumed_and_by_the_cli() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let other = submit_workflow(&coordinator.api_url, &pair("other")).await;
    let id = submit_workflow(&coordinator.api_url, &pair("followed")).await;
    for workflow in [other, id] {
        wait_workflow(&coordinator.api_url, workflow, "workflow completed", |v| {
            v["status"] == "completed"
        })
        .await;
    }
    let (own, steps) = workflow_event_ids(&store, id).await;
    let mut expected: Vec<i64> = own.iter().chain(&steps).copied().collect();
    expected.sort_unstable();

    let source = EventSource::Workflow(id);
    let mut stream = api.event_stream(&source, None).await.unwrap();
    let whole = read_stream_until(&mut stream, DEADLINE, |events| {
        reached(events, id, WorkflowStatus::Completed)
    })
    .await;
    assert_eq!(
        ids(&whole),
        expected,
        "its history, nothing of the other workflow"
    );
    drop(stream);

    // A reconnect after the third event gets exactly the rest.
    let mut resumed = api.event_stream(&source, Some(expected[2])).await.unwrap();
    let rest = read_stream_until(&mut resumed, DEADLINE, |events| {
        reached(events, id, WorkflowStatus::Completed)
    })
    .await;
    assert_eq!(ids(&rest), expected[3..]);
    drop(resumed);

    // The JSON form of the same route still pages the status history.
    let history = api.workflow_events(id, 0).await.unwrap();
    let history_ids: Vec<i64> = history.iter().map(|e| e.id).collect();
    assert_eq!(history_ids, own);

    // `warren workflow events ID --follow --json` ends at the completion.
    let cli = Cli {
        env: &env,
        api_url: coordinator.api_url.clone(),
    };
    let out = cli
        .run(&["--json", "workflow", "events", &id.to_string(), "--follow"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let printed: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(printed, expected);
    let last = lines.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["to"].as_str()),
        (Some("workflow"), Some("completed"))
    );
    env.cleanup(&["default"]).await;
}
