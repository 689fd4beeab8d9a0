//! The deployment artefacts under `deploy/` (Docker, compose, Kubernetes,
//! Prometheus, Grafana) parse, have the shape the docs promise, and watch
//! only what the code exports. The sources of truth are read at test time,
//! never copied: every `warren_*` metric and label named by an alert rule or
//! a dashboard query must be defined in a `crates/*/src/metrics.rs` or
//! `crates/*/src/*_metrics.rs` file, and every
//! `WARREN_*` variable given to a container must be read by that role's
//! `main.rs`. Nothing here needs RabbitMQ, PostgreSQL or Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use warren_core::JobState;

/// Labels Prometheus attaches to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];
/// Suffixes of the series a histogram exports besides its name.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `crates/<crate>/src/metrics.rs` and `crates/<crate>/src/*_metrics.rs`,
/// relative to the repository, sorted.
fn metrics_files() -> Vec<String> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo_path("crates")).expect("crates/") {
        let krate = krate.expect("crate entry").file_name();
        let src = format!("crates/{}/src", krate.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(repo_path(&src)) else {
            continue;
        };
        for entry in entries {
            let name = entry.expect("source entry").file_name();
            let name = name.to_string_lossy();
            if name == "metrics.rs" || name.ends_with("_metrics.rs") {
                files.push(format!("{src}/{name}"));
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 2,
        "the coordinator's and worker's metrics: {files:?}"
    );
    files
}

fn yaml(relative: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml_documents(relative: &str) -> Vec<Yaml> {
    let text = read(relative);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{relative}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn text(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map_or_else(Vec::new, |s| s.iter().map(text).collect())
}

/// The port of a `host:port` address.
fn port_of(address: &str) -> u16 {
    let (_, port) = address.rsplit_once(':').expect("host:port");
    port.parse().expect("numeric port")
}

/// The double-quoted string literals of a piece of Rust.
fn quoted(code: &str) -> Vec<String> {
    code.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// Sources of truth.

/// Metrics the binaries export, parsed from their definitions.
struct Exported {
    /// Metric name → its own labels.
    labels: BTreeMap<String, BTreeSet<String>>,
    /// Names of histograms (which also export `_bucket`, `_sum`, `_count`).
    histograms: BTreeSet<String>,
}

impl Exported {
    /// Reads every `"warren_…"` literal of the metrics files, with the
    /// `&["label", …]` array of the same statement and whether that
    /// statement builds a histogram.
    fn from_source() -> Self {
        let mut labels = BTreeMap::new();
        let mut histograms = BTreeSet::new();
        for file in metrics_files() {
            let source = read(&file);
            let code = source
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for (at, _) in code.match_indices("\"warren_") {
                let name_end = at + 1 + code[at + 1..].find('"').expect("closed literal");
                let name = code[at + 1..name_end].to_owned();
                let start = code[..at].rfind(';').map_or(0, |p| p + 1);
                // The statement ends at `;` or, defensively, at the next name.
                let end = code[name_end..]
                    .find(';')
                    .into_iter()
                    .chain(code[name_end..].find("\"warren_"))
                    .min()
                    .map_or(code.len(), |p| name_end + p);
                let rest = &code[name_end + 1..end];
                let own = match rest.find("&[") {
                    Some(open) => {
                        let array = &rest[open + 2..];
                        quoted(&array[..array.find(']').expect("closed label array")])
                    }
                    None => Vec::new(),
                };
                if code[start..end].to_lowercase().contains("histogram") {
                    histograms.insert(name.clone());
                }
                let previous = labels.insert(name.clone(), own.into_iter().collect());
                assert!(previous.is_none(), "{name} defined twice");
            }
            if code.contains("ProcessCollector::for_self()") {
                for name in PROCESS_METRICS {
                    labels.entry(name.to_owned()).or_default();
                }
            }
        }
        Self { labels, histograms }
    }

    /// The exported metric a series name belongs to, if any.
    fn metric_of<'a>(&self, series: &'a str) -> Option<&'a str> {
        if self.labels.contains_key(series) {
            return Some(series);
        }
        HISTOGRAM_SUFFIXES
            .iter()
            .filter_map(|suffix| series.strip_suffix(suffix))
            .find(|base| self.histograms.contains(*base))
    }

    /// Labels a series of the metric may carry once scraped.
    fn series_labels(&self, series: &str, metric: &str) -> BTreeSet<String> {
        let mut labels = self.labels[metric].clone();
        labels.extend(TARGET_LABELS.map(str::to_owned));
        if series.ends_with("_bucket") && self.histograms.contains(metric) {
            labels.insert("le".to_owned());
        }
        labels
    }
}

/// What the prometheus crate's `ProcessCollector` exports (Linux), without
/// labels of its own.
const PROCESS_METRICS: [&str; 8] = [
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// `WARREN_*` variables a binary reads (its clap `env = "…"` attributes).
fn env_vars_read_by(binary: &str) -> BTreeSet<String> {
    let main = read(&format!("crates/{binary}/src/main.rs"));
    let vars: BTreeSet<String> = main
        .match_indices("env = \"")
        .map(|(at, m)| {
            let rest = &main[at + m.len()..];
            rest[..rest.find('"').expect("closed literal")].to_owned()
        })
        .collect();
    assert!(vars.contains("WARREN_AMQP_URL"), "{binary}: no env parsed");
    vars
}

#[test]
fn metric_definitions_are_parsed_from_source() {
    let exported = Exported::from_source();
    let labels =
        |name: &str| -> Vec<&str> { exported.labels[name].iter().map(String::as_str).collect() };
    assert_eq!(labels("warren_jobs"), ["queue", "state"]);
    assert_eq!(
        labels("warren_job_transitions_total"),
        ["from", "queue", "to"]
    );
    assert_eq!(labels("warren_worker_jobs_total"), ["outcome", "task_type"]);
    assert!(labels("warren_workers_alive").is_empty());
    assert!(exported.histograms.contains("warren_queue_wait_seconds"));
    assert!(exported.histograms.contains("warren_worker_job_seconds"));
    assert!(!exported.histograms.contains("warren_jobs"));
    assert_eq!(
        exported.metric_of("warren_run_seconds_bucket"),
        Some("warren_run_seconds")
    );
    assert_eq!(exported.metric_of("warren_jobs_bucket"), None);
    // Both binaries register the process collector.
    assert!(labels("process_cpu_seconds_total").is_empty());
}

// ---------------------------------------------------------------------------
// PromQL, just enough of it: metric selectors and grouping labels.

/// One metric selector of an expression.
struct Selector {
    series: String,
    /// (label, value) of each matcher, whatever its operator.
    matchers: Vec<(String, String)>,
}

/// What an expression refers to.
#[derive(Default)]
struct Refs {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Skips a double-quoted string starting at `chars[i]`; returns the index
/// after it.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn parse_matchers(body: &str) -> Vec<(String, String)> {
    let mut matchers = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let name = rest[..name_end].to_owned();
        let value_start = rest.find('"').expect("quoted matcher value");
        let chars: Vec<char> = rest.chars().collect();
        let value_end = skip_string(&chars, value_start);
        matchers.push((name, rest[value_start + 1..value_end - 1].to_owned()));
        rest = rest[value_end..]
            .trim_start()
            .trim_start_matches(',')
            .trim();
    }
    matchers
}

fn parse_promql(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    assert!(expr.is_ascii(), "non-ASCII PromQL: {expr}");
    let mut refs = Refs::default();
    let mut depth: Vec<char> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i = skip_string(&chars, i);
            continue;
        }
        match c {
            '(' | '{' | '[' => depth.push(c),
            ')' | '}' | ']' => {
                let open = depth.pop();
                let want = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                assert_eq!(open, Some(want), "unbalanced {c:?} in: {expr}");
            }
            _ => {}
        }
        let starts_ident = (c.is_ascii_alphabetic() || c == '_')
            && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == '$'));
        if !starts_ident {
            i += 1;
            continue;
        }
        let end = (i..chars.len())
            .find(|&j| !is_ident(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..end].iter().collect();
        let mut next = end;
        while next < chars.len() && chars[next] == ' ' {
            next += 1;
        }
        let next_char = chars.get(next).copied();
        if (word == "by" || word == "without") && next_char == Some('(') {
            let close = (next..chars.len())
                .find(|&j| chars[j] == ')')
                .expect("closed by()");
            let list: String = chars[next + 1..close].iter().collect();
            refs.grouping.extend(
                list.split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
            i = close + 1;
            continue;
        }
        if next_char == Some('{') {
            let mut close = next + 1;
            while chars[close] != '}' {
                close = if chars[close] == '"' {
                    skip_string(&chars, close)
                } else {
                    close + 1
                };
            }
            let body: String = chars[next + 1..close].iter().collect();
            refs.selectors.push(Selector {
                series: word,
                matchers: parse_matchers(&body),
            });
            i = close + 1;
            continue;
        }
        if word.starts_with("warren_") || word.starts_with("process_") {
            refs.selectors.push(Selector {
                series: word,
                matchers: Vec::new(),
            });
        }
        i = end;
    }
    assert!(depth.is_empty(), "unclosed {depth:?} in: {expr}");
    refs
}

/// Checks expressions against the exported metrics, collecting every
/// problem so that one run lists them all.
struct Checker {
    exported: Exported,
    /// Scrape job names of prometheus.yml.
    jobs: BTreeSet<String>,
    metrics_used: BTreeSet<String>,
    problems: Vec<String>,
}

impl Checker {
    fn new() -> Self {
        let prometheus = yaml("deploy/prometheus/prometheus.yml");
        let jobs = prometheus["scrape_configs"]
            .as_sequence()
            .expect("scrape_configs")
            .iter()
            .map(|job| text(&job["job_name"]))
            .collect();
        Self {
            exported: Exported::from_source(),
            jobs,
            metrics_used: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// Checks one expression; returns the labels its result may carry.
    fn expr(&mut self, context: &str, expr: &str) -> BTreeSet<String> {
        let refs = parse_promql(expr);
        let mut available: BTreeSet<String> = TARGET_LABELS.map(str::to_owned).into();
        let mut problem = |what: String| self.problems.push(format!("{context}: {what}"));
        for selector in &refs.selectors {
            let series = selector.series.as_str();
            let labels = if series == "up" {
                for (label, value) in &selector.matchers {
                    if label == "job" && !self.jobs.contains(value) {
                        problem(format!(
                            "up{{job={value:?}}} is no scrape job of prometheus.yml"
                        ));
                    }
                }
                TARGET_LABELS.map(str::to_owned).into()
            } else if let Some(metric) = self.exported.metric_of(series) {
                self.metrics_used.insert(metric.to_owned());
                self.exported.series_labels(series, metric)
            } else {
                problem(format!("{series} is not exported by any metrics.rs"));
                continue;
            };
            for (label, value) in &selector.matchers {
                if !labels.contains(label) {
                    problem(format!(
                        "{series} has no label {label:?} (it has {labels:?})"
                    ));
                }
                if ["state", "from", "to"].contains(&label.as_str()) && !value.contains('$') {
                    for state in value.split('|') {
                        if state.parse::<JobState>().is_err() {
                            problem(format!("{label}={value:?}: {state:?} is no job state"));
                        }
                    }
                }
            }
            available.extend(labels);
        }
        for label in &refs.grouping {
            if !available.contains(label) {
                problem(format!(
                    "grouping by {label:?}, which no selected series has"
                ));
            }
        }
        if !refs.grouping.is_empty() {
            available = refs.grouping.iter().cloned().collect();
            available.extend(TARGET_LABELS.map(str::to_owned));
        }
        available
    }

    /// Checks `{{ name }}` / `{{ $labels.name }}` references of a template.
    fn template(&mut self, context: &str, template: &str, available: &BTreeSet<String>) {
        for (at, _) in template.match_indices("{{") {
            let inner = &template[at + 2..];
            let inner = inner[..inner.find("}}").expect("closed {{")].trim();
            let label = inner.strip_prefix("$labels.").unwrap_or(inner);
            if label.starts_with('$') {
                continue;
            }
            if !available.contains(label) {
                self.problems.push(format!(
                    "{context}: template names label {label:?}, not among {available:?}"
                ));
            }
        }
    }

    fn assert_clean(&self) {
        assert!(self.problems.is_empty(), "\n{}", self.problems.join("\n"));
    }
}

#[test]
fn promql_scanner_finds_selectors_and_grouping() {
    let refs = parse_promql(
        r#"histogram_quantile(0.99, sum by (le, task_type) (rate(warren_run_seconds_bucket{queue=~"$queue", x!="a,}b"}[$__rate_interval]))) > max(warren_workers_alive)"#,
    );
    let series: Vec<&str> = refs.selectors.iter().map(|s| s.series.as_str()).collect();
    assert_eq!(
        series,
        ["warren_run_seconds_bucket", "warren_workers_alive"]
    );
    assert_eq!(
        refs.selectors[0].matchers,
        [
            ("queue".into(), "$queue".into()),
            ("x".into(), "a,}b".into())
        ]
    );
    assert_eq!(refs.grouping, ["le", "task_type"]);

    let mut checker = Checker::new();
    checker.expr(
        "bad",
        r#"sum by (queue) (warren_jobs{state="done", worker="w"}) + warren_nope"#,
    );
    assert_eq!(checker.problems.len(), 3, "{:?}", checker.problems);
}

// ---------------------------------------------------------------------------
// Prometheus and Grafana.

#[test]
fn alert_rules_use_exported_metrics_and_labels() {
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    assert!(strings(&prometheus["rule_files"]).contains(&"alerts.yml".to_owned()));

    let mut checker = Checker::new();
    let alerts = yaml("deploy/prometheus/alerts.yml");
    let mut names = BTreeSet::new();
    for group in alerts["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = text(&rule["alert"]);
            let expr = text(&rule["expr"]);
            let severity = text(&rule["labels"]["severity"]);
            assert!(
                ["critical", "warning", "info"].contains(&severity.as_str()),
                "{name}: severity {severity}"
            );
            let available = checker.expr(&name, &expr);
            for key in ["summary", "description"] {
                let annotation = text(&rule["annotations"][key]);
                assert!(!annotation.trim().is_empty(), "{name}: empty {key}");
                checker.template(&name, &annotation, &available);
            }
            assert!(names.insert(name.clone()), "{name} twice");
        }
    }
    checker.assert_clean();
    for expected in [
        "WarrenNoWorkersAlive",
        "WarrenPendingBacklog",
        "WarrenDeadJobsRising",
        "WarrenStaleReports",
        "WarrenMessagesRejected",
        "WarrenBrokerDisconnected",
        "WarrenCoordinatorCpuSaturated",
    ] {
        assert!(names.contains(expected), "missing alert {expected}");
    }
    for metric in [
        "warren_workers_alive",
        "warren_jobs",
        "warren_stale_reports_total",
        "warren_rejected_messages_total",
        "warren_broker_connected",
        "process_cpu_seconds_total",
    ] {
        assert!(
            checker.metrics_used.contains(metric),
            "no alert on {metric}"
        );
    }
}

#[test]
fn dashboard_queries_use_exported_metrics_and_labels() {
    let dashboard: Json =
        serde_json::from_str(&read("deploy/grafana/warren.json")).expect("dashboard JSON");
    let mut checker = Checker::new();
    let mut ids = BTreeSet::new();

    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        if let Some(args) = query.strip_prefix("label_values(") {
            let (metric, label) = args.trim_end_matches(')').split_once(',').expect("2 args");
            let available = checker.expr("variable", metric.trim());
            checker.template("variable", &format!("{{{{{}}}}}", label.trim()), &available);
        }
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        let title = panel["title"].as_str().expect("panel title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("id")),
            "{title}: id reused"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let available = checker.expr(title, expr);
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            checker.template(title, legend, &available);
        }
    }
    checker.assert_clean();
    for metric in [
        "warren_jobs",
        "warren_job_transitions_total",
        "warren_queue_wait_seconds",
        "warren_run_seconds",
        "warren_workers_alive",
        "warren_stale_reports_total",
        "warren_rejected_messages_total",
        "warren_worker_running",
        "warren_worker_jobs_total",
        "warren_events_lag",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            checker.metrics_used.contains(metric),
            "no panel on {metric}"
        );
    }
}

