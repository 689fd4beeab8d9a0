//! The web dashboard. Its static files are open and locked down by a CSP;
//! end to end, tests/browser/dashboard.mjs drives the page in headless
//! Chromium against a real coordinator and worker, and this test checks in
//! the database that its clicks really changed the jobs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_core::JobState;
use warren_tests::{TestEnv, TEST_TOKEN};
use warren_worker::{HandlerError, Registry};

const QUEUE: &str = "dash-e2e";
/// The browser script's own waits are 20 s each; this bounds the whole run.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test]
async fn static_files_are_served_without_a_token_under_a_strict_csp() {
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", coordinator.api_url));

    let page = get("/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let csp = header(&page, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert!(page.text().await.unwrap().contains("/ui/app.js"));

    let script = get("/ui/app.js").send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        header(&script, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&script, "cache-control"), "no-cache");
    let etag = header(&script, "etag");
    let again = get("/ui/app.js")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "an unchanged file is not sent again");
    let style = get("/ui/app.css").send().await.unwrap();
    assert_eq!(header(&style, "content-type"), "text/css; charset=utf-8");

    let missing = get("/ui/nope.js").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // Opening the page's files opened nothing else.
    assert_eq!(get("/v1/jobs").send().await.unwrap().status(), 401);
    env.cleanup(&[]).await;
}

#[tokio::test]
async fn dashboard_clicks_change_jobs_in_headless_chromium() {
    let tools = BrowserTools::find();
    let mut env = TestEnv::new().await;
    let coordinator = env.start_coordinator().await;
    // Built-ins plus `render`: reports progress, then works until cancelled.
    let mut registry = Registry::with_builtins();
    registry.register("render", |ctx, _| async move {
        ctx.progress(42.0, "rendering");
        ctx.cancelled().await;
        Err(HandlerError::retryable("cancelled"))
    });
    let config = env.worker_config(&[QUEUE]);
    let _worker = env.start_worker_with(config, registry);
    let store = env.store().await;

    let echo = |n: i32| JobSpec::new(QUEUE, "echo", json!({ "n": n }));
    for id in env.submit((0..3).map(echo).collect()).await {
        env.wait_job(&store, id, "echo completed", |j| {
            j.state() == JobState::Completed
        })
        .await;
    }
    let approval = |n| JobSpec {
        requires_approval: true,
        ..echo(n)
    };
    let awaiting = env.submit(vec![approval(10), approval(11)]).await;
    for &id in &awaiting {
        env.wait_job(&store, id, "awaiting approval", |j| {
            j.state() == JobState::AwaitingApproval
        })
        .await;
    }
    let renderer = env
        .submit(vec![JobSpec::new(QUEUE, "render", json!({}))])
        .await[0];
    env.wait_job(&store, renderer, "render reported progress", |j| {
        j.state() == JobState::Running && j.progress == Some(42.0)
    })
    .await;

    let summary = tools.run(&coordinator.api_url).await;

    let approved = job_id(&summary, "approved");
    let conflict = job_id(&summary, "conflict");
    let mut acted_on = vec![approved, conflict];
    acted_on.sort();
    let mut expected = awaiting.clone();
    expected.sort();
    assert_eq!(
        acted_on, expected,
        "the script approved the two awaiting jobs"
    );
    let job = store.get_job(approved).await.unwrap();
    assert_eq!(job.state(), JobState::Completed, "the Approve click ran it");
    let job = store.get_job(conflict).await.unwrap();
    assert_ne!(job.state(), JobState::AwaitingApproval);
    assert_eq!(job_id(&summary, "cancelled"), renderer);
    let job = store.get_job(renderer).await.unwrap();
    assert_eq!(
        job.state(),
        JobState::Cancelled,
        "the Cancel click cancelled it"
    );

    assert_eq!(
        summary["queues"], "listed",
        "the queues view listed the queue"
    );
    let paused: bool = sqlx::query_scalar("SELECT paused FROM queues WHERE name = $1")
        .bind(QUEUE)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(paused, "the last Pause click left the queue paused");
    env.cleanup(&[QUEUE]).await;
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn job_id(summary: &Value, key: &str) -> Uuid {
    summary[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("summary has no job id {key:?}: {summary}"))
}

/// Node, Chromium and playwright-core, as installed by deploy/local/browser.sh.
struct BrowserTools {
    node: String,
    chromium: PathBuf,
    script: PathBuf,
}

impl BrowserTools {
    /// Fails (never skips) when a tool is missing: the dashboard must be tested.
    fn find() -> Self {
        const FIX: &str = "run `bash deploy/local/browser.sh` (make test does) to install \
                           Chromium, Node.js and playwright-core";
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repository root");
        let chromium = PathBuf::from(
            std::env::var("WARREN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        );
        assert!(
            chromium.exists(),
            "{} is missing: {FIX}",
            chromium.display()
        );
        let node = std::env::var("WARREN_NODE").unwrap_or_else(|_| "node".into());
        let version = std::process::Command::new(&node).arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "`{node} --version` failed: {FIX}"
        );
        let playwright = root.join("tests/browser/node_modules/playwright-core/package.json");
        assert!(
            playwright.exists(),
            "{} is missing: {FIX}",
            playwright.display()
        );
        Self {
            node,
            chromium,
            script: root.join("tests/browser/dashboard.mjs"),
        }
    }

    /// Runs the browser script against `api_url`; returns its JSON summary.
    async fn run(&self, api_url: &str) -> Value {
        let child = tokio::process::Command::new(&self.node)
            .arg(&self.script)
            .args([api_url, TEST_TOKEN, QUEUE])
            .env("WARREN_CHROMIUM", &self.chromium)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let output = tokio::time::timeout(BROWSER_DEADLINE, child.wait_with_output())
            .await
            .expect("the browser test finished in time")
            .expect("node ran");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!("{stdout}");
        assert!(
            output.status.success(),
            "the browser test failed ({}):\n{stderr}\n{stdout}",
            output.status
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("bad summary line {last:?}: {e}"))
    }
}
