//! `POST /v1/query`: SQL over HTTP.
//!
//! ```text
//! POST /v1/query
//! Authorization: Bearer <read or admin key>
//! Content-Type: application/json
//! Accept: application/json | application/x-ndjson | text/csv | application/vnd.apache.arrow.stream
//!
//! {"sql": "SELECT event_family, count(*) FROM events GROUP BY 1", "max_rows": 100}
//! ```
//!
//! A read key sees its tenant's rows only, an admin key every tenant's; a write key is refused
//! (403). The answer carries `X-Tributary-Rows`, `X-Tributary-Truncated` (`true` when the row
//! limit cut it), `X-Tributary-Files-Scanned` and `X-Tributary-Files-Listed`.
//!
//! Errors are JSON, `{"error": "<code>", "message": "<sentence>"}` like the ingest API:
//!
//! | status | code                                   | when                                          |
//! |--------|----------------------------------------|-----------------------------------------------|
//! | 400    | `invalid_sql`, `not_allowed`, `too_complex`, `query_failed`, `invalid_json`, `bad_request` | the request or its SQL |
//! | 401    | `unauthorized`                         | no key, unknown key                           |
//! | 403    | `forbidden`                            | a write key                                   |
//! | 406    | `not_acceptable`                       | no `Accept`ed format is available             |
//! | 413    | `too_large`                            | body over 1 MiB                               |
//! | 415    | `unsupported_media_type`               | body not JSON                                 |
//! | 500    | `internal`                             | storage failure or bug                        |
//! | 503    | `catalog_unavailable`, `resources_exhausted` | retry later                             |
//! | 504    | `timeout`                              | the query ran past `query.timeout`            |
//!
//! A timeout is 504, not 408: 408 tells a client it was too slow *sending* its request, while
//! here the request arrived whole and the work behind the endpoint did not finish in time,
//! which is what 504 says to clients and proxies alike.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tributary_collector::auth::presented_key;
use tributary_collector::body::{BodyReadError, read_limited};
use tributary_collector::keys::{KeyStore, Role};

use crate::engine::{QueryEngine, QueryOutput};
use crate::error::QueryError;
use crate::format::Format;
use crate::scope::Scope;
use crate::telemetry;

/// Largest request body read, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Rows in the answer.
pub const ROWS_HEADER: &str = "x-tributary-rows";
/// `true` when rows past the limit were dropped.
pub const TRUNCATED_HEADER: &str = "x-tributary-truncated";
/// Files the query read.
pub const FILES_SCANNED_HEADER: &str = "x-tributary-files-scanned";
/// Files the catalog listed for the query before pruning.
pub const FILES_LISTED_HEADER: &str = "x-tributary-files-listed";

struct QueryApi {
    engine: Arc<QueryEngine>,
    keys: Arc<KeyStore>,
}

/// The query API: `POST /v1/query`.
pub fn router(engine: Arc<QueryEngine>, keys: Arc<KeyStore>) -> Router {
    Router::new()
        .route("/v1/query", post(query))
        .with_state(Arc::new(QueryApi { engine, keys }))
}

/// The JSON body of a query request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    /// One SQL statement.
    sql: String,
    /// Fewer rows than the server's limit, if wanted.
    #[serde(default)]
    max_rows: Option<usize>,
}

async fn query(State(api): State<Arc<QueryApi>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (response, rows) = match answer(&api, &headers, body).await {
        Ok((response, rows)) => (response, rows),
        Err(refusal) => (refusal.into_response(), 0),
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!(telemetry::REQUESTS, "status" => status).increment(1);
    metrics::histogram!(telemetry::DURATION).record(started.elapsed().as_secs_f64());
    metrics::counter!(telemetry::ROWS).increment(rows as u64);
    response
}

async fn answer(
    api: &QueryApi,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Response, usize), Refusal> {
    let scope = authorize(&api.keys, headers)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept).map_err(Refusal::NotAcceptable)?;
    check_content_type(headers)?;
    let bytes = read_limited(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| match error {
            BodyReadError::TooLarge { .. } => Refusal::TooLarge,
            // `read_limited` sets no deadline, so `TimedOut` does not happen here.
            BodyReadError::Unreadable(_) | BodyReadError::TimedOut { .. } => {
                Refusal::BadRequest(error.to_string())
            }
        })?;
    let request: QueryRequest =
        serde_json::from_slice(&bytes).map_err(|error| Refusal::InvalidJson(error.to_string()))?;
    if request.sql.trim().is_empty() {
        return Err(Refusal::BadRequest("\"sql\" is empty".into()));
    }
    let max_rows = request.max_rows.unwrap_or(api.engine.config().max_rows);
    let output = api
        .engine
        .execute_with_limit(&request.sql, scope.clone(), max_rows)
        .await?;
    tracing::debug!(
        %scope,
        rows = output.rows,
        truncated = output.truncated,
        files_scanned = output.scan.files_scanned,
        elapsed_ms = output.elapsed.as_millis() as u64,
        "query answered"
    );
    metrics::counter!(telemetry::FILES_SCANNED).increment(output.scan.files_scanned);
    let rows = output.rows;
    Ok((respond(format, &output)?, rows))
}

