//! The OpenAPI description of `/v1/schemas` (`assets/openapi.json`), which `tributary serve`
//! merges into the collector's `/openapi.json`.
//!
//! Written by hand and compiled in. The tests hold it to the code: the routes it describes are
//! [`crate::http::router`]'s, every error code the handlers answer is listed, and every
//! reference resolves.

/// The document.
pub const DOCUMENT: &str = include_str!("../assets/openapi.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use tributary_collector::openapi::{documented_routes, problems, routes_declared};

    use super::*;

    fn spec() -> Value {
        serde_json::from_str(DOCUMENT).expect("assets/openapi.json is not valid JSON")
    }

    #[test]
    fn describes_exactly_the_routes_of_the_router() {
        let routes = routes_declared(include_str!("http.rs"), "pub fn router(");
        let spec = spec();
        assert_eq!(routes, documented_routes(&spec));
        assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_error_code_is_listed() {
        // Every code http.rs answers is the second argument of a `refuse(…)` or the `error` of
        // a JSON body it builds.
        let source: String = include_str!("http.rs")
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut codes = BTreeSet::new();
        for call in source.split("refuse(").skip(1) {
            let second = call.split_once(',').map(|(_, rest)| rest.trim_start());
            if let Some(literal) = second.and_then(|rest| rest.strip_prefix('"'))
                && let Some((code, _)) = literal.split_once('"')
            {
                codes.insert(code.to_string());
            }
        }
        for body in source.split("\"error\": \"").skip(1) {
            if let Some((code, _)) = body.split_once('"') {
                codes.insert(code.to_string());
            }
        }
        let spec = spec();
        let schemas = &spec["components"]["schemas"];
        let listed: BTreeSet<String> = [&schemas["SchemaError"], &schemas["SchemaIncompatible"]]
            .into_iter()
            .flat_map(|schema| schema["properties"]["error"]["enum"].as_array().unwrap())
            .map(|code| code.as_str().unwrap().to_string())
            .collect();
        assert!(codes.len() >= 6, "found only {codes:?}");
        assert_eq!(codes, listed);
    }

    #[test]
    fn every_reference_resolves() {
        assert_eq!(problems(&spec()), Vec::<String>::new());
    }
}
