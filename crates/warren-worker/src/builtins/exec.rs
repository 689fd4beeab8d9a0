//! `exec`: runs a program directly (no shell) with optional arguments, extra
//! environment, stdin and working directory, and returns its exit status and
//! bounded, lossily decoded output. A non-zero exit fails the attempt.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use super::{cancelled, opt_u64};
use crate::{HandlerError, HandlerResult, JobContext};

/// Output kept per stream unless the payload asks otherwise.
const DEFAULT_MAX_OUTPUT: usize = 64 * 1024;

/// Output kept per stream at most, whatever the payload asks: results travel
/// through the broker and are stored in the job row.
const MAX_OUTPUT_CAP: usize = 1024 * 1024;

/// How much of stderr the failure message quotes.
const STDERR_TAIL: usize = 500;

/// Runs `cmd`; the result is `{"exit_code", "stdout", "stderr",
/// "stdout_truncated", "stderr_truncated"}`.
pub(crate) async fn run(ctx: JobContext, payload: Value) -> HandlerResult {
    let spec = Spec::parse(&payload)?;
    if ctx.is_cancelled() {
        return Err(cancelled());
    }
    let mut child = spec.spawn()?;
    let pgid = child.id();
    let stdin = child.stdin.take();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("stdout and stderr are piped");
    };
    let input = spec.stdin.as_deref().unwrap_or_default().as_bytes();
    let max = spec.max_output;
    // Feed, drain and wait at once, so the child never blocks on a full pipe.
    let io = async {
        tokio::join!(
            feed(stdin, input),
            capture(stdout, max),
            capture(stderr, max),
            child.wait()
        )
    };
    let finished = tokio::select! {
        done = io => Some(done),
        () = ctx.cancelled() => None,
    };
    let Some(((), stdout, stderr, status)) = finished else {
        kill_tree(&mut child, pgid).await;
        return Err(cancelled());
    };
    let status = status.map_err(|e| {
        HandlerError::retryable(format!("exec: waiting for {:?} failed: {e}", spec.program))
    })?;
    outcome(status, stdout, stderr)
}

/// A validated `exec` payload.
struct Spec {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    cwd: Option<String>,
    max_output: usize,
}

impl Spec {
    fn parse(payload: &Value) -> Result<Self, HandlerError> {
        let fatal = |message: &str| HandlerError::fatal(format!("exec: {message}"));
        let obj = payload
            .as_object()
            .ok_or_else(|| fatal("payload must be an object with \"cmd\""))?;
        let words: Option<Vec<String>> = match obj.get("cmd") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|w| w.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        };
        let Some(mut words) = words.filter(|w| w.first().is_some_and(|p| !p.is_empty())) else {
            return Err(fatal(
                "\"cmd\" must be a non-empty array of strings, program first",
            ));
        };
        let program = words.remove(0);
        let env = match obj.get("env") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(vars)) => vars
                .iter()
                // Name the variable, never its value: values may be secrets.
                .map(|(k, v)| {
                    v.as_str()
                        .map(|v| (k.clone(), v.to_owned()))
                        .ok_or_else(|| fatal(&format!("env {k:?} must be a string")))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(fatal("\"env\" must be an object of string values")),
        };
        let max_output = opt_u64(payload, "exec", "max_output_bytes")?
            .map_or(DEFAULT_MAX_OUTPUT, |n| {
                usize::try_from(n).unwrap_or(usize::MAX).min(MAX_OUTPUT_CAP)
            });
        Ok(Self {
            program,
            args: words,
            env,
            stdin: opt_string(obj, "stdin")?,
            cwd: opt_string(obj, "cwd")?.filter(|cwd| !cwd.is_empty()),
            max_output,
        })
    }

    /// Starts the program in its own process group, so cancellation can kill
    /// everything it started.
    fn spawn(&self) -> Result<Child, HandlerError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        tracing::debug!(program = %self.program, args = self.args.len(), "exec: starting");
        command.spawn().map_err(|e| {
            let place = self
                .cwd
                .as_ref()
                .map(|cwd| format!(" in {cwd:?}"))
                .unwrap_or_default();
            let message = format!("exec: cannot start {:?}{place}: {e}", self.program);
            match e.kind() {
                // Out of processes or memory: another attempt may well succeed.
                ErrorKind::WouldBlock | ErrorKind::OutOfMemory => HandlerError::retryable(message),
                _ => HandlerError::fatal(message),
            }
        })
    }
}

/// Reads an optional string field; `null` counts as absent.
fn opt_string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, HandlerError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(HandlerError::fatal(format!(
            "exec: \"{field}\" must be a string"
        ))),
    }
}

