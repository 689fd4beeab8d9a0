//! Server-Sent Events: `/v1/events` and `/v1/jobs/{id}/events` serve
//! history then live events, resume after a disconnect with `Last-Event-ID`
//! without losing or repeating any, filter, authenticate and bound clients.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use warren_client::{ApiClient, EventQuery, EventSource, JobSpec, SseParser, TransitionEvent};
use warren_core::JobState;
use warren_tests::{
    event_rows, eventually, metric_value, read_n, read_until, row_of, TestEnv, DEADLINE, TEST_TOKEN,
};

fn echo(n: usize) -> Vec<JobSpec> {
    (0..n)
        .map(|i| JobSpec::new("default", "echo", json!({ "i": i })))
        .collect()
}

fn from_start() -> EventSource {
    EventSource::All(EventQuery {
        after: Some(0),
        ..EventQuery::default()
    })
}

#[tokio::test]
async fn history_then_live_and_a_resumed_stream_misses_and_repeats_nothing() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let all_completed = |n: usize| {
        let store = &store;
        async move {
            eventually("jobs completed", DEADLINE, || async {
                (TestEnv::completed_jobs(store).await == n).then_some(())
            })
            .await
        }
    };

    // History: events that happened before the stream was opened.
    env.submit(echo(10)).await;
    all_completed(10).await;
    let history = event_rows(&store).await;
    let mut stream = api.event_stream(&from_start(), None).await.unwrap();
    let mut seen = read_n(&mut stream, history.len(), DEADLINE).await;
    assert_eq!(seen.iter().map(row_of).collect::<Vec<_>>(), history);

    // Live: events after it was opened.
    env.submit(echo(10)).await;
    all_completed(20).await;
    let total = event_rows(&store).await.len();
    seen.extend(read_n(&mut stream, total - seen.len(), DEADLINE).await);

    // Disconnect part-way through a burst; events keep happening meanwhile.
    env.submit(echo(30)).await;
    seen.extend(read_n(&mut stream, 5, DEADLINE).await);
    drop(stream);
    all_completed(50).await;
    let last = seen.last().unwrap().id;
    let mut resumed = api.event_stream(&from_start(), Some(last)).await.unwrap();
    let expected = event_rows(&store).await;
    seen.extend(read_n(&mut resumed, expected.len() - seen.len(), DEADLINE).await);
    assert_eq!(
        seen.iter().map(row_of).collect::<Vec<_>>(),
        expected,
        "the union is job_events exactly: no gap, no duplicate, in order"
    );
    assert!(seen
        .iter()
        .all(|e| e.queue == "default" && e.task_type == "echo"));
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn a_stream_without_a_start_begins_now_and_filters_apply() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let gated = |queue: &str| {
        let mut spec = JobSpec::new(queue, "echo", json!({}));
        spec.requires_approval = true;
        spec
    };
    api.submit_http(vec![gated("old")]).await.unwrap();
    // Once a stream has delivered the old event, the tailer has settled past
    // it, so "now" lies after it.
    let mut probe = api.event_stream(&from_start(), None).await.unwrap();
    read_n(&mut probe, 1, DEADLINE).await;
    let mut now = api
        .event_stream(&EventSource::All(EventQuery::default()), None)
        .await
        .unwrap();
    let mut only_b = api
        .event_stream(
            &EventSource::All(EventQuery {
                queue: Some("b".into()),
                state: Some(JobState::Cancelled),
                after: Some(0),
                ..EventQuery::default()
            }),
            None,
        )
        .await
        .unwrap();
    let a = api.submit_http(vec![gated("a")]).await.unwrap().ids[0];
    let b = api.submit_http(vec![gated("b")]).await.unwrap().ids[0];
    api.cancel(a).await.unwrap();
    api.cancel(b).await.unwrap();

    let live = read_n(&mut now, 4, DEADLINE).await;
    let jobs: Vec<_> = live.iter().map(|e| (e.job_id, e.to)).collect();
    assert_eq!(
        jobs,
        [
            (a, JobState::AwaitingApproval),
            (b, JobState::AwaitingApproval),
            (a, JobState::Cancelled),
            (b, JobState::Cancelled)
        ],
        "nothing from before the stream opened"
    );
    let filtered = read_n(&mut only_b, 1, DEADLINE).await;
    assert_eq!(
        (filtered[0].job_id, filtered[0].to),
        (b, JobState::Cancelled)
    );
    let rows = event_rows(&store).await;
    assert_eq!(row_of(&filtered[0]), *rows.last().unwrap());
    env.cleanup(&[]).await;
}