// ---------------------------------------------------------------------------
// Docker and compose.

#[test]
fn dockerfile_builds_all_binaries_into_a_non_root_image() {
    let dockerfile = read("deploy/docker/Dockerfile");
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(
        froms[0].contains("rust:") && froms[0].contains("-bookworm"),
        "{froms:?}"
    );
    assert!(froms
        .last()
        .expect("stages")
        .starts_with("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains("cargo build --release"));
    for binary in ["warren-coordinator", "warren-worker", "warren"] {
        assert!(
            dockerfile.contains(&format!("target/release/{binary} ")),
            "{binary}"
        );
    }
    assert!(dockerfile.contains("/usr/local/bin/"));
    assert!(dockerfile.contains("ca-certificates"));
    let user = dockerfile
        .lines()
        .find(|l| l.starts_with("USER "))
        .expect("USER");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(!dockerfile.lines().any(|l| l.starts_with("ENTRYPOINT")));
    assert!(dockerfile.contains("CMD [\"warren-coordinator\"]"));
}

fn env_map(value: &Yaml) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .expect("environment as a mapping")
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect()
}

fn assert_env_read(role: &str, binary: &str, vars: impl IntoIterator<Item = String>) {
    let read = env_vars_read_by(binary);
    for var in vars.into_iter().filter(|v| v.starts_with("WARREN_")) {
        assert!(read.contains(&var), "{role}: {binary} does not read {var}");
    }
}

/// The (host or container) target of a `source:target[:mode]` volume whose
/// source must exist relative to the compose file.
fn bind_mount(volume: &str) -> Option<(String, String)> {
    let mut parts = volume.split(':');
    let source = parts.next()?;
    let target = parts.next()?;
    source
        .starts_with('.')
        .then(|| (source.to_owned(), target.to_owned()))
}

fn parent(path: &str) -> &str {
    &path[..path.rfind('/').expect("absolute path")]
}

#[test]
fn compose_runs_the_whole_stack() {
    let raw = read("deploy/docker/compose.yml");
    let compose = yaml("deploy/docker/compose.yml");
    let services = &compose["services"];
    for service in [
        "postgres",
        "rabbitmq",
        "coordinator",
        "worker",
        "prometheus",
        "grafana",
    ] {
        assert!(services[service].is_mapping(), "no service {service}");
    }
    assert!(text(&services["postgres"]["image"]).starts_with("postgres:16"));
    assert!(strings(&services["postgres"]["healthcheck"]["test"])
        .join(" ")
        .contains("pg_isready"));
    assert_eq!(
        text(&services["rabbitmq"]["image"]),
        "rabbitmq:3-management"
    );
    assert!(services["rabbitmq"]["healthcheck"]["test"].is_sequence());

    let coordinator = &services["coordinator"];
    for dependency in ["postgres", "rabbitmq"] {
        assert_eq!(
            text(&coordinator["depends_on"][dependency]["condition"]),
            "service_healthy"
        );
    }
    let env = env_map(&coordinator["environment"]);
    assert!(
        env["WARREN_API_TOKEN"].starts_with("${WARREN_API_TOKEN:?"),
        "token default"
    );
    assert!(
        !raw.contains("WARREN_API_TOKEN:-"),
        "a default API token is committed"
    );
    assert_eq!(port_of(&env["WARREN_HTTP_ADDR"]), 8080);
    assert!(env["WARREN_HTTP_ADDR"].starts_with("0.0.0.0:"));
    for var in ["WARREN_DATABASE_URL", "WARREN_AMQP_URL"] {
        assert!(env.contains_key(var), "coordinator: {var}");
    }
    assert!(strings(&coordinator["ports"])
        .iter()
        .any(|p| p.ends_with("8080:8080")));
    assert_env_read("compose coordinator", "warren-coordinator", env.into_keys());

    let worker = &services["worker"];
    assert!(strings(&worker["command"]).contains(&"warren-worker".to_owned()));
    assert_eq!(worker["deploy"]["replicas"].as_u64(), Some(2));
    let env = env_map(&worker["environment"]);
    assert_eq!(port_of(&env["WARREN_METRICS_ADDR"]), 9100);
    for var in ["WARREN_AMQP_URL", "WARREN_QUEUES", "WARREN_CONCURRENCY"] {
        assert!(env.contains_key(var), "worker: {var}");
    }
    assert_env_read("compose worker", "warren-worker", env.into_keys());

    // Prometheus scrapes compose services on the ports they listen on.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let mut scraped = BTreeMap::new();
    for job in prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        assert_eq!(text(&job["metrics_path"]), "/metrics");
        for sd in job["dns_sd_configs"].as_sequence().expect("dns_sd_configs") {
            for name in strings(&sd["names"]) {
                scraped.insert(name, sd["port"].as_u64().expect("port"));
            }
        }
    }
    assert_eq!(
        scraped,
        BTreeMap::from([("coordinator".into(), 8080), ("worker".into(), 9100)])
    );

    // Every bind mount exists; rules sit beside the config; Grafana's
    // provider path is where the dashboard is mounted.
    let mut mounts = BTreeMap::new();
    for service in ["prometheus", "grafana"] {
        for volume in strings(&services[service]["volumes"]) {
            if let Some((source, target)) = bind_mount(&volume) {
                assert!(
                    repo_path(&format!("deploy/docker/{source}")).exists(),
                    "{source}"
                );
                mounts.insert(source, target);
            }
        }
    }
    let target = |source: &str| {
        mounts
            .get(source)
            .unwrap_or_else(|| panic!("{source} unmounted"))
    };
    assert_eq!(
        parent(target("../prometheus/alerts.yml")),
        parent(target("../prometheus/prometheus.yml"))
    );
    let providers = yaml("deploy/grafana/provisioning/dashboards.yml");
    assert_eq!(
        text(&providers["providers"][0]["options"]["path"]),
        parent(target("../grafana/warren.json"))
    );
    assert!(target("../grafana/provisioning/dashboards.yml")
        .starts_with("/etc/grafana/provisioning/dashboards/"));
    assert!(target("../grafana/provisioning/datasources.yml")
        .starts_with("/etc/grafana/provisioning/datasources/"));
    let datasources = yaml("deploy/grafana/provisioning/datasources.yml");
    assert_eq!(text(&datasources["datasources"][0]["type"]), "prometheus");
    assert_eq!(
        text(&datasources["datasources"][0]["url"]),
        "http://prometheus:9090"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes.

/// Every object of deploy/k8s, by (kind, name), and the kustomization.
fn k8s_objects() -> (BTreeMap<(String, String), Yaml>, Yaml) {
    let dir = repo_path("deploy/k8s");
    let mut objects = BTreeMap::new();
    let mut kustomization = None;
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/k8s") {
        let file = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8");
        if !file.ends_with(".yaml") {
            continue;
        }
        for doc in yaml_documents(&format!("deploy/k8s/{file}")) {
            let kind = text(&doc["kind"]);
            if kind == "Kustomization" {
                kustomization = Some(doc);
                continue;
            }
            files.insert(file.clone());
            let key = (kind, text(&doc["metadata"]["name"]));
            assert!(objects.insert(key.clone(), doc).is_none(), "{key:?} twice");
        }
    }
    let kustomization = kustomization.expect("kustomization.yaml");
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    assert_eq!(listed, files, "kustomization resources vs files");
    (objects, kustomization)
}

fn object<'a>(objects: &'a BTreeMap<(String, String), Yaml>, kind: &str, name: &str) -> &'a Yaml {
    objects
        .get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Checks one Deployment's only container; returns it.
