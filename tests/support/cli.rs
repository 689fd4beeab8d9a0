//! Running the built `warren` CLI against a test coordinator.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::processes::binary;
use crate::{TestEnv, TEST_TOKEN};

/// The `warren` binary pointed at one coordinator and this test's namespace.
pub struct Cli<'a> {
    /// The test's environment (AMQP URL and namespace).
    pub env: &'a TestEnv,
    /// `http://127.0.0.1:<port>` of the coordinator.
    pub api_url: String,
}

impl Cli<'_> {
    /// Runs `warren args...` and returns its output (60 s at most).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(binary("warren"));
        command
            .args(args)
            .env("WARREN_API_URL", &self.api_url)
            .env("WARREN_API_TOKEN", TEST_TOKEN)
            .env("WARREN_AMQP_URL", &self.env.amqp_url)
            .env("WARREN_NAMESPACE", &self.env.namespace)
            .env("WARREN_QUEUE_EXPIRES", "10m");
        tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .expect("CLI finished in time")
            .expect("run CLI")
    }

    /// Runs `warren args...`, asserts success and parses stdout as JSON.
    pub async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "warren {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "warren {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}