#[tokio::test]
async fn a_job_stream_replays_its_history_then_follows_it_to_the_end() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let _worker = env.start_worker(&["default"]);
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let other = api.submit_http(echo(1)).await.unwrap().ids[0];
    let spec = JobSpec::new("default", "sleep", json!({ "ms": 1500 }));
    let id = api.submit_http(vec![spec]).await.unwrap().ids[0];
    env.wait_job(&store, id, "running", |j| j.state() == JobState::Running)
        .await;

    let mut stream = api.event_stream(&EventSource::Job(id), None).await.unwrap();
    let events = read_until(&mut stream, DEADLINE, |events| {
        events.last().is_some_and(|e| e.to == JobState::Completed)
    })
    .await;
    let expected: Vec<_> = event_rows(&store)
        .await
        .into_iter()
        .filter(|row| row.1 == id)
        .collect();
    assert_eq!(events.iter().map(row_of).collect::<Vec<_>>(), expected);
    assert!(events.iter().all(|e| e.job_id != other));
    let states: Vec<_> = events.iter().map(|e| e.to).collect();
    assert_eq!(
        states,
        [
            JobState::Pending,
            JobState::Queued,
            JobState::Running,
            JobState::Completed
        ]
    );

    // Resuming after the second event replays the rest only.
    let mut resumed = api
        .event_stream(&EventSource::Job(id), Some(events[1].id))
        .await
        .unwrap();
    let rest = read_n(&mut resumed, 2, DEADLINE).await;
    assert_eq!(rest, events[2..]);

    // Without `Accept: text/event-stream` the same path still answers JSON.
    let (status, body) = env
        .api_get(&coordinator.api_url, &format!("/v1/jobs/{id}/events"))
        .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["events"].as_array().map(Vec::len), Some(4));
    env.cleanup(&["default"]).await;
}

