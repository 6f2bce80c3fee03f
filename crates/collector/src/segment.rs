//! Segment's HTTP Tracking API, so that Segment's own client libraries (analytics-python,
//! analytics-node, analytics.js, …) send to Tributary when their host points here.
//!
//! ```text
//! POST /v1/track    /v1/identify    /v1/page    /v1/screen    /v1/group    /v1/alias
//! POST /v1/t        /v1/i           /v1/p       /v1/s         /v1/g        /v1/a     (analytics.js)
//! POST /v1/batch    /v1/b (analytics.js)        {"batch":[{"type":"track",…},…],"sentAt":…,
//!                                                "context":{…},"integrations":{…},"writeKey":…}
//! ```
//!
//! The write key comes as Basic auth (user name = key, empty password), as `?writeKey=` /
//! `?key=`, or as a top-level `writeKey` in the body (analytics.js sends it there, with a
//! `text/plain` body to avoid a CORS preflight).
//!
//! Each message becomes one [`EdgeEvent`]:
//!
//! | Segment | event |
//! |---|---|
//! | `type` (the endpoint, or the batch item's `type`) | `event_type`: `track:<event>`, `page`, `screen`, `identify`, `group`, `alias` |
//! | `messageId` | `event_id` |
//! | `anonymousId`, `userId` (strings; numbers are taken as their text) | `anonymous_id`, `user_id` |
//! | `timestamp`, else `originalTimestamp` | event time |
//! | `sentAt` of the message, else of the batch | `sent_at`, for Segment's clock-skew correction |
//! | `context.sessionId`, else `properties.session_id` | `session_id` |
//! | `properties` | `properties` |
//! | `traits` (identify, group) | merged into `properties` — the model has one bag of fields |
//! | `name`, `category` (page, screen) | `properties.name`, `properties.category` |
//! | `groupId` (group, required) | `properties.group_id` |
//! | `previousId` (alias, required) | `properties.previous_id` |
//! | `context.page{url,path,title,referrer}`, `userAgent`, `ip`, `locale`, `campaign{source,medium,name,term,content}` | the typed `context` fields |
//! | every other `context` field (`library`, `device`, `os`, `app`, `screen`, `timezone`, `traits`, …) | `context.extra`, by name |
//! | `integrations` | `context.extra["integrations"]` |
//! | any other top-level field (`_metadata`, `channel`, `receivedAt`, …) | `context.extra`, by name |
//!
//! Nothing accepted is lost: leftovers of `context.page` / `context.campaign` (e.g.
//! `page.search`, `campaign.id`) stay in the page / campaign (their `extra`); a typed field
//! sent with a non-string value goes to `context.extra["page_extra"]` / `["campaign_extra"]`,
//! and a name that is already taken (or is one of the typed context fields) gets a `_1`, `_2`, …
//! suffix instead of replacing what is there. The only thing dropped is `writeKey`, a
//! credential; a message whose `writeKey` is not the request's key is refused. Batch-level
//! `context` and `integrations` apply to every message (the message's own fields win, key by
//! key); other batch-level fields describe the request, not the events, and are not kept.
//!
//! Segment answers `{"success": true}`; we answer 200 with
//! `{"success":true,"accepted":N,"rejected":[…]}` (the rejected messages' indexes and reasons)
//! when at least one message was made durable, and 400 when none was.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tributary_model::{Campaign, EventContext, PageContext, TimestampMicros};

use crate::Collector;
use crate::edge::{self, EdgeEvent};
use crate::error::{ApiError, Rejection};
use crate::ingest;
use crate::keys::{self, KeyRecord};
use crate::native::{check_limits, field_of_serde_error};
use crate::request::{self, IngestRequest};
use crate::stored::StoredEvent;

/// The metrics label of this API.
const API: &str = "segment";

/// The answer to a Segment request that made at least one message durable. Segment's clients
/// only look at the status and `success`; `accepted` and `rejected` are ours.
#[derive(Debug, Serialize, PartialEq)]
pub struct SegmentResponse {
    /// Always `true`: what Segment answers.
    pub success: bool,
    /// Messages made durable.
    pub accepted: usize,
    /// Messages refused, each with its index (0 for the single-message endpoints) and reason.
    pub rejected: Vec<Rejection>,
}

/// The result every Segment endpoint answers with.
pub type SegmentResult = Result<Json<SegmentResponse>, ApiError>;

/// `POST /v1/track` (analytics.js: `/v1/t`).
pub async fn track(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    single(&collector, request, Kind::Track).await
}

