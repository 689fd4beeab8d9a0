//! Tests of parsing and [`WorkflowSpec::validate`]: each rejection names the
//! steps at fault.

use serde_json::{json, Value};

use super::*;

fn step(name: &str, deps: Value) -> Value {
    json!({"name": name, "queue": "default", "type": "echo", "depends_on": deps})
}

fn spec(steps: Vec<Value>) -> WorkflowSpec {
    serde_json::from_value(json!({"name": "wf", "steps": steps})).unwrap()
}

fn err(steps: Vec<Value>) -> WorkflowError {
    spec(steps).validate().unwrap_err()
}

#[test]
fn diamond_with_names_and_indices_validates() {
    let dag = spec(vec![
        step("download", json!([])),
        step("left", json!(["download"])),
        step("right", json!([0])),
        step("join", json!(["left", 2, "right"])),
    ])
    .validate()
    .unwrap();
    assert_eq!(dag.parents(3), &[1, 2]);
    assert_eq!(dag.parents(2), &[0]);
    assert_eq!(dag.children(0), &[1, 2]);
    assert_eq!(dag.topological_order(), &[0, 1, 2, 3]);
    assert_eq!(dag.index_of("join"), Some(3));
}

#[test]
fn defaults_apply() {
    let s = spec(vec![step("a", json!([]))]);
    assert_eq!(s.max_recovery_attempts, DEFAULT_MAX_RECOVERY_ATTEMPTS);
    assert!(s.metadata.is_empty());
    assert_eq!(s.steps[0].run_if, RunIf::AllSucceeded);
    assert_eq!(s.steps[0].retry, None);
    assert_eq!(s.steps[0].payload, Value::Null);
}

#[test]
fn cycle_names_its_steps() {
    let e = err(vec![
        step("a", json!(["c"])),
        step("b", json!(["a"])),
        step("c", json!(["b"])),
        step("d", json!([])),
    ]);
    assert_eq!(
        e,
        WorkflowError::Cycle {
            steps: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }
    );
    assert_eq!(e.to_string(), "dependency cycle: a -> b -> c -> a");
}

#[test]
fn unknown_dependency_by_name_or_index() {
    let e = err(vec![step("a", json!([])), step("b", json!(["nope"]))]);
    assert_eq!(
        e,
        WorkflowError::UnknownDependency {
            step: "b".into(),
            dependency: "\"nope\"".into()
        }
    );
    assert!(e.to_string().contains("\"b\"") && e.to_string().contains("nope"));
    let e = err(vec![step("a", json!([])), step("b", json!([7]))]);
    assert!(
        matches!(&e, WorkflowError::UnknownDependency { step, dependency } if step == "b" && dependency == "index 7")
    );
}

#[test]
fn duplicate_and_self_dependency() {
    let e = err(vec![step("a", json!([])), step("a", json!([]))]);
    assert_eq!(e, WorkflowError::DuplicateStep { name: "a".into() });
    let e = err(vec![step("a", json!([])), step("b", json!([1]))]);
    assert_eq!(e, WorkflowError::SelfDependency { step: "b".into() });
    assert_eq!(e.to_string(), "step \"b\" depends on itself");
}

#[test]
fn any_failed_without_parents_is_unsatisfiable_and_so_is_what_needs_it() {
    let mut root = step("handler", json!([]));
    root["run_if"] = json!("any_failed");
    let mut cleanup = step("cleanup", json!(["after"]));
    cleanup["run_if"] = json!("always");
    let e = err(vec![
        step("a", json!([])),
        root,
        step("after", json!(["handler"])),
        cleanup,
        step("fine", json!(["a"])),
    ]);
    let WorkflowError::Unsatisfiable { steps, reason } = &e else {
        panic!("{e}")
    };
    // `cleanup` is `always`: it runs once `after` is skipped, so it is fine.
    assert_eq!(steps, &["handler", "after"]);
    assert!(
        reason.contains("handler uses run_if any_failed"),
        "{reason}"
    );
    assert!(reason.contains("after can only run after it"), "{reason}");
    assert!(e.to_string().contains("handler, after"), "{e}");
}

#[test]
fn on_failure_branch_of_a_failure_handler_that_can_run_is_fine() {
    let mut handler = step("handler", json!(["a"]));
    handler["run_if"] = json!("any_failed");
    let mut second = step("second", json!(["handler"]));
    second["run_if"] = json!("any_failed");
    spec(vec![step("a", json!([])), handler, second])
        .validate()
        .unwrap();
}

