//! The event envelope (DESIGN.md, "Event model").

use serde::{Deserialize, Serialize};

use crate::TimestampMicros;

/// One clickstream event as it travels from the collector to the lake.
///
/// Fixed columns carry what every event has; everything page-specific (item_id, order_id,
/// revenue, …) lives in `properties` and is validated later by the event type's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The producer's id, or a deterministic one assigned at the edge; the dedup key.
    pub event_id: String,
    /// The tenant, taken from the producer's key and never from the body.
    pub tenant_id: String,
    /// Cookie UUID set on the visitor's first visit.
    pub anonymous_id: String,
    /// The known user, once the visitor has identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The producer's session, or one assigned by sessionization.
    pub session_id: String,
    /// `page`, `track:<name>`, `identify`, …
    pub event_type: String,
    /// The lake's partition column, derived by rules from the event type.
    #[serde(default)]
    pub event_family: String,
    /// Event time, corrected for producer clock skew.
    pub ts: TimestampMicros,
    /// When the collector received the event.
    pub received_at: TimestampMicros,
    /// Where the event happened: page, user agent, ip, locale, campaign.
    #[serde(default)]
    pub context: EventContext,
    /// Page-specific fields, validated by the event type's schema.
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// What the pipeline derived (user agent, referrer, page host, geography); absent until the
    /// pipeline has run, and never sent by producers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enriched: Option<Enrichment>,
}

impl Event {
    /// The stream partition key of this event: `tenant:session`, or `tenant:anonymous_id` when
    /// the producer sent no session, or `tenant:user_id` when it sent neither. Keeping one
    /// session on one shard keeps its events in order.
    pub fn partition_key(&self) -> String {
        let within_tenant = [&self.session_id, &self.anonymous_id]
            .into_iter()
            .find(|id| !id.is_empty())
            .map(String::as_str)
            .or(self.user_id.as_deref())
            .unwrap_or("");
        format!("{}:{}", self.tenant_id, within_tenant)
    }
}

/// Where an event happened.
///
/// Decoded by hand ([`crate::decode`]), so its unknown fields cost one pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventContext {
    /// The page the event happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageContext>,
    /// The producer's user agent string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Client IP; masked by the pipeline before anything reaches the lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// BCP 47 locale, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// UTM campaign fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    /// Every other context field the producer sent (Segment's `library`, `device`, `os`, `app`,
    /// `screen`, `timezone`, `integrations`, …), kept as sent: nothing accepted is lost.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The page part of an event's context.
///
/// Decoded by hand ([`crate::decode`]), so its unknown fields cost one pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PageContext {
    /// Full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Path part of the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Document title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Referring URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Any other page field the producer sent (`search`, `hash`, …), kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// UTM campaign fields (`utm_source`, `utm_medium`, …) without the `utm_` prefix.
///
/// Decoded by hand ([`crate::decode`]), so its unknown fields cost one pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Campaign {
    /// `utm_source`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `utm_medium`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// `utm_campaign`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `utm_term`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// `utm_content`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Any other campaign field the producer sent, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Fields the pipeline derives from an event; every one is optional because every lookup can
/// miss (an unknown user agent, no referrer, no geography database).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// Browser family from the user agent, e.g. `Chrome`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// Browser version, e.g. `120.0.6099.109`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    /// Operating system, e.g. `Windows 10`, `iOS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Operating system version where the user agent tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// The user agent is a crawler, monitor or script.
    #[serde(default)]
    pub is_bot: bool,
    /// `search`, `social`, `email`, `internal`, `paid`, `other` or `direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_class: Option<String>,
    /// Host of the referring URL, e.g. `www.google.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_host: Option<String>,
    /// Host of the page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_host: Option<String>,
    /// ISO 3166-1 alpha-2 country code from the IP, when a geography database is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// First subdivision (state, region) ISO code from the IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// City name (English) from the IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            event_id: "e1".into(),
            tenant_id: "acme".into(),
            anonymous_id: "anon-1".into(),
            user_id: None,
            session_id: "s-9".into(),
            event_type: "page".into(),
            event_family: "page".into(),
            ts: 1,
            received_at: 2,
            context: EventContext::default(),
            properties: serde_json::Map::new(),
            enriched: None,
        }
    }

    #[test]
    fn partition_key_prefers_session() {
        assert_eq!(sample().partition_key(), "acme:s-9");
    }

    #[test]
    fn partition_key_falls_back_to_anonymous_id() {
        let mut event = sample();
        event.session_id.clear();
        assert_eq!(event.partition_key(), "acme:anon-1");
    }

    #[test]
    fn partition_key_falls_back_to_user_id() {
        let mut event = sample();
        event.session_id.clear();
        event.anonymous_id.clear();
        event.user_id = Some("u-7".into());
        assert_eq!(event.partition_key(), "acme:u-7");
    }

    #[test]
    fn unknown_context_fields_survive_a_round_trip() {
        let json = r#"{"event_id":"e","tenant_id":"t","anonymous_id":"a","session_id":"s",
            "event_type":"page","ts":1,"received_at":2,
            "context":{"locale":"en","library":{"name":"analytics-python","version":"2.3"}}}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(event.context.locale.as_deref(), Some("en"));
        assert_eq!(event.context.extra["library"]["name"], "analytics-python");
        let again: Event = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn json_round_trip() {
        let event = sample();
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            !json.contains("user_id"),
            "absent user_id is omitted: {json}"
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}