/// `POST /v1/identify` (analytics.js: `/v1/i`).
pub async fn identify(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    single(&collector, request, Kind::Identify).await
}

/// `POST /v1/page` (analytics.js: `/v1/p`).
pub async fn page(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    single(&collector, request, Kind::Page).await
}

/// `POST /v1/screen` (analytics.js: `/v1/s`).
pub async fn screen(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    single(&collector, request, Kind::Screen).await
}

/// `POST /v1/group` (analytics.js: `/v1/g`).
pub async fn group(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    single(&collector, request, Kind::Group).await
}

/// `POST /v1/alias` (analytics.js: `/v1/a`).
pub async fn alias(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    single(&collector, request, Kind::Alias).await
}

/// `POST /v1/batch` (analytics.js: `/v1/b`): `{"batch":[…]}`, each message with its `type`.
pub async fn batch(State(collector): State<Arc<Collector>>, request: Request) -> SegmentResult {
    let request = request::read(&collector, API, request, Some(body_write_key)).await?;
    let body: BatchBody<'_> = serde_json::from_slice(&request.body).map_err(|e| {
        if e.is_data() {
            ApiError::BadRequest(format!(
                "the body must be an object {{\"batch\":[…]}} of Segment messages: {e}"
            ))
        } else {
            ApiError::from_json(&e)
        }
    })?;
    let items = body.batch.unwrap_or_default();
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "the body has no message: send {\"batch\":[{\"type\":\"track\",…},…]}".into(),
        ));
    }
    let config = &collector.config;
    if items.len() > config.max_events_per_batch {
        return Err(ApiError::too_many_events(
            items.len(),
            config.max_events_per_batch,
            "messages",
        ));
    }
    let defaults = BatchDefaults {
        sent_at: batch_time(body.sent_at.as_ref())?,
        context: batch_object(body.context, "context", config)?,
        integrations: batch_object(body.integrations, "integrations", config)?,
    };
    let outcomes = items
        .iter()
        .enumerate()
        .map(|(index, raw)| message_event(index, raw, None, &defaults, &collector, &request))
        .collect();
    ingest_outcomes(&collector, &request, outcomes).await
}

/// A Segment message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "track" => Kind::Track,
            "identify" => Kind::Identify,
            "page" => Kind::Page,
            "screen" => Kind::Screen,
            "group" => Kind::Group,
            "alias" => Kind::Alias,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Track => "track",
            Kind::Identify => "identify",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Group => "group",
            Kind::Alias => "alias",
        }
    }
}

/// `/v1/batch`'s body. Only the fields that apply to the messages are read; `writeKey` was
/// read by [`body_write_key`], and anything else describes the request.
#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    integrations: Option<&'a RawValue>,
}

/// What a batch gives every message that does not say otherwise.
#[derive(Debug, Default)]
struct BatchDefaults {
    sent_at: Option<TimestampMicros>,
    context: Map<String, Value>,
    integrations: Map<String, Value>,
}

fn batch_time(value: Option<&Value>) -> Result<Option<TimestampMicros>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_time(text).map(Some).ok_or_else(|| {
            ApiError::BadRequest(format!("sentAt {text:?} is not an ISO 8601 time"))
        }),
        Some(other) => Err(ApiError::BadRequest(format!(
            "sentAt must be an ISO 8601 string, not {other}"
        ))),
    }
}

/// A batch-level object. It is copied into every message, so it must be within the per-event
/// limits itself: otherwise a large one would be multiplied by the number of messages.
fn batch_object(
    raw: Option<&RawValue>,
    field: &str,
    config: &crate::CollectorConfig,
) -> Result<Map<String, Value>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Map::new());
    };
    check_limits(0, raw.get().as_bytes(), config).map_err(|rejection| {
        ApiError::BadRequest(format!(
            "the batch's {field} is applied to every message and must be within the per-event \
             limits: {}",
            rejection.message
        ))
    })?;
    match serde_json::from_str(raw.get()) {
        Ok(Value::Null) => Ok(Map::new()),
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::BadRequest(format!(
            "the batch's {field} must be an object"
        ))),
    }
}

/// Finds a top-level `"writeKey"` string in a body, for requests without a key in a header or
/// the URL. serde skips every other field without building it, so this costs one scan.
fn body_write_key(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WithKey {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
    }
    serde_json::from_slice::<WithKey>(body).ok()?.write_key
}

