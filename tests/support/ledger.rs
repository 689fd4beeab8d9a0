//! An execution ledger independent of the database: each job is an `exec`
//! that appends its own token to a file, so the file counts executions; and
//! [`Ledger::check`], the invariants every fault test asserts after its
//! faults, against the database and the ledger both.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use warren_core::protocol::JobSpec;
use warren_store::Store;

/// How long [`Ledger::check`] waits for every accepted job to complete
/// (a restarted service, then the backlog it left).
const COMPLETION_DEADLINE: Duration = Duration::from_secs(180);

/// A file that jobs append their token to, one line per execution.
pub struct Ledger {
    path: PathBuf,
    /// Where [`Ledger::flaky_job`]s leave their first-attempt markers.
    markers: PathBuf,
    /// The token of every job this ledger made, by job id.
    tokens: Mutex<HashMap<Uuid, String>>,
    /// The test's namespace (its queues' prefix), for a failure message.
    namespace: String,
}

/// What [`Ledger::check`] found; it returns only when every invariant held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Accepted jobs, every one of them completed.
    pub accepted: usize,
    /// Jobs that needed more than one attempt.
    pub retried: usize,
    /// The highest attempt number of any job.
    pub max_attempt: i32,
    /// Executions the ledger recorded, in all.
    pub executions: usize,
    /// Executions beyond the first of each job.
    pub extra_executions: usize,
    /// The most executions of one job.
    pub max_runs_per_job: usize,
}

