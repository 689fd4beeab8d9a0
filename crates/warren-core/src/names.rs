//! Queue names and task types become parts of AMQP queue names and metric
//! labels, so they are restricted to a small, safe alphabet and length.

/// The longest queue name or task type accepted.
pub const MAX_NAME_LEN: usize = 100;

/// A queue name or task type that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: use 1-{MAX_NAME_LEN} characters from a-z A-Z 0-9 _ - .")]
pub struct NameError {
    /// Which kind of name it was (`queue`, `task type`, ...).
    pub what: &'static str,
    /// The rejected value (truncated).
    pub value: String,
}

/// Checks a queue name, task type or namespace.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), NameError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what,
            value: value.chars().take(MAX_NAME_LEN).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_rejects_the_rest() {
        assert!(validate_name("queue", "default").is_ok());
        assert!(validate_name("queue", "media.video-2_x").is_ok());
        for bad in ["", "a b", "a/b", "é", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name("queue", bad).is_err(), "{bad:?}");
        }
    }
}
