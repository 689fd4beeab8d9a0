//! `TaskBatch`: one message on a task queue carrying the attempts of several
//! jobs of that queue, and how the coordinator packs them.
//!
//! Every task is otherwise its own persistent, confirmed message: a
//! quorum-queue write, a delivery, an ack, and a wake-up of the worker. Jobs
//! dispatched together (one intake batch, one claim) share those costs by
//! sharing a message. A worker decodes both forms: a batch, and the single
//! [`TaskMessage`] that coordinators of earlier builds publish.

use serde::{Deserialize, Serialize};

use super::{decode, encode, DecodeError, TaskMessage, Versioned, PROTOCOL_VERSION};

/// Several attempts for one queue, in one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskBatch {
    /// Protocol version (1).
    pub v: u32,
    /// The attempts, at least one; each is a whole [`TaskMessage`].
    pub tasks: Vec<TaskMessage>,
}

impl Versioned for TaskBatch {
    fn version(&self) -> u32 {
        self.v
    }
}

/// Decodes what a task queue delivers: a [`TaskBatch`] or a single
/// [`TaskMessage`]. A batch must carry at least one task, each of this
/// protocol version; `max_bytes` bounds the whole body.
pub fn decode_tasks(body: &[u8], max_bytes: usize) -> Result<Vec<TaskMessage>, DecodeError> {
    let batch_error = match decode::<TaskBatch>(body, max_bytes) {
        Ok(batch) => return check_batch(batch),
        Err(e @ DecodeError::Schema(_)) => e,
        Err(e) => return Err(e),
    };
    match decode::<TaskMessage>(body, max_bytes) {
        Ok(task) => Ok(vec![task]),
        // Name the error of the form the body was meant to be.
        Err(DecodeError::Schema(_)) if names_tasks(body) => Err(batch_error),
        Err(e) => Err(e),
    }
}

fn check_batch(batch: TaskBatch) -> Result<Vec<TaskMessage>, DecodeError> {
    if batch.tasks.is_empty() {
        return Err(DecodeError::Schema(
            "a task batch carries at least one task".into(),
        ));
    }
    if let Some(task) = batch.tasks.iter().find(|t| t.v != PROTOCOL_VERSION) {
        return Err(DecodeError::UnknownVersion(task.v.into()));
    }
    Ok(batch.tasks)
}

/// Whether `body` is a JSON object with a `tasks` member (failure path only).
fn names_tasks(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|value| value.get("tasks").is_some())
        .unwrap_or(false)
}

/// One message's worth of packed tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedTasks {
    /// The queue every task of the message belongs to (the routing key).
    pub queue: String,
    /// The encoded [`TaskBatch`].
    pub body: Vec<u8>,
    /// Positions, in the input, of the tasks the message carries, in order.
    pub members: Vec<usize>,
}

