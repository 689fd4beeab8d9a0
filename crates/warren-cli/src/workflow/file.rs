//! Reading workflow and template files (JSON or YAML) and `--var` values.

use std::path::Path;

use serde_json::{Map, Value};
use warren_client::Template;
use warren_core::workflow::VariableType;

use crate::failure::CliError;

/// Largest file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// What a file holds.
#[derive(Debug)]
pub(crate) enum Document {
    /// A workflow definition.
    Workflow(Value),
    /// A template (it has `variables` or `workflow`).
    Template(Box<Template>),
}

/// Reads `path` as JSON (`.json`), YAML (`.yaml`, `.yml`), or whichever of
/// the two parses (JSON first).
pub(crate) fn read_value(path: &Path) -> Result<Value, CliError> {
    let fail = |why: String| CliError::general(format!("{}: {why}", path.display()));
    let size = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON: {e}"))),
        Some("yaml" | "yml") => {
            serde_yaml_ng::from_str(&text).map_err(|e| fail(format!("invalid YAML: {e}")))
        }
        _ => serde_json::from_str(&text).or_else(|_| {
            serde_yaml_ng::from_str(&text).map_err(|e| fail(format!("neither JSON nor YAML: {e}")))
        }),
    }
}

/// Reads a workflow or template file.
pub(crate) fn read_document(path: &Path) -> Result<Document, CliError> {
    let value = read_value(path)?;
    let is_template = value
        .as_object()
        .is_some_and(|o| o.contains_key("variables") || o.contains_key("workflow"));
    if !is_template {
        return Ok(Document::Workflow(value));
    }
    serde_json::from_value(value)
        .map(|t| Document::Template(Box::new(t)))
        .map_err(|e| CliError::general(format!("{}: invalid template: {e}", path.display())))
}

/// Parses `--var NAME=VALUE` arguments. A variable the template declares is
/// read as its type (a string stays as written); any other value is read as
/// JSON if it parses, else as a string (the coordinator rejects unknown
/// variables by name).
pub(crate) fn parse_vars(
    args: &[String],
    template: Option<&Template>,
) -> Result<Map<String, Value>, CliError> {
    let mut vars = Map::new();
    for arg in args {
        let (name, raw) = arg
            .split_once('=')
            .ok_or_else(|| CliError::general(format!("--var {arg:?}: expected NAME=VALUE")))?;
        let declared = template
            .and_then(|t| t.variables.iter().find(|v| v.name == name))
            .map(|v| v.var_type);
        let value = match declared {
            Some(VariableType::String) => Value::String(raw.to_owned()),
            Some(var_type) => serde_json::from_str(raw).map_err(|_| {
                CliError::general(format!(
                    "--var {name}: {raw:?} is not a valid {var_type} value"
                ))
            })?,
            None => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
        };
        vars.insert(name.to_owned(), value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Template {
        serde_json::from_value(json!({
            "name": "t",
            "variables": [
                {"name": "label", "type": "string"},
                {"name": "rows", "type": "integer"},
                {"name": "tags", "type": "array"}
            ],
            "workflow": {"name": "w", "steps": []}
        }))
        .unwrap()
    }

    #[test]
    fn vars_are_read_as_their_declared_type() {
        let args: Vec<String> = [
            "label=123",
            "rows=5",
            "tags=[\"a\"]",
            "other=true",
            "x=plain",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let vars = parse_vars(&args, Some(&template())).unwrap();
        assert_eq!(
            Value::Object(vars),
            json!({"label": "123", "rows": 5, "tags": ["a"], "other": true, "x": "plain"})
        );
        let err = parse_vars(&["rows=many".into()], Some(&template())).unwrap_err();
        assert!(err.to_string().contains("rows"), "{err}");
        assert!(parse_vars(&["novalue".into()], None).is_err());
    }

    #[test]
    fn files_are_json_or_yaml() {
        let dir = std::env::temp_dir().join(format!("warren-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("w.yaml");
        std::fs::write(
            &yaml,
            "name: w\nsteps:\n  - {name: a, queue: q, type: echo}\n",
        )
        .unwrap();
        let json = dir.join("w.json");
        std::fs::write(
            &json,
            r#"{"name": "w", "steps": [{"name": "a", "queue": "q", "type": "echo"}]}"#,
        )
        .unwrap();
        let bare = dir.join("t");
        std::fs::write(
            &bare,
            "name: t\nvariables: []\nworkflow: {name: w, steps: []}\n",
        )
        .unwrap();
        assert_eq!(read_value(&yaml).unwrap(), read_value(&json).unwrap());
        assert!(matches!(
            read_document(&yaml).unwrap(),
            Document::Workflow(_)
        ));
        assert!(matches!(
            read_document(&bare).unwrap(),
            Document::Template(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
