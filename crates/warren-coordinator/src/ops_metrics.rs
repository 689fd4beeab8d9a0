//! Metrics of the statistics and retention features: how long the oldest
//! due job of each queue has waited, and what cleanup deleted.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, Opts, Registry};
use warren_core::JobState;
use warren_store::{CleanupBatch, CLEANABLE_STATES};

/// Registered into the coordinator's registry by [`crate::Metrics::new`].
#[derive(Clone)]
pub struct OpsMetrics {
    /// `warren_oldest_pending_age_seconds{queue}`: age of the oldest due
    /// `pending` / `retrying` job (0 when none is due), refreshed with the
    /// other gauges.
    pub oldest_pending_age: GaugeVec,
    /// `warren_cleanup_deleted_total{state}`: jobs deleted by retention or
    /// a manual cleanup.
    pub cleanup_deleted: IntCounterVec,
    /// `warren_cleanup_deleted_events_total`: their events.
    pub cleanup_deleted_events: IntCounter,
}

impl OpsMetrics {
    /// Creates the metrics and registers them.
    pub(crate) fn register(registry: &Registry) -> Self {
        let oldest_pending_age = GaugeVec::new(
            Opts::new(
                "warren_oldest_pending_age_seconds",
                "Seconds the oldest due pending or retrying job of a queue has waited.",
            ),
            &["queue"],
        )
        .expect("valid metric");
        let cleanup_deleted = IntCounterVec::new(
            Opts::new(
                "warren_cleanup_deleted_total",
                "Finished jobs deleted by retention or manual cleanup.",
            ),
            &["state"],
        )
        .expect("valid metric");
        let cleanup_deleted_events = IntCounter::new(
            "warren_cleanup_deleted_events_total",
            "Events of jobs deleted by cleanup.",
        )
        .expect("valid metric");
        for metric in [
            Box::new(oldest_pending_age.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cleanup_deleted.clone()),
            Box::new(cleanup_deleted_events.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        for state in CLEANABLE_STATES {
            cleanup_deleted.with_label_values(&[state.as_str()]);
        }
        Self {
            oldest_pending_age,
            cleanup_deleted,
            cleanup_deleted_events,
        }
    }

    /// Counts one cleanup batch of `state` jobs.
    pub(crate) fn count_cleanup(&self, state: JobState, batch: CleanupBatch) {
        self.cleanup_deleted
            .with_label_values(&[state.as_str()])
            .inc_by(batch.jobs);
        self.cleanup_deleted_events.inc_by(batch.events);
    }
}
