//! A workflow submission: the entries of a `Submit` envelope's `workflows`
//! array, and the body of `POST /v1/workflows`.
//!
//! Either a whole workflow definition, or a reference to a stored template
//! with its variables; both may carry the client-chosen `id`:
//!
//! ```json
//! {"id": "0190…", "name": "etl", "steps": [{"name": "a", "queue": "default", "type": "echo"}]}
//! {"id": "0190…", "template": "dataset-build", "version": 2, "variables": {"rows": 100}}
//! ```
//!
//! A submission with an id that already exists creates nothing, so a client
//! may re-publish it safely. Over AMQP the id is required (it is what makes a
//! redelivery harmless); over HTTP the coordinator picks one if absent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::workflow::WorkflowSpec;

/// One workflow to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct WorkflowSubmission {
    /// Client-chosen UUID v7.
    pub id: Option<Uuid>,
    /// What to run.
    pub source: WorkflowSource,
}

/// Where the workflow definition comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowSource {
    /// A definition given in full.
    Spec(WorkflowSpec),
    /// A stored template, instantiated by the coordinator.
    Template(TemplateRef),
}

/// A stored template and the values of its variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// Template name.
    pub template: String,
    /// Version; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Variable values by name.
    #[serde(default)]
    pub variables: Map<String, Value>,
}

impl WorkflowSubmission {
    /// A full definition with a fresh id.
    pub fn spec(spec: WorkflowSpec) -> Self {
        Self {
            id: Some(crate::new_job_id()),
            source: WorkflowSource::Spec(spec),
        }
    }

    /// A template instantiation with a fresh id.
    pub fn template(
        template: impl Into<String>,
        version: Option<u32>,
        variables: Map<String, Value>,
    ) -> Self {
        Self {
            id: Some(crate::new_job_id()),
            source: WorkflowSource::Template(TemplateRef {
                template: template.into(),
                version,
                variables,
            }),
        }
    }
}

impl TryFrom<Value> for WorkflowSubmission {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let Value::Object(mut fields) = value else {
            return Err("a workflow must be a JSON object".into());
        };
        let id = match fields.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(Uuid::parse_str(&text).map_err(|_| format!("id {text:?} is not a UUID"))?)
            }
            Some(other) => return Err(format!("id must be a UUID string, not {other}")),
        };
        let source = if fields.contains_key("template") {
            WorkflowSource::Template(
                serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?,
            )
        } else {
            WorkflowSource::Spec(
                serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?,
            )
        };
        Ok(Self { id, source })
    }
}

impl From<WorkflowSubmission> for Value {
    fn from(submission: WorkflowSubmission) -> Value {
        let body = match submission.source {
            WorkflowSource::Spec(spec) => serde_json::to_value(spec),
            WorkflowSource::Template(template) => serde_json::to_value(template),
        };
        let mut body = match body {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        if let Some(id) = submission.id {
            body.insert("id".into(), Value::String(id.to_string()));
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, encode, SubmitEnvelope};
    use serde_json::json;

    #[test]
    fn both_forms_round_trip_through_an_envelope() {
        let spec: WorkflowSpec = serde_json::from_value(json!({
            "name": "etl",
            "steps": [{"name": "a", "queue": "default", "type": "echo"},
                      {"name": "b", "queue": "default", "type": "echo", "depends_on": ["a"]}]
        }))
        .unwrap();
        let mut variables = Map::new();
        variables.insert("rows".into(), json!(10));
        let envelope = SubmitEnvelope::with_workflows(vec![
            WorkflowSubmission::spec(spec),
            WorkflowSubmission::template("dataset-build", Some(2), variables),
        ]);
        let back: SubmitEnvelope = decode(&encode(&envelope), 1 << 20).unwrap();
        assert_eq!(back, envelope);
        assert!(back.jobs.is_empty());
    }

    #[test]
    fn envelopes_without_workflows_are_unchanged() {
        let envelope = SubmitEnvelope::new(Vec::new());
        assert_eq!(
            String::from_utf8(encode(&envelope)).unwrap(),
            r#"{"v":1,"jobs":[]}"#
        );
    }

    #[test]
    fn bad_submissions_say_what_is_wrong() {
        let err = |value: Value| WorkflowSubmission::try_from(value).unwrap_err();
        assert!(err(json!([1])).contains("JSON object"));
        assert!(err(json!({"id": "nope", "template": "t"})).contains("not a UUID"));
        assert!(err(json!({"template": "t", "varables": {}})).contains("varables"));
        assert!(err(json!({"name": "x"})).contains("steps"));
        let ok = WorkflowSubmission::try_from(json!({"template": "t"})).unwrap();
        assert_eq!(ok.id, None);
    }
}
