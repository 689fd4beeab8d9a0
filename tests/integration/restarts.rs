//! The CLI's long-running commands ride out a coordinator restart:
//! `warren watch` keeps polling and exits 0 when the job completes, and
//! `warren events --follow` resumes with `Last-Event-ID`, printing every
//! event exactly once.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::json;
use warren_client::TransitionEvent;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{
    binary, event_rows, eventually, free_port, row_of, ChildGuard, TestEnv, DEADLINE, TEST_TOKEN,
};

/// A running coordinator process on a fixed address, restartable.
struct Coordinator<'a> {
    env: &'a TestEnv,
    addr: String,
    process: Option<ChildGuard>,
}

impl<'a> Coordinator<'a> {
    async fn start(env: &'a TestEnv, addr: String) -> Self {
        let mut coordinator = Self {
            env,
            addr,
            process: None,
        };
        coordinator.restart().await;
        coordinator
    }

    /// Starts the process (again) and waits until it is healthy. A long lease
    /// keeps the running job from being rescued while the coordinator is away.
    async fn restart(&mut self) {
        let extra = [("WARREN_LEASE_TIMEOUT", "60s")];
        self.process = Some(self.env.spawn_coordinator_process(&self.addr, &extra));
        let health = format!("http://{}/health", self.addr);
        eventually("coordinator healthy", DEADLINE, || async {
            let response = reqwest::get(&health).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    async fn kill(&mut self) {
        let mut process = self.process.take().expect("running");
        process.signal("KILL");
        process.wait_exit(DEADLINE).await;
    }
}

/// Files a CLI process writes its stdout and stderr to.
struct Output {
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Output {
    fn new(env: &TestEnv, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("warren-{}", env.namespace));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self {
            stdout: dir.join(format!("{name}.out")),
            stderr: dir.join(format!("{name}.err")),
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn remove(self) {
        if let Some(dir) = self.stdout.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `warren <args>` against `addr`, writing into `output`.
fn cli(env: &TestEnv, addr: &str, args: &[&str], output: &Output) -> ChildGuard {
    let mut command = Command::new(binary("warren"));
    env.process_env(&mut command);
    command
        .args(args)
        .env("WARREN_API_URL", format!("http://{addr}"))
        .env("WARREN_API_TOKEN", TEST_TOKEN)
        .stdout(Stdio::from(
            File::create(&output.stdout).expect("stdout file"),
        ))
        .stderr(Stdio::from(
            File::create(&output.stderr).expect("stderr file"),
        ));
    ChildGuard::spawn(command)
}

#[tokio::test]
async fn watch_survives_a_coordinator_restart_and_exits_0_when_the_job_completes() {
    let env = TestEnv::new().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut coordinator = Coordinator::start(&env, addr.clone()).await;
    let worker = env.spawn_worker_process("default", &[]);
    let store = env.store().await;
    let id = env
        .submit(vec![JobSpec::new(
            "default",
            "sleep",
            json!({ "ms": 6000 }),
        )])
        .await[0];
    let output = Output::new(&env, "watch");
    let mut watch = cli(&env, &addr, &["watch", &id.to_string()], &output);
    env.wait_job(&store, id, "running", |j| j.state() == JobState::Running)
        .await;
    eventually("watch shows the job running", DEADLINE, || async {
        output.stderr().contains("running").then_some(())
    })
    .await;

    coordinator.kill().await;
    eventually(
        "watch notices the coordinator is gone",
        DEADLINE,
        || async { output.stderr().contains("reconnecting").then_some(()) },
    )
    .await;
    assert!(
        !store.get_job(id).await.unwrap().state().is_terminal(),
        "the outage happened while the job ran"
    );
    coordinator.restart().await;

    assert_eq!(
        watch.wait_exit(DEADLINE).await,
        Some(0),
        "watch exits 0 once the job completed; stderr:\n{}",
        output.stderr()
    );
    assert!(output.stdout().contains("completed"), "{}", output.stdout());
    output.remove();
    coordinator.kill().await;
    drop(worker);
    env.cleanup(&["default"]).await;
}

#[tokio::test]
async fn events_follow_resumes_after_a_coordinator_restart_without_loss_or_repeats() {
    let env = TestEnv::new().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut coordinator = Coordinator::start(&env, addr.clone()).await;
    let worker = env.spawn_worker_process("default", &[]);
    let store = env.store().await;
    let output = Output::new(&env, "follow");
    let follow = cli(
        &env,
        &addr,
        &["events", "--follow", "--after", "0", "--json"],
        &output,
    );
    let printed = || -> Vec<TransitionEvent> {
        let text = output.stdout();
        // Only whole lines: the last piece may still be being written.
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        whole
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
            .collect()
    };
    let echo = |n: usize| -> Vec<JobSpec> {
        (0..n)
            .map(|i| JobSpec::new("default", "echo", json!({ "i": i })))
            .collect()
    };
    let caught_up = |what: &'static str| {
        let (store, printed) = (&store, &printed);
        async move {
            eventually(what, DEADLINE, || async {
                let rows = event_rows(store).await;
                (printed().len() == rows.len() && TestEnv::completed_jobs(store).await > 0)
                    .then_some(())
            })
            .await
        }
    };

    env.submit(echo(5)).await;
    eventually("first jobs completed", DEADLINE, || async {
        (TestEnv::completed_jobs(&store).await == 5).then_some(())
    })
    .await;
    caught_up("follow printed the first events").await;

    coordinator.kill().await;
    eventually(
        "follow notices the coordinator is gone",
        DEADLINE,
        || async { output.stderr().contains("reconnecting").then_some(()) },
    )
    .await;
    env.submit(echo(5)).await; // accepted by RabbitMQ while the coordinator is away
    coordinator.restart().await;
    eventually("all jobs completed", DEADLINE, || async {
        (TestEnv::completed_jobs(&store).await == 10).then_some(())
    })
    .await;
    caught_up("follow printed every event").await;

    let rows = event_rows(&store).await;
    assert_eq!(
        printed().iter().map(row_of).collect::<Vec<_>>(),
        rows,
        "every event once, in order, across the restart"
    );
    output.remove();
    drop(follow);
    coordinator.kill().await;
    drop(worker);
    env.cleanup(&["default"]).await;
}
