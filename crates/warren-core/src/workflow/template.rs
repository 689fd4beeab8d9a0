//! Workflow templates (seed 002): a named, versioned workflow with declared,
//! typed variables, instantiated by name plus variable values.
//!
//! - `${var}` anywhere in a string of `workflow` is a variable. A string that
//!   is exactly `${var}` becomes the variable's JSON value with its type
//!   (`"priority": "${prio}"` becomes a number); inside a longer string it is
//!   replaced by its text (strings as they are, other values as JSON).
//! - `${steps.<name>.result...}` is not a variable: it is left for run time.
//!   `$${` is a literal `${` and is kept as written (resolved at run time), so
//!   write `$${HOME}` for a shell variable.
//! - A variable's value is the one supplied, else its default, else (when
//!   not `required`) `null`. A `required` variable with a default is
//!   satisfied by the default (the seed's templates declare both).
//! - Every problem is rejected before anything is created, naming the
//!   variables: unknown variables supplied, required ones missing, values of
//!   the wrong type, `${x}` used but not declared, and a workflow that is not
//!   valid once substituted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::placeholder::{map_strings, pieces, text_of, visit_strings, Piece};
use super::reference::is_step_reference;
use super::variable::{json_type, VariableSpec, VariableType};
use super::{WorkflowError, WorkflowSpec};
use crate::names::{validate_name, NameError};

/// Most variables one template may declare.
pub const MAX_VARIABLES: usize = 100;

fn first_version() -> u32 {
    1
}

/// A stored, versioned workflow with placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Name users submit by (same rules as a queue name).
    pub name: String,
    /// Version, from 1; (name, version) identifies a template. Default 1.
    #[serde(default = "first_version")]
    pub version: u32,
    /// What the template is for.
    #[serde(default)]
    pub description: String,
    /// The variables `workflow` may use.
    #[serde(default)]
    pub variables: Vec<VariableSpec>,
    /// A [`WorkflowSpec`] whose strings may hold `${var}` placeholders.
    pub workflow: Value,
}

/// A template, or an instantiation of one, that cannot be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The template name breaks the naming rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// Version 0.
    #[error("template version must be 1 or more")]
    InvalidVersion,
    /// More than [`MAX_VARIABLES`] declared.
    #[error("a template may declare at most {max} variables, this one declares {got}")]
    TooManyVariables {
        /// The limit.
        max: usize,
        /// How many were declared.
        got: usize,
    },
    /// A variable name breaks the rules.
    #[error("invalid variable name {name:?}: {reason}")]
    InvalidVariableName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two variables share a name.
    #[error("variable {name:?} is declared twice")]
    DuplicateVariable {
        /// The repeated name.
        name: String,
    },
    /// A default does not have the variable's type.
    #[error("default of variable {name:?} must be of type {expected}, got {got}")]
    InvalidDefault {
        /// The variable.
        name: String,
        /// Its declared type.
        expected: VariableType,
        /// The JSON type of the default.
        got: &'static str,
    },
    /// The workflow uses `${x}` for variables that are not declared.
    #[error("the workflow uses undeclared variables: {} (declare them, or write $${{ for a literal ${{)", .names.join(", "))]
    UndeclaredVariables {
        /// The undeclared names, sorted.
        names: Vec<String>,
    },
    /// Values were supplied for variables the template does not declare.
    #[error("unknown variables: {} (this template declares: {})", .names.join(", "), .declared.join(", "))]
    UnknownVariables {
        /// The unknown names, sorted.
        names: Vec<String>,
        /// The declared names, for the reader.
        declared: Vec<String>,
    },
    /// Required variables without a default were not supplied.
    #[error("missing required variables: {}", .names.join(", "))]
    MissingVariables {
        /// The missing names, in declaration order.
        names: Vec<String>,
    },
    /// A supplied value has the wrong type.
    #[error("variable {name:?} must be of type {expected}, got {got}")]
    WrongType {
        /// The variable.
        name: String,
        /// Its declared type.
        expected: VariableType,
        /// The JSON type supplied.
        got: &'static str,
    },
    /// The workflow is not valid once the variables are substituted.
    #[error("invalid workflow after substitution: {0}")]
    Workflow(#[from] WorkflowError),
}

impl Template {
    /// Checks the template on its own: names, version, unique variables,
    /// defaults of the declared types, every `${x}` declared, and, when no
    /// required variable lacks a default, the workflow built from the
    /// defaults. With such variables, typed placeholder values are used and
    /// only a parse of the result is required, since a real value may be
    /// what makes it valid (a step name, say).
    pub fn validate(&self) -> Result<(), TemplateError> {
        self.check_declarations()?;
        self.check_usage()?;
        let mut needs_placeholder = false;
        let values: Map<String, Value> = self
            .variables
            .iter()
            .map(|v| {
                let value = match (&v.default, v.required) {
                    (Some(default), _) => default.clone(),
                    (None, false) => Value::Null,
                    (None, true) => {
                        needs_placeholder = true;
                        v.var_type.placeholder()
                    }
                };
                (v.name.clone(), value)
            })
            .collect();
        let workflow = self.substitute(&values);
        if needs_placeholder {
            serde_json::from_value::<WorkflowSpec>(workflow)
                .map_err(|e| WorkflowError::Parse(e.to_string()))?;
        } else {
            parse_workflow(workflow)?.validate()?;
        }
        Ok(())
    }