fn check_container(deployment: &Yaml, binary: &str, secret: &Yaml, env_port: &str) -> Yaml {
    let pod = &deployment["spec"]["template"];
    let containers = pod["spec"]["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = containers[0].clone();
    assert_eq!(strings(&container["command"]), [binary]);

    let mut names = Vec::new();
    let mut port = None;
    for var in container["env"].as_sequence().expect("env") {
        let name = text(&var["name"]);
        if name == env_port {
            port = Some(port_of(&text(&var["value"])));
        }
        let secret_ref = &var["valueFrom"]["secretKeyRef"];
        if !secret_ref.is_null() {
            assert_eq!(text(&secret_ref["name"]), text(&secret["metadata"]["name"]));
            let key = text(&secret_ref["key"]);
            let optional = secret_ref["optional"].as_bool() == Some(true);
            assert!(
                optional || !secret["stringData"][key.as_str()].is_null(),
                "{binary}: secret key {key} (required, so it must be in the Secret)"
            );
        }
        names.push(name);
    }
    assert_env_read(&format!("k8s {binary}"), binary, names);
    let port = port.unwrap_or_else(|| panic!("{binary}: no {env_port}"));

    let resolve = |p: &Yaml| -> u64 {
        if let Some(n) = p.as_u64() {
            return n;
        }
        let name = text(p);
        container["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .find(|declared| text(&declared["name"]) == name)
            .and_then(|declared| declared["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{binary}: no port {name}"))
    };
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let get = &container[probe]["httpGet"];
        if get.is_null() {
            assert_ne!(probe, "readinessProbe", "{binary}: needs a readiness probe");
            assert_ne!(probe, "livenessProbe", "{binary}: needs a liveness probe");
            continue;
        }
        assert_eq!(text(&get["path"]), "/health", "{binary} {probe}");
        assert_eq!(resolve(&get["port"]), u64::from(port), "{binary} {probe}");
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(text(&annotations["prometheus.io/port"]), port.to_string());
    assert_eq!(text(&annotations["prometheus.io/path"]), "/metrics");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                !container["resources"][kind][resource].is_null(),
                "{binary} {kind}.{resource}"
            );
        }
    }
    container
}

