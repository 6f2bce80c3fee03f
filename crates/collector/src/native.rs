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

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use serde_json::value::RawValue;
use tributary_model::{EventContext, TimestampMicros};

use crate::Collector;
use crate::body::split_events;
use crate::edge::{self, EdgeEvent, RawContext, RequestMeta};
use crate::error::{ApiError, Rejection};
use crate::ingest;
use crate::request;
use crate::shape::{self, ShapeError};
use crate::stored::StoredEvent;

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
struct NativeEvent<'a> {
    // Borrowed from the body when the text has no escapes: no copy per field. (serde's
    // `borrow` alone does not reach through an `Option`: it allocated a `String` per field.)
    #[serde(default, borrow, deserialize_with = "optional_text")]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_text")]
    anonymous_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_text")]
    user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_text")]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, deserialize_with = "time_ts")]
    ts: Option<TimestampMicros>,
    #[serde(default, deserialize_with = "time_sent_at")]
    sent_at: Option<TimestampMicros>,
    // Kept as sent (after a shape check) rather than parsed into maps and written back.
    #[serde(default, borrow)]
    context: Option<&'a RawValue>,
    #[serde(default, borrow)]
    properties: Option<&'a RawValue>,
    // Set by the server; accepted so that events read back from the lake can be re-sent.
    #[serde(default, rename = "tenant_id")]
    _tenant_id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "received_at")]
    _received_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "event_family")]
    _event_family: Option<serde::de::IgnoredAny>,
}

/// The typed members of a context, checked for their types without building the rest
/// (unknown members are skipped, and kept as sent in the raw object).
// Members are deserialized to check their types; only `ip` and `user_agent` are read after.
#[allow(dead_code)]
#[derive(Deserialize)]
struct ContextShape {
    #[serde(default)]
    page: Option<PageShape>,
    // Present even as `null`: the edge must not add a second `ip` / `user_agent` member.
    #[serde(default)]
    user_agent: Present,
    #[serde(default)]
    ip: Present,
    #[serde(default)]
    locale: Option<IsText>,
    #[serde(default)]
    campaign: Option<CampaignShape>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct PageShape {
    #[serde(default)]
    url: Option<IsText>,
    #[serde(default)]
    path: Option<IsText>,
    #[serde(default)]
    title: Option<IsText>,
    #[serde(default)]
    referrer: Option<IsText>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct CampaignShape {
    #[serde(default)]
    source: Option<IsText>,
    #[serde(default)]
    medium: Option<IsText>,
    #[serde(default)]
    name: Option<IsText>,
    #[serde(default)]
    term: Option<IsText>,
    #[serde(default)]
    content: Option<IsText>,
}

/// Whether an optional text member was there at all (as a string or `null`); checks its type.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<IsText>::deserialize(deserializer)?;
        Ok(Present(true))
    }
}

/// A member that must be text, checked without keeping (or copying) it.
struct IsText;

impl<'de> Deserialize<'de> for IsText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(|_| IsText)
    }
}

/// Text borrowed from the request when it has no escapes, copied only when it has.
fn optional_text<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text<'a>(Cow<'a, str>);
    impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(TextVisitor).map(Text)
        }
    }
    Ok(Option::<Text<'a>>::deserialize(deserializer)?.map(|text| text.0))
}

/// Reads a string as [`Cow::Borrowed`] when the deserializer can lend it.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

fn time_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimestampMicros>, D::Error> {
    d.deserialize_any(TimeVisitor { field: "ts" })
}

fn time_sent_at<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimestampMicros>, D::Error> {
    d.deserialize_any(TimeVisitor { field: "sent_at" })
}