/// One single-message endpoint: the body is the message, its type is the endpoint's.
async fn single(collector: &Collector, request: Request, kind: Kind) -> SegmentResult {
    let request = request::read(collector, API, request, Some(body_write_key)).await?;
    let raw: &RawValue = serde_json::from_slice(&request.body).map_err(|e| {
        if e.is_eof() && request.body.iter().all(u8::is_ascii_whitespace) {
            ApiError::BadRequest(format!(
                "the body is empty; send a Segment {} message",
                kind.name()
            ))
        } else {
            ApiError::from_json(&e)
        }
    })?;
    let outcome = message_event(
        0,
        raw,
        Some(kind),
        &BatchDefaults::default(),
        collector,
        &request,
    );
    ingest_outcomes(collector, &request, vec![outcome]).await
}

/// Makes the accepted messages durable in one append and answers with what was refused.
async fn ingest_outcomes(
    collector: &Collector,
    request: &IngestRequest,
    outcomes: Vec<Result<StoredEvent<'_>, Rejection>>,
) -> SegmentResult {
    let mut records = Vec::with_capacity(outcomes.len());
    let mut rejected = Vec::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let record = outcome.and_then(|event| {
            ingest::event_record(&event).map_err(|e| Rejection {
                index,
                reason: "internal",
                field: None,
                message: e.to_string(),
            })
        });
        match record {
            Ok(record) => records.push(record),
            Err(rejection) => rejected.push(rejection),
        }
    }
    ingest::count_rejections(API, &rejected);
    if records.is_empty() {
        return Err(ApiError::AllRejected(rejected));
    }
    let accepted = records.len();
    ingest::append(collector, API, &request.key, records).await?;
    Ok(Json(SegmentResponse {
        success: true,
        accepted,
        rejected,
    }))
}

/// Checks one raw message against the limits, maps it and applies the edge rules.
fn message_event<'a>(
    index: usize,
    raw: &RawValue,
    endpoint: Option<Kind>,
    defaults: &BatchDefaults,
    collector: &Collector,
    request: &'a IngestRequest,
) -> Result<StoredEvent<'a>, Rejection> {
    let bytes = raw.get().as_bytes();
    check_limits(index, bytes, &collector.config)?;
    let fields: Map<String, Value> = serde_json::from_str(raw.get()).map_err(|e| Rejection {
        index,
        reason: "invalid",
        field: field_of_serde_error(&e),
        message: format!("event {index} is not a Segment message (a JSON object): {e}"),
    })?;
    let (kind, event) = map_message(index, fields, endpoint, defaults, &request.key)?;
    edge::finish(event, bytes, &request.meta).map_err(|e| Rejection {
        index,
        reason: e.reason,
        field: Some(segment_field(e.field, kind).to_string()),
        message: format!("event {index}: {}", e.message),
    })
}

/// The Segment name of a field the edge rules refused, so producers see their own vocabulary.
fn segment_field(edge_field: &'static str, kind: Kind) -> &'static str {
    match edge_field {
        "anonymous_id" => "anonymousId",
        "user_id" => "userId",
        "event_id" => "messageId",
        "session_id" => "sessionId",
        "event_type" if kind == Kind::Track => "event",
        "event_type" => "type",
        other => other,
    }
}

/// One message's fields, taken out one by one so that what is left over can be kept.
struct Message<'k> {
    index: usize,
    kind: Kind,
    fields: Map<String, Value>,
    key: &'k KeyRecord,
}

impl Message<'_> {
    fn reject(&self, reason: &'static str, field: &str, message: String) -> Rejection {
        Rejection {
            index: self.index,
            reason,
            field: Some(field.to_string()),
            message: format!("event {}: {message}", self.index),
        }
    }

    fn missing(&self, field: &str) -> Rejection {
        let message = format!("a {} message needs {field}", self.kind.name());
        self.reject("missing_field", field, message)
    }

    /// An id: a string, or a number taken as its text (Segment's libraries stringify ids).
    fn take_id(&mut self, field: &str) -> Result<Option<String>, Rejection> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => id_text(&value)
                .map(Some)
                .ok_or_else(|| self.reject("invalid", field, format!("{field} must be a string"))),
        }
    }

    fn take_time(&mut self, field: &str) -> Result<Option<TimestampMicros>, Rejection> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => parse_time(&text).map(Some).ok_or_else(|| {
                let message = format!("{field} {text:?} is not an ISO 8601 time");
                self.reject("invalid", field, message)
            }),
            Some(_) => Err(self.reject(
                "invalid",
                field,
                format!("{field} must be an ISO 8601 string"),
            )),
        }
    }

    fn take_object(&mut self, field: &str) -> Result<Map<String, Value>, Rejection> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(_) => Err(self.reject("invalid", field, format!("{field} must be an object"))),
        }
    }
}

