//! Progress reports leave a worker at most four times a second per
//! attempt, the latest always: a handler that reports on every item it
//! processes does not turn into a row update per item at the coordinator.

use std::time::Duration;

use serde_json::json;
use warren_broker::REPORT_ROUTING_KEY;
use warren_core::protocol::{decode, JobSpec, Report, ReportEnvelope};
use warren_core::JobState;
use warren_tests::{Tap, TestEnv};
use warren_worker::Registry;

#[tokio::test]
async fn a_handler_reporting_every_item_sends_a_few_reports_ending_with_its_last() {
    let mut env = TestEnv::new().await;
    let _coordinator = env.start_coordinator().await;
    let reports_exchange = env.broker_config().names().reports_exchange();
    let tap = Tap::bind(&env, &reports_exchange, &[REPORT_ROUTING_KEY]).await;
    let mut registry = Registry::with_builtins();
    registry.register("chatty", |ctx, _payload| async move {
        for item in 0..10_000 {
            ctx.progress(item as f32 / 100.0, format!("item {item}"));
        }
        // Long enough for the interval to end and the last word to leave.
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(json!({}))
    });
    let config = env.worker_config(&["chatty"]);
    let _worker = env.start_worker_with(config, registry);
    let store = env.store().await;

    let ids = env
        .submit(vec![JobSpec::new("chatty", "chatty", json!({}))])
        .await;
    env.wait_job(&store, ids[0], "job completed", |j| {
        j.state() == JobState::Completed
    })
    .await;

    let mut stages = Vec::new();
    for message in tap.drain().await {
        let envelope: ReportEnvelope = decode(&message.body, usize::MAX).expect("an envelope");
        for report in envelope.reports {
            if let Report::Progress {
                stage: Some(stage), ..
            } = report
            {
                stages.push(stage);
            }
        }
    }
    assert!(
        (2..=4).contains(&stages.len()),
        "10,000 calls became {} reports: {stages:?}",
        stages.len()
    );
    assert_eq!(stages.first().map(String::as_str), Some("item 0"));
    assert_eq!(stages.last().map(String::as_str), Some("item 9999"));
    tap.close().await;
    env.cleanup(&["chatty"]).await;
}
