//! The submission phase: split the jobs across submitters, send them in
//! envelopes of `batch` jobs (paced when a rate is set), and record when
//! each job was sent.

use std::time::{Duration, SystemTime};

use uuid::Uuid;
use warren_core::protocol::JobSpec;

use crate::{BenchConfig, BenchError, Channel};

/// One job and the wall-clock time its envelope was sent.
pub(crate) struct Submitted {
    pub(crate) id: Uuid,
    pub(crate) at: SystemTime,
}

/// Submits every job; returns them once all envelopes were confirmed.
pub(crate) async fn submit_all(
    config: &BenchConfig,
    submitters: Vec<Channel>,
) -> Result<Vec<Submitted>, BenchError> {
    let count = submitters.len();
    let mut tasks = Vec::with_capacity(count);
    for (index, submitter) in submitters.into_iter().enumerate() {
        // Jobs index, index + count, ... go to this submitter.
        let share = (config.jobs + count - 1 - index) / count;
        let config = config.clone();
        let rate = config.rate.map(|r| r / count as f64);
        tasks.push(tokio::spawn(async move {
            // Staggered, submitter i starts i/count of an envelope interval
            // late, as independent clients would; otherwise all tick together.
            let phase = if config.stagger {
                index as f64 / count as f64
            } else {
                0.0
            };
            let result = submit_share(&config, &submitter, share, rate, phase).await;
            submitter.close().await;
            result
        }));
    }
    let mut all = Vec::with_capacity(config.jobs);
    for task in tasks {
        all.extend(task.await.expect("submitter task panicked")?);
    }
    Ok(all)
}

async fn submit_share(
    config: &BenchConfig,
    submitter: &Channel,
    share: usize,
    rate: Option<f64>,
    phase: f64,
) -> Result<Vec<Submitted>, BenchError> {
    // At a target rate, send small envelopes often (one per ~10 ms) so
    // latency is measured per job, not per large batch.
    let batch = match rate {
        Some(rate) => ((rate / 100.0).ceil() as usize).clamp(1, config.batch),
        None => config.batch,
    };
    let mut ticker = rate.map(|rate| {
        let period = Duration::from_secs_f64(batch as f64 / rate);
        let start = tokio::time::Instant::now() + period.mul_f64(phase);
        let mut interval = tokio::time::interval_at(start, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut sent = Vec::with_capacity(share);
    let mut remaining = share;
    while remaining > 0 {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let n = remaining.min(batch);
        let specs: Vec<JobSpec> = (0..n)
            .map(|_| {
                JobSpec::new(
                    config.queue.clone(),
                    config.task_type.clone(),
                    config.payload.clone(),
                )
            })
            .collect();
        let at = SystemTime::now();
        let ids = submitter.submit_batch(specs).await?;
        sent.extend(ids.into_iter().map(|id| Submitted { id, at }));
        remaining -= n;
    }
    Ok(sent)
}