/// A time as RFC 3339 text or integer microseconds since the epoch, parsed in one step (an
/// untagged enum would build and throw away an error for every text time).
struct TimeVisitor {
    field: &'static str,
}

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = Option<TimestampMicros>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "`{}` as an RFC 3339 time or integer microseconds",
            self.field
        )
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("`{}` {v} is out of range", self.field)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        edge::parse_rfc3339(v).map(Some).ok_or_else(|| {
            E::custom(format!(
                "`{}` {v:?} is not an RFC 3339 time or integer microseconds",
                self.field
            ))
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `POST /v1/events`.
pub async fn events(
    State(collector): State<Arc<Collector>>,
    request: Request,
) -> Result<Json<IngestResponse>, ApiError> {
    let request = request::read(&collector, "native", request, None).await?;
    let config = &collector.config;
    let events: Vec<Result<StoredEvent, Rejection>> =
        match parse_array_in_one_pass(&request.body, config.max_events_per_batch) {
            // The common batch: every element parsed; only the limits and edge rules remain.
            Some(events) => events
                .into_iter()
                .enumerate()
                .map(|(index, (bytes, native))| {
                    check_limits(index, bytes, config)
                        .and_then(|()| finish_event(index, bytes, native, &request.meta))
                })
                .collect(),
            None => {
                let raw_events = split_events(&request.body)?;
                if raw_events.len() > config.max_events_per_batch {
                    return Err(ApiError::too_many_events(
                        raw_events.len(),
                        config.max_events_per_batch,
                        "events",
                    ));
                }
                raw_events
                    .into_iter()
                    .enumerate()
                    .map(|(index, raw)| {
                        raw.map_err(|e| Rejection {
                            index,
                            reason: "invalid_json",
                            field: None,
                            message: e.to_string(),
                        })
                        .and_then(|raw| parse_event(index, raw, &collector, &request.meta))
                    })
                    .collect()
            }
        };
    let mut records = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        match event.and_then(|event| ingest::event_record(&event).map_err(|e| internal(index, e))) {
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
pub fn parse_event<'a>(
    index: usize,
    raw: &'a RawValue,
    collector: &Collector,
    meta: &'a RequestMeta,
) -> Result<StoredEvent<'a>, Rejection> {
    let config = &collector.config;
    let bytes = raw.get().as_bytes();
    check_limits(index, bytes, config)?;
    let native: NativeEvent = serde_json::from_str(raw.get())
        .map_err(|e| invalid(index, e, "", error_path::<NativeEvent>(raw.get())))?;
    finish_event(index, bytes, native, meta)
}

/// Checks a parsed event's context and properties and applies the edge rules; `bytes` is the
/// event's JSON as sent (hashed into the event id when the producer sent none).
fn finish_event<'a>(
    index: usize,
    bytes: &[u8],
    native: NativeEvent<'a>,
    meta: &'a RequestMeta,
) -> Result<StoredEvent<'a>, Rejection> {
    let raw_context = match native.context {
        Some(json) if json.get() != "null" => {
            if !json.get().starts_with('{') {
                return Err(not_an_object(index, "context"));
            }
            let shape: ContextShape = serde_json::from_str(json.get()).map_err(|e| {
                invalid(index, e, "context.", error_path::<ContextShape>(json.get()))
            })?;
            Some(RawContext {
                has_ip: shape.ip.0,
                has_user_agent: shape.user_agent.0,
                json,
            })
        }
        _ => None,
    };
    let raw_properties = match native.properties {
        Some(json) if json.get() != "null" => {
            if !json.get().starts_with('{') {
                return Err(not_an_object(index, "properties"));
            }
            Some(json)
        }
        _ => None,
    };
    let event = EdgeEvent {
        event_id: native.event_id,
        anonymous_id: native.anonymous_id,
        user_id: native.user_id,
        session_id: native.session_id,
        event_type: native.event_type,
        timestamp: native.ts,
        sent_at: native.sent_at,
        context: EventContext::default(),
        properties: Map::new(),
        raw_context,
        raw_properties,
    };
    edge::finish(event, bytes, meta).map_err(|e| Rejection {
        index,
        reason: e.reason,
        field: Some(e.field.to_string()),
        message: format!("event {index}: {}", e.message),
    })
}

/// The rejection for JSON that does not deserialize as its type. The fast parse does not track
/// where it is, so `field` comes from parsing again (`error_path`) or from serde's message.
fn invalid(index: usize, e: serde_json::Error, prefix: &str, field: Option<String>) -> Rejection {
    let field = field.or_else(|| field_of_serde_error(&e));
    let at = field
        .as_deref()
        .map(|f| format!("{prefix}{f}"))
        .unwrap_or_else(|| prefix.trim_end_matches('.').to_string());
    Rejection {
        index,
        reason: "invalid",
        field: (!at.is_empty()).then(|| at.clone()),
        message: if at.is_empty() {
            format!("event {index}: {}", crate::error::json_message(&e))
        } else {
            format!("event {index}: `{at}`: {}", crate::error::json_message(&e))
        },
    }
}

