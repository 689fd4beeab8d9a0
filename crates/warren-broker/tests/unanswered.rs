//! A broker that stops answering mid-session: every step that waits for an
//! answer is bounded, so the session fails (and its owner reconnects)
//! instead of one loop waiting forever while the rest of the session runs.
//!
//! The session reaches the real RabbitMQ through a TCP relay that can stop
//! passing the broker's bytes back, which is what a client sees of a broker
//! that accepted a request and never answered it.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::uri::AMQPUri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_broker::{BrokerConfig, BrokerError, QueueType, Session, DEFAULT_AMQP_URL};

/// The task queue the test consumes.
const JOBS: &str = "jobs";

/// Relays one connection to the broker; once muted, it keeps reading the
/// broker's bytes but passes none of them on.
struct MutingRelay {
    port: u16,
    muted: Arc<AtomicBool>,
}

impl MutingRelay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let muted = Arc::new(AtomicBool::new(false));
        let mute = muted.clone();
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.expect("accept");
            let broker = TcpStream::connect(upstream).await.expect("reach broker");
            let (mut client_read, mut client_write) = client.into_split();
            let (mut broker_read, mut broker_write) = broker.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut broker_write).await;
            });
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = broker_read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if !mute.load(Ordering::SeqCst) && client_write.write_all(&buf[..n]).await.is_err()
                {
                    break;
                }
            }
        });
        Self { port, muted }
    }

    fn mute(&self) {
        self.muted.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_the_broker_never_answers_fails_the_session_in_bounded_time() {
    let url = std::env::var("WARREN_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
    let uri = AMQPUri::from_str(&url).expect("AMQP URL");
    let relay = MutingRelay::start(format!("{}:{}", uri.authority.host, uri.authority.port)).await;
    let mut relayed = uri.clone();
    relayed.authority.host = "127.0.0.1".into();
    relayed.authority.port = relay.port;
    let namespace = format!("wtest-{}", uuid::Uuid::new_v4().simple());
    let mut config = BrokerConfig::new(url.clone(), namespace.clone());
    config.queue_type = QueueType::Quorum;
    config.queue_expires = Some(Duration::from_secs(600));
    let direct = config.clone();
    config.url = relayed.to_string();

    let session = Session::connect(&config).await.expect("connect via relay");
    session.declare_core().await.expect("declare core");
    session.declare_task_queue(JOBS).await.expect("task queue");
    relay.mute();
    let started = Instant::now();
    let queue = config.names().task_queue(JOBS);
    let consume = session.consume(&queue, 1, "unanswered");
    let error = tokio::time::timeout(Duration::from_secs(30), consume)
        .await
        .expect("waiting for an answer that never comes is bounded")
        .expect_err("a consume the broker never answers fails");
    assert!(
        matches!(error, BrokerError::Timeout(_, "opening a consumer")),
        "a timeout naming the step, not {error:?}"
    );
    assert!(error.is_recoverable(), "the owner reconnects after it");
    println!("unanswered consume failed after {:?}", started.elapsed());

    let cleanup = Session::connect(&direct).await.expect("connect directly");
    cleanup.delete_namespace(&[JOBS]).await.expect("delete");
    cleanup.close().await;
}
