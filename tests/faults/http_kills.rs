//! HTTP submissions through kills of the coordinator: `POST /v1/jobs`
//! commits jobs as `queued` and hands them to the dispatcher to publish, so
//! a coordinator killed in between leaves jobs with no task message (found
//! by redispatch) and requests with no answer (the client sends the same
//! envelope again, which creates nothing twice). [`Ledger::check`] then
//! holds as for AMQP submissions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_client::ApiClient;
use warren_core::protocol::JobSpec;
use warren_tests::{free_port, wait_healthy, Ledger, TestEnv, DEADLINE, TEST_TOKEN};

/// Posts envelopes of 5 ledger jobs every 20 ms to whichever coordinator
/// `url` names, each until it is accepted (a `201`), until `stop`; returns
/// the ids accepted.
async fn post_until_stopped(
    ledger: Arc<Ledger>,
    url: Arc<Mutex<String>>,
    stop: CancellationToken,
) -> Vec<Uuid> {
    let mut accepted = Vec::new();
    let mut n = 0;
    while !stop.is_cancelled() {
        let specs: Vec<JobSpec> = (n..n + 5).map(|i| ledger.job("default", i, 20)).collect();
        n += 5;
        loop {
            let base = url.lock().expect("url").clone();
            let api = ApiClient::new(&base, TEST_TOKEN).expect("client");
            match api.submit_http(specs.clone()).await {
                Ok(submitted) => {
                    accepted.extend(submitted.ids);
                    break;
                }
                // The coordinator is down or died mid-request: the same
                // envelope again, to it or its successor.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    accepted
}

#[tokio::test]
async fn kill_9_of_the_coordinator_during_http_submissions() {
    let mut env = TestEnv::new().await;
    let store = env.store().await;
    let ledger = Arc::new(Ledger::new(&env.namespace));
    let fast = [("WARREN_DISPATCH_TIMEOUT", "2s")];
    let addr = || format!("127.0.0.1:{}", free_port());
    let first = addr();
    let mut coordinator = env.spawn_coordinator_process(&first, &fast);
    wait_healthy(&format!("http://{first}")).await;
    let url = Arc::new(Mutex::new(format!("http://{first}")));
    let _a = env.start_worker(&["default"]);
    let _b = env.start_worker(&["default"]);
    let stop = CancellationToken::new();
    let poster = tokio::spawn(post_until_stopped(
        ledger.clone(),
        url.clone(),
        stop.clone(),
    ));
    let kills = 2;
    for threshold in [60, 160] {
        TestEnv::wait_completed(&store, threshold, DEADLINE).await;
        coordinator.signal("KILL");
        coordinator.wait_exit(DEADLINE).await;
        let next = addr();
        coordinator = env.spawn_coordinator_process(&next, &fast);
        *url.lock().expect("url") = format!("http://{next}");
    }
    TestEnv::wait_completed(&store, 260, DEADLINE).await;
    stop.cancel();
    let accepted = poster.await.expect("poster");
    ledger
        .check(
            "coordinator kill -9 during HTTP submissions",
            &store,
            &accepted,
            kills,
        )
        .await;
    env.cleanup(&["default"]).await;
}