/// The scope of the presented key: 401 without a known key, 403 for a write-only key.
fn authorize(keys: &KeyStore, headers: &HeaderMap) -> Result<Scope, Refusal> {
    // Keys in the URL (`?key=`) are not taken here: a read key must not end up in access logs.
    let Some(key) = presented_key(headers, None).filter(|key| !key.is_empty()) else {
        return Err(Refusal::Unauthorized(
            "missing key: send Authorization: Bearer <read or admin key>".into(),
        ));
    };
    let Some(record) = keys.authenticate(&key) else {
        return Err(Refusal::Unauthorized("unknown key".into()));
    };
    match record.role {
        Role::Admin => Ok(Scope::All),
        Role::Read => Ok(Scope::Tenant(record.tenant.clone())),
        Role::Write => Err(Refusal::Forbidden(format!(
            "key {} is a write key; queries need a read or admin key",
            record.id
        ))),
    }
}

/// The body must be JSON (`application/json`, `application/*+json`, or no content type).
fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        return Ok(());
    }
    Err(Refusal::UnsupportedMediaType(format!(
        "content type {media:?} is not accepted; send application/json"
    )))
}

fn respond(format: Format, output: &QueryOutput) -> Result<Response, Refusal> {
    let body = format
        .encode(&output.schema, &output.batches)
        .map_err(|error| {
            Refusal::Query(QueryError::Internal(format!(
                "encoding the answer: {error}"
            )))
        })?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        HeaderName::from_static(ROWS_HEADER),
        HeaderValue::from(output.rows),
    );
    headers.insert(
        HeaderName::from_static(TRUNCATED_HEADER),
        HeaderValue::from_static(if output.truncated { "true" } else { "false" }),
    );
    headers.insert(
        HeaderName::from_static(FILES_SCANNED_HEADER),
        HeaderValue::from(output.scan.files_scanned),
    );
    headers.insert(
        HeaderName::from_static(FILES_LISTED_HEADER),
        HeaderValue::from(output.scan.files_listed),
    );
    Ok(response)
}

/// Why a request got no rows; the one place such answers are made.
#[derive(Debug)]
enum Refusal {
    Unauthorized(String),
    Forbidden(String),
    NotAcceptable(String),
    UnsupportedMediaType(String),
    TooLarge,
    InvalidJson(String),
    BadRequest(String),
    Query(QueryError),
}

impl From<QueryError> for Refusal {
    fn from(error: QueryError) -> Self {
        Refusal::Query(error)
    }
}

/// The JSON body of every error answer (the ingest API's shape).
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Refusal::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::InvalidJson(_) | Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Query(error) => match error {
                QueryError::InvalidSql(_)
                | QueryError::NotAllowed(_)
                | QueryError::TooComplex(_)
                | QueryError::Execution(_) => StatusCode::BAD_REQUEST,
                QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                QueryError::ResourcesExhausted(_) | QueryError::Catalog(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                QueryError::Schema { .. } | QueryError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::NotAcceptable(_) => "not_acceptable",
            Refusal::UnsupportedMediaType(_) => "unsupported_media_type",
            Refusal::TooLarge => "too_large",
            Refusal::InvalidJson(_) => "invalid_json",
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Query(error) => error.code(),
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Unauthorized(message)
            | Refusal::Forbidden(message)
            | Refusal::NotAcceptable(message)
            | Refusal::UnsupportedMediaType(message)
            | Refusal::BadRequest(message) => message.clone(),
            Refusal::TooLarge => {
                format!("request body is over the limit of {MAX_BODY_BYTES} bytes")
            }
            Refusal::InvalidJson(message) => format!(
                "body is not a query request ({message}); send {{\"sql\": \"…\", \"max_rows\": n}}"
            ),
            Refusal::Query(error) => error.to_string(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %message, "query failed");
        } else {
            tracing::debug!(code = self.code(), error = %message, "query refused");
        }
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: self.code(),
                message,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tributary\""),
            );
        }
        response
    }
}
