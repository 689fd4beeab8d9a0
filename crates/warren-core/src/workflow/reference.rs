//! `${steps.<name>.result}` references: how a step's payload uses the
//! results of the steps before it.
//!
//! - `${steps.train.result}` is the whole result of step `train`;
//!   `${steps.train.result.metrics.0}` walks into it (object keys, or array
//!   indices when the value there is an array).
//! - A string that is exactly one reference becomes the referenced JSON value,
//!   whatever its type; a reference inside a longer string is replaced by its
//!   text (strings as they are, other values as compact JSON).
//! - Only string values are searched, never object keys.
//! - `$${` is a literal `${`; any other `${...}` is left as written.
//!
//! [`super::WorkflowSpec::validate`] rejects malformed references and
//! references to steps that are not upstream of the referring step. At run
//! time the engine passes the results it has: a reference to a step missing
//! from that map, or to a path its result does not have, is an error, so a
//! step is never started with a half-built payload.

use std::collections::HashMap;

use serde_json::Value;

use super::placeholder::{map_strings, pieces, text_of, visit_strings, Piece};

/// One parsed reference: the step it names and the path into its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReference {
    /// The referenced step's name.
    pub step: String,
    /// Keys/indices after `.result`, outermost first.
    pub path: Vec<String>,
    /// The reference as written, `${...}` included.
    pub raw: String,
}

/// A reference that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Not of the form `${steps.<name>.result[.key...]}`.
    #[error("malformed reference {reference}: {reason}")]
    Malformed {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No result is available for the referenced step.
    #[error("{reference}: step {step:?} has no result (it did not succeed)")]
    MissingResult {
        /// The reference as written.
        reference: String,
        /// The referenced step.
        step: String,
    },
    /// The step's result has nothing at the referenced path.
    #[error("{reference}: the result of step {step:?} has no such field")]
    MissingPath {
        /// The reference as written.
        reference: String,
        /// The referenced step.
        step: String,
    },
}

/// Whether a `${...}` body is meant as a step reference (`steps` is reserved).
pub(crate) fn is_step_reference(body: &str) -> bool {
    body == "steps" || body.starts_with("steps.")
}

/// Parses the body of a `${...}` known to be a step reference.
fn parse(body: &str, raw: &str) -> Result<StepReference, ReferenceError> {
    let malformed = |reason: &str| ReferenceError::Malformed {
        reference: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parts = body.split('.').skip(1);
    let step = match parts.next() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => return Err(malformed("expected ${steps.<name>.result}")),
    };
    if parts.next() != Some("result") {
        return Err(malformed("expected .result after the step name"));
    }
    let path: Vec<String> = parts.map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(malformed("empty path segment"));
    }
    Ok(StepReference {
        step,
        path,
        raw: raw.to_owned(),
    })
}

