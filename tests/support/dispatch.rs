//! Jobs moved to `queued` by hand, for tests that publish task messages
//! themselves.

use serde_json::{Map, Value};
use uuid::Uuid;
use warren_core::protocol::{JobSpec, TaskMessage, PROTOCOL_VERSION};
use warren_store::Store;

/// Creates a job of `queue` as if a coordinator had dispatched it (attempt
/// 1, a fresh lease) without publishing it, and returns its task message.
pub async fn dispatched_by_hand(
    store: &Store,
    queue: &str,
    task_type: &str,
    payload: Value,
) -> TaskMessage {
    // Due in an hour, so no dispatcher takes it before it is moved by hand.
    let spec = JobSpec {
        delay_ms: Some(3_600_000),
        ..JobSpec::new(queue, task_type, payload.clone())
    };
    let id = store.insert_jobs(&[spec]).await.expect("insert")[0];
    let (lease, max_attempts): (Uuid, i32) = sqlx::query_as(
        "UPDATE jobs SET state = 'queued', attempt = 1, lease = gen_random_uuid(),
                         queued_at = now(), run_at = now()
          WHERE id = $1 RETURNING lease, max_attempts",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .expect("queue by hand");
    TaskMessage {
        v: PROTOCOL_VERSION,
        job_id: id,
        attempt: 1,
        lease,
        queue: queue.to_owned(),
        task_type: task_type.to_owned(),
        payload,
        timeout_ms: None,
        max_attempts: max_attempts as u32,
        checkpoint: None,
        inputs: Map::new(),
    }
}
