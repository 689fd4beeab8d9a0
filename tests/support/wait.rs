//! Polling with a deadline: the only way tests wait for asynchronous effects.

use std::future::Future;
use std::time::Duration;

/// Default deadline for something that should happen soon.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what`
/// after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the coordinator at `api_url` answers `/health` with success
/// (its database and broker session are both up).
pub async fn wait_healthy(api_url: &str) {
    let health = format!("{api_url}/health");
    eventually("coordinator healthy", DEADLINE, || async {
        reqwest::get(&health)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
}

/// Waits until `queue` has a consumer (a worker took it up).
pub async fn wait_consumed(session: &warren_broker::Session, queue: &str) {
    eventually("a consumer on the queue", DEADLINE, || async {
        let stats = session.queue_stats(queue).await.ok()?;
        (stats.consumers > 0).then_some(())
    })
    .await;
}