/// Every step reference in `text`, or the first malformed one.
fn references_in(text: &str) -> Result<Vec<StepReference>, ReferenceError> {
    let mut found = Vec::new();
    for piece in pieces(text) {
        match piece {
            Piece::Expr { body, raw } if is_step_reference(body) => found.push(parse(body, raw)?),
            Piece::Unterminated(rest) if is_step_reference(&rest[2..]) => {
                return Err(ReferenceError::Malformed {
                    reference: rest.to_owned(),
                    reason: "missing closing }".into(),
                })
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Every step reference in `payload`'s strings, in order (repeats kept), or
/// the first malformed one.
pub fn parse_references(payload: &Value) -> Result<Vec<StepReference>, ReferenceError> {
    let mut found = Vec::new();
    let mut error = None;
    visit_strings(payload, &mut |text| {
        if error.is_none() {
            match references_in(text) {
                Ok(refs) => found.extend(refs),
                Err(e) => error = Some(e),
            }
        }
    });
    error.map_or(Ok(found), Err)
}

/// The names of the steps `payload` references, each once, in order of first
/// appearance. Malformed references are ignored (validation reports them).
pub fn referenced_steps(payload: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    visit_strings(payload, &mut |text| {
        for piece in pieces(text) {
            if let Piece::Expr { body, raw } = piece {
                if let Some(Ok(reference)) = is_step_reference(body).then(|| parse(body, raw)) {
                    if !names.contains(&reference.step) {
                        names.push(reference.step);
                    }
                }
            }
        }
    });
    names
}

/// Replaces every step reference in `payload` with the value it names in
/// `results` (step name -> result) and turns `$${` into `${`.
pub fn resolve_references(
    payload: &Value,
    results: &HashMap<String, Value>,
) -> Result<Value, ReferenceError> {
    map_strings(payload, &mut |text| resolve_string(text, results))
}

fn resolve_string(text: &str, results: &HashMap<String, Value>) -> Result<Value, ReferenceError> {
    if !text.contains("${") {
        return Ok(Value::String(text.to_owned()));
    }
    let pieces = pieces(text);
    if let [Piece::Expr { body, raw }] = pieces[..] {
        if is_step_reference(body) {
            return lookup(&parse(body, raw)?, results).cloned();
        }
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Escape => out.push_str("${"),
            Piece::Expr { body, raw } if is_step_reference(body) => {
                out.push_str(&text_of(lookup(&parse(body, raw)?, results)?));
            }
            Piece::Expr { raw, .. } => out.push_str(raw),
            Piece::Unterminated(rest) => {
                references_in(rest)?;
                out.push_str(rest);
            }
        }
    }
    Ok(Value::String(out))
}

fn lookup<'a>(
    reference: &StepReference,
    results: &'a HashMap<String, Value>,
) -> Result<&'a Value, ReferenceError> {
    let mut value = results
        .get(&reference.step)
        .ok_or_else(|| ReferenceError::MissingResult {
            reference: reference.raw.clone(),
            step: reference.step.clone(),
        })?;
    for key in &reference.path {
        let next = match value {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        value = next.ok_or_else(|| ReferenceError::MissingPath {
            reference: reference.raw.clone(),
            step: reference.step.clone(),
        })?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn results() -> HashMap<String, Value> {
        HashMap::from([
            (
                "download".to_string(),
                json!({"rows": 3, "files": ["a.csv", "b.csv"], "dir": "/tmp/x"}),
            ),
            ("count".to_string(), json!(42)),
        ])
    }

    #[test]
    fn whole_string_reference_keeps_the_json_type() {
        let payload = json!({
            "all": "${steps.download.result}",
            "rows": "${steps.download.result.rows}",
            "second": "${steps.download.result.files.1}",
            "n": "${steps.count.result}",
            "nested": ["${steps.download.result.rows}", {"k": "${steps.count.result}"}],
            "untouched": 7,
        });
        let out = resolve_references(&payload, &results()).unwrap();
        assert_eq!(out["all"], results()["download"]);
        assert_eq!(out["rows"], json!(3));
        assert_eq!(out["second"], json!("b.csv"));
        assert_eq!(out["n"], json!(42));
        assert_eq!(out["nested"], json!([3, {"k": 42}]));
        assert_eq!(out["untouched"], json!(7));
    }

    #[test]
    fn embedded_references_become_text() {
        let payload = json!({
            "cmd": "wc -l ${steps.download.result.dir}/${steps.download.result.files.0}",
            "note": "rows=${steps.download.result.rows} files=${steps.download.result.files}",
        });
        let out = resolve_references(&payload, &results()).unwrap();
        assert_eq!(out["cmd"], json!("wc -l /tmp/x/a.csv"));
        assert_eq!(out["note"], json!(r#"rows=3 files=["a.csv","b.csv"]"#));
    }

    #[test]
    fn other_placeholders_and_escapes() {
        let payload = json!([
            "echo ${HOME}",
            "$${steps.count.result}",
            "${unterminated",
            "$${HOME}"
        ]);
        let out = resolve_references(&payload, &results()).unwrap();
        assert_eq!(
            out,
            json!([
                "echo ${HOME}",
                "${steps.count.result}",
                "${unterminated",
                "${HOME}"
            ])
        );
    }

    #[test]
    fn missing_results_and_paths_are_errors_naming_the_step() {
        let err = resolve_references(&json!("${steps.train.result}"), &results()).unwrap_err();
        assert!(matches!(&err, ReferenceError::MissingResult { step, .. } if step == "train"));
        assert!(err.to_string().contains("\"train\""), "{err}");
        for path in ["rows.x", "nope", "files.9", "files.first"] {
            let text = format!("x ${{steps.download.result.{path}}}");
            let err = resolve_references(&json!(text), &results()).unwrap_err();
            assert!(
                matches!(&err, ReferenceError::MissingPath { step, .. } if step == "download"),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn malformed_references_are_rejected() {
        for bad in [
            "${steps}",
            "${steps.}",
            "${steps.a}",
            "${steps.a.output}",
            "${steps.a.result.}",
            "${steps.a.result..x}",
            "run ${steps.a.result",
        ] {
            let err = resolve_references(&json!(bad), &results()).unwrap_err();
            assert!(
                matches!(err, ReferenceError::Malformed { .. }),
                "{bad}: {err}"
            );
            assert!(parse_references(&json!({ "k": [bad] })).is_err(), "{bad}");
            assert!(referenced_steps(&json!(bad)).is_empty(), "{bad}");
        }
    }

    #[test]
    fn referenced_steps_are_listed_once_in_order() {
        let payload = json!({
            "a": "${steps.b.result} and ${steps.a.result.x}",
            "z": ["${steps.b.result.y}", "${other}", "$${steps.c.result}"],
        });
        assert_eq!(referenced_steps(&payload), vec!["b", "a"]);
        let refs = parse_references(&payload).unwrap();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[1].path, vec!["x"]);
        assert_eq!(refs[1].raw, "${steps.a.result.x}");
    }
}
