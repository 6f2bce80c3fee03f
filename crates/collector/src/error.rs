//! Every error the HTTP API answers, and the one place that turns them into responses.
//!
//! Client errors name what was wrong (the field, the event's index in the batch, the limit) and
//! are logged at debug level only; server-side failures are logged as errors.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a producer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that match no key.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key whose role does not allow this endpoint.
    #[error("{0}")]
    Forbidden(String),
    /// The body is not valid JSON (line and column are 1-based).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The request is well-formed JSON but not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// A limit was exceeded (answered as 413 for sizes of the whole request).
    #[error("{message}")]
    TooLarge {
        /// Which limit, e.g. `max_body_bytes`.
        limit: &'static str,
        /// Its value.
        value: usize,
        /// The full sentence.
        message: String,
    },
    /// The `Content-Type` or `Content-Encoding` is not one this endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The key's rate limit or the server's backlog bound was hit; retry after the given time.
    #[error("{message}")]
    TooManyRequests {
        /// Seconds to wait, sent as `Retry-After`.
        retry_after_secs: u64,
        /// Why.
        message: String,
    },
    /// The stream cannot persist: nothing of this request was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// The request's body did not arrive within `body_read_timeout`.
    #[error("{0}")]
    RequestTimeout(String),
    /// Every event of the batch was rejected; each with its index and reason.
    #[error("all {} events were rejected", .0.len())]
    AllRejected(Vec<Rejection>),
    /// A bug or an unexpected server-side failure.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why one event of a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The event's index in the request (0-based).
    pub index: usize,
    /// A machine-readable reason, e.g. `missing_field`, `too_large`, `invalid`.
    pub reason: &'static str,
    /// The field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The sentence for people.
    pub message: String,
}

/// The JSON body of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [Rejection]>,
}

impl ApiError {
    /// A batch of `count` events (or messages, as the API calls them) over
    /// `max_events_per_batch`.
    pub fn too_many_events(count: usize, limit: usize, noun: &str) -> ApiError {
        ApiError::TooLarge {
            limit: "max_events_per_batch",
            value: limit,
            message: format!(
                "the batch has {count} {noun}, over the limit of {limit} (max_events_per_batch)"
            ),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::InvalidJson { .. } | ApiError::BadRequest(_) | ApiError::AllRejected(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::AllRejected(_) => "all_rejected",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A JSON syntax error, with its position.
    pub fn from_json(error: &serde_json::Error) -> ApiError {
        ApiError::InvalidJson {
            line: error.line(),
            column: error.column(),
            message: json_message(error),
        }
    }
}

/// serde_json's message without its trailing " at line L column C", which `InvalidJson` states
/// itself.
pub fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_string(),
        None => text,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
            limit: match &self {
                ApiError::TooLarge { limit, .. } => Some(limit),
                _ => None,
            },
            rejected: match &self {
                ApiError::AllRejected(rejected) => Some(rejected),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let ApiError::Unauthorized(_) = &self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tributary\""),
            );
        }
        response
    }
}
