//! Small text formatters shared by the commands: timestamps, ages, truncated
//! JSON and the one-line job summary.

use chrono::{DateTime, Utc};
use serde_json::Value;
use warren_client::Job;

/// `2025-01-31 12:00:00Z`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `2025-01-31 12:00:00.123Z`.
pub(crate) fn timestamp_ms(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// `2025-01-31 12:00:00.123Z (5s ago)`.
pub(crate) fn timestamp_with_age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", timestamp_ms(at), age(at, now))
}

/// How long ago `at` was, in the largest whole unit: `5s ago`, `3m ago`,
/// `2h ago`, `4d ago`; `in 5s` for the future.
pub(crate) fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let span = |s: i64| {
        let s = s.unsigned_abs();
        match s {
            0..=59 => format!("{s}s"),
            60..=3_599 => format!("{}m", s / 60),
            3_600..=86_399 => format!("{}h", s / 3_600),
            _ => format!("{}d", s / 86_400),
        }
    };
    if seconds >= 0 {
        format!("{} ago", span(seconds))
    } else {
        format!("in {}", span(seconds))
    }
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Compact JSON, truncated to `max` characters.
pub(crate) fn compact_json(value: &Value, max: usize) -> String {
    truncate(&value.to_string(), max)
}

/// `attempt/max_attempts`, e.g. `2/5`.
pub(crate) fn attempts(job: &Job) -> String {
    format!("{}/{}", job.attempt, job.max_attempts)
}

/// `50% (resizing)`, `50%` or `(resizing)`; `None` when nothing was reported.
pub(crate) fn progress(job: &Job) -> Option<String> {
    let percent = job
        .progress
        .map(|p| format!("{}%", p.clamp(0.0, 100.0).round()));
    let stage = job.stage.as_ref().map(|s| format!("({s})"));
    match (percent, stage) {
        (None, None) => None,
        (Some(p), None) => Some(p),
        (None, Some(s)) => Some(s),
        (Some(p), Some(s)) => Some(format!("{p} {s}")),
    }
}

/// One line about a job's state: `<id>: failed (attempt 3/3): boom`.
pub(crate) fn summary(job: &Job) -> String {
    let mut line = format!("{}: {} (attempt {})", job.id, job.state, attempts(job));
    if let Some(progress) = progress(job) {
        line.push_str(&format!(" {progress}"));
    }
    if let Some(error) = &job.error {
        line.push_str(&format!(": {}", truncate(&one_line(error), 200)));
    }
    line
}

/// Newlines and tabs turned into spaces, so a value fits a table cell.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn ages_use_the_largest_whole_unit() {
        let now = Utc.with_ymd_and_hms(2025, 1, 31, 12, 0, 0).unwrap();
        let ago = |s: i64| age(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(0), "0s ago");
        assert_eq!(ago(59), "59s ago");
        assert_eq!(ago(61), "1m ago");
        assert_eq!(ago(7_300), "2h ago");
        assert_eq!(ago(200_000), "2d ago");
        assert_eq!(ago(-5), "in 5s");
        assert_eq!(timestamp(now), "2025-01-31 12:00:00Z");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 2), "é…");
        assert_eq!(compact_json(&json!({"a": [1, 2]}), 100), r#"{"a":[1,2]}"#);
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }
}
