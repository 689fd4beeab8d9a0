//! How long finished jobs are kept, per state, and how often the cleanup
//! loop ([`crate::cleanup`]) looks for older ones.

use std::time::Duration;

use warren_core::JobState;

/// Completed jobs are kept this long by default.
pub const DEFAULT_RETENTION_COMPLETED: Duration = Duration::from_secs(7 * 86_400);
/// Dead (`failed` / `timeout`) jobs are kept this long by default: they
/// wait for an operator, so they are kept longest.
pub const DEFAULT_RETENTION_FAILED: Duration = Duration::from_secs(30 * 86_400);
/// Cancelled and skipped jobs are kept this long by default.
pub const DEFAULT_RETENTION_CANCELLED: Duration = Duration::from_secs(7 * 86_400);
/// How often the cleanup loop runs by default.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(60);

/// Retention per state; `None` keeps those jobs forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// `completed` jobs (`WARREN_RETENTION_COMPLETED`).
    pub completed: Option<Duration>,
    /// `failed` and `timeout` jobs, which are dead at rest (`WARREN_RETENTION_FAILED`).
    pub failed: Option<Duration>,
    /// `cancelled` and `skipped` jobs (`WARREN_RETENTION_CANCELLED`).
    pub cancelled: Option<Duration>,
    /// Period of the cleanup loop (`WARREN_CLEANUP_INTERVAL`).
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed: Some(DEFAULT_RETENTION_COMPLETED),
            failed: Some(DEFAULT_RETENTION_FAILED),
            cancelled: Some(DEFAULT_RETENTION_CANCELLED),
            interval: DEFAULT_CLEANUP_INTERVAL,
        }
    }
}

impl Retention {
    /// Each finished state with its retention, skipping the ones kept forever.
    pub fn by_state(&self) -> Vec<(JobState, Duration)> {
        [
            (JobState::Completed, self.completed),
            (JobState::Failed, self.failed),
            (JobState::Timeout, self.failed),
            (JobState::Cancelled, self.cancelled),
            (JobState::Skipped, self.cancelled),
        ]
        .into_iter()
        .filter_map(|(state, keep)| keep.map(|keep| (state, keep)))
        .collect()
    }
}

/// Reads a retention: a duration (`7d`, `12h`, ...) or `off` (keep forever).
pub fn parse_retention(text: &str) -> Result<Option<Duration>, String> {
    match text.trim() {
        "off" | "never" => Ok(None),
        other => warren_core::parse_duration(other)
            .map(Some)
            .map_err(|e| format!("{e}, or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_days_and_off() {
        assert_eq!(
            parse_retention("7d"),
            Ok(Some(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(parse_retention("off"), Ok(None));
        assert!(parse_retention("soon").is_err());
    }

    #[test]
    fn every_finished_state_has_a_retention_by_default() {
        let states: Vec<JobState> = Retention::default()
            .by_state()
            .into_iter()
            .map(|(state, _)| state)
            .collect();
        assert_eq!(states, warren_store::CLEANABLE_STATES.to_vec());
        let off = Retention {
            failed: None,
            ..Retention::default()
        };
        assert!(off
            .by_state()
            .iter()
            .all(|(state, _)| !matches!(state, JobState::Failed | JobState::Timeout)));
    }
}