#[test]
fn kubernetes_manifests_describe_the_deployment() {
    let (objects, kustomization) = k8s_objects();
    let namespace = text(&kustomization["namespace"]);
    object(&objects, "Namespace", &namespace);

    let secret = object(&objects, "Secret", "warren");
    let data = secret["stringData"].as_mapping().expect("stringData");
    assert!(secret["data"].is_null(), "plain stringData only");
    for key in ["WARREN_DATABASE_URL", "WARREN_AMQP_URL", "WARREN_API_TOKEN"] {
        let value = text(&data[key]);
        assert!(value.contains("REPLACE_ME"), "{key} is not a placeholder");
    }

    let coordinator = object(&objects, "Deployment", "warren-coordinator");
    assert_eq!(coordinator["spec"]["replicas"].as_u64(), Some(2));
    let container = check_container(
        coordinator,
        "warren-coordinator",
        secret,
        "WARREN_HTTP_ADDR",
    );
    let service = object(&objects, "Service", "warren-coordinator");
    let pod_labels = coordinator["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels");
    for (key, value) in service["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(pod_labels.get(key), Some(value), "service selector {key:?}");
    }
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["port"].as_u64(), Some(8080));
    assert_eq!(
        text(&service_port["targetPort"]),
        text(&container["ports"][0]["name"])
    );

    let worker = object(&objects, "Deployment", "warren-worker");
    assert!(
        worker["spec"]["replicas"].is_null(),
        "the HPA owns the worker replica count"
    );
    check_container(worker, "warren-worker", secret, "WARREN_METRICS_ADDR");

    let hpa = object(&objects, "HorizontalPodAutoscaler", "warren-worker");
    assert_eq!(text(&hpa["apiVersion"]), "autoscaling/v2");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(text(&target["apiVersion"]), "apps/v1");
    assert_eq!(text(&target["kind"]), "Deployment");
    assert_eq!(text(&target["name"]), text(&worker["metadata"]["name"]));
    assert_eq!(hpa["spec"]["minReplicas"].as_u64(), Some(2));
    assert_eq!(hpa["spec"]["maxReplicas"].as_u64(), Some(10));
    let metric = &hpa["spec"]["metrics"][0];
    assert_eq!(text(&metric["type"]), "Resource");
    assert_eq!(text(&metric["resource"]["name"]), "cpu");
}
