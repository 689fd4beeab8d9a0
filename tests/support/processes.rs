//! Real processes of the built binaries (`cargo build --bins` first).

use std::path::PathBuf;
use std::process::{Child, Command};

/// Path of a workspace binary in the same target directory as this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing running.
pub struct ChildGuard {
    /// The process.
    pub child: Child,
}

impl ChildGuard {
    /// Starts `command`.
    pub fn spawn(mut command: Command) -> Self {
        Self {
            child: command.spawn().expect("spawn test process"),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. "KILL", "TERM", "STOP", "CONT") via kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `deadline` for the process to exit; returns its exit
    /// code (None if a signal ended it). Panics if it is still running.
    pub async fn wait_exit(&mut self, deadline: std::time::Duration) -> Option<i32> {
        let child = &mut self.child;
        crate::eventually("process exit", deadline, || {
            let status = child.try_wait().expect("poll child");
            async move { status.map(|s| s.code()) }
        })
        .await
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
