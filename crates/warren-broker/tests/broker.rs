//! Integration tests against a real RabbitMQ (`WARREN_AMQP_URL`, default the
//! local guest account). Each test uses a fresh namespace and deletes it at the
//! end; `x-expires` removes the queues of a test that died half-way.

use std::time::{Duration, Instant};

use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use warren_broker::{
    redact_url, BrokerConfig, BrokerError, Consumer, Delivery, QueueType, Session, DEFAULT_AMQP_URL,
};

/// Deadline for anything the broker should do "now".
const DEADLINE: Duration = Duration::from_secs(10);
/// The job queue every test uses.
const JOBS: &str = "jobs";

fn config(queue_type: QueueType) -> BrokerConfig {
    let url = std::env::var("WARREN_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
    let ns = format!("wtest-{}", uuid::Uuid::new_v4().simple());
    let mut cfg = BrokerConfig::new(url, ns);
    cfg.queue_type = queue_type;
    cfg.queue_expires = Some(Duration::from_secs(600));
    cfg
}

/// A session on a fresh namespace with the core topology and the `jobs` task queue.
async fn setup(queue_type: QueueType) -> Session {
    let session = Session::connect(&config(queue_type))
        .await
        .expect("connect");
    session.declare_core().await.expect("declare_core");
    session.declare_task_queue(JOBS).await.expect("task queue");
    session
}

async fn teardown(session: Session) {
    session.delete_namespace(&[JOBS]).await.expect("delete");
    session.close().await;
}

async fn next(consumer: &mut Consumer) -> Delivery {
    timeout(DEADLINE, consumer.next())
        .await
        .expect("no delivery before the deadline")
        .expect("consumer ended")
        .expect("consumer error")
}

async fn publish_job(session: &Session, body: &[u8]) {
    let publisher = session.publisher().await.expect("publisher");
    let exchange = session.names().tasks_exchange();
    publisher
        .publish_confirmed(&exchange, JOBS, body)
        .await
        .expect("confirmed");
}

#[tokio::test]
async fn declare_core_is_idempotent_for_both_queue_types() {
    for queue_type in [QueueType::Quorum, QueueType::Classic] {
        let session = setup(queue_type).await;
        session.declare_core().await.expect("second declare_core");
        session
            .declare_task_queue(JOBS)
            .await
            .expect("second task queue");
        let names = session.names().clone();
        for q in [
            names.submit_queue(),
            names.reports_queue(),
            names.dead_queue(),
        ] {
            assert_eq!(session.queue_depth(&q).await.expect("depth"), 0, "{q}");
        }
        assert!(session.is_connected());
        teardown(session).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_publish_reaches_the_task_queue() {
    let session = setup(QueueType::Quorum).await;
    let queue = session.names().task_queue(JOBS);
    let mut consumer = session.consume(&queue, 10, "t").await.expect("consume");
    publish_job(&session, br#"{"job":1}"#).await;
    let d = next(&mut consumer).await;
    assert_eq!(d.body, br#"{"job":1}"#);
    assert!(!d.redelivered);
    assert_eq!(d.routing_key, JOBS);
    d.ack().await.expect("ack");
    assert!(matches!(
        d.ack().await,
        Err(BrokerError::AlreadyAcknowledged { .. })
    ));
    teardown(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_1000_is_confirmed_consumed_and_acked() {
    let session = setup(QueueType::Quorum).await;
    let publisher = session.publisher().await.expect("publisher");
    let items: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| (JOBS.to_owned(), format!("{{\"n\":{i}}}").into_bytes()))
        .collect();
    let results = publisher
        .publish_batch(&session.names().tasks_exchange(), &items)
        .await;
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let queue = session.names().task_queue(JOBS);
    let mut consumer = session
        .consume(&queue, 1000, "batch")
        .await
        .expect("consume");
    let mut last = 0;
    for (_, body) in &items {
        let d = next(&mut consumer).await;
        assert_eq!(&d.body, body);
        last = d.delivery_tag;
    }
    consumer.ack_up_to(last).await.expect("ack_up_to");
    consumer.close().await;
    assert_eq!(session.queue_depth(&queue).await.expect("depth"), 0);
    teardown(session).await;
}

/// Batched acks: deliveries settled out of order, some rejected, some
/// requeued, and the first one held until the end. With a prefetch of 20,
/// consuming 300 messages only finishes if acks above the held delivery
/// still go out; the channel only survives if no tag is settled twice; and
/// the queue is empty after the channel closes only if every ack was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_acks_settle_out_of_order_deliveries_once_each() {
    const TOTAL: usize = 300;
    let session = setup(QueueType::Quorum).await;
    let publisher = session.publisher().await.expect("publisher");
    let items: Vec<(String, Vec<u8>)> = (0..TOTAL)
        .map(|i| (JOBS.to_owned(), i.to_string().into_bytes()))
        .collect();
    let results = publisher
        .publish_batch(&session.names().tasks_exchange(), &items)
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let queue = session.names().task_queue(JOBS);
    let mut consumer = session
        .consume_batched(&queue, 20, "batched")
        .await
        .expect("consume");
    let held = next(&mut consumer).await;
    let (mut done, mut rejected) = (1, 0);
    while done < TOTAL {
        let mut chunk = vec![next(&mut consumer).await];
        while chunk.len() < 8 {
            match timeout(Duration::from_millis(20), consumer.next()).await {
                Ok(Some(d)) => chunk.push(d.expect("delivery")),
                _ => break,
            }
        }
        let mut settles = Vec::new();
        for d in chunk.into_iter().rev() {
            let n: usize = std::str::from_utf8(&d.body).unwrap().parse().unwrap();
            if n % 13 == 0 {
                rejected += 1;
                done += 1;
                settles.push(tokio::spawn(async move { d.reject().await }));
            } else if n % 17 == 5 && !d.redelivered {
                settles.push(tokio::spawn(async move { d.requeue().await }));
            } else {
                done += 1;
                settles.push(tokio::spawn(async move {
                    d.ack().await?;
                    d.ack().await.expect_err("a second ack is refused");
                    Ok(())
                }));
            }
        }
        for settle in settles {
            timeout(DEADLINE, settle)
                .await
                .expect("an ack waited past the deadline for its frame")
                .expect("task")
                .expect("settled");
        }
    }
    held.ack().await.expect("the held delivery");
    consumer.close().await;
    assert_eq!(session.queue_depth(&queue).await.expect("depth"), 0);
    let dead = session.names().dead_queue();
    let deadline = Instant::now() + DEADLINE;
    while session.queue_depth(&dead).await.expect("dead depth") < rejected as u32 {
        assert!(
            Instant::now() < deadline,
            "rejected messages never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    teardown(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_one_channel_are_all_confirmed() {
    let session = setup(QueueType::Classic).await;
    let publisher = session.publisher().await.expect("publisher");
    let exchange = session.names().tasks_exchange();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (publisher, exchange) = (publisher.clone(), exchange.clone());
            tokio::spawn(async move {
                let mut pending = Vec::new();
                for i in 0..100 {
                    let body = format!("{{\"t\":{t},\"i\":{i}}}");
                    pending.push(publisher.publish(&exchange, JOBS, body.as_bytes()).await);
                }
                for p in pending {
                    p.expect("publish").wait().await.expect("confirm");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let queue = session.names().task_queue(JOBS);
    assert_eq!(session.queue_depth(&queue).await.expect("depth"), 400);
    teardown(session).await;
}

#[tokio::test]
async fn rejected_delivery_lands_in_the_dead_queue() {
    let session = setup(QueueType::Quorum).await;
    publish_job(&session, b"\"poison\"").await;
    let queue = session.names().task_queue(JOBS);
    let mut consumer = session.consume(&queue, 1, "").await.expect("consume");
    next(&mut consumer).await.reject().await.expect("reject");

    let dead = session.names().dead_queue();
    let mut dead_consumer = session.consume(&dead, 1, "dead").await.expect("consume");
    let d = next(&mut dead_consumer).await;
    assert_eq!(d.body, b"\"poison\"");
    d.ack().await.expect("ack");
    teardown(session).await;
}

#[tokio::test]
async fn requeued_delivery_comes_back_redelivered() {
    let session = setup(QueueType::Quorum).await;
    publish_job(&session, b"\"again\"").await;
    let queue = session.names().task_queue(JOBS);
    let mut consumer = session.consume(&queue, 1, "").await.expect("consume");
    let first = next(&mut consumer).await;
    assert!(!first.redelivered);
    first.requeue().await.expect("requeue");
    let second = next(&mut consumer).await;
    assert_eq!(second.body, b"\"again\"");
    assert!(second.redelivered);
    second.ack().await.expect("ack");
    teardown(session).await;
}

#[tokio::test]
async fn cancel_stops_the_stream_but_keeps_acks_working() {
    let session = setup(QueueType::Classic).await;
    publish_job(&session, b"1").await;
    let queue = session.names().task_queue(JOBS);
    let mut consumer = session.consume(&queue, 5, "c").await.expect("consume");
    let d = next(&mut consumer).await;
    consumer.cancel().await.expect("cancel");
    d.ack().await.expect("ack after cancel");
    let end = timeout(DEADLINE, consumer.next()).await.expect("deadline");
    assert!(end.is_none());
    drop(consumer);
    assert_eq!(session.queue_depth(&queue).await.expect("depth"), 0);
    teardown(session).await;
}

#[tokio::test]
async fn control_queue_is_reached_through_the_default_exchange() {
    let session = setup(QueueType::Quorum).await;
    let ctl = session.declare_control_queue("w-1").await.expect("ctl");
    assert_eq!(ctl, session.names().control_queue("w-1"));
    let mut consumer = session.consume(&ctl, 1, "ctl").await.expect("consume");
    let publisher = session.publisher().await.expect("publisher");
    publisher
        .publish_confirmed("", &ctl, b"{\"cancel\":42}")
        .await
        .expect("confirmed");
    let d = next(&mut consumer).await;
    assert_eq!(d.body, b"{\"cancel\":42}");
    d.ack().await.expect("ack");
    teardown(session).await;
}

#[tokio::test]
async fn passwords_never_reach_messages() {
    let url = "amqp://warren:s3cr3t@broker:5672/%2f";
    assert_eq!(redact_url(url), "amqp://warren:***@broker:5672/%2f");
    let cfg = BrokerConfig::new("amqp://warren:s3cr3t@[broken/%2f", "ns");
    let err = Session::connect(&cfg).await.expect_err("bad URL");
    assert!(matches!(err, BrokerError::InvalidUrl { .. }));
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    assert!(!format!("{cfg:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn connect_with_backoff_gives_up_promptly_when_cancelled() {
    let cfg = BrokerConfig::new("amqp://guest:guest@127.0.0.1:1/%2f", "unused");
    let shutdown = CancellationToken::new();
    let canceller = shutdown.clone();
    tokio::spawn(async move {
        // The one deliberate delay: let a few attempts fail first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let start = Instant::now();
    let session = timeout(DEADLINE, Session::connect_with_backoff(&cfg, &shutdown))
        .await
        .expect("returned before the deadline");
    assert!(session.is_none());
    assert!(shutdown.is_cancelled());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_publish_that_reaches_no_queue_is_an_error_unless_broadcast() {
    let session = setup(QueueType::Quorum).await;
    let exchange = session.names().tasks_exchange();
    // No queue is bound with this routing key: the broker confirms the
    // message and drops it, which a task or a report must never be.
    let publisher = session.publisher().await.expect("publisher");
    let err = publisher
        .publish_confirmed(&exchange, "no-such-queue", b"{}")
        .await
        .expect_err("a mandatory publish routed nowhere fails");
    assert!(
        matches!(err, BrokerError::Unroutable { ref routing_key, .. } if routing_key == "no-such-queue"),
        "{err}"
    );
    assert!(err.is_recoverable());
    // The channel stays usable for routed messages.
    publisher
        .publish_confirmed(&exchange, JOBS, b"{}")
        .await
        .expect("a routed publish on the same channel");

    let broadcast = session.broadcast_publisher().await.expect("publisher");
    broadcast
        .publish_confirmed(&exchange, "no-such-queue", b"{}")
        .await
        .expect("a broadcast publish is confirmed even if no queue takes it");
    teardown(session).await;
}

/// The coordinator notices a consuming queue deleted under it (by an
/// operator, or expired) only because its consumer's stream ends: the
/// broker's `basic.cancel` must reach it as the end of the stream.
#[tokio::test]
async fn the_consumer_of_a_deleted_queue_ends() {
    let session = setup(QueueType::Quorum).await;
    let queue = session.names().task_queue(JOBS);
    let mut consumer = session
        .consume(&queue, 10, "doomed")
        .await
        .expect("consume");
    let other = Session::connect(session.config()).await.expect("connect");
    other.delete_queue(&queue).await.expect("delete");
    let next = timeout(DEADLINE, consumer.next())
        .await
        .expect("the consumer hears of the deletion before the deadline");
    assert!(next.is_none(), "the stream ends");
    other.close().await;
    teardown(session).await;
}
