//! The `${...}` syntax shared by step references (`${steps.a.result}`,
//! resolved when a step is released) and template variables (`${var}`,
//! substituted when a template is instantiated).
//!
//! `$${` is an escape for a literal `${`. Template instantiation keeps the
//! escape as written and only step-reference resolution (the last stage)
//! turns it into `${`, so `$${HOME}` reaches a shell command as `${HOME}`.
//! An unterminated `${` is plain text.

use serde_json::{Map, Value};

/// One piece of a string, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text.
    Text(&'a str),
    /// `$${`: a literal `${`.
    Escape,
    /// `${body}`; `raw` is the whole `${body}`.
    Expr { body: &'a str, raw: &'a str },
    /// A `${` with no closing `}`: the rest of the string.
    Unterminated(&'a str),
}

/// Splits `text` into pieces (no empty `Text` pieces).
pub(crate) fn pieces<'a>(text: &'a str) -> Vec<Piece<'a>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let flush = |out: &mut Vec<Piece<'a>>, from: usize, to: usize| {
        if from < to {
            out.push(Piece::Text(&text[from..to]));
        }
    };
    // Every slice boundary below sits on an ASCII `$` or `}` or at an end,
    // so it is always a char boundary.
    while i < bytes.len() {
        if bytes[i..].starts_with(b"$${") {
            flush(&mut out, start, i);
            out.push(Piece::Escape);
            i += 3;
            start = i;
        } else if bytes[i..].starts_with(b"${") {
            flush(&mut out, start, i);
            match text[i + 2..].find('}') {
                Some(len) => {
                    let end = i + 2 + len;
                    out.push(Piece::Expr {
                        body: &text[i + 2..end],
                        raw: &text[i..=end],
                    });
                    i = end + 1;
                    start = i;
                }
                None => {
                    out.push(Piece::Unterminated(&text[i..]));
                    return out;
                }
            }
        } else {
            i += 1;
        }
    }
    flush(&mut out, start, bytes.len());
    out
}

/// How a value reads inside a longer string: strings as they are, anything
/// else as compact JSON.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rebuilds `value` with every string (not object keys) passed through `f`.
pub(crate) fn map_strings<E>(
    value: &Value,
    f: &mut impl FnMut(&str) -> Result<Value, E>,
) -> Result<Value, E> {
    Ok(match value {
        Value::String(s) => f(s)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| map_strings(item, f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, item) in map {
                out.insert(key.clone(), map_strings(item, f)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Calls `f` on every string (not object keys) inside `value`, in order.
pub(crate) fn visit_strings<'a>(value: &'a Value, f: &mut impl FnMut(&'a str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|item| visit_strings(item, f)),
        Value::Object(map) => map.values().for_each(|item| visit_strings(item, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Piece::*;

    #[test]
    fn splits_text_escapes_and_expressions() {
        assert_eq!(pieces(""), vec![]);
        assert_eq!(pieces("plain"), vec![Text("plain")]);
        assert_eq!(
            pieces("${a}"),
            vec![Expr {
                body: "a",
                raw: "${a}"
            }]
        );
        assert_eq!(
            pieces("x ${a} y $${b} z ${c"),
            vec![
                Text("x "),
                Expr {
                    body: "a",
                    raw: "${a}"
                },
                Text(" y "),
                Escape,
                Text("b} z "),
                Unterminated("${c"),
            ]
        );
        assert_eq!(
            pieces("é${ü}$"),
            vec![
                Text("é"),
                Expr {
                    body: "ü",
                    raw: "${ü}"
                },
                Text("$")
            ]
        );
    }
}