impl Ledger {
    /// A fresh ledger file for the test of namespace `name`.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("warren-ledger-{name}"));
        let markers = std::env::temp_dir().join(format!("warren-ledger-{name}.markers"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(&markers);
        std::fs::create_dir_all(&markers).expect("ledger marker directory");
        Self {
            path,
            markers,
            tokens: Mutex::new(HashMap::new()),
            namespace: name.to_string(),
        }
    }

    /// A job that sleeps `ms`, then records one execution of token `n`.
    pub fn job(&self, queue: &str, n: usize, ms: u64) -> JobSpec {
        self.exec(queue, n, "", ms)
    }

    /// Like [`Ledger::job`], but its first attempt fails (exit 1) after the
    /// sleep without recording an execution; later attempts record one.
    pub fn flaky_job(&self, queue: &str, n: usize, ms: u64) -> JobSpec {
        let marker = self.markers.join(format!("job-{n}"));
        let first = format!(
            "if mkdir {} 2>/dev/null; then echo 'first attempt fails on purpose' >&2; exit 1; fi; ",
            marker.display()
        );
        self.exec(queue, n, &first, ms)
    }

    fn exec(&self, queue: &str, n: usize, before_record: &str, ms: u64) -> JobSpec {
        let token = format!("job-{n}");
        let script = format!(
            "sleep {:.3}; {before_record}echo {token} >> {}",
            ms as f64 / 1000.0,
            self.path.display()
        );
        let mut spec = JobSpec::new(queue, "exec", json!({ "cmd": ["sh", "-c", script] }));
        spec.retry.base_delay_ms = Some(50);
        spec.retry.max_delay_ms = Some(500);
        self.tokens
            .lock()
            .expect("ledger tokens")
            .insert(spec.id, token);
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

    /// Waits until every `accepted` job (all made by this ledger) completed,
    /// then asserts what a fault may never break, `faults` being how many
    /// were injected:
    ///
    /// * no accepted job lost, and no job in the database that was not
    ///   accepted;
    /// * each job in `completed`, with exactly one event into a terminal
    ///   state (`completed`, `cancelled`, `skipped`);
    /// * no attempt number above the job's `max_attempts`;
    /// * every job executed, per the ledger, and nothing else executed;
    /// * no job executed more than `1 + faults` times.
    ///
    /// Prints the figures as one `fault <name>: ...` line and returns them.
    pub async fn check(
        &self,
        name: &str,
        store: &Store,
        accepted: &[Uuid],
        faults: usize,
    ) -> Figures {
        let wanted: HashSet<Uuid> = accepted.iter().copied().collect();
        assert_eq!(wanted.len(), accepted.len(), "{name}: accepted ids repeat");
        let ids: Vec<Uuid> = accepted.to_vec();
        let start = tokio::time::Instant::now();
        loop {
            let done: Option<i64> = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE state = 'completed' AND id = ANY($1)",
            )
            .bind(&ids)
            .fetch_one(store.pool())
            .await
            .ok();
            if done == Some(ids.len() as i64) {
                break;
            }
            if start.elapsed() > COMPLETION_DEADLINE {
                panic!(
                    "{name}: {} of {} accepted jobs completed after {COMPLETION_DEADLINE:?}; \
                     jobs by state: {}; database sessions:\n{}\nqueues \
                     (name, ready, unacknowledged, consumers):\n{}",
                    done.unwrap_or(-1),
                    ids.len(),
                    states(store).await,
                    activity(store).await,
                    queues(&self.namespace)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let rows: Vec<(Uuid, String, i32, i32, i64)> = sqlx::query_as(
            "SELECT j.id, j.state::text, j.attempt, j.max_attempts,
                    (SELECT count(*) FROM job_events e WHERE e.job_id = j.id
                        AND e.to_state IN ('completed', 'cancelled', 'skipped'))
               FROM jobs j",
        )
        .fetch_all(store.pool())
        .await
        .expect("read jobs");
        let present: HashSet<Uuid> = rows.iter().map(|r| r.0).collect();
        let lost = wanted.difference(&present).count();
        let invented = present.difference(&wanted).count();
        assert_eq!(
            (lost, invented),
            (0, 0),
            "{name}: no accepted job lost ({lost}), none that was not accepted ({invented})"
        );
        for (id, state, attempt, max_attempts, terminal) in &rows {
            assert_eq!(state, "completed", "{name}: job {id} completed");
            assert_eq!(
                *terminal, 1,
                "{name}: job {id} reached a terminal state exactly once"
            );
            assert!(
                attempt <= max_attempts,
                "{name}: job {id} at attempt {attempt} of {max_attempts}"
            );
        }

        let executions = self.executions();
        let expected: HashMap<String, Uuid> = {
            let tokens = self.tokens.lock().expect("ledger tokens");
            accepted
                .iter()
                .map(|id| {
                    let token = tokens
                        .get(id)
                        .unwrap_or_else(|| panic!("{name}: job {id} was not made by this ledger"));
                    (token.clone(), *id)
                })
                .collect()
        };
        for (token, id) in &expected {
            assert!(
                executions.contains_key(token),
                "{name}: job {id} ({token}) never executed"
            );
        }
        let strangers: Vec<&String> = executions
            .keys()
            .filter(|token| !expected.contains_key(*token))
            .collect();
        assert!(
            strangers.is_empty(),
            "{name}: executed but never accepted: {strangers:?}"
        );
        let total: usize = executions.values().sum();
        let worst = executions.values().max().copied().unwrap_or(0);
        if worst > 1 + faults {
            let (token, _) = executions
                .iter()
                .find(|(_, runs)| **runs == worst)
                .expect("the worst job");
            let id = expected[token];
            panic!(
                "{name}: job {id} ({token}) ran {worst} times after {faults} faults; its events:\n{}",
                history(store, id).await
            );
        }

        let figures = Figures {
            accepted: accepted.len(),
            retried: rows.iter().filter(|r| r.2 > 1).count(),
            max_attempt: rows.iter().map(|r| r.2).max().unwrap_or(0),
            executions: total,
            extra_executions: total - executions.len(),
            max_runs_per_job: worst,
        };
        println!(
            "fault {name}: accepted={} completed={} lost=0 terminal_once={} retried={} max_attempt={} \
             faults={faults} executions={} extra_executions={} max_runs_per_job={}",
            figures.accepted,
            figures.accepted,
            figures.accepted,
            figures.retried,
            figures.max_attempt,
            figures.executions,
            figures.extra_executions,
            figures.max_runs_per_job
        );
        figures
    }
}

/// Jobs by state, for a failure message.
async fn states(store: &Store) -> String {
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT state::text, count(*) FROM jobs GROUP BY 1 ORDER BY 1")
            .fetch_all(store.pool())
            .await
            .unwrap_or_default();
    format!("{counts:?}")
}

/// The test database's other sessions (state, wait, transaction age,
/// query), for a failure message: a stalled run shows what it waits on.
async fn activity(store: &Store) -> String {
    let sessions: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' | ', 'pid ' || pid, state, wait_event_type || ':' || wait_event,
                          'blocked by ' || nullif(pg_blocking_pids(pid)::text, '{}'),
                          'transaction ' || (now() - xact_start)::text, left(query, 120))
           FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(store.pool())
    .await
    .unwrap_or_default();
    sessions
        .iter()
        .map(|session| format!("  {session}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The namespace's broker queues (ready, unacknowledged, consumers), for a
/// failure message: a stall shows whether a queue lost its consumer.
fn queues(namespace: &str) -> String {
    let listed = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "messages_ready"])
        .args(["messages_unacknowledged", "consumers"])
        .output();
    match listed {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.starts_with(namespace))
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("  rabbitmqctl: {e}"),
    }
}

/// One `job_events` row: at, from, to, attempt, worker, detail.
type EventLine = (
    String,
    Option<String>,
    String,
    i32,
    Option<String>,
    Option<String>,
);

/// A job's events, one line each.
async fn history(store: &Store, id: Uuid) -> String {
    let events: Vec<EventLine> = sqlx::query_as(
        "SELECT at::text, from_state::text, to_state::text, attempt, worker_id, detail::text
           FROM job_events WHERE job_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .unwrap_or_default();
    events
        .iter()
        .map(|(at, from, to, attempt, worker, detail)| {
            format!(
                "  {at} {} -> {to} attempt {attempt} worker {} {}",
                from.as_deref().unwrap_or("-"),
                worker.as_deref().unwrap_or("-"),
                detail.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir_all(&self.markers);
    }
}