/// Status and error code of a GET that asks for an event stream.
async fn stream_status(
    url: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = tokio::time::timeout(Duration::from_secs(10), request.send())
        .await
        .expect("answered")
        .expect("sent");
    let status = response.status().as_u16();
    if status == 200 {
        return (status, String::new());
    }
    let body: Value = response.json().await.expect("a JSON error");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn streams_need_the_token_and_reject_bad_requests() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let id = api.submit_http(echo(1)).await.unwrap().ids[0];
    let base = &coordinator.api_url;
    let all = format!("{base}/v1/events");
    let job = format!("{base}/v1/jobs/{id}/events");
    for url in [&all, &job] {
        assert_eq!(
            stream_status(url, None, None).await,
            (401, "unauthorized".into())
        );
        assert_eq!(
            stream_status(url, Some("wrong-token-0123456789"), None).await,
            (401, "unauthorized".into())
        );
        assert_eq!(
            stream_status(url, Some(TEST_TOKEN), Some("not-a-number")).await,
            (400, "bad_request".into())
        );
    }
    for query in [
        "state=bogus",
        "sort=id",
        "queue=bad%20name",
        "after=-1",
        "job=x",
        "workflow=x",
        "kind=jobs",
        "kind=workflow&queue=default",
        "kind=workflow&state=completed",
    ] {
        assert_eq!(
            stream_status(&format!("{all}?{query}"), Some(TEST_TOKEN), None).await,
            (400, "bad_request".into()),
            "{query}"
        );
    }
    let unknown = format!("{base}/v1/jobs/{}/events", uuid::Uuid::now_v7());
    assert_eq!(
        stream_status(&unknown, Some(TEST_TOKEN), None).await,
        (404, "not_found".into())
    );
    env.cleanup(&[]).await;
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_and_counted() {
    let mut env = TestEnv::new().await;
    let mut config = env.coordinator_config();
    config.max_event_streams = 1;
    let coordinator = env.start_coordinator_with(config).await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let url = format!("{}/v1/events", coordinator.api_url);
    let first = api.event_stream(&from_start(), None).await.unwrap();
    assert_eq!(
        stream_status(&url, Some(TEST_TOKEN), None).await,
        (503, "busy".into())
    );
    let metrics = reqwest::get(format!("{}/metrics", coordinator.api_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric_value(&metrics, "warren_events_sse_clients"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "warren_events_sse_rejected_total"),
        Some(1.0)
    );
    drop(first);
    eventually("the slot is freed", DEADLINE, || async {
        (stream_status(&url, Some(TEST_TOKEN), None).await.0 == 200).then_some(())
    })
    .await;
    env.cleanup(&[]).await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_instead_of_waiting_for_them() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let mut stream = api.event_stream(&from_start(), None).await.unwrap();
    coordinator.stop.cancel();
    tokio::time::timeout(DEADLINE, coordinator.done)
        .await
        .expect("the coordinator stops although a stream is open")
        .expect("coordinator task");
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.next_message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "a clean end: {end:?}");
    env.cleanup(&[]).await;
}

/// A deliberately slow SSE client: HTTP/1.0 (so the body is the bare event
/// stream) over a socket with a tiny receive buffer, so the coordinator's
/// writes stall while it does not read.
struct SlowClient {
    socket: TcpStream,
    parser: SseParser,
}

impl SlowClient {
    /// Connects and reads the response head (the stream is then subscribed).
    async fn open(api_url: &str, path: &str) -> Self {
        let addr = api_url
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .expect("address");
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small buffer");
        let mut socket = socket.connect(addr).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.0\r\nAuthorization: Bearer {TEST_TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.expect("request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).await.expect("response head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.0 200"), "{head}");
        Self {
            socket,
            parser: SseParser::new(),
        }
    }

    /// Reads until `n` job events arrived; panics after [`DEADLINE`] (the
    /// stream's keep-alives would otherwise keep a short read going forever).
    async fn read(&mut self, n: usize) -> Vec<TransitionEvent> {
        let mut events: Vec<TransitionEvent> = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let until = tokio::time::Instant::now() + DEADLINE;
        while events.len() < n {
            let read = tokio::time::timeout_at(until, self.socket.read(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events arrived", events.len()))
                .expect("readable");
            assert!(read > 0, "the stream ended after {} events", events.len());
            self.parser.feed(&buffer[..read]).expect("valid stream");
            while let Some(message) = self.parser.next_message() {
                events.push(serde_json::from_str(&message.data).expect("a job event"));
            }
        }
        events
    }
}

#[tokio::test]
async fn a_slow_client_falls_behind_catches_up_from_the_database_and_misses_nothing() {
    let mut env = TestEnv::new().await;
    let mut config = env.coordinator_config();
    config.event_stream_buffer = 1;
    let coordinator = env.start_coordinator_with(config).await;
    let store = env.store().await;
    let api = ApiClient::new(&coordinator.api_url, TEST_TOKEN).unwrap();
    let mut slow = SlowClient::open(&coordinator.api_url, "/v1/events?after=0").await;

    // Large events keep coming, over many tail reads, while the client
    // reads nothing: its socket and the coordinator's write buffers fill,
    // the coordinator stops writing to it, and its live buffer (one tail
    // read) overflows.
    let metrics = || async {
        reqwest::get(format!("{}/metrics", coordinator.api_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let gated = (0..40).map(|_| {
        let mut spec = JobSpec::new("default", "echo", json!({}));
        spec.requires_approval = true;
        spec
    });
    let jobs = api.submit_http(gated.collect()).await.expect("submit").ids;
    let note = json!({ "pad": "x".repeat(400_000) });
    for job in jobs {
        sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = now(), transition_note = $2
              WHERE id = $1",
        )
        .bind(job)
        .bind(&note)
        .execute(store.pool())
        .await
        .expect("cancel with a large note");
        // One event per tail read: wait until the publisher, which polls
        // like the tailer, has read it.
        let count = event_rows(&store).await.len() as f64;
        eventually("published", DEADLINE, || async {
            (metric_value(&metrics().await, "warren_events_published_total")? >= count)
                .then_some(())
        })
        .await;
    }
    let expected = event_rows(&store).await;
    let events = slow.read(expected.len()).await;
    assert_eq!(
        events.iter().map(row_of).collect::<Vec<_>>(),
        expected,
        "every event once, in order, across the catch-up"
    );
    assert!(
        metric_value(&metrics().await, "warren_events_sse_catchups_total") >= Some(1.0),
        "the client did fall behind and catch up"
    );
    env.cleanup(&[]).await;
}
