//! Prometheus metrics of a worker (bounded labels only), with the
//! standard `process_*` metrics (CPU seconds, resident memory, threads).

use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric a worker exports.
#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Registry,
    /// `warren_worker_jobs_total{task_type, outcome}`.
    pub jobs: IntCounterVec,
    /// `warren_worker_job_seconds{task_type}`.
    pub job_seconds: HistogramVec,
    /// `warren_worker_running`.
    pub running: IntGauge,
    /// `warren_worker_rejected_messages_total{source, reason}`.
    pub rejected: IntCounterVec,
    /// `warren_worker_broker_connected`.
    pub connected: IntGauge,
    /// `warren_worker_tasks_handed_back_total`.
    pub handed_back: IntCounter,
    /// `warren_worker_duplicate_tasks_total`.
    pub duplicates: IntCounter,
}

impl WorkerMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let jobs = IntCounterVec::new(
            Opts::new("warren_worker_jobs_total", "Attempts finished by outcome."),
            &["task_type", "outcome"],
        )
        .expect("valid metric");
        let job_seconds = HistogramVec::new(
            HistogramOpts::new("warren_worker_job_seconds", "Handler run time.").buckets(vec![
                0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0,
            ]),
            &["task_type"],
        )
        .expect("valid metric");
        let running =
            IntGauge::new("warren_worker_running", "Attempts running now.").expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "warren_worker_rejected_messages_total",
                "Messages dead-lettered by this worker.",
            ),
            &["source", "reason"],
        )
        .expect("valid metric");
        let connected = IntGauge::new(
            "warren_worker_broker_connected",
            "1 while connected to RabbitMQ.",
        )
        .expect("valid metric");
        let handed_back = IntCounter::new(
            "warren_worker_tasks_handed_back_total",
            "Tasks of a multi-task message published back to their queue for want of a free slot.",
        )
        .expect("valid metric");
        let duplicates = IntCounter::new(
            "warren_worker_duplicate_tasks_total",
            "Tasks delivered again for an attempt this worker had begun, settled without running.",
        )
        .expect("valid metric");
        for metric in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(job_seconds.clone()),
            Box::new(running.clone()),
            Box::new(rejected.clone()),
            Box::new(connected.clone()),
            Box::new(handed_back.clone()),
            Box::new(duplicates.clone()),
            Box::new(ProcessCollector::for_self()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        Self {
            registry,
            jobs,
            job_seconds,
            running,
            rejected,
            connected,
            handed_back,
            duplicates,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
