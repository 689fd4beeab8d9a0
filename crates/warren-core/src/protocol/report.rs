//! `Report`: worker → coordinator on `<ns>.reports`. One envelope carries a
//! batch of reports and optionally the worker's heartbeat.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Versioned, PROTOCOL_VERSION};

/// Identifies one attempt of one job; a report for any other triple is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobRef {
    /// The job.
    pub job_id: Uuid,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Lease token of the attempt.
    pub lease: Uuid,
}

/// A batch of reports from one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportEnvelope {
    /// Protocol version (1).
    pub v: u32,
    /// Sender (hostname + boot UUID).
    pub worker_id: String,
    /// Present once per heartbeat interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// Lifecycle reports, in the order they happened.
    #[serde(default)]
    pub reports: Vec<Report>,
}

impl ReportEnvelope {
    /// An envelope of the current version.
    pub fn new(
        worker_id: impl Into<String>,
        heartbeat: Option<Heartbeat>,
        reports: Vec<Report>,
    ) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            worker_id: worker_id.into(),
            heartbeat,
            reports,
        }
    }
}

impl Versioned for ReportEnvelope {
    fn version(&self) -> u32 {
        self.v
    }
}

/// "I am alive, and these are the attempts I am running."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Queues the worker consumes.
    pub queues: Vec<String>,
    /// Its concurrency (prefetch).
    pub concurrency: u32,
    /// Attempts in flight.
    pub running: Vec<JobRef>,
}

/// How a failed attempt should be followed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryDecision {
    /// Retry on the job's backoff schedule if attempts remain.
    Retryable,
    /// Never retry automatically.
    Fatal,
    /// Retry after this delay if attempts remain.
    RetryAfter {
        /// Delay in milliseconds.
        ms: u64,
    },
}

/// Why an attempt did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Human-readable error (bounded by the worker).
    pub error: String,
    /// Retry decision made by the handler.
    pub retry: RetryDecision,
    /// True when the worker's own timeout fired (the job moves to `timeout`).
    #[serde(default)]
    pub timed_out: bool,
}

/// One lifecycle report about one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// The handler started.
    Started {
        /// The attempt.
        job: JobRef,
    },
    /// Progress and/or a checkpoint.
    Progress {
        /// The attempt.
        job: JobRef,
        /// 0–100.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<f32>,
        /// Free-form stage name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
        /// State to resume from if the attempt is retried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<Value>,
    },
    /// The handler returned a result. May arrive without a prior `Started`
    /// (fast jobs coalesce both into this report).
    Completed {
        /// The attempt.
        job: JobRef,
        /// Handler output.
        result: Value,
    },
    /// The handler failed or timed out. May arrive without `Started`.
    Failed {
        /// The attempt.
        job: JobRef,
        /// What went wrong and what to do next.
        failure: Failure,
    },
}

impl Report {
    /// The attempt this report is about.
    pub fn job(&self) -> JobRef {
        match self {
            Report::Started { job }
            | Report::Progress { job, .. }
            | Report::Completed { job, .. }
            | Report::Failed { job, .. } => *job,
        }
    }

    /// Metric label of the report kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Started { .. } => "started",
            Report::Progress { .. } => "progress",
            Report::Completed { .. } => "completed",
            Report::Failed { .. } => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode;

    #[test]
    fn report_envelope_round_trips() {
        let job = JobRef {
            job_id: Uuid::now_v7(),
            attempt: 2,
            lease: Uuid::new_v4(),
        };
        let env = ReportEnvelope::new(
            "host-1",
            Some(Heartbeat {
                queues: vec!["default".into()],
                concurrency: 4,
                running: vec![job],
            }),
            vec![
                Report::Started { job },
                Report::Progress {
                    job,
                    percent: Some(50.0),
                    stage: Some("half".into()),
                    checkpoint: None,
                },
                Report::Failed {
                    job,
                    failure: Failure {
                        error: "boom".into(),
                        retry: RetryDecision::RetryAfter { ms: 5 },
                        timed_out: false,
                    },
                },
            ],
        );
        let bytes = crate::protocol::encode(&env);
        let back: ReportEnvelope = decode(&bytes, 1 << 20).unwrap();
        assert_eq!(back, env);
    }
}
