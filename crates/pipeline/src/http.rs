//! The schema registry over HTTP.
//!
//! ```text
//! GET  /v1/schemas                 every version of every event schema   (read or admin key)
//! POST /v1/schemas                 add a version                          (admin key)
//!      {"event_type": "track:Order Completed", "schema": {…}, "force": false}
//! ```
//!
//! `POST` answers 201 with the recorded version (200 when the same schema was already in
//! force), 409 `incompatible` with `breaks` (each change that breaks, by JSON pointer) when the
//! new version is not backward compatible and `force` is false, 400 `invalid_schema` when it is
//! not a JSON Schema. A new version applies to the running pipeline at once. Errors are JSON,
//! `{"error": "<code>", "message": "<sentence>"}`, like the other APIs.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_catalog::Catalog;
use tributary_collector::auth::presented_key;
use tributary_collector::body::{BodyReadError, read_limited};
use tributary_collector::keys::{KeyStore, Role};

use crate::error::PipelineError;
use crate::registry::{SharedRegistry, add_schema};

/// Largest request body accepted (a schema is small).
const MAX_BODY_BYTES: usize = 1 << 20;

struct SchemaApi {
    catalog: Arc<dyn Catalog>,
    keys: Arc<KeyStore>,
    /// The running pipeline's registry, published to after an add.
    registry: Option<SharedRegistry>,
}

/// The schema API: `GET` and `POST /v1/schemas`.
pub fn router(
    catalog: Arc<dyn Catalog>,
    keys: Arc<KeyStore>,
    registry: Option<SharedRegistry>,
) -> Router {
    Router::new()
        .route("/v1/schemas", get(list).post(add))
        .with_state(Arc::new(SchemaApi {
            catalog,
            keys,
            registry,
        }))
}

/// The body of `POST /v1/schemas`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    event_type: String,
    schema: Value,
    #[serde(default)]
    force: bool,
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

/// A 401 that says, as HTTP asks, how to authenticate: a bearer key.
fn unauthorized(message: &str) -> Response {
    let mut response = refuse(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tributary\""),
    );
    response
}

/// The role of the presented key, or why there is none (answered 401).
fn role(keys: &KeyStore, headers: &HeaderMap) -> Result<Role, &'static str> {
    let Some(key) = presented_key(headers, None).filter(|key| !key.is_empty()) else {
        return Err("missing key: send Authorization: Bearer <admin key>");
    };
    keys.authenticate(&key)
        .map(|record| record.role)
        .ok_or("unknown key")
}

async fn list(State(api): State<Arc<SchemaApi>>, headers: HeaderMap) -> Response {
    match role(&api.keys, &headers) {
        Ok(Role::Admin | Role::Read) => {}
        Ok(Role::Write) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a write key cannot read schemas; use a read or admin key",
            );
        }
        Err(message) => return unauthorized(message),
    }
    match api.catalog.event_schemas().await {
        Ok(schemas) => axum::Json(json!({ "schemas": schemas })).into_response(),
        Err(error) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_unavailable",
            error.to_string(),
        ),
    }
}

async fn add(State(api): State<Arc<SchemaApi>>, headers: HeaderMap, body: Body) -> Response {
    match role(&api.keys, &headers) {
        Ok(Role::Admin) => {}
        Ok(_) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "adding a schema needs an admin key",
            );
        }
        Err(message) => return unauthorized(message),
    }
    // Read here rather than by an extractor, so that a body over the limit gets this API's
    // JSON error, not a plain-text one.
    let body = match read_limited(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error @ BodyReadError::TooLarge { .. }) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                error.to_string(),
            );
        }
        // `read_limited` sets no deadline, so `TimedOut` does not happen here.
        Err(error @ (BodyReadError::Unreadable(_) | BodyReadError::TimedOut { .. })) => {
            return refuse(StatusCode::BAD_REQUEST, "invalid_json", error.to_string());
        }
    };
    let request: AddRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!(
                    "body is not a schema request ({error}); send {{\"event_type\": \"…\", \
                     \"schema\": {{…}}, \"force\": false}}"
                ),
            );
        }
    };
    let in_force_before = api
        .registry
        .as_ref()
        .and_then(|registry| {
            registry
                .snapshot()
                .types()
                .into_iter()
                .find(|(name, _)| *name == request.event_type)
        })
        .map(|(_, version)| version);
    match add_schema(
        api.catalog.as_ref(),
        &request.event_type,
        request.schema,
        request.force,
    )
    .await
    {
        Ok(recorded) => {
            if let Some(registry) = &api.registry
                && let Err(error) = registry.reload(api.catalog.as_ref()).await
            {
                tracing::error!(%error, "schema recorded but the registry could not reload");
            }
            let status = if in_force_before == Some(recorded.version) {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, axum::Json(recorded)).into_response()
        }
        Err(PipelineError::Incompatible {
            event_type,
            old_version,
            new_version,
            breaks,
        }) => {
            let message = format!(
                "schema for {event_type:?} version {new_version} is not backward compatible \
                 with version {old_version}; send \"force\": true to add it anyway"
            );
            (
                StatusCode::CONFLICT,
                axum::Json(json!({"error": "incompatible", "message": message, "breaks": breaks})),
            )
                .into_response()
        }
        Err(error @ (PipelineError::InvalidSchema { .. } | PipelineError::Config(_))) => {
            refuse(StatusCode::BAD_REQUEST, "invalid_schema", error.to_string())
        }
        Err(error) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_unavailable",
            error.to_string(),
        ),
    }
}
