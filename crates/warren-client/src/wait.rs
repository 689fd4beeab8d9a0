//! Waiting for a job to finish by polling `GET /v1/jobs/{id}`.
//!
//! Polling rides out what an operator expects to be temporary: transport
//! errors and 502–504 while the coordinator restarts are retried with backoff
//! (500 ms doubling up to 5 s, reset by the next success), and a 404 right
//! after an AMQP submission (intake is asynchronous) is retried for up to
//! [`NOT_FOUND_GRACE`]. Anything else (401, a 404 later on) ends the wait.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;
use warren_core::JobState;

use crate::api::ApiClient;
use crate::error::ClientError;
use crate::model::Job;

/// How long a job may stay unknown (404) before the wait gives up.
pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(30);
/// First delay after a failed poll.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(500);
/// Longest delay between failed polls.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// What a [`watch_job`] observer is told.
#[derive(Debug)]
pub enum WaitEvent<'a> {
    /// The job was seen for the first time or changed (state, attempt,
    /// progress, stage or worker).
    Update(&'a Job),
    /// A poll failed with an error worth retrying; the next one follows in
    /// `retry_in`. A 404 ([`ClientError::is_not_found`]) means the job is not
    /// accepted yet; anything else that the coordinator is unreachable.
    Retrying {
        /// Why the poll failed.
        error: &'a ClientError,
        /// Delay before the next poll.
        retry_in: Duration,
    },
}

/// Polls the job every `poll` until [`Job::is_finished`], calling `on_update`
/// with the first observation and with every change; returns the final job.
pub async fn wait_for_terminal(
    api: &ApiClient,
    id: Uuid,
    poll: Duration,
    mut on_update: impl FnMut(&Job),
) -> Result<Job, ClientError> {
    watch_job(api, id, poll, |event| {
        if let WaitEvent::Update(job) = event {
            on_update(job);
        }
    })
    .await
}

/// Like [`wait_for_terminal`], also telling `observe` about retried failures
/// (so a UI can show "reconnecting…").
pub async fn watch_job(
    api: &ApiClient,
    id: Uuid,
    poll: Duration,
    mut observe: impl FnMut(WaitEvent<'_>),
) -> Result<Job, ClientError> {
    let started = Instant::now();
    let mut seen: Option<Snapshot> = None;
    let mut failures = 0u32;
    loop {
        match api.get_job(id).await {
            Ok(job) => {
                failures = 0;
                let now = Snapshot::of(&job);
                if seen.as_ref() != Some(&now) {
                    observe(WaitEvent::Update(&job));
                    seen = Some(now);
                }
                if job.is_finished() {
                    return Ok(job);
                }
                tokio::time::sleep(poll).await;
            }
            Err(error) if should_retry(&error, seen.is_some(), started.elapsed()) => {
                let retry_in = retry_delay(failures);
                failures = failures.saturating_add(1);
                observe(WaitEvent::Retrying {
                    error: &error,
                    retry_in,
                });
                tokio::time::sleep(retry_in).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// What makes an update worth reporting.
#[derive(Debug, PartialEq)]
struct Snapshot {
    state: JobState,
    attempt: u32,
    progress: Option<f32>,
    stage: Option<String>,
    worker_id: Option<String>,
}

impl Snapshot {
    fn of(job: &Job) -> Snapshot {
        Snapshot {
            state: job.state,
            attempt: job.attempt,
            progress: job.progress,
            stage: job.stage.clone(),
            worker_id: job.worker_id.clone(),
        }
    }
}

/// Transient failures are always retried; a 404 only until the job was seen
/// once and for at most [`NOT_FOUND_GRACE`].
fn should_retry(error: &ClientError, seen: bool, waited: Duration) -> bool {
    error.is_transient() || (error.is_not_found() && !seen && waited < NOT_FOUND_GRACE)
}

/// Delay after `failures` consecutive failed polls: 500 ms, 1 s, 2 s, 4 s, 5 s, 5 s, ...
fn retry_delay(failures: u32) -> Duration {
    RETRY_MIN_DELAY
        .saturating_mul(1u32 << failures.min(16))
        .min(RETRY_MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::api_error;

    #[test]
    fn backoff_doubles_from_half_a_second_to_five() {
        let delays: Vec<u64> = (0..7).map(|n| retry_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX_DELAY);
    }

    #[test]
    fn retries_unavailable_and_early_not_found_only() {
        let unavailable = api_error(503, br#"{"error":{"code":"unavailable","message":"m"}}"#);
        let not_found = api_error(404, br#"{"error":{"code":"not_found","message":"m"}}"#);
        let unauthorized = api_error(401, br#"{"error":{"code":"unauthorized","message":"m"}}"#);
        let second = Duration::from_secs(1);
        assert!(should_retry(&unavailable, true, Duration::from_secs(3600)));
        assert!(should_retry(&not_found, false, second));
        assert!(!should_retry(&not_found, false, NOT_FOUND_GRACE));
        assert!(!should_retry(&not_found, true, second));
        assert!(!should_retry(&unauthorized, false, second));
    }
}