/// The common batch in one parse: a JSON array of at most `max_events` elements that all
/// deserialize as native events, each with its JSON text. `None` when anything is off (not an
/// array, an element that does not parse, too many elements, bytes after the array): the
/// caller then splits the batch first and parses event by event, which names each problem.
/// Splitting first costs a second scan of every byte, which was a tenth of the server's time.
fn parse_array_in_one_pass(
    body: &[u8],
    max_events: usize,
) -> Option<Vec<(&[u8], NativeEvent<'_>)>> {
    // Checked once for the whole body (what splitting did per event), so each element can be
    // read as text without checking its strings again.
    let text = std::str::from_utf8(body).ok()?;
    let skip_whitespace = |from: usize| {
        body.get(from..)
            .and_then(|rest| rest.iter().position(|b| !b.is_ascii_whitespace()))
            .map_or(body.len(), |n| from + n)
    };
    let mut at = skip_whitespace(0);
    if body.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_whitespace(at + 1);
    let mut events = Vec::with_capacity(max_events.min(body.len() / 64 + 1));
    loop {
        if events.len() == max_events {
            return None;
        }
        let mut parser = serde_json::Deserializer::from_str(text.get(at..)?).into_iter();
        let event: NativeEvent = parser.next()?.ok()?;
        let end = at + parser.byte_offset();
        events.push((body.get(at..end)?, event));
        at = skip_whitespace(end);
        match body.get(at)? {
            b',' => at = skip_whitespace(at + 1),
            b']' => break,
            _ => return None,
        }
    }
    (skip_whitespace(at + 1) == body.len()).then_some(events)
}

fn not_an_object(index: usize, field: &str) -> Rejection {
    Rejection {
        index,
        reason: "invalid",
        field: Some(field.to_string()),
        message: format!("event {index}: `{field}` must be a JSON object"),
    }
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
    shape::check(bytes, config.max_json_depth, config.max_string_bytes).map_err(|e| match e {
        ShapeError::TooDeep { limit } => Rejection {
            index,
            reason: "too_large",
            field: None,
            message: format!("event {index} nests deeper than {limit} levels (max_json_depth)"),
        },
        ShapeError::StringTooLong { limit, length } => Rejection {
            index,
            reason: "too_large",
            field: None,
            message: format!(
                "event {index} has a string of {length} bytes, over the limit of {limit} \
                 (max_string_bytes)"
            ),
        },
        ShapeError::LoneSurrogate { offset } => lone_surrogate(index, bytes, offset),
    })
}

/// The rejection of an event with a lone surrogate escape at `offset`, naming the member that
/// holds it (found by decoding the event as plain JSON, which fails there; only on this path).
fn lone_surrogate(index: usize, bytes: &[u8], offset: usize) -> Rejection {
    let field = std::str::from_utf8(bytes)
        .ok()
        .and_then(error_path::<serde_json::Value>);
    let escape = bytes
        .get(offset..offset + 6)
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let place = field.as_deref().map_or_else(
        || format!("at byte {offset}"),
        |field| format!("in `{field}`"),
    );
    Rejection {
        index,
        reason: "invalid_json",
        message: format!(
            "event {index}: the escape `{escape}` {place} is half of a UTF-16 surrogate pair \
             without the other half, so it is not a character; send the character itself \
             (UTF-8) or both halves"
        ),
        field,
    }
}

/// serde_json names the field in messages like "missing field `event_type`" and "unknown field
/// `timestamp`" (and our own time errors start with the field); pull it out. Other messages
/// ("invalid type: integer `5`") quote a value, not a field, and give `None`.
pub fn field_of_serde_error(error: &serde_json::Error) -> Option<String> {
    let text = error.to_string();
    let rest = text
        .strip_prefix("missing field `")
        .or_else(|| text.strip_prefix("unknown field `"))
        .or_else(|| text.strip_prefix('`'))?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

/// The dotted path of the member a deserialization of `json` as `T` fails at, if any.
fn error_path<'de, T: Deserialize<'de>>(json: &'de str) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => None,
        Err(e) => {
            let path = e.path().to_string();
            (path != ".").then_some(path)
        }
    }
}