/// Writes `input` and closes stdin so the child sees end of input.
async fn feed(stdin: Option<ChildStdin>, input: &[u8]) {
    if let Some(mut pipe) = stdin {
        // A child may exit without reading its input; a broken pipe is its choice.
        let _ = pipe.write_all(input).await;
    }
}

/// One output stream: the first `max` bytes, decoded lossily.
struct Captured {
    text: String,
    truncated: bool,
}

/// Reads `reader` to the end, keeping the first `max` bytes and discarding
/// the rest.
async fn capture(mut reader: impl AsyncRead + Unpin, max: usize) -> Captured {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let room = max - kept.len();
        truncated |= n > room;
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    Captured {
        text: String::from_utf8_lossy(&kept).into_owned(),
        truncated,
    }
}

/// Kills the child and its process group (its group id is its pid), then
/// reaps it.
async fn kill_tree(child: &mut Child, pgid: Option<u32>) {
    let _ = child.start_kill();
    if let Some(pid) = pgid.and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
        // The child leads its own group (process_group(0)): kill everything it spawned.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.wait().await;
}

/// The result on a zero exit; otherwise a retryable error quoting stderr.
fn outcome(status: ExitStatus, stdout: Captured, stderr: Captured) -> HandlerResult {
    if !status.success() {
        let why = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "exited abnormally".to_owned(),
        };
        return Err(HandlerError::retryable(
            match tail(&stderr.text, STDERR_TAIL) {
                "" => why,
                tail => format!("{why}: {tail}"),
            },
        ));
    }
    // Only a zero exit gets here, so there is never a `signal` to report.
    Ok(json!({
        "exit_code": status.code(),
        "stdout": stdout.text,
        "stderr": stderr.text,
        "stdout_truncated": stdout.truncated,
        "stderr_truncated": stderr.truncated,
    }))
}