/// Maps one Segment message to an edge event (see the module docs for the table).
fn map_message(
    index: usize,
    mut fields: Map<String, Value>,
    endpoint: Option<Kind>,
    defaults: &BatchDefaults,
    key: &KeyRecord,
) -> Result<(Kind, EdgeEvent<'static>), Rejection> {
    let kind = message_kind(index, endpoint, fields.remove("type"))?;
    let mut message = Message {
        index,
        kind,
        fields,
        key,
    };
    check_write_key(&mut message)?;

    let event_id = message.take_id("messageId")?;
    let anonymous_id = message.take_id("anonymousId")?;
    let user_id = message.take_id("userId")?;
    let timestamp = match message.take_time("timestamp")? {
        Some(time) => Some(time),
        None => message.take_time("originalTimestamp")?,
    };
    let sent_at = message.take_time("sentAt")?.or(defaults.sent_at);
    let mut context = defaults.context.clone();
    context.extend(message.take_object("context")?);
    let mut integrations = defaults.integrations.clone();
    integrations.extend(message.take_object("integrations")?);
    let mut properties = message.take_object("properties")?;
    let session_id = context
        .get("sessionId")
        .or_else(|| properties.get("session_id"))
        .and_then(id_text);

    let event_type = match message.kind {
        Kind::Track => match message.fields.remove("event") {
            Some(Value::String(name)) if !name.is_empty() => format!("track:{name}"),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(message.missing("event"));
            }
            Some(_) => {
                return Err(message.reject("invalid", "event", "event must be a string".into()));
            }
        },
        Kind::Page | Kind::Screen => {
            for field in ["name", "category"] {
                if let Some(value) = message.fields.remove(field).filter(|v| !v.is_null()) {
                    put(&mut properties, field, value);
                }
            }
            message.kind.name().to_string()
        }
        Kind::Identify => {
            merge_traits(&mut message, &mut properties)?;
            "identify".to_string()
        }
        Kind::Group => {
            let group_id = message
                .take_id("groupId")?
                .ok_or_else(|| message.missing("groupId"))?;
            put(&mut properties, "group_id", Value::String(group_id));
            merge_traits(&mut message, &mut properties)?;
            "group".to_string()
        }
        Kind::Alias => {
            let previous_id = message
                .take_id("previousId")?
                .ok_or_else(|| message.missing("previousId"))?;
            put(&mut properties, "previous_id", Value::String(previous_id));
            "alias".to_string()
        }
    };

    let mut extra = Map::new();
    // First, so that `integrations` keeps its own name.
    if !integrations.is_empty() {
        keep(&mut extra, "integrations", Value::Object(integrations));
    }
    let mut context = map_context(context, extra);
    for (name, value) in std::mem::take(&mut message.fields) {
        keep(&mut context.extra, &name, value);
    }
    let event = EdgeEvent {
        event_id: event_id.map(Cow::Owned),
        anonymous_id: anonymous_id.map(Cow::Owned),
        user_id: user_id.map(Cow::Owned),
        session_id: session_id.map(Cow::Owned),
        event_type: Cow::Owned(event_type),
        timestamp,
        sent_at,
        context,
        properties,
        raw_context: None,
        raw_properties: None,
    };
    Ok((message.kind, event))
}

/// The endpoint decides the type of a single message (a stray `type` field is ignored); a
/// batch item must say its own.
fn message_kind(
    index: usize,
    endpoint: Option<Kind>,
    declared: Option<Value>,
) -> Result<Kind, Rejection> {
    let reject = |reason, message: String| Rejection {
        index,
        reason,
        field: Some("type".into()),
        message: format!("event {index}: {message}"),
    };
    match (endpoint, declared) {
        (Some(kind), _) => Ok(kind),
        (None, Some(Value::String(name))) => Kind::parse(&name).ok_or_else(|| {
            reject(
                "invalid",
                format!("type {name:?} is not one of track, identify, page, screen, group, alias"),
            )
        }),
        (None, None | Some(Value::Null)) => Err(reject(
            "missing_field",
            "a batch message needs a type".into(),
        )),
        (None, Some(_)) => Err(reject("invalid", "type must be a string".into())),
    }
}

