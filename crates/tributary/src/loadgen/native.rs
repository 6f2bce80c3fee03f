//! The native API encoder: `POST /v1/events` with a JSON array of events in Tributary's own
//! envelope, authenticated with `Authorization: Bearer <key>`.
//!
//! ```json
//! [{"event_id":"…","event_type":"track:Product Viewed","anonymous_id":"…","user_id":"user-7",
//!   "session_id":"…","ts":"2026-11-23T10:00:00.123456Z","context":{"page":{…},…},
//!   "properties":{"item_id":"sku-1001",…}}]
//! ```
//!
//! `tenant_id`, `received_at` and `event_family` are left out: the server sets them (the
//! tenant comes from the key). The same envelope, one event at a time, is the `Data` of a
//! Kinesis record (see `kinesis.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tributary_model::{Event, EventContext, TimestampMicros};

/// The request path.
pub const PATH: &str = "/v1/events";

/// One event as a native producer sends it.
#[derive(Debug, Serialize)]
pub struct NativeEvent<'a> {
    /// The producer's id: the dedup key downstream.
    pub event_id: &'a str,
    /// `page`, `track:<name>`, `identify`.
    pub event_type: &'a str,
    /// The visitor's cookie id.
    pub anonymous_id: &'a str,
    /// The known user, once the visitor identified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    /// The producer's session.
    pub session_id: &'a str,
    /// Event time, RFC 3339 UTC with microseconds.
    pub ts: String,
    /// Page, user agent, ip, locale, campaign.
    pub context: &'a EventContext,
    /// Page-specific fields.
    pub properties: &'a Map<String, Value>,
}

impl<'a> NativeEvent<'a> {
    /// The native envelope of a generated event.
    pub fn of(event: &'a Event) -> Self {
        NativeEvent {
            event_id: &event.event_id,
            event_type: &event.event_type,
            anonymous_id: &event.anonymous_id,
            user_id: event.user_id.as_deref(),
            session_id: &event.session_id,
            ts: rfc3339(event.ts),
            context: &event.context,
            properties: &event.properties,
        }
    }
}

/// The body of one request: a JSON array of `events`.
pub fn encode(events: &[Event]) -> serde_json::Result<Vec<u8>> {
    let envelopes: Vec<NativeEvent<'_>> = events.iter().map(NativeEvent::of).collect();
    serde_json::to_vec(&envelopes)
}

/// What the native API answers to a request that made at least one event durable.
#[derive(Debug, Deserialize)]
struct Answer {
    accepted: u64,
    #[serde(default)]
    rejected: Vec<serde::de::IgnoredAny>,
}

/// `(acked, rejected)` events from a 2xx answer's body, or `None` when it is not the native
/// answer.
pub fn read_answer(body: &[u8]) -> Option<(u64, u64)> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    Some((answer.accepted, answer.rejected.len() as u64))
}

/// µs since the epoch as RFC 3339 UTC with microseconds, the form producers' SDKs send.
pub fn rfc3339(micros: TimestampMicros) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::sample_traffic::SampleTraffic;

    #[test]
    fn every_event_parses_as_the_native_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let (collector, meta) = super::super::testing::collector(dir.path());
        let events = SampleTraffic::new(11).batch(500, 1_735_732_800_000_000);
        let body = encode(&events).unwrap();
        let raw: Vec<&RawValue> = serde_json::from_slice(&body).unwrap();
        assert_eq!(raw.len(), events.len());
        for (index, (raw, sent)) in raw.iter().zip(&events).enumerate() {
            // The collector's own parser, which refuses unknown fields by name.
            let stored = tributary_collector::native::parse_event(index, raw, &collector, &meta)
                .unwrap_or_else(|r| panic!("{}: {}", r.message, raw.get()));
            // Read back as downstream does: the stored JSON is the model's envelope.
            let event: tributary_model::Event =
                serde_json::from_slice(&stored.to_json().unwrap()).unwrap();
            assert_eq!(event.event_id, sent.event_id);
            assert_eq!(event.event_type, sent.event_type);
            assert_eq!(event.anonymous_id, sent.anonymous_id);
            assert_eq!(event.user_id, sent.user_id);
            assert_eq!(event.session_id, sent.session_id);
            assert_eq!(event.ts, sent.ts);
            assert_eq!(event.properties, sent.properties);
            assert_eq!(event.tenant_id, "acme", "the tenant comes from the key");
        }
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("tenant_id") && !text.contains("received_at"));
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(
            read_answer(br#"{"accepted":98,"rejected":[{"index":1},{"index":4}]}"#),
            Some((98, 2))
        );
        assert_eq!(read_answer(br#"{"accepted":3}"#), Some((3, 0)));
        assert_eq!(read_answer(b"<html>"), None);
    }

    #[test]
    fn times_are_rfc3339_micros() {
        assert_eq!(
            rfc3339(1_735_732_800_123_456),
            "2025-01-01T12:00:00.123456Z"
        );
    }
}
