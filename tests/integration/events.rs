//! The events exchange `<ns>.events`: every transition is published, batched
//! per routing key, in id order — including a transaction that commits after
//! a later one, and past an aborted one.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use warren_client::{ApiClient, EventQuery, EventSource, JobSpec};
use warren_core::JobState;
use warren_tests::{
    event_rows, eventually, metric_value, read_n, row_of, EventsTap, TestEnv, DEADLINE, TEST_TOKEN,
};

/// A job that waits for approval, so its only events are the ones the test makes.
fn gated(queue: &str) -> JobSpec {
    let mut spec = JobSpec::new(queue, "echo", json!({}));
    spec.requires_approval = true;
    spec
}

#[tokio::test]
async fn every_completion_reaches_a_queue_bound_to_job_completed() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let tap = EventsTap::bind(&env, &["job.completed.*"]).await;

    let specs: Vec<JobSpec> = (0..40)
        .map(|i| JobSpec::new("default", "echo", json!({ "i": i })))
        .collect();
    let ids = env.submit(specs).await;
    eventually("all jobs completed", DEADLINE, || async {
        (TestEnv::completed_jobs(&store).await == ids.len()).then_some(())
    })
    .await;
    let expected: Vec<_> = event_rows(&store)
        .await
        .into_iter()
        .filter(|row| row.3 == "completed")
        .collect();
    assert_eq!(expected.len(), ids.len());

    let messages = tap.collect(expected.len(), DEADLINE).await;
    let keys: BTreeSet<&str> = messages.iter().map(|m| m.routing_key.as_str()).collect();
    let received: Vec<_> = messages
        .iter()
        .flat_map(|m| m.batch.events.iter().map(row_of))
        .collect();
    let mut sorted = received.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "exactly the completions, each once");
    assert_eq!(keys, BTreeSet::from(["job.completed.default"]));

    // Counted once the cursor is stored, just after the confirms.
    let all = event_rows(&store).await.len() as f64;
    eventually("every event counted as published", DEADLINE, || async {
        let metrics = reqwest::get(format!("{}/metrics", coordinator.api_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (metric_value(&metrics, "warren_events_published_total")? >= all).then_some(())
    })
    .await;
    tap.close().await;
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn one_commit_of_many_events_is_one_message() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let tap = EventsTap::bind(&env, &["job.#"]).await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();

    let created = api
        .submit_http((0..50).map(|_| gated("bulk")).collect())
        .await
        .expect("submit");
    assert_eq!(created.created, 50);
    let messages = eventually("the batch published", DEADLINE, || async {
        let messages = tap.drain().await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(messages.len(), 1, "one statement, one commit, one message");
    assert_eq!(messages[0].routing_key, "job.awaiting_approval.bulk");
    let events = &messages[0].batch.events;
    assert_eq!(events.len(), 50);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "in id order");
    assert!(events
        .iter()
        .all(|e| e.queue == "bulk" && e.task_type == "echo"));
    eventually("one batch counted", DEADLINE, || async {
        let metrics = reqwest::get(format!("{}/metrics", coordinator.api_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (metric_value(&metrics, "warren_events_publish_batches_total") == Some(1.0)).then_some(())
    })
    .await;
    tap.close().await;
    env.cleanup(&[]).await;
}

/// Moves `job` to cancelled inside a transaction left open; returns it.
async fn cancel_in_open_transaction(env: &TestEnv, job: Uuid) -> PgConnection {
    let mut conn = PgConnection::connect(&env.db_url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .expect("begin");
    sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1")
        .bind(job)
        .execute(&mut conn)
        .await
        .expect("cancel");
    conn
}

/// Waits until both readers (SSE tailer, exchange publisher) have read past
/// a gap and are holding at it.
async fn both_readers_wait_at_a_gap(api_url: &str) {
    eventually("both readers wait at the gap", DEADLINE, || async {
        let metrics = reqwest::get(format!("{api_url}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let lag = |reader: &str| {
            metric_value(
                &metrics,
                &format!("warren_events_lag{{reader=\"{reader}\"}}"),
            )
            .unwrap_or(0.0)
        };
        (lag("stream") >= 1.0 && lag("publisher") >= 1.0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn late_commits_are_delivered_in_id_order_and_an_aborted_id_is_stepped_over() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let tap = EventsTap::bind(&env, &["job.cancelled.*"]).await;
    let jobs: Vec<Uuid> = api
        .submit_http((0..6).map(|_| gated("q")).collect())
        .await
        .expect("submit")
        .ids;
    let mut stream = api
        .event_stream(
            &EventSource::All(EventQuery {
                state: Some(JobState::Cancelled),
                ..EventQuery::default()
            }),
            None,
        )
        .await
        .expect("stream");
    let cancelled = |events: &[warren_client::TransitionEvent]| -> Vec<Uuid> {
        events.iter().map(|e| e.job_id).collect()
    };

    // 1. `jobs[0]` takes the lower event id but commits after `jobs[1]`.
    let mut open = cancel_in_open_transaction(&env, jobs[0]).await;
    api.cancel(jobs[1]).await.expect("cancel");
    both_readers_wait_at_a_gap(&coordinator.api_url).await;
    assert!(
        tap.drain().await.is_empty(),
        "nothing published past the gap"
    );
    sqlx::query("COMMIT")
        .execute(&mut open)
        .await
        .expect("commit");
    let first = read_n(&mut stream, 2, DEADLINE).await;
    assert_eq!(
        cancelled(&first),
        [jobs[0], jobs[1]],
        "in id order over SSE"
    );
    let published = tap.collect(2, DEADLINE).await;
    let on_exchange: Vec<Uuid> = published
        .iter()
        .flat_map(|m| m.batch.events.iter().map(|e| e.job_id))
        .collect();
    assert_eq!(
        on_exchange,
        [jobs[0], jobs[1]],
        "in id order on the exchange"
    );

    // 2. The same, but the late transaction has the *newer* transaction id,
    // so it lies at or beyond the snapshots' xmax while it runs.
    let mut older = PgConnection::connect(&env.db_url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut older)
        .await
        .expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut older)
        .await
        .expect("an older transaction id");
    let mut open = cancel_in_open_transaction(&env, jobs[2]).await;
    sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1")
        .bind(jobs[3])
        .execute(&mut older)
        .await
        .expect("cancel");
    sqlx::query("COMMIT")
        .execute(&mut older)
        .await
        .expect("commit");
    both_readers_wait_at_a_gap(&coordinator.api_url).await;
    assert!(
        tap.drain().await.is_empty(),
        "nothing published past the gap"
    );
    sqlx::query("COMMIT")
        .execute(&mut open)
        .await
        .expect("commit");

    // 3. An aborted transaction leaves a hole in the ids for good.
    let mut rolled_back = cancel_in_open_transaction(&env, jobs[4]).await;
    sqlx::query("ROLLBACK")
        .execute(&mut rolled_back)
        .await
        .expect("rollback");
    api.cancel(jobs[5]).await.expect("cancel");

    let rest = read_n(&mut stream, 3, DEADLINE).await;
    assert_eq!(cancelled(&rest), [jobs[2], jobs[3], jobs[5]], "over SSE");
    let on_exchange: Vec<Uuid> = tap
        .collect(3, DEADLINE)
        .await
        .iter()
        .flat_map(|m| m.batch.events.iter().map(|e| e.job_id))
        .collect();
    assert_eq!(on_exchange, [jobs[2], jobs[3], jobs[5]], "on the exchange");
    let rows: Vec<_> = event_rows(&store)
        .await
        .into_iter()
        .filter(|row| row.3 == "cancelled")
        .collect();
    let streamed: Vec<_> = first.iter().chain(&rest).map(row_of).collect();
    assert_eq!(streamed, rows, "exactly job_events");
    assert!(rows[4].0 > rows[3].0 + 1, "the aborted id is a gap");
    tap.close().await;
    env.cleanup(&[]).await;
}

#[tokio::test]
async fn a_second_coordinator_stands_by_and_nothing_is_published_twice() {
    let mut env = TestEnv::new().await;
    let first = env.start_coordinator().await;
    let _second = env.start_coordinator().await;
    let tap = EventsTap::bind(&env, &["job.#"]).await;
    let api = ApiClient::new(&first.api_url, TEST_TOKEN).unwrap();
    let store = env.store().await;
    for _ in 0..5 {
        api.submit_http((0..10).map(|_| gated("pair")).collect())
            .await
            .expect("submit");
    }
    let expected = event_rows(&store).await;
    assert_eq!(expected.len(), 50);
    let received: Vec<_> = tap
        .collect(expected.len(), DEADLINE)
        .await
        .iter()
        .flat_map(|m| m.batch.events.iter().map(row_of))
        .collect();
    assert_eq!(received, expected, "once each, in id order");
    tap.close().await;
    env.cleanup(&[]).await;
}
