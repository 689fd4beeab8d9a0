//! A task message sent but never confirmed (the coordinator's connection
//! went first) is not dispatched again while the broker may hold it: the
//! job stays `queued`, its run completes it, and only a message that
//! cannot be anywhere is replaced, without waiting for the dispatch
//! timeout (ten minutes here). The coordinator reaches RabbitMQ through a
//! proxy the test holds and cuts; the worker connects directly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use warren_client::ApiClient;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_store::{JobRow, Store};
use warren_tests::{counted_registry, eventually, Proxy, TestEnv, DEADLINE, TEST_TOKEN};

const QUEUE: &str = "unconfirmed";

/// A coordinator behind a proxy, a worker with the counted handler, and a
/// first job run through (the queue known, the worker consuming).
struct Setup {
    env: TestEnv,
    proxy: Proxy,
    api: ApiClient,
    store: Store,
    runs: Arc<AtomicUsize>,
}

async fn setup() -> Setup {
    let mut env = TestEnv::new().await;
    let proxy = Proxy::for_amqp(&env.amqp_url).await;
    let mut config = env.coordinator_config();
    config.broker.url = proxy.amqp_url().to_owned();
    config.dispatch_timeout = Duration::from_secs(600);
    let coordinator = env.start_coordinator_with(config).await;
    let (registry, runs) = counted_registry(Duration::ZERO);
    let worker = env.worker_config(&[QUEUE]);
    env.start_worker_with(worker, registry);
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).expect("client");
    let first = submit(&api).await;
    completed(&env, &store, first).await;
    runs.store(0, Ordering::SeqCst);
    Setup {
        env,
        proxy,
        api,
        store,
        runs,
    }
}

async fn submit(api: &ApiClient) -> Uuid {
    let spec = JobSpec::new(QUEUE, "counted", json!(null));
    api.submit_http(vec![spec])
        .await
        .expect("POST /v1/jobs")
        .ids[0]
}

async fn completed(env: &TestEnv, store: &Store, id: Uuid) -> JobRow {
    env.wait_job(store, id, "completed", |j| j.state() == JobState::Completed)
        .await
}

/// The broker takes the message and a worker runs it, but the confirm
/// (and the report) stay in the proxy until the connection is cut.
#[tokio::test]
async fn a_dispatch_the_broker_kept_but_never_confirmed_runs_once() {
    let t = setup().await;

    t.proxy.hold_answers();
    let id = submit(&t.api).await;
    eventually("the worker ran the job", DEADLINE, || async {
        (t.runs.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    t.proxy.cut();
    t.proxy.release();

    let job = completed(&t.env, &t.store, id).await;
    assert_eq!(job.attempt, 1, "completed by the run of its first dispatch");
    assert_eq!(t.runs.load(Ordering::SeqCst), 1, "ran once");
    let moves: Vec<(Option<String>, String)> = t
        .store
        .job_events(id, 0, 10)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.from_state, e.to_state))
        .collect();
    let state = |s: &str| Some(s.to_owned());
    assert_eq!(
        moves,
        [
            (None, "pending".to_owned()),
            (state("pending"), "queued".to_owned()),
            (state("queued"), "running".to_owned()),
            (state("running"), "completed".to_owned()),
        ],
        "never sent back to pending"
    );
    t.env.cleanup(&[QUEUE]).await;
}

/// The message never reaches the broker: once this coordinator has heard
/// workers for a lease and the queue shows nothing waiting, the job is
/// dispatched again and runs.
#[tokio::test]
async fn a_dispatch_lost_before_its_confirm_is_dispatched_again_without_the_timeout() {
    let t = setup().await;

    t.proxy.hold_all();
    let id = submit(&t.api).await;
    t.env
        .wait_job(&t.store, id, "dispatched", |j| {
            j.state() == JobState::Queued
        })
        .await;
    t.proxy.cut();
    t.proxy.release();

    completed(&t.env, &t.store, id).await;
    assert_eq!(t.runs.load(Ordering::SeqCst), 1, "ran once");
    t.env.cleanup(&[QUEUE]).await;
}
