//! Bounded, versioned decoding shared by every consumer.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::PROTOCOL_VERSION;

/// An envelope that carries a protocol version.
pub trait Versioned {
    /// The `v` field as received.
    fn version(&self) -> u32;
}

/// Why a message was rejected. Each reason is a metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body was empty.
    #[error("empty message body")]
    Empty,
    /// The body exceeded the configured bound.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Received size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The body was not UTF-8.
    #[error("message body is not valid UTF-8")]
    InvalidUtf8,
    /// The body was not JSON (or nested too deeply).
    #[error("message body is not valid JSON: {0}")]
    Malformed(String),
    /// The envelope names a version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnknownVersion(u64),
    /// Valid JSON of the right version but the wrong shape.
    #[error("message does not match the schema: {0}")]
    Schema(String),
}

impl DecodeError {
    /// A short, bounded label for metrics (`reason="..."`).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::Oversized { .. } => "oversized",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::UnknownVersion(_) => "unknown_version",
            DecodeError::Schema(_) => "schema",
        }
    }
}

/// Decodes one envelope, enforcing `max_bytes` and the protocol version.
pub fn decode<T: DeserializeOwned + Versioned>(
    body: &[u8],
    max_bytes: usize,
) -> Result<T, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    if body.len() > max_bytes {
        return Err(DecodeError::Oversized {
            size: body.len(),
            limit: max_bytes,
        });
    }
    if std::str::from_utf8(body).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    match serde_json::from_slice::<T>(body) {
        Ok(envelope) if envelope.version() == PROTOCOL_VERSION => Ok(envelope),
        Ok(envelope) => Err(DecodeError::UnknownVersion(envelope.version().into())),
        Err(schema_err) => Err(classify(body, schema_err)),
    }
}

/// Tells a wrong version apart from a wrong shape or from broken JSON.
/// Only runs on the failure path, so the second parse costs nothing normally.
fn classify(body: &[u8], schema_err: serde_json::Error) -> DecodeError {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Err(e) => DecodeError::Malformed(e.to_string()),
        Ok(value) => match value.get("v") {
            Some(v) if v.as_u64() != Some(u64::from(PROTOCOL_VERSION)) => {
                DecodeError::UnknownVersion(v.as_u64().unwrap_or(0))
            }
            _ => DecodeError::Schema(schema_err.to_string()),
        },
    }
}

/// Encodes an envelope (infallible for our types: no non-string map keys).
pub fn encode<T: Serialize>(envelope: &T) -> Vec<u8> {
    serde_json::to_vec(envelope).expect("protocol types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SubmitEnvelope;

    const LIMIT: usize = 1024;

    fn reason(body: &[u8]) -> &'static str {
        decode::<SubmitEnvelope>(body, LIMIT).unwrap_err().reason()
    }

    #[test]
    fn every_kind_of_poison_is_named() {
        assert_eq!(reason(b""), "empty");
        assert_eq!(reason(&vec![b' '; LIMIT + 1]), "oversized");
        assert_eq!(reason(&[0xff, 0xfe, b'{']), "invalid_utf8");
        assert_eq!(reason(b"{not json"), "malformed");
        assert_eq!(reason(br#"{"v": 2, "jobs": []}"#), "unknown_version");
        assert_eq!(reason(br#"{"v": "one", "jobs": []}"#), "unknown_version");
        assert_eq!(reason(br#"{"v": 1, "jobs": 7}"#), "schema");
        assert_eq!(reason(br#"{"jobs": []}"#), "schema");
        assert_eq!(reason(b"[1,2,3]"), "schema");
        let deep = format!("{}{}", "[".repeat(400), "]".repeat(400));
        assert_eq!(
            decode::<SubmitEnvelope>(deep.as_bytes(), 10_000)
                .unwrap_err()
                .reason(),
            "malformed"
        );
    }

    #[test]
    fn accepts_a_valid_envelope() {
        let env: SubmitEnvelope = decode(br#"{"v":1,"jobs":[]}"#, LIMIT).unwrap();
        assert!(env.jobs.is_empty());
    }
}