/// A message may carry the write key (analytics.js puts it in every message). It is a
/// credential, so it is never stored, and it must be the key the request authenticated with:
/// one request writes for one tenant.
fn check_write_key(message: &mut Message<'_>) -> Result<(), Rejection> {
    match message.fields.remove("writeKey") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(key)) if keys::hash_key(&key) == message.key.hash => Ok(()),
        Some(_) => Err(message.reject(
            "invalid",
            "writeKey",
            "writeKey is not the key this request was authenticated with".into(),
        )),
    }
}

/// Identify and group traits become properties: the model has one bag of fields per event.
fn merge_traits(
    message: &mut Message<'_>,
    properties: &mut Map<String, Value>,
) -> Result<(), Rejection> {
    for (name, value) in message.take_object("traits")? {
        put(properties, &name, value);
    }
    Ok(())
}

/// Context fields that are typed columns of [`EventContext`]; `extra` must never hold them,
/// or the event's JSON would have the key twice.
const TYPED_CONTEXT_FIELDS: [&str; 5] = ["page", "user_agent", "ip", "locale", "campaign"];

/// Splits what is left of an object into the fields named like typed ones (whose values were
/// not strings) and the others.
fn split_typed(
    fields: Map<String, Value>,
    typed: &[&str],
) -> (Map<String, Value>, Map<String, Value>) {
    fields
        .into_iter()
        .partition(|(name, _)| typed.contains(&name.as_str()))
}

/// Splits a Segment context into the model's typed fields and `extra` (which may already hold
/// entries; they keep their names).
fn map_context(mut fields: Map<String, Value>, extra: Map<String, Value>) -> EventContext {
    let mut context = EventContext {
        extra,
        ..EventContext::default()
    };
    let mut leftovers = Vec::new();
    match fields.remove("page") {
        None | Some(Value::Null) => {}
        Some(Value::Object(mut page)) => {
            let mut mapped = PageContext {
                url: take_string(&mut page, "url"),
                path: take_string(&mut page, "path"),
                title: take_string(&mut page, "title"),
                referrer: take_string(&mut page, "referrer"),
                ..PageContext::default()
            };
            // Other page fields stay on the page; a typed name with a non-string value cannot
            // (it would not read back), so it goes to `page_extra`.
            let (odd, other) = split_typed(page, &["url", "path", "title", "referrer"]);
            mapped.extra = other;
            if mapped != PageContext::default() {
                context.page = Some(mapped);
            }
            if !odd.is_empty() {
                leftovers.push(("page_extra", Value::Object(odd)));
            }
        }
        Some(other) => leftovers.push(("page_extra", other)),
    }
    match fields.remove("campaign") {
        None | Some(Value::Null) => {}
        Some(Value::Object(mut campaign)) => {
            let mut mapped = Campaign {
                source: take_string(&mut campaign, "source"),
                medium: take_string(&mut campaign, "medium"),
                name: take_string(&mut campaign, "name"),
                term: take_string(&mut campaign, "term"),
                content: take_string(&mut campaign, "content"),
                ..Campaign::default()
            };
            let (odd, other) =
                split_typed(campaign, &["source", "medium", "name", "term", "content"]);
            mapped.extra = other;
            if mapped != Campaign::default() {
                context.campaign = Some(mapped);
            }
            if !odd.is_empty() {
                leftovers.push(("campaign_extra", Value::Object(odd)));
            }
        }
        Some(other) => leftovers.push(("campaign_extra", other)),
    }
    context.user_agent = take_string(&mut fields, "userAgent");
    context.ip = take_string(&mut fields, "ip");
    context.locale = take_string(&mut fields, "locale");
    for (name, value) in fields {
        keep(&mut context.extra, &name, value);
    }
    for (name, value) in leftovers {
        keep(&mut context.extra, name, value);
    }
    context
}

/// Takes `field` out of `map` when it is a string (or null, which means absent); any other
/// value stays, to be kept as sent.
fn take_string(map: &mut Map<String, Value>, field: &str) -> Option<String> {
    match map.remove(field) {
        Some(Value::String(text)) => Some(text),
        None | Some(Value::Null) => None,
        Some(other) => {
            map.insert(field.to_string(), other);
            None
        }
    }
}

