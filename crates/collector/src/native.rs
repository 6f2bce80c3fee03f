//! `POST /v1/events`: Tributary's own API — a JSON array (or NDJSON) of events in the
//! DESIGN.md envelope.
//!
//! ```json
//! [{"event_type":"page","anonymous_id":"6f1c…","session_id":"s-1","ts":"2026-11-23T10:00:00Z",
//!   "context":{"page":{"url":"https://shop.example/","title":"Home"}},"properties":{}}]
//! ```
//!
//! `tenant_id`, `received_at` and `event_family` are set by the server; a value sent for them
//! is ignored (a tenant in the body is never trusted). Unknown top-level fields are refused by
//! name, so a typo (`timestamp` for `ts`) is an error instead of a silently lost value.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tributary_model::{EventContext, TimestampMicros};

use crate::Collector;
use crate::body::split_events;
use crate::edge::{self, EdgeEvent, RequestMeta};
use crate::error::{ApiError, Rejection};
use crate::ingest;
use crate::request;
use crate::shape::{self, ShapeError};

/// The answer to an ingest request that made at least one event durable.
#[derive(Debug, Serialize, PartialEq)]
pub struct IngestResponse {
    /// Events made durable.
    pub accepted: usize,
    /// Events refused, each with its index and reason. Empty when all were accepted.
    pub rejected: Vec<Rejection>,
}

/// An event as a native producer sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeEvent {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    anonymous_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    event_type: String,
    #[serde(default)]
    ts: Option<TimeValue>,
    #[serde(default)]
    sent_at: Option<TimeValue>,
    #[serde(default)]
    context: Option<EventContext>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    // Set by the server; accepted so that events read back from the lake can be re-sent.
    #[serde(default, rename = "tenant_id")]
    _tenant_id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "received_at")]
    _received_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "event_family")]
    _event_family: Option<serde::de::IgnoredAny>,
}

/// A time as RFC 3339 text or integer microseconds since the epoch.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TimeValue {
    Micros(i64),
    Text(String),
}

impl TimeValue {
    fn micros(&self, field: &'static str) -> Result<TimestampMicros, (&'static str, String)> {
        match self {
            TimeValue::Micros(us) => Ok(*us),
            TimeValue::Text(text) => edge::parse_rfc3339(text).ok_or((
                field,
                format!("{field} {text:?} is not an RFC 3339 time or integer microseconds"),
            )),
        }
    }
}

/// `POST /v1/events`.
pub async fn events(
    State(collector): State<Arc<Collector>>,
    request: Request,
) -> Result<Json<IngestResponse>, ApiError> {
    let request = request::read(&collector, "native", request, request::no_body_key).await?;
    let raw_events = split_events(&request.body)?;
    let config = &collector.config;
    if raw_events.len() > config.max_events_per_batch {
        return Err(ApiError::TooLarge {
            limit: "max_events_per_batch",
            value: config.max_events_per_batch,
            message: format!(
                "the batch has {} events, over the limit of {} (max_events_per_batch)",
                raw_events.len(),
                config.max_events_per_batch
            ),
        });
    }
    let mut records = Vec::with_capacity(raw_events.len());
    let mut rejected = Vec::new();
    for (index, raw) in raw_events.into_iter().enumerate() {
        let outcome = raw
            .map_err(|e| Rejection {
                index,
                reason: "invalid_json",
                field: None,
                message: e.to_string(),
            })
            .and_then(|raw| parse_event(index, raw, &collector, &request.meta))
            .and_then(|event| ingest::event_record(&event).map_err(|e| internal(index, e)));
        match outcome {
            Ok(record) => records.push(record),
            Err(rejection) => rejected.push(rejection),
        }
    }
    ingest::count_rejections("native", &rejected);
    if records.is_empty() {
        return Err(ApiError::AllRejected(rejected));
    }
    let accepted = records.len();
    ingest::append(&collector, "native", &request.key, records).await?;
    Ok(Json(IngestResponse { accepted, rejected }))
}

/// Checks one raw event against the limits and the envelope, and applies the edge rules.
/// Shared by every API whose payloads are native events (the batch here, Kinesis' `Data`);
/// `index` is the event's position in its request, named in the rejection.
pub fn parse_event(
    index: usize,
    raw: &RawValue,
    collector: &Collector,
    meta: &RequestMeta,
) -> Result<tributary_model::Event, Rejection> {
    let config = &collector.config;
    let bytes = raw.get().as_bytes();
    check_limits(index, bytes, config)?;
    let native: NativeEvent = serde_json::from_str(raw.get()).map_err(|e| Rejection {
        index,
        reason: "invalid",
        field: field_of_serde_error(&e),
        message: format!("event {index}: {e}"),
    })?;
    let time = |value: &Option<TimeValue>, field| {
        value
            .as_ref()
            .map(|v| v.micros(field))
            .transpose()
            .map_err(|(field, message)| Rejection {
                index,
                reason: "invalid",
                field: Some(field.to_string()),
                message: format!("event {index}: {message}"),
            })
    };
    let event = EdgeEvent {
        event_id: native.event_id,
        anonymous_id: native.anonymous_id,
        user_id: native.user_id,
        session_id: native.session_id,
        event_type: native.event_type,
        timestamp: time(&native.ts, "ts")?,
        sent_at: time(&native.sent_at, "sent_at")?,
        context: native.context.unwrap_or_default(),
        properties: native.properties.unwrap_or_default(),
    };
    edge::finish(event, bytes, meta).map_err(|e| Rejection {
        index,
        reason: e.reason,
        field: Some(e.field.to_string()),
        message: format!("event {index}: {}", e.message),
    })
}

/// The per-event limits shared by every JSON API: size, nesting depth, string length.
pub fn check_limits(
    index: usize,
    bytes: &[u8],
    config: &crate::CollectorConfig,
) -> Result<(), Rejection> {
    if bytes.len() > config.max_event_bytes {
        return Err(Rejection {
            index,
            reason: "too_large",
            field: None,
            message: format!(
                "event {index} is {} bytes, over the limit of {} (max_event_bytes)",
                bytes.len(),
                config.max_event_bytes
            ),
        });
    }
    shape::check(bytes, config.max_json_depth, config.max_string_bytes).map_err(|e| {
        let message = match e {
            ShapeError::TooDeep { limit } => {
                format!("event {index} nests deeper than {limit} levels (max_json_depth)")
            }
            ShapeError::StringTooLong { limit, length } => format!(
                "event {index} has a string of {length} bytes, over the limit of {limit} \
                 (max_string_bytes)"
            ),
        };
        Rejection {
            index,
            reason: "too_large",
            field: None,
            message,
        }
    })
}

/// serde_json names the field in messages like "missing field `event_type`"; pull it out.
pub fn field_of_serde_error(error: &serde_json::Error) -> Option<String> {
    let text = error.to_string();
    let start = text.find('`')? + 1;
    let end = start + text[start..].find('`')?;
    Some(text[start..end].to_string())
}

fn internal(index: usize, error: ApiError) -> Rejection {
    Rejection {
        index,
        reason: "internal",
        field: None,
        message: error.to_string(),
    }
}
