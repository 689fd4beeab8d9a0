//! `warren bench`: drives a running deployment (it starts nothing itself).
//!
//! Submits N jobs from C submitter connections (over AMQP, or to the HTTP
//! API: [`Channel`]) — as fast as possible or at a target rate — waits until every one is final, and
//! reports submission and completion throughput and submit→completed
//! latency percentiles. Completion is read from the jobs table (the
//! durable record), so a job only counts once its terminal state is committed.

pub mod ceilings;
mod channel;
mod report;
mod submit;

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use uuid::Uuid;
use warren_store::Store;

pub use channel::Channel;
pub use report::BenchReport;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Number of jobs.
    pub jobs: usize,
    /// Queue to submit to (a worker must consume it).
    pub queue: String,
    /// Task type (default `echo`, a no-op).
    pub task_type: String,
    /// Payload of every job.
    pub payload: Value,
    /// Jobs per Submit envelope.
    pub batch: usize,
    /// Target submission rate in jobs/s (None: as fast as possible).
    pub rate: Option<f64>,
    /// At a rate, start the submitters' envelope clocks spread over one
    /// interval (as independent clients would be) instead of together.
    pub stagger: bool,
    /// Give up waiting for completion after this long.
    pub deadline: Duration,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Submitting failed.
    #[error("submission failed: {0}")]
    Submit(#[from] warren_client::ClientError),
    /// Reading progress from the database failed.
    #[error("database error: {0}")]
    Store(#[from] warren_store::StoreError),
    /// The broker probe of `--ceilings` failed.
    #[error("broker error: {0}")]
    Broker(#[from] warren_broker::BrokerError),
    /// The database probe of `--ceilings` failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Nothing to do.
    #[error("invalid benchmark: {0}")]
    Invalid(String),
}

/// Runs the benchmark; `progress(finished, total)` is called about twice a second.
pub async fn run(
    config: &BenchConfig,
    submitters: Vec<Channel>,
    store: &Store,
    mut progress: impl FnMut(usize, usize),
) -> Result<BenchReport, BenchError> {
    if config.jobs == 0 || submitters.is_empty() || config.batch == 0 {
        return Err(BenchError::Invalid(
            "jobs, submitters and batch must be at least 1".into(),
        ));
    }
    let first_id = Uuid::now_v7();
    let started = Instant::now();
    let started_wall = SystemTime::now();
    let submitted = submit::submit_all(config, submitters).await?;
    let submit_elapsed = started.elapsed();

    let mut finished = 0usize;
    while finished < config.jobs && started.elapsed() < config.deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        finished = store.count_finished_since(&config.queue, first_id).await? as usize;
        progress(finished.min(config.jobs), config.jobs);
    }
    let rows = fetch_finish_times(store, &submitted).await?;
    Ok(report::summarise(
        config.jobs,
        &submitted,
        &rows,
        started_wall,
        submit_elapsed,
    ))
}

/// Finish times of every submitted job, fetched in chunks.
async fn fetch_finish_times(
    store: &Store,
    submitted: &[submit::Submitted],
) -> Result<Vec<report::Row>, BenchError> {
    let mut rows = Vec::with_capacity(submitted.len());
    for chunk in submitted.chunks(10_000) {
        let ids: Vec<Uuid> = chunk.iter().map(|s| s.id).collect();
        rows.extend(store.finish_times(&ids).await?);
    }
    Ok(rows)
}
