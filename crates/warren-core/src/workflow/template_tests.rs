//! Tests of [`Template::validate`] and [`Template::instantiate`].

use serde_json::{json, Map, Value};

use super::*;

fn template() -> Template {
    serde_json::from_value(json!({
        "name": "dataset-build",
        "version": 2,
        "variables": [
            {"name": "source", "type": "string", "required": true},
            {"name": "rows", "type": "integer", "default": 100},
            {"name": "prio", "type": "integer", "default": 1},
            {"name": "tags", "type": "array", "default": ["a"]},
            {"name": "dry_run", "type": "boolean"},
        ],
        "workflow": {
            "name": "build-${source}",
            "steps": [
                {"name": "download", "queue": "default", "type": "exec", "priority": "${prio}",
                 "payload": {"url": "https://example.com/${source}.csv", "limit": "${rows}",
                             "tags": "${tags}", "dry": "${dry_run}", "shell": "echo $${HOME}"}},
                {"name": "count", "queue": "default", "type": "echo", "depends_on": ["download"],
                 "payload": {"n": "${steps.download.result.rows}", "note": "rows<=${rows} tags=${tags}"}}
            ]
        }
    }))
    .unwrap()
}

fn vars(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn whole_string_variables_keep_their_type_and_embedded_ones_become_text() {
    let t = template();
    t.validate().unwrap();
    let spec = t
        .instantiate(&vars(
            json!({"source": "birds", "rows": 5, "tags": ["x", "y"]}),
        ))
        .unwrap();
    assert_eq!(spec.name, "build-birds");
    let download = &spec.steps[0];
    assert_eq!(download.priority, 1);
    assert_eq!(
        download.payload["url"],
        json!("https://example.com/birds.csv")
    );
    assert_eq!(download.payload["limit"], json!(5));
    assert_eq!(download.payload["tags"], json!(["x", "y"]));
    // Optional without default: null.
    assert_eq!(download.payload["dry"], Value::Null);
    // Escapes survive instantiation (resolved at run time).
    assert_eq!(download.payload["shell"], json!("echo $${HOME}"));
    // Step references are not variables.
    let count = &spec.steps[1];
    assert_eq!(count.payload["n"], json!("${steps.download.result.rows}"));
    assert_eq!(count.payload["note"], json!(r#"rows<=5 tags=["x","y"]"#));
    assert_eq!(referenced_steps(&count.payload), vec!["download"]);
}

#[test]
fn missing_required_variables_are_named() {
    let e = template().instantiate(&Map::new()).unwrap_err();
    assert_eq!(
        e,
        TemplateError::MissingVariables {
            names: vec!["source".into()]
        }
    );
    assert!(e.to_string().contains("source"));
}

#[test]
fn wrong_types_are_named_with_the_expected_type() {
    for (name, value, got) in [
        ("rows", json!("many"), "string"),
        ("rows", json!(1.5), "number"),
        ("source", json!(3), "integer"),
        ("dry_run", json!("yes"), "string"),
        ("tags", json!({}), "object"),
    ] {
        let mut supplied = vars(json!({"source": "s"}));
        supplied.insert(name.into(), value);
        let e = template().instantiate(&supplied).unwrap_err();
        let TemplateError::WrongType {
            name: n,
            expected,
            got: g,
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((n.as_str(), *g), (name, got));
        assert!(
            e.to_string().contains(name) && e.to_string().contains(expected.as_str()),
            "{e}"
        );
    }
}

#[test]
fn unknown_variables_are_rejected() {
    let e = template()
        .instantiate(&vars(json!({"source": "s", "colour": "red"})))
        .unwrap_err();
    let TemplateError::UnknownVariables { names, declared } = &e else {
        panic!("{e}")
    };
    assert_eq!(names, &["colour"]);
    assert!(declared.contains(&"source".to_string()));
    assert!(e.to_string().contains("colour"));
}

#[test]
fn substituted_workflow_is_validated() {
    // A value that makes the queue name invalid.
    let mut t = template();
    t.workflow["name"] = json!("build");
    t.workflow["steps"][0]["queue"] = json!("${source}");
    let e = t
        .instantiate(&vars(json!({"source": "bad queue"})))
        .unwrap_err();
    assert!(
        matches!(&e, TemplateError::Workflow(WorkflowError::InvalidStep { step, .. }) if step == "download"),
        "{e}"
    );
    // A value of a type the field cannot take.
    let mut t = template();
    t.workflow["steps"][0]["priority"] = json!("${source}");
    let e = t.instantiate(&vars(json!({"source": "x"}))).unwrap_err();
    assert!(
        matches!(e, TemplateError::Workflow(WorkflowError::Parse(_))),
        "{e}"
    );
}

#[test]
fn validate_checks_declarations_and_usage() {
    let mut t = template();
    t.workflow["steps"][0]["payload"]["extra"] = json!("${nope} and ${other}");
    assert_eq!(
        t.validate(),
        Err(TemplateError::UndeclaredVariables {
            names: vec!["nope".into(), "other".into()]
        })
    );
    assert!(matches!(
        t.instantiate(&vars(json!({"source": "s"}))),
        Err(TemplateError::UndeclaredVariables { .. })
    ));

    let mut t = template();
    t.variables[1].default = Some(json!("lots"));
    let e = t.validate().unwrap_err();
    assert!(
        matches!(&e, TemplateError::InvalidDefault { name, .. } if name == "rows"),
        "{e}"
    );

    let mut t = template();
    t.variables.push(t.variables[0].clone());
    assert_eq!(
        t.validate(),
        Err(TemplateError::DuplicateVariable {
            name: "source".into()
        })
    );

    for bad in ["steps", "a b", "", "a.b"] {
        let mut t = template();
        t.variables[0].name = bad.into();
        assert!(
            matches!(t.validate(), Err(TemplateError::InvalidVariableName { .. })),
            "{bad}"
        );
    }

    let mut t = template();
    t.version = 0;
    assert_eq!(t.validate(), Err(TemplateError::InvalidVersion));
    t.version = 1;
    t.name = "bad name".into();
    assert!(matches!(t.validate(), Err(TemplateError::InvalidName(_))));
}

#[test]
fn validate_checks_the_workflow_when_defaults_settle_it() {
    // Every variable has a default: the workflow is fully checked.
    let mut t = template();
    t.variables[0].default = Some(json!("birds"));
    t.workflow["steps"][1]["depends_on"] = json!(["count"]);
    assert_eq!(
        t.validate(),
        Err(TemplateError::Workflow(WorkflowError::SelfDependency {
            step: "count".into()
        }))
    );
    // A required variable without default may be what makes names unique
    // (a stand-in value would collide here), so only the shape is checked...
    let mut t = template();
    t.workflow["steps"][0]["name"] = json!("${source}");
    t.workflow["steps"][1]["name"] = json!("placeholder");
    t.workflow["steps"][1]["depends_on"] = json!([0]);
    t.workflow["steps"][1]["payload"] = json!({});
    t.validate().unwrap();
    t.instantiate(&vars(json!({"source": "birds"}))).unwrap();
    // ...but the shape is.
    let mut t = template();
    t.workflow["steps"] = json!("not a list");
    assert!(matches!(
        t.validate(),
        Err(TemplateError::Workflow(WorkflowError::Parse(_)))
    ));
}

#[test]
fn template_yaml_like_the_seed() {
    let t: Template = serde_yaml_ng::from_str(
        r#"
name: greet
description: says hello
variables:
  - name: who
    type: string
    required: true
    default: world
workflow:
  name: greet
  steps:
    - {name: hello, queue: default, type: echo, payload: {msg: "hello ${who}"}}
"#,
    )
    .unwrap();
    assert_eq!(t.version, 1);
    t.validate().unwrap();
    // Required with a default: the default satisfies it.
    let spec = t.instantiate(&Map::new()).unwrap();
    assert_eq!(spec.steps[0].payload["msg"], json!("hello world"));
}
