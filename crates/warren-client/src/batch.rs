//! Splitting a batch of jobs into `Submit` envelopes of bounded size.
//!
//! The coordinator reads each envelope whole and dead-letters one larger than
//! its message limit, so big batches are cut into envelopes of at most
//! [`MAX_JOBS_PER_ENVELOPE`] jobs and [`MAX_ENVELOPE_BYTES`] bytes. Each job is
//! encoded once; an envelope's bytes are those jobs joined, exactly what
//! serializing a `SubmitEnvelope` of them would give.

use warren_core::protocol::{JobSpec, DEFAULT_MAX_PAYLOAD_BYTES, PROTOCOL_VERSION};

use crate::error::ClientError;

/// Most jobs in one envelope (one intake statement handles them together).
pub const MAX_JOBS_PER_ENVELOPE: usize = 1000;
/// Target upper bound on one envelope's size: half the coordinator's default
/// message limit, leaving room for a smaller configured limit.
pub const MAX_ENVELOPE_BYTES: usize = 512 * 1024;

/// Encodes `specs` as one or more envelopes, in order, each holding at most
/// `max_jobs` jobs and `max_bytes` bytes. A single job larger than
/// `max_bytes` gets an envelope of its own; one that would exceed the
/// coordinator's hard limit is refused with [`ClientError::TooLarge`].
pub(crate) fn encode_envelopes(
    specs: &[JobSpec],
    max_jobs: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, ClientError> {
    let prefix = format!(r#"{{"v":{PROTOCOL_VERSION},"jobs":["#);
    let suffix = "]}";
    let overhead = prefix.len() + suffix.len();
    let mut envelopes = Vec::new();
    let mut current = prefix.clone().into_bytes();
    let mut jobs_in_current = 0usize;
    for spec in specs {
        let job = serde_json::to_vec(spec).expect("job specs always serialize");
        if overhead + job.len() > DEFAULT_MAX_PAYLOAD_BYTES {
            return Err(ClientError::TooLarge {
                id: spec.id,
                size: overhead + job.len(),
                limit: DEFAULT_MAX_PAYLOAD_BYTES,
            });
        }
        let separator = usize::from(jobs_in_current > 0);
        let full = jobs_in_current == max_jobs.max(1)
            || current.len() + separator + job.len() + suffix.len() > max_bytes;
        if jobs_in_current > 0 && full {
            current.extend_from_slice(suffix.as_bytes());
            envelopes.push(std::mem::replace(&mut current, prefix.clone().into_bytes()));
            jobs_in_current = 0;
        }
        if jobs_in_current > 0 {
            current.push(b',');
        }
        current.extend_from_slice(&job);
        jobs_in_current += 1;
    }
    if jobs_in_current > 0 {
        current.extend_from_slice(suffix.as_bytes());
        envelopes.push(current);
    }
    Ok(envelopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use warren_core::protocol::{decode, encode, SubmitEnvelope};

    fn jobs(n: usize, payload_bytes: usize) -> Vec<JobSpec> {
        (0..n)
            .map(|i| {
                JobSpec::new(
                    "default",
                    "echo",
                    json!({ "i": i, "pad": "x".repeat(payload_bytes) }),
                )
            })
            .collect()
    }

    /// Decodes every envelope and checks it equals serde's own encoding.
    fn decoded(envelopes: &[Vec<u8>]) -> Vec<Vec<JobSpec>> {
        envelopes
            .iter()
            .map(|bytes| {
                let env: SubmitEnvelope = decode(bytes, DEFAULT_MAX_PAYLOAD_BYTES).unwrap();
                assert_eq!(&encode(&env), bytes);
                env.jobs
            })
            .collect()
    }

    #[test]
    fn a_small_batch_is_one_envelope() {
        let specs = jobs(3, 10);
        let envelopes = encode_envelopes(&specs, 1000, MAX_ENVELOPE_BYTES).unwrap();
        assert_eq!(decoded(&envelopes), vec![specs]);
    }

    #[test]
    fn empty_input_gives_no_envelope() {
        assert!(encode_envelopes(&[], 1000, MAX_ENVELOPE_BYTES)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn splits_by_job_count_keeping_order() {
        let specs = jobs(2500, 0);
        let envelopes = encode_envelopes(&specs, 1000, MAX_ENVELOPE_BYTES).unwrap();
        let chunks = decoded(&envelopes);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(chunks.concat(), specs);
    }

    #[test]
    fn splits_by_size_and_respects_the_bound() {
        let specs = jobs(100, 10_000);
        let max = 64 * 1024;
        let envelopes = encode_envelopes(&specs, 1000, max).unwrap();
        assert!(envelopes.len() > 1);
        assert!(envelopes.iter().all(|e| e.len() <= max));
        assert_eq!(decoded(&envelopes).concat(), specs);
    }

    #[test]
    fn an_oversized_job_travels_alone_and_a_huge_one_is_refused() {
        let mut specs = jobs(1, 10);
        specs.extend(jobs(1, 100_000));
        specs.extend(jobs(1, 10));
        let envelopes = encode_envelopes(&specs, 1000, 50_000).unwrap();
        let sizes: Vec<usize> = decoded(&envelopes).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1]);

        let huge = jobs(1, DEFAULT_MAX_PAYLOAD_BYTES);
        let err = encode_envelopes(&huge, 1000, MAX_ENVELOPE_BYTES).unwrap_err();
        assert!(matches!(err, ClientError::TooLarge { id, .. } if id == huge[0].id));
    }
}
