//! The OpenAPI description of `POST /v1/query` (`assets/openapi.json`), which `tributary serve`
//! merges into the collector's `/openapi.json`.
//!
//! Written by hand and compiled in. The tests hold it to the code: the routes it describes are
//! [`crate::http::router`]'s, every error code the handler can answer is listed, and every
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

    /// The string literals answered by the `fn code(` in `source`.
    fn codes_in(source: &str) -> BTreeSet<String> {
        let start = source.find("fn code(&self)").expect("no fn code");
        let body = &source[start..];
        let body = &body[..body.find("\n    }\n").expect("fn code has no end")];
        body.split("=> \"")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(code, _)| code.to_string()))
            .collect()
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
        let mut codes = codes_in(include_str!("http.rs"));
        codes.extend(codes_in(include_str!("error.rs")));
        assert!(codes.len() >= 12, "found only {codes:?}");
        let spec = spec();
        let listed: BTreeSet<String> =
            spec["components"]["schemas"]["QueryError"]["properties"]["error"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|code| code.as_str().unwrap().to_string())
                .collect();
        assert_eq!(codes, listed);
    }

    #[test]
    fn every_reference_resolves() {
        assert_eq!(problems(&spec()), Vec::<String>::new());
    }
}
