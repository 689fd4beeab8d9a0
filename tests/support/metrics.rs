//! Reading values out of Prometheus text output.

/// The value of the sample whose series (name plus labels, exactly as
/// rendered) is `series`, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
