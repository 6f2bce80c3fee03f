//! `GET /openapi.json`: the OpenAPI 3.0.3 description of the collector's HTTP API, for client
//! generators, API explorers and property-based testing (`schemathesis run
//! http://127.0.0.1:8080/openapi.json`).
//!
//! The document (`assets/openapi.json`) is written by hand and compiled into the binary. The
//! tests below keep it honest: every route of [`crate::router`] (read from `lib.rs` itself) is
//! documented with its method, nothing else is, and the limits it quotes are the defaults of
//! [`CollectorConfig`](crate::CollectorConfig) and the Kinesis constants. Changing the router or
//! a default without the document fails them.
//!
//! A server that answers more than the collector's routes (`tributary serve` adds the SQL API
//! and the schema registry) serves one document for all of them: [`merge`] builds it, and
//! [`Collector::with_api_document`](crate::Collector::with_api_document) makes it the one served.

mod merge;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub use merge::{MergeError, merge, problems};

use std::collections::BTreeSet;

use crate::Collector;

/// The collector's own document.
pub const DOCUMENT: &str = include_str!("../../assets/openapi.json");

/// `GET /openapi.json`: the collector's document, or the merged one it was given.
pub async fn document(State(collector): State<Arc<Collector>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        collector.api_document.to_string(),
    )
}

/// `(path, method)` of every `.route("<path>", get(…).post(…))` in the body of the function
/// whose source starts with `function` (e.g. `"pub fn router("`) in `source`: what a test
/// compares with the paths a document describes, so that neither can change alone.
pub fn routes_declared(source: &str, function: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let Some(start) = source.find(function) else {
        return routes;
    };
    let body = &source[start..];
    let body = body.find("\n}").map_or(body, |end| &body[..end]);
    let mut rest = body;
    while let Some(found) = rest.find(".route(\"") {
        rest = &rest[found + ".route(\"".len()..];
        let Some((path, after)) = rest.split_once('"') else {
            break;
        };
        // After the path: `, get(handler).post(other))`: each method, up to the `)` that
        // closes `.route(`.
        let mut methods = after.trim_start_matches(',').trim_start();
        while let Some(open) = methods.find('(') {
            let method = methods[..open].trim().trim_start_matches('.');
            routes.insert((path.to_string(), method.to_string()));
            let Some(close) = matching_paren(&methods[open..]) else {
                break;
            };
            methods = methods[open + close + 1..].trim_start();
            if !methods.starts_with('.') {
                break;
            }
        }
        rest = methods;
    }
    routes
}

/// `(path, method)` of every operation `document` describes: what [`routes_declared`] is
/// compared with.
pub fn documented_routes(document: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().into_iter().flatten();
    paths
        .flat_map(|(path, item)| {
            let methods = item.as_object().into_iter().flat_map(|item| item.keys());
            methods.map(move |method| (path.clone(), method.clone()))
        })
        .collect()
}

