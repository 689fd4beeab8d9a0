//! Declared template variables and their JSON types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One declared variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    /// Used as `${name}`: 1-100 of `a-z A-Z 0-9 _ -`; `steps` is reserved.
    pub name: String,
    /// The JSON type a value must have.
    #[serde(rename = "type")]
    pub var_type: VariableType,
    /// Must be supplied unless it has a default.
    #[serde(default)]
    pub required: bool,
    /// Used when no value is supplied; must have `var_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the variable means.
    #[serde(default)]
    pub description: String,
}

/// The JSON type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableType {
    /// A JSON string.
    String,
    /// A JSON number without a fractional part (fits i64 or u64).
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON array.
    Array,
    /// A JSON object.
    Object,
}

impl VariableType {
    /// The snake_case name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            VariableType::String => "string",
            VariableType::Integer => "integer",
            VariableType::Number => "number",
            VariableType::Boolean => "boolean",
            VariableType::Array => "array",
            VariableType::Object => "object",
        }
    }

    /// Whether `value` has this type.
    pub fn matches(self, value: &Value) -> bool {
        match self {
            VariableType::String => value.is_string(),
            VariableType::Integer => value.is_i64() || value.is_u64(),
            VariableType::Number => value.is_number(),
            VariableType::Boolean => value.is_boolean(),
            VariableType::Array => value.is_array(),
            VariableType::Object => value.is_object(),
        }
    }

    /// A value of this type, standing in for a required variable when a
    /// template is checked without values.
    pub(crate) fn placeholder(self) -> Value {
        match self {
            VariableType::String => Value::String("placeholder".into()),
            VariableType::Integer | VariableType::Number => Value::from(0),
            VariableType::Boolean => Value::Bool(false),
            VariableType::Array => Value::Array(Vec::new()),
            VariableType::Object => Value::Object(Map::new()),
        }
    }
}

impl std::fmt::Display for VariableType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
