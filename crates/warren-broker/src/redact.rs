//! Password redaction for AMQP URLs, so credentials never reach a log line or
//! an error message.

/// Returns `url` with the password of its user-info replaced by `***`
/// (`amqp://user:secret@host/vh` → `amqp://user:***@host/vh`).
///
/// URLs without a password are returned unchanged. When in doubt (e.g. an
/// unencoded `@` or `/` inside the password) it redacts too much rather than
/// too little.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The user-info ends at the last '@' before any query or fragment.
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{scheme}{}:***{}", &userinfo[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords_only() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://u:p@ss@h/v?x=1"),
            "amqps://u:***@h/v?x=1"
        );
        assert_eq!(redact_url("amqp://u:a/b@h/v"), "amqp://u:***@h/v");
        assert_eq!(redact_url("amqp://user@h/v"), "amqp://user@h/v");
        assert_eq!(
            redact_url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("u:pw@h"), "u:***@h");
        assert_eq!(redact_url(""), "");
    }
}