/// Offset of the `)` that closes the `(` at the start of `text`.
fn matching_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, byte) in text.bytes().enumerate() {
        match byte {
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(offset);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::edge::MAX_ID_BYTES;
    use crate::error::{ApiError, Rejection};
    use crate::kinesis::{self, AwsError};
    use crate::sigv4::SigV4Error;
    use crate::{CollectorConfig, body};

    fn spec() -> Value {
        serde_json::from_str(DOCUMENT).expect("assets/openapi.json is not valid JSON")
    }

    /// Follows a JSON pointer, failing with the pointer when it leads nowhere.
    fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
        value
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the document has no {pointer}"))
    }

    fn number(value: &Value, pointer: &str) -> usize {
        let found = at(value, pointer);
        found
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or_else(|| panic!("{pointer} is {found}, not a count"))
    }

    /// `(path, method)` of every route of `router()`, read from lib.rs.
    fn routes() -> BTreeSet<(String, String)> {
        routes_declared(include_str!("../lib.rs"), "pub fn router(")
    }

    #[test]
    fn routes_with_several_methods_are_all_found() {
        let source = r#"
            pub fn router() -> Router {
                Router::new()
                    .route("/a", get(list).post(add))
                    .route("/b", post(handler::make))
                    .with_state(state)
            }
        "#;
        let found: Vec<_> = routes_declared(source, "pub fn router(")
            .into_iter()
            .collect();
        let expected = [("/a", "get"), ("/a", "post"), ("/b", "post")]
            .map(|(path, method)| (path.to_string(), method.to_string()));
        assert_eq!(found, expected);
    }

    #[test]
    fn the_document_is_openapi_3_0_3_json() {
        let spec = spec();
        assert_eq!(spec["openapi"], "3.0.3");
        assert_eq!(
            at(&spec, "/info/version"),
            env!("CARGO_PKG_VERSION"),
            "info.version is the crate's version"
        );
        assert!(at(&spec, "/paths").is_object());
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let routes = routes();
        assert!(
            routes.len() >= 21,
            "the scan of lib.rs found only {routes:?}"
        );
        let documented = documented_routes(&spec());
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes of router() missing from assets/openapi.json: {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routes).collect();
        assert!(
            unrouted.is_empty(),
            "assets/openapi.json documents routes router() does not have: {unrouted:?}"
        );
        assert!(routes.contains(&("/openapi.json".to_string(), "get".to_string())));
    }

    #[test]
    fn operation_ids_are_unique_and_every_ref_resolves() {
        let spec = spec();
        for (path, method) in documented_routes(&spec) {
            assert!(
                spec["paths"][&path][&method]["responses"]["200"].is_object(),
                "{method} {path} documents no 200"
            );
        }
        let mut refs = Vec::new();
        merge::collect_refs(&spec, &mut refs);
        assert!(refs.len() > 50, "found only {} $refs", refs.len());
        assert_eq!(problems(&spec), Vec::<String>::new());
    }

    #[test]
    fn quoted_limits_are_the_defaults() {
        let spec = spec();
        let config = CollectorConfig::default();
        let limits = "/info/x-tributary-limits";
        let expected = [
            ("max_body_bytes", config.max_body_bytes),
            ("max_event_bytes", config.max_event_bytes),
            ("max_events_per_batch", config.max_events_per_batch),
            ("max_json_depth", config.max_json_depth),
            ("max_string_bytes", config.max_string_bytes),
            ("max_backlog_events", config.max_backlog_events),
            ("max_id_bytes", MAX_ID_BYTES),
            (
                "signature_tolerance_secs",
                usize::try_from(config.signature_tolerance.as_secs()).unwrap(),
            ),
            (
                "kinesis_max_records_per_request",
                kinesis::MAX_RECORDS_PER_REQUEST,
            ),
            (
                "kinesis_max_request_data_bytes",
                kinesis::MAX_REQUEST_DATA_BYTES,
            ),
            (
                "kinesis_max_record_data_bytes",
                kinesis::MAX_RECORD_DATA_BYTES,
            ),
            (
                "kinesis_max_partition_key_chars",
                kinesis::MAX_PARTITION_KEY_CHARS,
            ),
            ("kinesis_max_http_body_bytes", kinesis::MAX_HTTP_BODY_BYTES),
        ];
        for (name, value) in expected {
            assert_eq!(number(&spec, &format!("{limits}/{name}")), value, "{name}");
        }
        assert_eq!(
            at(&spec, limits).as_object().unwrap().len(),
            expected.len(),
            "x-tributary-limits quotes a limit this test does not check"
        );

        let schemas = "/components/schemas";
        let batch = config.max_events_per_batch;
        for (pointer, value) in [
            ("NativeBody/oneOf/0/maxItems", batch),
            ("SegmentBatch/properties/batch/maxItems", batch),
            ("IngestResponse/properties/accepted/maximum", batch),
            ("SegmentResponse/properties/accepted/maximum", batch),
            ("IngestResponse/properties/rejected/maxItems", batch - 1),
            ("SegmentResponse/properties/rejected/maxItems", batch - 1),
            ("NativeEvent/properties/event_id/maxLength", MAX_ID_BYTES),
            (
                "NativeEvent/properties/anonymous_id/maxLength",
                MAX_ID_BYTES,
            ),
            ("NativeEvent/properties/user_id/maxLength", MAX_ID_BYTES),
            ("NativeEvent/properties/session_id/maxLength", MAX_ID_BYTES),
            ("NativeEvent/properties/event_type/maxLength", MAX_ID_BYTES),
            (
                "NativeEvent/properties/context/properties/user_agent/maxLength",
                config.max_string_bytes,
            ),
            (
                "NativeEvent/properties/context/properties/page/properties/url/maxLength",
                config.max_string_bytes,
            ),
            (
                "SegmentMessage/properties/messageId/oneOf/0/maxLength",
                MAX_ID_BYTES,
            ),
            (
                "SegmentMessage/properties/anonymousId/oneOf/0/maxLength",
                MAX_ID_BYTES,
            ),
            (
                "SegmentMessage/properties/userId/oneOf/0/maxLength",
                MAX_ID_BYTES,
            ),
            (
                "KinesisPutRecordsInput/properties/Records/maxItems",
                kinesis::MAX_RECORDS_PER_REQUEST,
            ),
            (
                "KinesisPutRecordsOutput/properties/Records/maxItems",
                kinesis::MAX_RECORDS_PER_REQUEST,
            ),
            (
                "KinesisPutRecordInput/properties/PartitionKey/maxLength",
                kinesis::MAX_PARTITION_KEY_CHARS,
            ),
            (
                "KinesisPutRecordsRequestEntry/properties/PartitionKey/maxLength",
                kinesis::MAX_PARTITION_KEY_CHARS,
            ),
            (
                "KinesisPutRecordInput/properties/Data/maxLength",
                kinesis::MAX_RECORD_DATA_BYTES.div_ceil(3) * 4,
            ),
            (
                "KinesisPutRecordsRequestEntry/properties/Data/maxLength",
                kinesis::MAX_RECORD_DATA_BYTES.div_ceil(3) * 4,
            ),
        ] {
            assert_eq!(
                number(&spec, &format!("{schemas}/{pointer}")),
                value,
                "{pointer}"
            );
        }
    }

    /// The error codes and statuses the native and Segment endpoints document are those
    /// `ApiError` answers, and the Kinesis ones those `AwsError` answers.
    #[test]
    fn documented_errors_are_the_ones_the_code_gives() {
        let spec = spec();
        let codes = at(&spec, "/components/schemas/Error/properties/error/enum");
        let rejection = Rejection {
            index: 0,
            reason: "invalid",
            field: None,
            message: String::new(),
        };
        let errors = [
            ApiError::Unauthorized(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::InvalidJson {
                line: 1,
                column: 1,
                message: String::new(),
            },
            ApiError::BadRequest(String::new()),
            ApiError::TooLarge {
                limit: "max_body_bytes",
                value: 1,
                message: String::new(),
            },
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::TooManyRequests {
                retry_after_secs: 1,
                message: String::new(),
            },
            ApiError::Unavailable(String::new()),
            ApiError::RequestTimeout(String::new()),
            ApiError::AllRejected(vec![rejection]),
            ApiError::Internal(String::new()),
        ];
        for error in errors {
            assert!(
                codes.as_array().unwrap().contains(&error.code().into()),
                "error code {} is not in the Error schema",
                error.code()
            );
            // An internal error of one event becomes its rejection (reason `internal`): the
            // native and Segment endpoints never answer 500.
            if !matches!(error, ApiError::Internal(_)) {
                let status = error.status().as_u16().to_string();
                for path in ["/v1/events", "/v1/track", "/v1/batch", "/v1/b"] {
                    let responses = &spec["paths"][path]["post"]["responses"];
                    assert!(
                        responses[&status].is_object(),
                        "POST {path} does not document {status} ({})",
                        error.code()
                    );
                }
            }
            assert_kinesis_documents(&spec, &AwsError::from(error));
        }
        for error in [
            SigV4Error::Missing(String::new()),
            SigV4Error::Incomplete(String::new()),
            SigV4Error::UnknownAccessKey(String::new()),
            SigV4Error::Expired(String::new()),
            SigV4Error::Mismatch(String::new()),
        ] {
            assert_kinesis_documents(&spec, &AwsError::from(error));
        }
        for error in [
            AwsError::validation(""),
            AwsError::serialization(""),
            AwsError::unknown_operation(""),
        ] {
            assert_kinesis_documents(&spec, &error);
        }
        let limits = at(&spec, "/components/schemas/Error/properties/limit/enum");
        assert_eq!(
            limits,
            &serde_json::json!(["max_body_bytes", "max_events_per_batch"])
        );
    }

    fn assert_kinesis_documents(spec: &Value, error: &AwsError) {
        let status = error.status.as_u16().to_string();
        let pointer = format!(
            "/paths/~1/post/responses/{status}/content/application~1x-amz-json-1.1/schema/allOf/1/properties/__type/enum"
        );
        let codes = at(spec, &pointer);
        assert!(
            codes.as_array().unwrap().contains(&error.code.into()),
            "Kinesis {status} does not document {}",
            error.code
        );
        let all = at(
            spec,
            "/components/schemas/KinesisError/properties/__type/enum",
        );
        assert!(all.as_array().unwrap().contains(&error.code.into()));
    }

    #[test]
    fn documented_content_types_are_accepted() {
        let spec = spec();
        let mut headers = axum::http::HeaderMap::new();
        for path in ["/v1/events", "/v1/track"] {
            let content = &spec["paths"][path]["post"]["requestBody"];
            let content = match content.get("$ref").and_then(Value::as_str) {
                Some(reference) => &spec.pointer(&reference[1..]).unwrap()["content"],
                None => &content["content"],
            };
            for media in content.as_object().unwrap().keys() {
                headers.insert(header::CONTENT_TYPE, media.parse().unwrap());
                body::check_json_content_type(&headers)
                    .unwrap_or_else(|e| panic!("{path} documents {media}, refused: {e}"));
            }
        }
    }
}
