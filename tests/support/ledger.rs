//! An execution ledger independent of the database: each job is an `exec`
//! that appends its own token to a file, so the file counts executions.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use warren_core::protocol::JobSpec;

/// A file that jobs append their token to, one line per execution.
pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// A fresh ledger file for `name`.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("warren-ledger-{name}"));
        let _ = std::fs::remove_file(&path);
        Self { path }
    }

    /// A job that sleeps `ms`, then records one execution of token `n`.
    pub fn job(&self, queue: &str, n: usize, ms: u64) -> JobSpec {
        let script = format!(
            "sleep {:.3}; echo job-{n} >> {}",
            ms as f64 / 1000.0,
            self.path.display()
        );
        let mut spec = JobSpec::new(queue, "exec", json!({ "cmd": ["sh", "-c", script] }));
        spec.retry.base_delay_ms = Some(50);
        spec.retry.max_delay_ms = Some(500);
        spec
    }

    /// Executions per token.
    pub fn executions(&self) -> HashMap<String, usize> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut counts = HashMap::new();
        for line in text.lines() {
            *counts.entry(line.to_owned()).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