fn internal(index: usize, error: ApiError) -> Rejection {
    Rejection {
        index,
        reason: "internal",
        field: None,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the per-event path makes of a body: each element's text, when all parse as events.
    fn split_then_parse(body: &[u8], max_events: usize) -> Option<Vec<String>> {
        let raws = split_events(body).ok()?;
        if raws.len() > max_events || !body.trim_ascii_start().starts_with(b"[") {
            return None;
        }
        raws.into_iter()
            .map(|raw| {
                let raw = raw.ok()?;
                serde_json::from_str::<NativeEvent>(raw.get()).ok()?;
                Some(raw.get().to_string())
            })
            .collect()
    }

    fn one_pass(body: &[u8], max_events: usize) -> Option<Vec<String>> {
        parse_array_in_one_pass(body, max_events).map(|events| {
            events
                .into_iter()
                .map(|(bytes, _)| String::from_utf8_lossy(bytes).into_owned())
                .collect()
        })
    }

    #[test]
    fn a_clean_array_is_read_in_one_pass_with_each_events_text() {
        let body = br#" [ {"event_type":"page","anonymous_id":"a"} ,
            {"event_type":"track:X","user_id":"u\"q","properties":{"n":[1,2]}}]
        "#;
        let events = parse_array_in_one_pass(body, 500).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, br#"{"event_type":"page","anonymous_id":"a"}"#);
        assert_eq!(events[1].1.user_id.as_deref(), Some("u\"q"));
    }

    #[test]
    fn ids_borrow_from_the_body_unless_escaped() {
        let event: NativeEvent = serde_json::from_str(
            r#"{"event_type":"page","anonymous_id":"a-1","user_id":"u\u0031","session_id":null}"#,
        )
        .unwrap();
        assert!(matches!(event.anonymous_id, Some(Cow::Borrowed("a-1"))));
        assert!(matches!(event.user_id, Some(Cow::Owned(ref id)) if id == "u1"));
        assert!(event.session_id.is_none());
        let wrong = serde_json::from_str::<NativeEvent>(r#"{"event_type":"page","user_id":5}"#);
        assert!(wrong.unwrap_err().to_string().contains("expected a string"));
    }

    #[test]
    fn anything_unusual_is_left_to_the_per_event_path() {
        for body in [
            &b"[]"[..],
            b"{\"event_type\":\"page\"}",
            b"[{\"event_type\":\"page\"},]",
            b"[{\"event_type\":\"page\"}] x",
            b"[{\"event_type\":5}]",
            b"[{\"event_type\":\"page\",\"oops\":1}]",
            b"[{\"event_type\":\"page\",\"tenant_id\":\"\xff\"}]",
            b"[{\"event_type\":\"page\"}",
        ] {
            assert!(
                parse_array_in_one_pass(body, 500).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let two = br#"[{"event_type":"a"},{"event_type":"b"}]"#;
        assert!(parse_array_in_one_pass(two, 1).is_none(), "over max_events");
        assert!(parse_array_in_one_pass(two, 2).is_some());
    }

    fn element() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => ("[a-z:]{0,8}", proptest::option::of("[a-z\"\\\\é]{0,6}"), any::<bool>()).prop_map(
                |(event_type, user, with_context)| {
                    let mut object = serde_json::json!({ "event_type": event_type });
                    if let Some(user) = user {
                        object["user_id"] = user.into();
                    }
                    if with_context {
                        object["context"] = serde_json::json!({"page": {"url": "u"}, "x": [1]});
                    }
                    object.to_string()
                }
            ),
            1 => Just(r#"{"event_type":1}"#.to_string()),
            1 => Just(r#"{"unknown":"x"}"#.to_string()),
            1 => Just("{oops".to_string()),
            1 => Just("7".to_string()),
        ]
    }

    proptest! {
        /// The one-pass reader accepts exactly the batches the per-event path parses without a
        /// problem, and finds the same text for every event.
        #[test]
        fn one_pass_agrees_with_splitting_first(
            elements in proptest::collection::vec(element(), 0..6),
            spaces in proptest::collection::vec("[ \n\t]{0,2}", 8),
            max_events in 1usize..6,
        ) {
            let mut body = format!("{}[{}", spaces[0], spaces[1]);
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    body.push_str(&spaces[2 + i % 3]);
                    body.push(',');
                    body.push_str(&spaces[5]);
                }
                body.push_str(element);
            }
            body.push_str(&spaces[6]);
            body.push(']');
            body.push_str(&spaces[7]);
            prop_assert_eq!(
                one_pass(body.as_bytes(), max_events),
                split_then_parse(body.as_bytes(), max_events)
            );
        }
    }
}
