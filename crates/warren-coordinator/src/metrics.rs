//! Prometheus metrics of the coordinator. Labels are bounded (queue, task
//! type, state, reason) — never a job id. The standard `process_*` metrics
//! (CPU seconds, resident memory, open files, threads) come along.

use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use warren_store::Transition;

use crate::OpsMetrics;

/// Every metric the coordinator exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `warren_job_transitions_total{queue, from, to}`.
    pub transitions: IntCounterVec,
    /// `warren_jobs{queue, state}`.
    pub jobs: IntGaugeVec,
    /// `warren_queue_wait_seconds{queue}`: dispatchable → started.
    pub queue_wait: HistogramVec,
    /// `warren_run_seconds{queue, task_type}`: started → finished.
    pub run_time: HistogramVec,
    /// `warren_stale_reports_total{kind}`.
    pub stale_reports: IntCounterVec,
    /// `warren_rejected_messages_total{source, reason}`.
    pub rejected: IntCounterVec,
    /// `warren_rescued_jobs_total{reason}`.
    pub rescued: IntCounterVec,
    /// `warren_workers_alive`.
    pub workers_alive: IntGauge,
    /// `warren_jobs_submitted_total{outcome}` (created / duplicate).
    pub submitted: IntCounterVec,
    /// `warren_broker_connected` (1 while a broker session is up).
    pub broker_connected: IntGauge,
    /// `warren_broker_reconnects_total`.
    pub broker_reconnects: IntCounter,
    /// `warren_unconfirmed_dispatches` (jobs kept `queued` after an unconfirmed publish).
    pub unconfirmed_dispatches: IntGauge,
    /// `warren_database_errors_total{loop}`.
    pub database_errors: IntCounterVec,
    /// Statistics and retention metrics.
    pub ops: OpsMetrics,
    /// `warren_queue_paused{queue}`: 1 while the queue is paused.
    pub queue_paused: IntGaugeVec,
    /// `warren_dispatch_throttled_total{queue}`: claim rounds that left due
    /// jobs waiting because the queue's rate limit had no token left.
    pub dispatch_throttled: IntCounterVec,
    /// `warren_task_messages_published_total{queue}`: task messages the
    /// broker confirmed, each carrying one or more jobs' tasks.
    pub task_messages: IntCounterVec,
    /// `warren_workflow_transitions_total{from, to}`.
    pub workflow_transitions: IntCounterVec,
    /// `warren_workflows_submitted_total{outcome}` (created / duplicate).
    pub workflows_submitted: IntCounterVec,
    /// The event stream's metrics (`warren_events_*`).
    pub events: EventMetrics,
}