#[test]
fn step_fields_are_checked_like_a_job() {
    let cases = [
        (json!({"queue": "bad queue"}), "queue"),
        (json!({"type": ""}), "task type"),
        (json!({"priority": 10}), "priority"),
        (json!({"timeout_ms": 0}), "timeout_ms"),
        (json!({"name": "a.b"}), "'.'"),
        (json!({"name": "a b"}), "step name"),
    ];
    for (patch, needle) in cases {
        let mut s = step("a", json!([]));
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        let e = err(vec![s.clone()]);
        let name = s["name"].as_str().unwrap();
        assert!(
            matches!(&e, WorkflowError::InvalidStep { step, .. } if step == name),
            "{e}"
        );
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn retry_accepts_what_a_job_accepts() {
    let mut s = step("a", json!([]));
    s["retry"] = json!({"max_retries": 2, "base_delay_ms": 10});
    let spec = spec(vec![s.clone()]);
    assert_eq!(spec.steps[0].retry.unwrap().max_attempts, 3);
    assert_eq!(spec.steps[0].job_spec().retry.max_attempts, Some(3));
    s["retry"] = json!({"max_retries": 2, "max_attempts": 2});
    let parsed = serde_json::from_value::<WorkflowSpec>(json!({"name": "wf", "steps": [s]}));
    assert!(parsed.is_err());
}

#[test]
fn workflow_level_checks() {
    assert_eq!(spec(vec![]).validate(), Err(WorkflowError::Empty));
    let mut s = spec(vec![step("a", json!([]))]);
    s.name = "no spaces".into();
    assert!(matches!(s.validate(), Err(WorkflowError::InvalidName(_))));
    s.name = "ok".into();
    s.max_recovery_attempts = MAX_RECOVERY_ATTEMPTS_LIMIT + 1;
    assert!(matches!(
        s.validate(),
        Err(WorkflowError::InvalidField {
            field: "max_recovery_attempts",
            ..
        })
    ));
    let many = (0..=MAX_STEPS)
        .map(|i| step(&format!("s{i}"), json!([])))
        .collect();
    assert_eq!(
        spec(many).validate(),
        Err(WorkflowError::TooManySteps {
            max: MAX_STEPS,
            got: MAX_STEPS + 1
        })
    );
}

#[test]
fn references_must_name_upstream_steps() {
    let with_payload = |name: &str, deps: Value, payload: Value| {
        let mut s = step(name, deps);
        s["payload"] = payload;
        s
    };
    // Grandparent reference is fine.
    spec(vec![
        step("a", json!([])),
        step("b", json!(["a"])),
        with_payload("c", json!(["b"]), json!({"x": "${steps.a.result.rows}"})),
    ])
    .validate()
    .unwrap();

    // A sibling is not upstream: both steps are named.
    let e = err(vec![
        step("a", json!([])),
        step("b", json!([])),
        with_payload("c", json!(["a"]), json!({"x": "n=${steps.b.result}"})),
    ]);
    let WorkflowError::BadReference {
        step: at,
        reference,
        reason,
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (at.as_str(), reference.as_str()),
        ("c", "${steps.b.result}")
    );
    assert!(
        reason.contains("\"b\" is not upstream of step \"c\""),
        "{reason}"
    );

    // Unknown step, a downstream step, itself, malformed.
    for (payload, needle) in [
        (json!("${steps.zzz.result}"), "no step named \"zzz\""),
        (json!(["${steps.d.result}"]), "not upstream"),
        (json!("${steps.c.result}"), "not upstream"),
        (json!("${steps.a.output}"), ".result"),
    ] {
        let e = err(vec![
            step("a", json!([])),
            with_payload("c", json!(["a"]), payload.clone()),
            step("d", json!(["c"])),
        ]);
        assert!(
            matches!(&e, WorkflowError::BadReference { step, .. } if step == "c"),
            "{payload}: {e}"
        );
        assert!(e.to_string().contains(needle), "{payload}: {e}");
    }
}

#[test]
fn unknown_step_fields_are_rejected() {
    let mut s = step("a", json!([]));
    s["depend_on"] = json!(["x"]);
    let e = WorkflowSpec::from_json(&json!({"name": "wf", "steps": [s]}).to_string()).unwrap_err();
    assert!(
        matches!(&e, WorkflowError::Parse(m) if m.contains("depend_on")),
        "{e}"
    );
    let bad_index = json!({"name": "wf", "steps": [step("a", json!([-1]))]}).to_string();
    let e = WorkflowSpec::from_json(&bad_index).unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
}

#[test]
fn yaml_and_json_parse_to_the_same_workflow() {
    let yaml = r#"
name: dataset-build
max_recovery_attempts: 2
metadata: {owner: data-team, nightly: true}
steps:
  - name: download
    queue: default
    type: exec
    payload: {cmd: ["curl", "-o", "/tmp/x"]}
    retry: {max_retries: 3}
    timeout_ms: 60000
  - name: validate
    queue: default
    task_type: exec
    priority: 5
    depends_on: [download]
    payload: {input: "${steps.download.result.path}"}
  - name: report
    queue: default
    type: echo
    depends_on: [0, 1]
    run_if: always
"#;
    let json = r#"{
  "name": "dataset-build", "max_recovery_attempts": 2,
  "metadata": {"owner": "data-team", "nightly": true},
  "steps": [
    {"name": "download", "queue": "default", "type": "exec",
     "payload": {"cmd": ["curl", "-o", "/tmp/x"]}, "retry": {"max_retries": 3}, "timeout_ms": 60000},
    {"name": "validate", "queue": "default", "type": "exec", "priority": 5,
     "depends_on": ["download"], "payload": {"input": "${steps.download.result.path}"}},
    {"name": "report", "queue": "default", "type": "echo", "depends_on": [0, 1], "run_if": "always"}
  ]
}"#;
    let from_yaml = WorkflowSpec::from_yaml(yaml).unwrap();
    let from_json = WorkflowSpec::from_json(json).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(
        from_yaml.steps[2].depends_on,
        vec![StepRef::Index(0), StepRef::Index(1)]
    );
    let dag = from_yaml.validate().unwrap();
    assert_eq!(dag.parents(2), &[0, 1]);
    // Serializing and parsing again changes nothing.
    let again = WorkflowSpec::from_json(&serde_json::to_string(&from_json).unwrap()).unwrap();
    assert_eq!(again, from_json);
    assert!(WorkflowSpec::from_yaml("name: [").is_err());
}
