//! `TestEnv`: a private database + AMQP namespace, and ways to start
//! coordinators and workers against them.

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren_broker::{BrokerConfig, QueueType, Session};
use warren_coordinator::CoordinatorConfig;
use warren_core::protocol::{encode, JobSpec, SubmitEnvelope};
use warren_store::{JobRow, Store, StoreConfig};
use warren_worker::{Registry, WorkerConfig};

use crate::processes::{binary, ChildGuard};
use crate::wait::{eventually, DEADLINE};

/// API token used by every test coordinator.
pub const TEST_TOKEN: &str = "test-token-0123456789abcdef";

/// One test's private slice of PostgreSQL and RabbitMQ.
pub struct TestEnv {
    /// Name of the private database.
    pub db_name: String,
    /// URL of the private database.
    pub db_url: String,
    /// AMQP URL.
    pub amqp_url: String,
    /// Private namespace.
    pub namespace: String,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A coordinator running in-process.
pub struct CoordinatorHandle {
    /// `http://127.0.0.1:<port>`.
    pub api_url: String,
    /// Cancel to stop it.
    pub stop: CancellationToken,
    /// Resolves when it stopped.
    pub done: JoinHandle<()>,
}

/// A worker running in-process.
pub struct WorkerHandle {
    /// Its id.
    pub worker_id: String,
    /// Cancel to stop (drain) it.
    pub stop: CancellationToken,
    /// Resolves when it stopped.
    pub done: JoinHandle<()>,
}

fn pg_base() -> String {
    std::env::var("WARREN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl TestEnv {
    /// A fresh namespace and database name (the database is created by the
    /// first coordinator or by [`TestEnv::store`]).
    pub async fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("warren_test_{}", &id[..16]);
        let _ = tracing_subscriber_init();
        Self {
            db_url: format!("{}/{}", pg_base(), db_name),
            db_name,
            amqp_url: std::env::var("WARREN_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            namespace: format!("wt-{}", &id[..12]),
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Broker settings of this namespace (quorum queues that expire if abandoned).
    pub fn broker_config(&self) -> BrokerConfig {
        let mut config = BrokerConfig::new(self.amqp_url.clone(), self.namespace.clone());
        config.queue_type = QueueType::Quorum;
        config.queue_expires = Some(Duration::from_secs(600));
        config
    }

    /// Coordinator settings with short timings so rescues happen quickly.
    pub fn coordinator_config(&self) -> CoordinatorConfig {
        let mut config = CoordinatorConfig::new(TEST_TOKEN);
        config.api_read_token = Some(crate::TEST_READ_TOKEN.to_owned());
        config.store = StoreConfig {
            url: self.db_url.clone(),
            max_connections: 5,
        };
        config.broker = self.broker_config();
        config.lease_timeout = Duration::from_secs(3);
        config.sweep_interval = Duration::from_millis(300);
        config.dispatch_timeout = Duration::from_secs(10);
        config.deadline_grace = Duration::from_millis(500);
        config.poll_interval = Duration::from_millis(50);
        config
    }

    /// Worker settings for `queues` with fast heartbeats.
    pub fn worker_config(&self, queues: &[&str]) -> WorkerConfig {
        let mut config = WorkerConfig::new(
            self.broker_config(),
            queues.iter().map(|q| q.to_string()).collect(),
        );
        config.concurrency = 4;
        config.heartbeat_interval = Duration::from_millis(500);
        config.cancel_grace = Duration::from_secs(1);
        config.shutdown_timeout = Duration::from_secs(5);
        config
    }

    /// Starts a coordinator in-process and waits until its API answers.
    pub async fn start_coordinator_with(&mut self, config: CoordinatorConfig) -> CoordinatorHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let api_url = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = self.stop.child_token();
        let token = stop.clone();
        let done = tokio::spawn(async move {
            warren_coordinator::serve(config, listener, token)
                .await
                .expect("coordinator runs");
        });
        crate::wait_healthy(&api_url).await;
        CoordinatorHandle {
            api_url,
            stop,
            done,
        }
    }

    /// Starts a coordinator with [`TestEnv::coordinator_config`].
    pub async fn start_coordinator(&mut self) -> CoordinatorHandle {
        let config = self.coordinator_config();
        self.start_coordinator_with(config).await
    }

    /// Starts a worker in-process.
    pub fn start_worker_with(&mut self, config: WorkerConfig, registry: Registry) -> WorkerHandle {
        let stop = self.stop.child_token();
        let token = stop.clone();
        let worker_id = config.worker_id.clone();
        let done = tokio::spawn(async move {
            warren_worker::run(config, registry, token)
                .await
                .expect("worker runs");
        });
        WorkerHandle {
            worker_id,
            stop,
            done,
        }
    }

    /// Starts a worker with the built-in handlers on `queues`.
    pub fn start_worker(&mut self, queues: &[&str]) -> WorkerHandle {
        let config = self.worker_config(queues);
        self.start_worker_with(config, Registry::with_builtins())
    }

    /// Environment for a process of one of the binaries.
    pub fn process_env(&self, command: &mut Command) {
        command
            .env("WARREN_DATABASE_URL", &self.db_url)
            .env("WARREN_AMQP_URL", &self.amqp_url)
            .env("WARREN_NAMESPACE", &self.namespace)
            .env("WARREN_QUEUE_EXPIRES", "10m")
            .env("WARREN_API_TOKEN", TEST_TOKEN)
            .env("WARREN_API_READ_TOKEN", crate::TEST_READ_TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
    }

    /// Starts a `warren-worker` process on `queues`.
    pub fn spawn_worker_process(&self, queues: &str, extra: &[(&str, &str)]) -> ChildGuard {
        let mut command = Command::new(binary("warren-worker"));
        self.process_env(&mut command);
        command
            .env("WARREN_QUEUES", queues)
            .env("WARREN_HEARTBEAT_INTERVAL", "500ms")
            .env("WARREN_CONCURRENCY", "4");
        for (key, value) in extra {
            command.env(key, value);
        }
        ChildGuard::spawn(command)
    }

    /// Starts a `warren-coordinator` process on `http_addr` with fast
    /// timings, plus `extra` environment.
    pub fn spawn_coordinator_process(&self, http_addr: &str, extra: &[(&str, &str)]) -> ChildGuard {
        let mut command = Command::new(binary("warren-coordinator"));
        self.process_env(&mut command);
        command
            .env("WARREN_HTTP_ADDR", http_addr)
            .env("WARREN_LEASE_TIMEOUT", "3s")
            .env("WARREN_SWEEP_INTERVAL", "300ms")
            .env("WARREN_DISPATCH_TIMEOUT", "10s")
            .env("WARREN_POLL_INTERVAL", "50ms");
        for (key, value) in extra {
            command.env(key, value);
        }
        ChildGuard::spawn(command)
    }

    /// A store on this test's database (created and migrated if needed).
    pub async fn store(&self) -> Store {
        Store::connect_and_migrate(&StoreConfig {
            url: self.db_url.clone(),
            max_connections: 3,
        })
        .await
        .expect("test store")
    }

    /// Publishes raw bytes to an exchange of this namespace (confirmed).
    pub async fn publish_raw(&self, exchange: &str, routing_key: &str, body: &[u8]) {
        self.publish_raw_all(exchange, routing_key, &[body.to_vec()])
            .await;
    }

    /// Publishes each of `bodies`, in order, to an exchange of this
    /// namespace over one connection, and waits until all are confirmed.
    pub async fn publish_raw_all(&self, exchange: &str, routing_key: &str, bodies: &[Vec<u8>]) {
        let session = Session::connect(&self.broker_config())
            .await
            .expect("connect");
        session.declare_core().await.expect("declare");
        let publisher = session.publisher().await.expect("publisher");
        let items: Vec<(String, Vec<u8>)> = bodies
            .iter()
            .map(|body| (routing_key.to_owned(), body.clone()))
            .collect();
        for result in publisher.publish_batch(exchange, &items).await {
            result.expect("publish");
        }
        session.close().await;
    }

    /// Submits jobs over AMQP as one `Submit` envelope.
    pub async fn submit(&self, jobs: Vec<JobSpec>) -> Vec<Uuid> {
        let ids = jobs.iter().map(|j| j.id).collect();
        let names = self.broker_config().names();
        self.publish_raw(
            &names.submit_exchange(),
            warren_broker::SUBMIT_ROUTING_KEY,
            &encode(&SubmitEnvelope::new(jobs)),
        )
        .await;
        ids
    }

    /// Waits until the job satisfies `done`; returns it.
    pub async fn wait_job(
        &self,
        store: &Store,
        id: Uuid,
        what: &str,
        done: impl Fn(&JobRow) -> bool,
    ) -> JobRow {
        let deadline = DEADLINE;
        eventually(what, deadline, || async {
            match store.get_job(id).await {
                Ok(job) if done(&job) => Some(job),
                _ => None,
            }
        })
        .await
    }

    /// Jobs in state `completed` (0 while the database is unreachable).
    pub async fn completed_jobs(store: &Store) -> usize {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE state = 'completed'")
            .fetch_one(store.pool())
            .await
            .map_or(0, |n| n as usize)
    }

    /// Waits until at least `at_least` jobs are `completed`; panics after `deadline`.
    pub async fn wait_completed(store: &Store, at_least: usize, deadline: Duration) {
        eventually(&format!("{at_least} jobs completed"), deadline, || async {
            (Self::completed_jobs(store).await >= at_least).then_some(())
        })
        .await;
    }

    /// Number of messages ready in `<ns>.dead`.
    pub async fn dead_letters(&self) -> u32 {
        let session = Session::connect(&self.broker_config())
            .await
            .expect("connect");
        let depth = session
            .queue_depth(&self.broker_config().names().dead_queue())
            .await
            .expect("depth");
        session.close().await;
        depth
    }

    /// GETs `path` from a coordinator's API with the test token; returns (status, body).
    pub async fn api_get(&self, api_url: &str, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .get(format!("{api_url}{path}"))
            .bearer_auth(TEST_TOKEN)
            .send()
            .await
            .expect("GET");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    /// POSTs to `path` with the test token; returns (status, body).
    pub async fn api_post(&self, api_url: &str, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{api_url}{path}"))
            .bearer_auth(TEST_TOKEN)
            .send()
            .await
            .expect("POST");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    /// Stops everything started in-process, deletes the namespace and drops the database.
    pub async fn cleanup(mut self, task_queues: &[&str]) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Ok(session) = Session::connect(&self.broker_config()).await {
            let _ = session.delete_namespace(task_queues).await;
            session.close().await;
        }
        if let Ok(options) = PgConnectOptions::from_str(&self.db_url) {
            if let Ok(mut admin) = options.database("postgres").connect().await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.db_name
                ))
                .execute(&mut admin)
                .await;
                let _ = admin.close().await;
            }
        }
    }
}

/// Logs to the test output when `RUST_LOG` is set.
fn tracing_subscriber_init() -> Option<()> {
    let filter = std::env::var("RUST_LOG").ok()?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init()
        .ok()
}