/// Every reason a consumed message can be dead-lettered for.
const REJECT_REASONS: [&str; 9] = [
    "empty",
    "oversized",
    "invalid_utf8",
    "malformed",
    "unknown_version",
    "schema",
    "invalid_job",
    "invalid_workflow",
    "database_refused",
];

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
            let metric = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let transitions = counter(
            "warren_job_transitions_total",
            "Job state transitions applied.",
            &["queue", "from", "to"],
        );
        let stale_reports = counter(
            "warren_stale_reports_total",
            "Worker reports that matched no current attempt.",
            &["kind"],
        );
        let rejected = counter(
            "warren_rejected_messages_total",
            "Messages dead-lettered as unreadable or invalid.",
            &["source", "reason"],
        );
        let rescued = counter(
            "warren_rescued_jobs_total",
            "Jobs rescued by the sweeper.",
            &["reason"],
        );
        let submitted = counter(
            "warren_jobs_submitted_total",
            "Submitted jobs by outcome.",
            &["outcome"],
        );
        let database_errors = counter(
            "warren_database_errors_total",
            "Database errors by loop (retried).",
            &["loop"],
        );
        let dispatch_throttled = counter(
            "warren_dispatch_throttled_total",
            "Dispatch rounds in which a queue's rate limit held back due jobs.",
            &["queue"],
        );
        let task_messages = counter(
            "warren_task_messages_published_total",
            "Task messages confirmed by the broker, each carrying the tasks of one or more jobs.",
            &["queue"],
        );
        let workflow_transitions = counter(
            "warren_workflow_transitions_total",
            "Workflow status transitions applied.",
            &["from", "to"],
        );
        let workflows_submitted = counter(
            "warren_workflows_submitted_total",
            "Submitted workflows by outcome.",
            &["outcome"],
        );
        let queue_wait = histogram(
            "warren_queue_wait_seconds",
            "Time from dispatchable to started.",
            &["queue"],
        );
        let run_time = histogram(
            "warren_run_seconds",
            "Time from started to finished.",
            &["queue", "task_type"],
        );
        let jobs = IntGaugeVec::new(
            Opts::new("warren_jobs", "Jobs by queue and state."),
            &["queue", "state"],
        )
        .expect("valid metric");
        let queue_paused = IntGaugeVec::new(
            Opts::new(
                "warren_queue_paused",
                "1 while the queue is paused, else 0.",
            ),
            &["queue"],
        )
        .expect("valid metric");
        let workers_alive =
            IntGauge::new("warren_workers_alive", "Workers with a recent heartbeat.")
                .expect("valid metric");
        let broker_connected =
            IntGauge::new("warren_broker_connected", "1 while connected to RabbitMQ.")
                .expect("valid metric");
        let broker_reconnects = IntCounter::new(
            "warren_broker_reconnects_total",
            "Broker sessions re-established.",
        )
        .expect("valid metric");
        let unconfirmed_dispatches = IntGauge::new(
            "warren_unconfirmed_dispatches",
            "Jobs kept queued after their task message was sent but never confirmed, until the lost-dispatch check settles them.",
        )
        .expect("valid metric");
        for metric in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(unconfirmed_dispatches.clone()),
            Box::new(queue_paused.clone()),
            Box::new(workers_alive.clone()),
            Box::new(broker_connected.clone()),
            Box::new(broker_reconnects.clone()),
            // process_cpu_seconds_total, process_resident_memory_bytes, ...
            // (one runtime thread by default: CPU near 1 s/s is its ceiling).
            Box::new(ProcessCollector::for_self()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        let ops = OpsMetrics::register(&registry);
        // Known label sets start at zero, so alerts on rate() see a series
        // before the first event.
        for kind in ["started", "progress", "completed", "failed"] {
            stale_reports.with_label_values(&[kind]);
        }
        for reason in [
            "heartbeat_lost",
            "deadline",
            "no_progress",
            "dispatch_lost",
            "undeliverable",
            "publish_unconfirmed",
        ] {
            rescued.with_label_values(&[reason]);
        }
        for source in ["submit", "reports"] {
            for reason in REJECT_REASONS {
                rejected.with_label_values(&[source, reason]);
            }
        }
        let events = EventMetrics::register(&registry);
        Self {
            registry,
            events,
            transitions,
            jobs,
            queue_wait,
            run_time,
            stale_reports,
            rejected,
            rescued,
            workers_alive,
            submitted,
            broker_connected,
            broker_reconnects,
            unconfirmed_dispatches,
            database_errors,
            ops,
            queue_paused,
            dispatch_throttled,
            task_messages,
            workflow_transitions,
            workflows_submitted,
        }
    }

    /// Sets `warren_queue_paused{queue}`.
    pub fn set_queue_paused(&self, queue: &str, paused: bool) {
        self.queue_paused
            .with_label_values(&[queue])
            .set(i64::from(paused));
    }

    /// Counts applied transitions and observes their timings.
    pub fn record(&self, transitions: &[Transition]) {
        for t in transitions {
            self.transitions
                .with_label_values(&[t.queue.as_str(), t.from.as_str(), t.to.as_str()])
                .inc();
            match (t.to, t.seconds) {
                (warren_core::JobState::Running, Some(wait)) => self
                    .queue_wait
                    .with_label_values(&[t.queue.as_str()])
                    .observe(wait),
                (to, Some(run)) if to != warren_core::JobState::Retrying => self
                    .run_time
                    .with_label_values(&[t.queue.as_str(), t.task_type.as_str()])
                    .observe(run),
                _ => {}
            }
        }
    }

    /// Counts a submission of `submitted` jobs of which `created` were new
    /// (the rest were duplicate ids or idempotency keys).
    pub fn count_submitted(&self, submitted: usize, created: usize) {
        self.submitted
            .with_label_values(&["created"])
            .inc_by(created as u64);
        self.submitted
            .with_label_values(&["duplicate"])
            .inc_by(submitted.saturating_sub(created) as u64);
    }

    /// Counts workflow status moves.
    pub fn record_workflow_moves<T: AsRef<str>>(&self, moves: &[(T, T)]) {
        for (from, to) in moves {
            self.workflow_transitions
                .with_label_values(&[from.as_ref(), to.as_ref()])
                .inc();
        }
    }

    /// Counts a submission of `submitted` workflows of which `created` were new.
    pub fn count_workflows_submitted(&self, submitted: usize, created: usize) {
        self.workflows_submitted
            .with_label_values(&["created"])
            .inc_by(created as u64);
        self.workflows_submitted
            .with_label_values(&["duplicate"])
            .inc_by(submitted.saturating_sub(created) as u64);
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Metrics of the event stream (exchange publisher and SSE).
#[derive(Clone)]
pub struct EventMetrics {
    /// `warren_events_published_total`: events published to `<ns>.events`.
    pub published: IntCounter,
    /// `warren_events_publish_batches_total`: AMQP messages published to `<ns>.events`.
    pub publish_batches: IntCounter,
    /// `warren_events_lag{reader}`: newest event id minus the reader's
    /// settled cursor (`publisher`: 0 on coordinators not publishing; `stream`: SSE).
    pub lag: IntGaugeVec,
    /// `warren_events_gaps_skipped_total{reader}`: ids stepped over as
    /// permanently missing (aborted transactions, skipped sequence values).
    pub gaps_skipped: IntCounterVec,
    /// `warren_events_sse_clients`: open Server-Sent Events streams.
    pub sse_clients: IntGauge,
    /// `warren_events_sse_rejected_total`: streams refused (503) at the limit.
    pub sse_rejected: IntCounter,
    /// `warren_events_sse_catchups_total`: times a stream fell behind the
    /// live buffer and re-read the database.
    pub sse_catchups: IntCounter,
}

impl EventMetrics {
    fn register(registry: &Registry) -> Self {
        let metrics = Self {
            published: IntCounter::new(
                "warren_events_published_total",
                "Job events published to the events exchange.",
            )
            .expect("valid metric"),
            publish_batches: IntCounter::new(
                "warren_events_publish_batches_total",
                "Messages (batches of events) published to the events exchange.",
            )
            .expect("valid metric"),
            lag: IntGaugeVec::new(
                Opts::new(
                    "warren_events_lag",
                    "Newest event id minus the reader's settled cursor.",
                ),
                &["reader"],
            )
            .expect("valid metric"),
            gaps_skipped: IntCounterVec::new(
                Opts::new(
                    "warren_events_gaps_skipped_total",
                    "Event ids stepped over as permanently missing.",
                ),
                &["reader"],
            )
            .expect("valid metric"),
            sse_clients: IntGauge::new(
                "warren_events_sse_clients",
                "Open Server-Sent Events streams.",
            )
            .expect("valid metric"),
            sse_rejected: IntCounter::new(
                "warren_events_sse_rejected_total",
                "Server-Sent Events streams refused at the client limit.",
            )
            .expect("valid metric"),
            sse_catchups: IntCounter::new(
                "warren_events_sse_catchups_total",
                "Times a Server-Sent Events stream fell behind and re-read the database.",
            )
            .expect("valid metric"),
        };
        for metric in [
            Box::new(metrics.published.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.publish_batches.clone()),
            Box::new(metrics.lag.clone()),
            Box::new(metrics.gaps_skipped.clone()),
            Box::new(metrics.sse_clients.clone()),
            Box::new(metrics.sse_rejected.clone()),
            Box::new(metrics.sse_catchups.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        for reader in ["publisher", "stream"] {
            metrics.lag.with_label_values(&[reader]);
            metrics.gaps_skipped.with_label_values(&[reader]);
        }
        metrics
    }
}