/// The last `max` bytes of `text` (on a character boundary), trimmed.
fn tail(text: &str, max: usize) -> &str {
    let text = text.trim_end();
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim_start()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::builtins::testing::task;

    async fn exec(payload: Value) -> HandlerResult {
        let (ctx, _cancel, _reports) = JobContext::for_testing(&task("exec", 1, payload.clone()));
        run(ctx, payload).await
    }

    fn stdout(result: &HandlerResult) -> &str {
        result.as_ref().expect("exec succeeds")["stdout"]
            .as_str()
            .expect("stdout is a string")
    }

    #[tokio::test]
    async fn echo_succeeds_with_its_output() {
        let result = exec(json!({"cmd": ["echo", "hi"]})).await;
        assert_eq!(
            result,
            Ok(
                json!({"exit_code": 0, "stdout": "hi\n", "stderr": "", "stdout_truncated": false, "stderr_truncated": false})
            )
        );
    }

    #[tokio::test]
    async fn non_zero_exit_is_retryable_and_quotes_stderr() {
        assert_eq!(
            exec(json!({"cmd": ["sh", "-c", "exit 3"]})).await,
            Err(HandlerError::retryable("exit code 3"))
        );
        let result = exec(json!({"cmd": ["sh", "-c", "echo boom >&2; exit 4"]})).await;
        assert_eq!(result, Err(HandlerError::retryable("exit code 4: boom")));
        let result = exec(json!({"cmd": ["sh", "-c", "kill -9 $$"]})).await;
        assert_eq!(result, Err(HandlerError::retryable("killed by signal 9")));
    }

    #[tokio::test]
    async fn failure_quotes_only_the_tail_of_stderr() {
        let result = exec(json!({"cmd": ["sh", "-c", "head -c 2000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1"]})).await;
        let Err(HandlerError::Retryable(message)) = result else {
            panic!("expected a retryable error, got {result:?}")
        };
        assert!(
            message.starts_with("exit code 1: xxx") && message.ends_with("END"),
            "{message}"
        );
        assert_eq!(message.len(), "exit code 1: ".len() + STDERR_TAIL);
    }

    #[tokio::test]
    async fn stdin_env_and_cwd_pass_through() {
        assert_eq!(
            stdout(&exec(json!({"cmd": ["cat"], "stdin": "line 1\nline 2"})).await),
            "line 1\nline 2"
        );
        let env = json!({"cmd": ["sh", "-c", "printf %s \"$FOO\""], "env": {"FOO": "bar baz"}});
        assert_eq!(stdout(&exec(env).await), "bar baz");
        let tmp = std::fs::canonicalize("/tmp").unwrap();
        let pwd = exec(json!({"cmd": ["pwd"], "cwd": "/tmp"})).await;
        assert_eq!(PathBuf::from(stdout(&pwd).trim_end()), tmp);
    }

    #[tokio::test]
    async fn large_output_is_truncated_and_flagged() {
        let result =
            exec(json!({"cmd": ["head", "-c", "200000", "/dev/zero"], "max_output_bytes": 1000}))
                .await;
        let value = result.as_ref().unwrap();
        assert_eq!(stdout(&result).len(), 1000);
        assert_eq!(value["stdout_truncated"], json!(true));
        assert_eq!(value["stderr_truncated"], json!(false));
    }

    #[tokio::test]
    async fn large_stdin_and_output_do_not_deadlock() {
        let input = "a".repeat(300_000);
        let payload = json!({"cmd": ["cat"], "stdin": input, "max_output_bytes": 10});
        let result = tokio::time::timeout(Duration::from_secs(10), exec(payload))
            .await
            .expect("no deadlock");
        assert_eq!(stdout(&result), "aaaaaaaaaa");
        assert_eq!(result.unwrap()["stdout_truncated"], json!(true));
    }

    #[tokio::test]
    async fn spawn_failures_are_fatal_and_name_the_program() {
        let result = exec(json!({"cmd": ["warren-no-such-program", "x"]})).await;
        assert!(
            matches!(&result, Err(HandlerError::Fatal(m)) if m.contains("warren-no-such-program")),
            "{result:?}"
        );
        let result = exec(json!({"cmd": ["pwd"], "cwd": "/warren/no/such/dir"})).await;
        assert!(
            matches!(&result, Err(HandlerError::Fatal(m)) if m.contains("\"pwd\"") && m.contains("/warren/no/such/dir")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn bad_payloads_are_fatal() {
        for payload in [
            json!(null),
            json!({}),
            json!({"cmd": []}),
            json!({"cmd": "echo hi"}),
            json!({"cmd": [""]}),
            json!({"cmd": ["echo", 1]}),
            json!({"cmd": ["env"], "env": {"SECRET": 42}}),
            json!({"cmd": ["env"], "env": ["A=1"]}),
            json!({"cmd": ["cat"], "stdin": 5}),
            json!({"cmd": ["pwd"], "cwd": false}),
            json!({"cmd": ["true"], "max_output_bytes": -1}),
        ] {
            assert!(
                matches!(exec(payload.clone()).await, Err(HandlerError::Fatal(_))),
                "{payload}"
            );
        }
    }

    #[test]
    fn output_limit_defaults_and_is_capped() {
        let spec = |payload: Value| Spec::parse(&payload).map(|s| s.max_output).unwrap();
        assert_eq!(spec(json!({"cmd": ["true"]})), DEFAULT_MAX_OUTPUT);
        assert_eq!(spec(json!({"cmd": ["true"], "max_output_bytes": 10})), 10);
        assert_eq!(
            spec(json!({"cmd": ["true"], "max_output_bytes": u64::MAX})),
            MAX_OUTPUT_CAP
        );
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("  abc \n", 10), "abc");
        assert_eq!(tail("xxé", 1), "");
        assert_eq!(tail("xxéy", 2), "y");
        assert_eq!(tail("xxéy", 3), "éy");
    }

    /// Whether `pid` has exited: gone, or a zombie awaiting its reaper.
    fn exited(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn cancellation_kills_the_child_and_its_group_promptly() {
        let pids = std::env::temp_dir().join(format!("warren-exec-test-{}", uuid::Uuid::new_v4()));
        let script = format!(
            "sleep 30 & echo \"$$ $!\" > {}.tmp && mv {0}.tmp {0}; wait",
            pids.display()
        );
        let payload = json!({"cmd": ["sh", "-c", script]});
        let (ctx, cancel, _reports) = JobContext::for_testing(&task("exec", 1, payload.clone()));
        let handle = tokio::spawn(run(ctx, payload));

        let pids_text = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(text) = std::fs::read_to_string(&pids) {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the child starts");
        let _ = std::fs::remove_file(&pids);
        let (shell, grandchild) = pids_text.trim().split_once(' ').expect("two pids");

        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("returns within 5s")
            .unwrap();
        assert_eq!(outcome, Err(HandlerError::retryable("cancelled")));
        assert!(exited(shell), "the child {shell} was killed and reaped");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !exited(grandchild) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the grandchild in the child's process group is killed too");
    }

    #[tokio::test]
    async fn cancelled_before_start_spawns_nothing() {
        let payload = json!({"cmd": ["sleep", "30"]});
        let (ctx, cancel, _reports) = JobContext::for_testing(&task("exec", 1, payload.clone()));
        cancel.cancel();
        assert_eq!(
            run(ctx, payload).await,
            Err(HandlerError::retryable("cancelled"))
        );
    }
}
