//! The Segment encoder: `POST /v1/batch` as Segment's server-side libraries send it, with the
//! write key as the Basic-auth user name and an empty password.
//!
//! ```json
//! {"batch":[{"type":"track","event":"Product Viewed","messageId":"…","anonymousId":"…",
//!            "userId":"user-7","properties":{"item_id":"sku-1001",…},
//!            "context":{"page":{…},"userAgent":"…","ip":"…","locale":"de-DE","sessionId":"…",
//!                       "library":{"name":"tributary-loadgen","version":"0.1.0"}},
//!            "timestamp":"2026-11-23T10:00:00.123456Z"}, …],
//!  "sentAt":"2026-11-23T10:00:00.200000Z"}
//! ```
//!
//! Generated events map as analytics.js reports them: `page` → a `page` message named after
//! the title with the page's url/path/title/referrer as properties; `track:<name>` → a `track`
//! message with `event: <name>`; `identify` → an `identify` message. The session travels in
//! `context.sessionId`, which the collector reads as the session id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tributary_model::{Campaign, Event, PageContext, TimestampMicros};

use super::native::rfc3339;

/// The request path.
pub const PATH: &str = "/v1/batch";

/// The `library` every message names, as Segment's SDKs name themselves.
const LIBRARY: &str = "tributary-loadgen";

/// A `/v1/batch` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// The messages.
    pub batch: Vec<Message>,
    /// When the batch was sent, on the producer's clock: the collector corrects event times
    /// for the producer's clock skew with it.
    pub sent_at: String,
}

/// One Segment message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `track`, `page` or `identify`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The track event's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The page's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The producer's id: the dedup key downstream.
    pub message_id: String,
    /// The visitor's cookie id.
    pub anonymous_id: String,
    /// The known user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Event fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// Where it happened.
    pub context: Context,
    /// Event time, ISO 8601.
    pub timestamp: String,
}

/// A message's `context`, in Segment's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// `url`, `path`, `title`, `referrer` (the same names in both vocabularies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageContext>,
    /// The browser's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The visitor's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// BCP 47 locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// UTM fields (`source`, `medium`, `name`, …: the same names in both vocabularies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    /// The session, read by the collector as the event's session id.
    pub session_id: String,
    /// The sending library.
    pub library: Library,
}

/// Segment's `context.library`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Library {
    /// Library name.
    pub name: String,
    /// Library version.
    pub version: String,
}

impl Message {
    /// The Segment message of a generated event.
    pub fn of(event: &Event) -> Self {
        let (kind, name, properties) = match event.event_type.as_str() {
            "page" => {
                let page = event.context.page.clone().unwrap_or_default();
                let mut properties = event.properties.clone();
                for (field, value) in [
                    ("url", &page.url),
                    ("path", &page.path),
                    ("title", &page.title),
                    ("referrer", &page.referrer),
                ] {
                    if let Some(value) = value {
                        properties.insert(field.into(), value.clone().into());
                    }
                }
                ("page", page.title, properties)
            }
            // Segment's identify carries traits, not properties; the generator has none.
            "identify" => ("identify", None, Map::new()),
            _ => ("track", None, event.properties.clone()),
        };
        let event_name = event.event_type.strip_prefix("track:").map(str::to_owned);
        Message {
            kind: kind.into(),
            event: event_name,
            name,
            message_id: event.event_id.clone(),
            anonymous_id: event.anonymous_id.clone(),
            user_id: event.user_id.clone(),
            properties,
            context: Context {
                page: event.context.page.clone(),
                user_agent: event.context.user_agent.clone(),
                ip: event.context.ip.clone(),
                locale: event.context.locale.clone(),
                campaign: event.context.campaign.clone(),
                session_id: event.session_id.clone(),
                library: Library {
                    name: LIBRARY.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
            },
            timestamp: rfc3339(event.ts),
        }
    }
}

/// The body of one request: `events` as a Segment batch sent at `sent_at`.
pub fn encode(events: &[Event], sent_at: TimestampMicros) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Batch {
        batch: events.iter().map(Message::of).collect(),
        sent_at: rfc3339(sent_at),
    })
}

/// `(acked, rejected)` messages from a 2xx answer's body: `/v1/batch` answers like the native
/// API, plus `"success": true`.
pub use super::native::read_answer;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_traffic::SampleTraffic;

    const NOW: TimestampMicros = 1_735_732_800_000_000;

    #[test]
    fn batch_round_trips_as_segment_json() {
        let events = SampleTraffic::new(12).batch(300, NOW);
        let body = encode(&events, NOW + 1_000).unwrap();
        let batch: Batch = serde_json::from_slice(&body).unwrap();
        assert_eq!(batch.batch.len(), events.len());
        assert_eq!(batch.sent_at, "2025-01-01T12:00:00.001000Z");
        let again = serde_json::to_vec(&batch).unwrap();
        assert_eq!(again, body, "serde round trip is byte-exact");

        let json: Value = serde_json::from_slice(&body).unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for (message, event) in json["batch"].as_array().unwrap().iter().zip(&events) {
            let kind = message["type"].as_str().unwrap();
            kinds.insert(kind.to_owned());
            assert_eq!(message["messageId"], event.event_id.as_str());
            assert_eq!(message["anonymousId"], event.anonymous_id.as_str());
            assert_eq!(message["context"]["sessionId"], event.session_id.as_str());
            assert!(message["timestamp"].as_str().unwrap().ends_with('Z'));
            assert!(message.get("tenant_id").is_none() && message.get("event_id").is_none());
            match kind {
                "track" => assert_eq!(
                    format!("track:{}", message["event"].as_str().unwrap()),
                    event.event_type
                ),
                "page" => assert_eq!(
                    message["properties"]["url"],
                    event.context.page.as_ref().unwrap().url.as_deref().unwrap()
                ),
                "identify" => assert_eq!(message["userId"], event.user_id.as_deref().unwrap()),
                other => panic!("unexpected type {other}"),
            }
        }
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["identify", "page", "track"]
        );
    }

    #[test]
    fn commerce_fields_survive() {
        let events = SampleTraffic::new(13).batch(5000, NOW);
        let order = events
            .iter()
            .find(|e| e.event_type == "track:Order Completed")
            .unwrap();
        let message = Message::of(order);
        assert_eq!(message.event.as_deref(), Some("Order Completed"));
        assert_eq!(message.properties["order_id"], order.properties["order_id"]);
        assert_eq!(message.properties["revenue"], order.properties["revenue"]);
        assert!(message.user_id.is_some());
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(
            read_answer(br#"{"success":true,"accepted":100,"rejected":[]}"#),
            Some((100, 0))
        );
        assert_eq!(read_answer(br#"{"success":true}"#), None);
    }
}
