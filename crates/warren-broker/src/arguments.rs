//! The `x-…` arguments of every queue Warren declares, in one place.
//!
//! The broker refuses to redeclare a queue with different arguments
//! (`PRECONDITION_FAILED`), so every process must compute them identically:
//! they depend only on the [`BrokerConfig`] and the queue's role.

use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::config::{BrokerConfig, QueueType};

/// What a queue is for, which decides its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueRole {
    /// Submit, reports and task queues: the configured type, dead-lettered
    /// into `<ns>.dead`, with a delivery limit when quorum.
    Work,
    /// The dead queue and control queues: classic, no dead-lettering.
    Plain,
}

/// The declare arguments of a queue with `role` under `cfg`, including
/// `x-expires` when `cfg.queue_expires` is set.
pub(crate) fn queue_args(cfg: &BrokerConfig, role: QueueRole) -> FieldTable {
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut args = FieldTable::default();
    let queue_type = match role {
        QueueRole::Work => cfg.queue_type,
        QueueRole::Plain => QueueType::Classic,
    };
    args.insert("x-queue-type".into(), text(queue_type.as_str()));
    if role == QueueRole::Work {
        let dlx = cfg.names().dead_exchange();
        args.insert("x-dead-letter-exchange".into(), text(&dlx));
        if queue_type == QueueType::Quorum {
            let limit = i64::from(cfg.delivery_limit);
            args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
        }
    }
    if let Some(expires) = cfg.queue_expires {
        let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
    }
    args
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn keys(args: &FieldTable) -> Vec<&str> {
        args.inner().keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn quorum_work_queues_get_dlx_and_delivery_limit() {
        let cfg = BrokerConfig::new("amqp://h", "ns");
        let args = queue_args(&cfg, QueueRole::Work);
        assert_eq!(
            keys(&args),
            ["x-dead-letter-exchange", "x-delivery-limit", "x-queue-type"]
        );
        let limit = args.inner().get("x-delivery-limit");
        assert_eq!(limit, Some(&AMQPValue::LongLongInt(5)));
    }

    #[test]
    fn classic_and_plain_queues_have_no_delivery_limit() {
        let mut cfg = BrokerConfig::new("amqp://h", "ns");
        cfg.queue_type = QueueType::Classic;
        cfg.queue_expires = Some(Duration::from_secs(60));
        let work = queue_args(&cfg, QueueRole::Work);
        assert_eq!(
            keys(&work),
            ["x-dead-letter-exchange", "x-expires", "x-queue-type"]
        );
        let plain = queue_args(&cfg, QueueRole::Plain);
        assert_eq!(keys(&plain), ["x-expires", "x-queue-type"]);
        let expires = plain.inner().get("x-expires");
        assert_eq!(expires, Some(&AMQPValue::LongLongInt(60_000)));
    }
}
