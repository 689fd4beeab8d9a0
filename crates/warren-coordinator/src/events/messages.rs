//! Packing settled events into messages for `<ns>.events`: one message per
//! routing key (`job.<to_state>.<queue>` or `workflow.<status>`) and tail
//! read, each body an `EventBatch` (`{"v": 1, "events": [...]}`; one routing
//! key means one kind of event per message), split when it would exceed a
//! count or byte bound. Events keep their id order inside a message, and
//! messages go out in the order of their first event.

use std::collections::HashMap;

use warren_core::protocol::StreamEvent;

/// Most events in one message.
pub(crate) const MAX_EVENTS_PER_MESSAGE: usize = 1_000;
/// A message is closed once its body reaches this size (an event or two
/// past it at most: far below the broker's and consumers' limits).
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// `(routing key, body)` pairs to publish, in order.
pub(crate) fn pack(
    events: &[StreamEvent],
    max_events: usize,
    max_bytes: usize,
) -> Vec<(String, Vec<u8>)> {
    let mut groups: Vec<(String, Vec<&StreamEvent>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for event in events {
        let key = event.routing_key();
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(event);
    }
    let mut messages = Vec::new();
    for (key, group) in groups {
        let mut body = Vec::new();
        let mut count = 0;
        for event in group {
            if count == 0 {
                body.extend_from_slice(br#"{"v":1,"events":["#);
            } else {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, event).expect("events always serialize");
            count += 1;
            if count == max_events || body.len() >= max_bytes {
                body.extend_from_slice(b"]}");
                messages.push((key.clone(), std::mem::take(&mut body)));
                count = 0;
            }
        }
        if count > 0 {
            body.extend_from_slice(b"]}");
            messages.push((key, body));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;
    use warren_core::protocol::{
        decode, EventBatch, TransitionEvent, WorkflowTransitionEvent, PROTOCOL_VERSION,
    };
    use warren_core::workflow::WorkflowStatus;
    use warren_core::JobState;

    use super::*;

    fn event(id: i64, to: JobState, queue: &str) -> StreamEvent {
        StreamEvent::Job(TransitionEvent {
            v: PROTOCOL_VERSION,
            id,
            job_id: Uuid::now_v7(),
            queue: queue.into(),
            task_type: "echo".into(),
            workflow_id: None,
            step_name: None,
            from: None,
            to,
            attempt: 0,
            worker_id: None,
            at: Utc::now(),
            detail: None,
        })
    }

    fn workflow_event(id: i64, to: WorkflowStatus) -> StreamEvent {
        StreamEvent::Workflow(WorkflowTransitionEvent {
            v: PROTOCOL_VERSION,
            id,
            workflow_id: Uuid::now_v7(),
            name: "build".into(),
            from: None,
            to,
            at: Utc::now(),
            detail: None,
        })
    }

    fn ids(body: &[u8]) -> Vec<i64> {
        let batch: EventBatch = decode(body, 1 << 20).expect("a valid batch");
        batch.events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn one_message_per_routing_key_in_order_of_first_event() {
        let events = [
            event(1, JobState::Pending, "a"),
            event(2, JobState::Pending, "b"),
            event(3, JobState::Completed, "a"),
            event(4, JobState::Pending, "a"),
        ];
        let messages = pack(&events, 100, 1 << 20);
        let keys: Vec<&str> = messages.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["job.pending.a", "job.pending.b", "job.completed.a"]);
        assert_eq!(ids(&messages[0].1), [1, 4]);
        assert_eq!(ids(&messages[1].1), [2]);
        assert_eq!(ids(&messages[2].1), [3]);
    }

    #[test]
    fn workflow_events_get_messages_of_their_own() {
        let events = [
            event(1, JobState::Completed, "a"),
            workflow_event(2, WorkflowStatus::Completed),
            event(3, JobState::Completed, "a"),
            workflow_event(4, WorkflowStatus::Completed),
        ];
        let messages = pack(&events, 100, 1 << 20);
        let keys: Vec<&str> = messages.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["job.completed.a", "workflow.completed"]);
        assert_eq!(ids(&messages[0].1), [1, 3]);
        let batch: EventBatch<WorkflowTransitionEvent> =
            decode(&messages[1].1, 1 << 20).expect("a batch of workflow events");
        let ids: Vec<i64> = batch.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, [2, 4]);
    }

    #[test]
    fn large_groups_are_split_by_count_and_by_size() {
        let events: Vec<_> = (1..=5).map(|id| event(id, JobState::Queued, "q")).collect();
        let by_count = pack(&events, 2, 1 << 20);
        let split: Vec<Vec<i64>> = by_count.iter().map(|(_, b)| ids(b)).collect();
        assert_eq!(split, [vec![1, 2], vec![3, 4], vec![5]]);
        let by_size = pack(&events, 100, 1);
        assert_eq!(
            by_size.len(),
            5,
            "each event alone once past the byte bound"
        );
        assert!(pack(&[], 10, 10).is_empty());
    }
}