/// Packs `tasks` into [`TaskBatch`] messages: tasks of one queue (their
/// `queue` field) share a message in input order, up to `max_tasks(queue)` a message and while the
/// body stays within `max_bytes` (a task too large for that travels alone).
/// Every input position lands in exactly one message. Each task is encoded
/// once; the batch is written around the encoded tasks.
pub fn pack_tasks<M>(tasks: &[TaskMessage], max_tasks: M, max_bytes: usize) -> Vec<PackedTasks>
where
    M: Fn(&str) -> usize,
{
    /// `{"v":1,"tasks":[` and `]}`.
    fn overhead() -> usize {
        format!(r#"{{"v":{PROTOCOL_VERSION},"tasks":[]}}"#).len()
    }
    fn finish(open: Open) -> PackedTasks {
        let mut body = format!(r#"{{"v":{PROTOCOL_VERSION},"tasks":["#).into_bytes();
        for (i, task) in open.encoded.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(task);
        }
        body.extend_from_slice(b"]}");
        PackedTasks {
            queue: open.queue,
            body,
            members: open.members,
        }
    }
    struct Open {
        queue: String,
        encoded: Vec<Vec<u8>>,
        members: Vec<usize>,
        bytes: usize,
    }

    let mut open: Vec<Open> = Vec::new();
    let mut packed = Vec::new();
    for (position, task) in tasks.iter().enumerate() {
        let queue = task.queue.as_str();
        let encoded = encode(task);
        let slot = match open.iter().position(|o| o.queue == queue) {
            Some(i) => {
                let o = &open[i];
                let fits = o.members.len() < max_tasks(queue).max(1)
                    && o.bytes + 1 + encoded.len() <= max_bytes;
                if !fits {
                    packed.push(finish(open.remove(i)));
                    None
                } else {
                    Some(i)
                }
            }
            None => None,
        };
        let i = slot.unwrap_or_else(|| {
            open.push(Open {
                queue: queue.to_owned(),
                encoded: Vec::new(),
                members: Vec::new(),
                bytes: overhead() - 1,
            });
            open.len() - 1
        });
        let o = &mut open[i];
        o.bytes += 1 + encoded.len();
        o.encoded.push(encoded);
        o.members.push(position);
    }
    packed.extend(open.into_iter().map(finish));
    packed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use uuid::Uuid;

    fn task(queue: &str, payload_len: usize) -> TaskMessage {
        TaskMessage {
            v: 1,
            job_id: Uuid::now_v7(),
            attempt: 1,
            lease: Uuid::new_v4(),
            queue: queue.into(),
            task_type: "echo".into(),
            payload: json!("x".repeat(payload_len)),
            timeout_ms: None,
            max_attempts: 5,
            checkpoint: None,
            inputs: Default::default(),
        }
    }

    #[test]
    fn a_single_task_message_of_an_earlier_coordinator_still_decodes() {
        let one = task("default", 3);
        assert_eq!(decode_tasks(&encode(&one), 1 << 20).unwrap(), vec![one]);
    }

    #[test]
    fn a_batch_decodes_to_its_tasks_in_order() {
        let tasks = vec![task("a", 1), task("a", 2), task("a", 3)];
        let body = encode(&TaskBatch {
            v: 1,
            tasks: tasks.clone(),
        });
        assert_eq!(decode_tasks(&body, 1 << 20).unwrap(), tasks);
    }

    #[test]
    fn bad_batches_are_refused_with_their_reason() {
        let reason = |body: &[u8]| decode_tasks(body, 4096).unwrap_err().reason();
        assert_eq!(reason(br#"{"v":1,"tasks":[]}"#), "schema");
        assert_eq!(reason(br#"{"v":2,"tasks":[]}"#), "unknown_version");
        assert_eq!(reason(br#"{"v":1,"tasks":[{"v":1}]}"#), "schema");
        assert_eq!(reason(br#"{"v":1}"#), "schema");
        assert_eq!(reason(b"{\"v\":1,"), "malformed");
        assert_eq!(reason(b""), "empty");
        assert_eq!(reason(&[b' '; 5000]), "oversized");
        let mut inner = task("a", 1);
        inner.v = 7;
        let body = encode(&TaskBatch {
            v: 1,
            tasks: vec![inner],
        });
        assert_eq!(reason(&body), "unknown_version");
    }

    #[test]
    fn tasks_pack_by_queue_in_order_up_to_the_count() {
        let tasks = [
            task("a", 1),
            task("b", 1),
            task("a", 1),
            task("a", 1),
            task("b", 1),
        ];
        let packed = pack_tasks(&tasks, |_| 2, 1 << 20);
        let shape: Vec<(&str, &[usize])> = packed
            .iter()
            .map(|p| (p.queue.as_str(), p.members.as_slice()))
            .collect();
        assert_eq!(shape, vec![("a", &[0, 2][..]), ("b", &[1, 4]), ("a", &[3])]);
        // Each queue with its own bound.
        let per_queue = |queue: &str| if queue == "a" { 1 } else { 3 };
        let packed = pack_tasks(&tasks, per_queue, 1 << 20);
        let shape: Vec<(&str, &[usize])> = packed
            .iter()
            .map(|p| (p.queue.as_str(), p.members.as_slice()))
            .collect();
        assert_eq!(
            shape,
            vec![("a", &[0][..]), ("a", &[2]), ("b", &[1, 4]), ("a", &[3])]
        );
    }

    #[test]
    fn a_task_larger_than_the_byte_bound_travels_alone() {
        let tasks = [task("a", 10), task("a", 5000), task("a", 10)];
        let packed = pack_tasks(&tasks, |_| 16, 1024);
        let members: Vec<&[usize]> = packed.iter().map(|p| p.members.as_slice()).collect();
        assert_eq!(members, vec![&[0][..], &[1], &[2]]);
    }

    proptest! {
        /// Every task lands in exactly one message of its own queue, in
        /// input order; no message holds more than `max_tasks` or, unless
        /// it holds one task, more than `max_bytes`; each decodes back.
        #[test]
        fn packing_loses_nothing_and_respects_both_bounds(
            shape in proptest::collection::vec((0u8..3, 0usize..600), 0..60),
            max_tasks in 1usize..8,
            max_bytes in 300usize..3000,
        ) {
            let tasks: Vec<TaskMessage> = shape
                .iter()
                .map(|(q, len)| task(&format!("q{q}"), *len))
                .collect();
            let packed = pack_tasks(&tasks, |_| max_tasks, max_bytes);
            let mut seen = vec![0u32; tasks.len()];
            for message in &packed {
                prop_assert!(message.members.len() <= max_tasks);
                prop_assert!(message.members.len() == 1 || message.body.len() <= max_bytes);
                prop_assert!(message.members.windows(2).all(|w| w[0] < w[1]));
                let decoded = decode_tasks(&message.body, usize::MAX).unwrap();
                let expected: Vec<TaskMessage> =
                    message.members.iter().map(|&i| tasks[i].clone()).collect();
                prop_assert_eq!(decoded, expected);
                for &i in &message.members {
                    prop_assert_eq!(&tasks[i].queue, &message.queue);
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }
}