/// Stores `value` in `extra` under `name`, or under `name_1`, `name_2`, … when that name is
/// taken or is a typed context field: a collision never loses either value.
fn keep(extra: &mut Map<String, Value>, name: &str, value: Value) {
    let free = |extra: &Map<String, Value>, candidate: &str| {
        !extra.contains_key(candidate) && !TYPED_CONTEXT_FIELDS.contains(&candidate)
    };
    let mut candidate = name.to_string();
    let mut n = 0;
    while !free(extra, &candidate) {
        n += 1;
        candidate = format!("{name}_{n}");
    }
    extra.insert(candidate, value);
}

/// Sets `properties[name]` to a Segment field's value. A different value already there (a
/// property of the same name) moves to `name_1` (or the next free suffix) rather than being
/// overwritten; the Segment field owns the plain name.
fn put(properties: &mut Map<String, Value>, name: &str, value: Value) {
    if let Some(previous) = properties.insert(name.to_string(), value)
        && properties.get(name) != Some(&previous)
    {
        let mut n = 1;
        while properties.contains_key(&format!("{name}_{n}")) {
            n += 1;
        }
        properties.insert(format!("{name}_{n}"), previous);
    }
}

/// An id's text: strings as they are, numbers as their JSON text.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Parses Segment's ISO 8601 times: RFC 3339, or — as some producers send — a date and time
/// without an offset, taken as UTC.
fn parse_time(text: &str) -> Option<TimestampMicros> {
    edge::parse_rfc3339(text).or_else(|| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|time| time.and_utc().timestamp_micros())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::Role;

    fn key() -> KeyRecord {
        KeyRecord {
            id: "k".into(),
            hash: keys::hash_key("trb_right"),
            tenant: "acme".into(),
            role: Role::Write,
            rate_limit: None,
            signing_secret: None,
            require_signature: false,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            created_at: 0,
        }
    }

    fn map(
        message: Value,
        endpoint: Option<Kind>,
        defaults: &BatchDefaults,
    ) -> Result<(Kind, EdgeEvent<'static>), Rejection> {
        let Value::Object(fields) = message else {
            panic!("not an object: {message}")
        };
        map_message(3, fields, endpoint, defaults, &key())
    }

    fn event(message: Value, endpoint: Option<Kind>) -> EdgeEvent<'static> {
        map(message, endpoint, &BatchDefaults::default()).unwrap().1
    }

    fn rejection(message: Value, endpoint: Option<Kind>) -> Rejection {
        map(message, endpoint, &BatchDefaults::default()).unwrap_err()
    }

    #[test]
    fn track_maps_ids_times_properties_and_context() {
        let e = event(
            json!({
                "type": "page", // the endpoint wins over a stray type
                "event": "Order Completed",
                "messageId": "m-1",
                "anonymousId": "a-1",
                "userId": 42,
                "timestamp": "2026-11-23T10:00:00.250Z",
                "sentAt": "2026-11-23T10:00:01Z",
                "properties": {"revenue": 9.5, "session_id": "s-from-props"},
                "context": {
                    "sessionId": "s-from-context",
                    "page": {"url": "https://shop.example/c?x=1", "path": "/c", "title": "Cart",
                             "referrer": "https://search.example/", "search": "?x=1"},
                    "userAgent": "Mozilla/5.0",
                    "ip": "198.51.100.4",
                    "locale": "de-DE",
                    "campaign": {"source": "news", "medium": "email", "name": "fall",
                                 "term": "shoes", "content": "top", "id": "c-9"},
                    "library": {"name": "analytics-python", "version": "2.3.4"},
                    "timezone": "Europe/Berlin"
                },
                "integrations": {"All": true},
                "_metadata": {"bundled": ["Segment.io"]},
                "writeKey": "trb_right"
            }),
            Some(Kind::Track),
        );
        assert_eq!(e.event_type, "track:Order Completed");
        assert_eq!(e.event_id.as_deref(), Some("m-1"));
        assert_eq!(e.anonymous_id.as_deref(), Some("a-1"));
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.session_id.as_deref(), Some("s-from-context"));
        assert_eq!(e.timestamp, parse_time("2026-11-23T10:00:00.250Z"));
        assert_eq!(e.sent_at, parse_time("2026-11-23T10:00:01Z"));
        assert_eq!(e.properties["revenue"], 9.5);
        let page = e.context.page.as_ref().unwrap();
        assert_eq!(page.url.as_deref(), Some("https://shop.example/c?x=1"));
        assert_eq!(page.path.as_deref(), Some("/c"));
        assert_eq!(page.title.as_deref(), Some("Cart"));
        assert_eq!(page.referrer.as_deref(), Some("https://search.example/"));
        assert_eq!(e.context.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(e.context.ip.as_deref(), Some("198.51.100.4"));
        assert_eq!(e.context.locale.as_deref(), Some("de-DE"));
        let campaign = e.context.campaign.as_ref().unwrap();
        assert_eq!(campaign.name.as_deref(), Some("fall"));
        assert_eq!(campaign.content.as_deref(), Some("top"));
        let extra = &e.context.extra;
        assert_eq!(extra["library"]["name"], "analytics-python");
        assert_eq!(extra["timezone"], "Europe/Berlin");
        assert_eq!(extra["sessionId"], "s-from-context");
        assert_eq!(extra["integrations"], json!({"All": true}));
        assert_eq!(extra["_metadata"], json!({"bundled": ["Segment.io"]}));
        assert_eq!(page.extra["search"], "?x=1");
        assert_eq!(campaign.extra["id"], "c-9");
        assert!(
            !extra.contains_key("writeKey"),
            "credentials are not stored"
        );
        assert!(!extra.contains_key("type"));
    }

    #[test]
    fn session_falls_back_to_properties() {
        let e = event(
            json!({"type": "track", "event": "x", "anonymousId": "a",
                   "properties": {"session_id": 7}}),
            None,
        );
        assert_eq!(e.session_id.as_deref(), Some("7"));
    }

    #[test]
    fn original_timestamp_is_used_without_timestamp_and_kept_otherwise() {
        let e = event(
            json!({"event": "x", "anonymousId": "a", "originalTimestamp": "2026-01-01T00:00:00Z"}),
            Some(Kind::Track),
        );
        assert_eq!(e.timestamp, parse_time("2026-01-01T00:00:00Z"));
        let e = event(
            json!({"event": "x", "anonymousId": "a", "timestamp": "2026-01-02T00:00:00Z",
                   "originalTimestamp": "2026-01-01T00:00:00Z"}),
            Some(Kind::Track),
        );
        assert_eq!(e.timestamp, parse_time("2026-01-02T00:00:00Z"));
        assert_eq!(e.context.extra["originalTimestamp"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn page_and_screen_names_become_properties() {
        let e = event(
            json!({"anonymousId": "a", "name": "Home", "category": "Docs",
                   "properties": {"name": "Home", "category": "Old"}}),
            Some(Kind::Page),
        );
        assert_eq!(e.event_type, "page");
        assert_eq!(e.properties["name"], "Home");
        assert_eq!(e.properties["category"], "Docs");
        assert_eq!(
            e.properties["category_1"], "Old",
            "a differing property is kept"
        );
        assert!(
            !e.properties.contains_key("name_1"),
            "equal values are not doubled"
        );
        let e = event(
            json!({"type": "screen", "userId": "u", "name": "Settings"}),
            None,
        );
        assert_eq!(e.event_type, "screen");
        assert_eq!(e.properties["name"], "Settings");
    }

    #[test]
    fn identify_and_group_traits_become_properties() {
        let e = event(
            json!({"userId": "u-1", "traits": {"email": "a@example.com", "plan": "pro"}}),
            Some(Kind::Identify),
        );
        assert_eq!(e.event_type, "identify");
        assert_eq!(e.properties["email"], "a@example.com");
        assert_eq!(e.properties["plan"], "pro");
        let e = event(
            json!({"type": "group", "userId": "u-1", "groupId": "g-1",
                   "traits": {"name": "Initech"}}),
            None,
        );
        assert_eq!(e.event_type, "group");
        assert_eq!(e.properties["group_id"], "g-1");
        assert_eq!(e.properties["name"], "Initech");
    }

    #[test]
    fn alias_keeps_the_previous_id() {
        let e = event(
            json!({"userId": "u-1", "previousId": "a-1"}),
            Some(Kind::Alias),
        );
        assert_eq!(e.event_type, "alias");
        assert_eq!(e.properties["previous_id"], "a-1");
    }

    #[test]
    fn missing_and_invalid_fields_are_named_in_segment_terms() {
        let r = rejection(json!({"anonymousId": "a"}), Some(Kind::Track));
        assert_eq!(
            (r.index, r.reason, r.field.as_deref()),
            (3, "missing_field", Some("event"))
        );
        let r = rejection(json!({"event": "x", "anonymousId": "a"}), None);
        assert_eq!(r.field.as_deref(), Some("type"));
        let r = rejection(json!({"type": "purchase", "anonymousId": "a"}), None);
        assert_eq!((r.reason, r.field.as_deref()), ("invalid", Some("type")));
        let r = rejection(json!({"userId": "u"}), Some(Kind::Group));
        assert_eq!(r.field.as_deref(), Some("groupId"));
        let r = rejection(json!({"userId": "u"}), Some(Kind::Alias));
        assert_eq!(r.field.as_deref(), Some("previousId"));
        let r = rejection(json!({"event": "x", "userId": ["u"]}), Some(Kind::Track));
        assert_eq!(r.field.as_deref(), Some("userId"));
        let r = rejection(
            json!({"event": "x", "userId": "u", "timestamp": "last tuesday"}),
            Some(Kind::Track),
        );
        assert_eq!(r.field.as_deref(), Some("timestamp"));
        let r = rejection(
            json!({"event": "x", "userId": "u", "context": []}),
            Some(Kind::Track),
        );
        assert_eq!(r.field.as_deref(), Some("context"));
        let r = rejection(
            json!({"event": "x", "userId": "u", "writeKey": "trb_other"}),
            Some(Kind::Track),
        );
        assert_eq!(r.field.as_deref(), Some("writeKey"));
        assert_eq!(segment_field("anonymous_id", Kind::Page), "anonymousId");
        assert_eq!(segment_field("event_type", Kind::Track), "event");
    }

    #[test]
    fn batch_context_and_sent_at_apply_unless_the_message_says_otherwise() {
        let defaults = BatchDefaults {
            sent_at: parse_time("2026-11-23T10:00:05Z"),
            context: json!({"library": {"name": "batch"}, "locale": "en-GB"})
                .as_object()
                .cloned()
                .unwrap(),
            integrations: json!({"All": false}).as_object().cloned().unwrap(),
        };
        let (_, e) = map(
            json!({"type": "track", "event": "x", "anonymousId": "a",
                   "context": {"locale": "fr-FR"}, "integrations": {"Mixpanel": true}}),
            None,
            &defaults,
        )
        .unwrap();
        assert_eq!(e.sent_at, defaults.sent_at);
        assert_eq!(e.context.locale.as_deref(), Some("fr-FR"));
        assert_eq!(e.context.extra["library"]["name"], "batch");
        assert_eq!(
            e.context.extra["integrations"],
            json!({"All": false, "Mixpanel": true})
        );
        let (_, e) = map(
            json!({"type": "track", "event": "x", "anonymousId": "a",
                   "sentAt": "2026-11-23T10:00:09Z"}),
            None,
            &defaults,
        )
        .unwrap();
        assert_eq!(e.sent_at, parse_time("2026-11-23T10:00:09Z"));
    }

    #[test]
    fn collisions_never_lose_a_value() {
        let context = map_context(
            json!({"ip": 7, "user_agent": "snake", "page": "home", "page_extra": 1})
                .as_object()
                .cloned()
                .unwrap(),
            Map::new(),
        );
        assert_eq!(context.ip, None);
        assert_eq!(context.extra["ip_1"], 7, "a non-string ip is kept, renamed");
        assert_eq!(context.extra["user_agent_1"], "snake");
        assert_eq!(context.extra["page_extra"], 1);
        assert_eq!(context.extra["page_extra_1"], "home");
        // The typed fields and extra never share a key in the event's JSON.
        let json = serde_json::to_value(&context).unwrap();
        assert_eq!(json["ip_1"], 7);
        assert!(json.get("ip").is_none());

        let mut properties = Map::new();
        properties.insert("group_id".into(), json!("old"));
        properties.insert("group_id_1".into(), json!("older"));
        put(&mut properties, "group_id", json!("new"));
        assert_eq!(properties["group_id"], "new");
        assert_eq!(properties["group_id_1"], "older");
        assert_eq!(properties["group_id_2"], "old");
    }

    #[test]
    fn times_parse_with_and_without_offset() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00"), Some(1_000_000));
        // Python's isoformat() of a naive datetime.
        assert_eq!(parse_time("1970-01-01T00:00:02.000001"), Some(2_000_001));
        assert_eq!(parse_time("1970-01-01T00:00:02"), Some(2_000_000));
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn write_key_is_found_at_the_top_level_only() {
        assert_eq!(
            body_write_key(br#"{"batch":[{"writeKey":"inner"}],"writeKey":"trb_x"}"#).as_deref(),
            Some("trb_x")
        );
        assert_eq!(body_write_key(br#"{"batch":[{"writeKey":"inner"}]}"#), None);
        assert_eq!(body_write_key(b"[1,2]"), None);
        assert_eq!(body_write_key(b"not json"), None);
    }
}