    /// The workflow for these variable values, validated.
    pub fn instantiate(&self, vars: &Map<String, Value>) -> Result<WorkflowSpec, TemplateError> {
        self.check_declarations()?;
        let declared: Vec<String> = self.variables.iter().map(|v| v.name.clone()).collect();
        let unknown: Vec<String> = vars
            .keys()
            .filter(|k| !declared.contains(k))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(TemplateError::UnknownVariables {
                names: unknown,
                declared,
            });
        }
        let missing: Vec<String> = self
            .variables
            .iter()
            .filter(|v| v.required && v.default.is_none() && !vars.contains_key(&v.name))
            .map(|v| v.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(TemplateError::MissingVariables { names: missing });
        }
        let mut values = Map::new();
        for var in &self.variables {
            let value = match vars.get(&var.name) {
                Some(value) if !var.var_type.matches(value) => {
                    return Err(TemplateError::WrongType {
                        name: var.name.clone(),
                        expected: var.var_type,
                        got: json_type(value),
                    })
                }
                Some(value) => value.clone(),
                None => var.default.clone().unwrap_or(Value::Null),
            };
            values.insert(var.name.clone(), value);
        }
        self.check_usage()?;
        let spec = parse_workflow(self.substitute(&values))?;
        spec.validate()?;
        Ok(spec)
    }

    fn check_declarations(&self) -> Result<(), TemplateError> {
        validate_name("template name", &self.name)?;
        if self.version == 0 {
            return Err(TemplateError::InvalidVersion);
        }
        if self.variables.len() > MAX_VARIABLES {
            return Err(TemplateError::TooManyVariables {
                max: MAX_VARIABLES,
                got: self.variables.len(),
            });
        }
        let mut seen = BTreeSet::new();
        for var in &self.variables {
            check_variable_name(&var.name)?;
            if !seen.insert(var.name.as_str()) {
                return Err(TemplateError::DuplicateVariable {
                    name: var.name.clone(),
                });
            }
            if let Some(default) = &var.default {
                if !var.var_type.matches(default) {
                    return Err(TemplateError::InvalidDefault {
                        name: var.name.clone(),
                        expected: var.var_type,
                        got: json_type(default),
                    });
                }
            }
        }
        Ok(())
    }

    /// The variables the workflow uses, sorted.
    pub fn used_variables(&self) -> Vec<String> {
        let mut used = BTreeSet::new();
        visit_strings(&self.workflow, &mut |text| {
            for piece in pieces(text) {
                if let Piece::Expr { body, .. } = piece {
                    if !is_step_reference(body) {
                        used.insert(body.to_owned());
                    }
                }
            }
        });
        used.into_iter().collect()
    }

    fn check_usage(&self) -> Result<(), TemplateError> {
        let undeclared: Vec<String> = self
            .used_variables()
            .into_iter()
            .filter(|name| !self.variables.iter().any(|v| &v.name == name))
            .collect();
        if undeclared.is_empty() {
            Ok(())
        } else {
            Err(TemplateError::UndeclaredVariables { names: undeclared })
        }
    }

    /// `workflow` with every declared `${var}` replaced (usage was checked,
    /// so every variable is in `values`).
    fn substitute(&self, values: &Map<String, Value>) -> Value {
        let result: Result<Value, std::convert::Infallible> =
            map_strings(&self.workflow, &mut |text| {
                Ok(substitute_string(text, values))
            });
        match result {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

fn substitute_string(text: &str, values: &Map<String, Value>) -> Value {
    let pieces = pieces(text);
    if let [Piece::Expr { body, .. }] = pieces[..] {
        if let Some(value) = values.get(body) {
            return value.clone();
        }
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) | Piece::Unterminated(t) => out.push_str(t),
            Piece::Escape => out.push_str("$${"),
            Piece::Expr { body, raw } => match values.get(body) {
                Some(value) if !is_step_reference(body) => out.push_str(&text_of(value)),
                _ => out.push_str(raw),
            },
        }
    }
    Value::String(out)
}

fn parse_workflow(workflow: Value) -> Result<WorkflowSpec, WorkflowError> {
    serde_json::from_value(workflow).map_err(|e| WorkflowError::Parse(e.to_string()))
}

fn check_variable_name(name: &str) -> Result<(), TemplateError> {
    let invalid = |reason: &str| {
        Err(TemplateError::InvalidVariableName {
            name: name.chars().take(100).collect(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() || name.len() > 100 {
        return invalid("use 1-100 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return invalid("use only a-z A-Z 0-9 _ -");
    }
    if name == "steps" {
        return invalid("`steps` is reserved for ${steps.<name>.result} references");
    }
    Ok(())
}
