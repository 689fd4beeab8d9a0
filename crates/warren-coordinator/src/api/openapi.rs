//! `GET /v1/openapi.json`: the API's OpenAPI 3.1 description. It is written
//! as YAML (`openapi.yaml`, beside this file) for readability and served as
//! JSON. The tests below keep it in sync with the router in `mod.rs`: every
//! route there is described, and every described operation is routed.

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;

/// The document, parsed once. The tests prove it parses.
static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_yaml_ng::from_str(include_str!("openapi.yaml")).unwrap_or_else(|e| {
        tracing::error!(error = %e, "openapi.yaml does not parse");
        Value::Null
    })
});

/// Serves the document.
pub(super) async fn get() -> Json<&'static Value> {
    Json(&DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::DOCUMENT;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// `(METHOD, /full/path)` of every `.route(...)` in `mod.rs`. Routes are
    /// under `/v1` except `/health` and `/metrics` (the dashboard's static
    /// files live in `ui.rs` and are not API).
    fn routed() -> BTreeSet<(String, String)> {
        let source: String = include_str!("mod.rs").split_whitespace().collect();
        let mut routes = BTreeSet::new();
        for piece in source.split(".route(\"").skip(1) {
            let (path, rest) = piece.split_once('"').expect("closing quote");
            let full = if matches!(path, "/health" | "/metrics") {
                path.to_owned()
            } else {
                format!("/v1{path}")
            };
            // The method router expression ends where the parentheses close.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("balanced parentheses");
            let expression = &rest[..end];
            for method in METHODS {
                let call = format!("{method}(");
                let found = expression.match_indices(&call).any(|(i, _)| {
                    i == 0
                        || !expression[..i]
                            .ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if found {
                    routes.insert((method.to_uppercase(), full.clone()));
                }
            }
        }
        routes
    }

    fn described() -> BTreeSet<(String, String)> {
        let paths = DOCUMENT["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn the_document_parses_as_openapi_3_1() {
        assert_eq!(DOCUMENT["openapi"], "3.1.0");
        assert!(DOCUMENT["components"]["schemas"]["Job"].is_object());
    }

    #[test]
    fn the_scanner_sees_the_router() {
        let routes = routed();
        assert!(routes.contains(&("GET".into(), "/health".into())));
        assert!(routes.contains(&("POST".into(), "/v1/jobs".into())));
        assert!(routes.contains(&("GET".into(), "/v1/jobs".into())));
        assert!(routes.len() > 20, "{routes:?}");
    }

    #[test]
    fn every_route_is_described_and_every_description_routed() {
        let routes = routed();
        let described = described();
        let undocumented: Vec<_> = routes.difference(&described).collect();
        let unrouted: Vec<_> = described.difference(&routes).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes missing from openapi.yaml: {undocumented:?}; described but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(value: &serde_json::Value, refs: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        refs.push(r.clone());
                    }
                    map.values().for_each(|v| walk(v, refs));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        walk(&DOCUMENT, &mut refs);
        for reference in refs {
            let pointer = reference.strip_prefix('#').expect("local reference");
            assert!(
                DOCUMENT.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    #[test]
    fn every_operation_documents_401_unless_open() {
        for (method, path) in described() {
            let operation = &DOCUMENT["paths"][&path][method.to_lowercase()];
            let open = operation["security"]
                .as_array()
                .is_some_and(|s| s.is_empty());
            assert!(
                open || operation["responses"].get("401").is_some(),
                "{method} {path} lacks its 401"
            );
        }
    }
}
