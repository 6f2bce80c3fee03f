//! What the edge adds to every event, whichever API it came through: the tenant from the key,
//! `received_at`, clock-skew correction, a deterministic `event_id` when the producer sent
//! none, the client's IP and user agent, and a default event family.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tributary_model::{EventContext, TimestampMicros};

use crate::keys::KeyRecord;
use crate::stored::{StoredContext, StoredEvent, StoredProperties};

/// Longest id (event, anonymous, user, session) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// How far past its arrival an event's (corrected) time may lie: 7 days.
pub const MAX_FUTURE_MICROS: i64 = 7 * 24 * 3600 * 1_000_000;

/// An event as an API handler read it from its wire format, before the edge rules. Text
/// fields borrow from the request body where they can (`'a`).
#[derive(Debug, Clone, Default)]
pub struct EdgeEvent<'a> {
    /// The producer's id, if it sent one (Segment's `messageId`).
    pub event_id: Option<Cow<'a, str>>,
    /// Cookie id of the visitor.
    pub anonymous_id: Option<Cow<'a, str>>,
    /// Known user id.
    pub user_id: Option<Cow<'a, str>>,
    /// Producer's session id.
    pub session_id: Option<Cow<'a, str>>,
    /// `page`, `track:<name>`, `identify`, …
    pub event_type: Cow<'a, str>,
    /// Event time on the producer's clock.
    pub timestamp: Option<TimestampMicros>,
    /// When the producer sent it, on the same clock (Segment's `sentAt`).
    pub sent_at: Option<TimestampMicros>,
    /// Context as mapped (ignored when `raw_context` is set).
    pub context: EventContext,
    /// Page-specific fields as mapped (ignored when `raw_properties` is set).
    pub properties: Map<String, Value>,
    /// The producer's context object kept as sent (native API).
    pub raw_context: Option<RawContext<'a>>,
    /// The producer's properties object kept as sent (native API).
    pub raw_properties: Option<&'a RawValue>,
}

/// A producer's context object kept as sent, with what the edge needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct RawContext<'a> {
    /// The object's JSON text.
    pub json: &'a RawValue,
    /// Whether it has an `ip` member.
    pub has_ip: bool,
    /// Whether it has a `user_agent` member.
    pub has_user_agent: bool,
}

/// Facts about the request every event of it shares.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The key that sent it.
    pub key: Arc<KeyRecord>,
    /// When the collector received it.
    pub received_at: TimestampMicros,
    /// The client's address after trusted-proxy resolution, as text (formatted once per
    /// request rather than once per event).
    pub client_ip: Option<String>,
    /// The request's `User-Agent`.
    pub user_agent: Option<String>,
}

/// Why an event failed the edge rules: the field and the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeError {
    /// A machine-readable reason.
    pub reason: &'static str,
    /// The field at fault.
    pub field: &'static str,
    /// For people.
    pub message: String,
}

impl EdgeError {
    fn new(reason: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        EdgeError {
            reason,
            field,
            message: message.into(),
        }
    }
}

/// Applies the edge rules to one event. `raw` is the event's bytes as sent, hashed for a
/// deterministic `event_id` so that a retried event gets the same id and dedup catches it.
pub fn finish<'a>(
    event: EdgeEvent<'a>,
    raw: &[u8],
    meta: &'a RequestMeta,
) -> Result<StoredEvent<'a>, EdgeError> {
    let EdgeEvent {
        event_id,
        anonymous_id,
        user_id,
        session_id,
        event_type,
        timestamp,
        sent_at,
        context,
        properties,
        raw_context,
        raw_properties,
    } = event;
    for (field, value) in [
        ("event_id", &event_id),
        ("anonymous_id", &anonymous_id),
        ("user_id", &user_id),
        ("session_id", &session_id),
    ] {
        if let Some(value) = value
            && value.len() > MAX_ID_BYTES
        {
            return Err(EdgeError::new(
                "too_large",
                field,
                format!(
                    "{field} is {} bytes, over the limit of {MAX_ID_BYTES}",
                    value.len()
                ),
            ));
        }
    }
    let anonymous_id = anonymous_id.filter(|s| !s.is_empty());
    let user_id = user_id.filter(|s| !s.is_empty());
    if anonymous_id.is_none() && user_id.is_none() {
        return Err(EdgeError::new(
            "missing_field",
            "anonymous_id",
            "either anonymous_id (anonymousId) or user_id (userId) is required",
        ));
    }
    if event_type.is_empty() {
        return Err(EdgeError::new(
            "missing_field",
            "event_type",
            "event_type is required",
        ));
    }
    if event_type.len() > MAX_ID_BYTES {
        return Err(EdgeError::new(
            "too_large",
            "event_type",
            format!(
                "event_type is {} bytes, over the limit of {MAX_ID_BYTES}",
                event_type.len()
            ),
        ));
    }
    let ts = corrected_time(timestamp, sent_at, meta.received_at);
    // Downstream turns `ts` into a date partition; a time before the epoch or far in the
    // future is a producer bug, refused here with the bounds rather than stored.
    let latest = meta.received_at.saturating_add(MAX_FUTURE_MICROS);
    if !(0..=latest).contains(&ts) {
        return Err(EdgeError::new(
            "invalid",
            "ts",
            format!(
                "event time {ts} µs (after clock-skew correction) is outside 1970-01-01 .. \
                 received_at + 7 days"
            ),
        ));
    }
    let context = match raw_context {
        // The producer's object as sent, with only what it lacks added in front of it.
        Some(raw) => StoredContext::Raw {
            json: raw.json,
            ip: (!raw.has_ip).then_some(meta.client_ip.as_deref()).flatten(),
            user_agent: (!raw.has_user_agent)
                .then_some(meta.user_agent.as_deref())
                .flatten(),
        },
        None => {
            let mut context = context;
            if context.ip.is_none() {
                context.ip = meta.client_ip.clone();
            }
            if context.user_agent.is_none() {
                context.user_agent = meta.user_agent.clone();
            }
            StoredContext::Typed(Box::new(context))
        }
    };
    let event_id = match event_id.filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => Cow::Owned(deterministic_id(&meta.key.tenant, raw)),
    };
    Ok(StoredEvent {
        event_id,
        tenant_id: &meta.key.tenant,
        anonymous_id: anonymous_id.unwrap_or_default(),
        user_id,
        session_id: session_id.unwrap_or_default(),
        event_family: default_family(&event_type),
        event_type,
        ts,
        received_at: meta.received_at,
        context,
        properties: match raw_properties {
            Some(raw) => StoredProperties::Raw(raw),
            None => StoredProperties::Map(properties),
        },
    })
}

/// Segment's clock-skew correction: when the producer says when it sent the batch, its clock's
/// offset is `sent_at - received_at`, and the event time is moved by the same amount:
/// `ts = received_at - (sent_at - timestamp)`. Without `sent_at` the timestamp is taken as is;
/// without a timestamp the event happened when it was received.
pub fn corrected_time(
    timestamp: Option<TimestampMicros>,
    sent_at: Option<TimestampMicros>,
    received_at: TimestampMicros,
) -> TimestampMicros {
    match (timestamp, sent_at) {
        (Some(ts), Some(sent)) => received_at.saturating_sub(sent.saturating_sub(ts)),
        (Some(ts), None) => ts,
        (None, _) => received_at,
    }
}

/// The event family the edge assigns until the pipeline's rules refine it.
pub fn default_family(event_type: &str) -> &'static str {
    match event_type {
        "page" | "screen" => "page",
        "identify" | "alias" | "group" => "identity",
        t if t.starts_with("track:") => "track",
        _ => "other",
    }
}

/// `evt_` + the first 32 hex digits of SHA-256(tenant, 0, raw event bytes).
pub fn deterministic_id(tenant: &str, raw: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update([0u8]);
    hasher.update(raw);
    let digest = hasher.finalize();
    format!("evt_{}", hex::encode(&digest[..16]))
}

/// Parses an RFC 3339 timestamp (`2026-11-23T05:51:26.123Z`) to µs since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<TimestampMicros> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    chain
        .rsplit(',')
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .find(|hop| !trusted.contains(hop))
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Role;

    fn meta() -> RequestMeta {
        RequestMeta {
            key: Arc::new(KeyRecord {
                id: "k".into(),
                hash: String::new(),
                tenant: "acme".into(),
                role: Role::Write,
                rate_limit: None,
                signing_secret: None,
                require_signature: false,
                aws_access_key_id: None,
                aws_secret_access_key: None,
                created_at: 0,
            }),
            received_at: 1_000_000_000,
            client_ip: Some("203.0.113.9".into()),
            user_agent: Some("ua".into()),
        }
    }

    #[test]
    fn skew_is_corrected_like_segment() {
        // Producer clock 10 s fast: sent at +10 s, event 2 s before sending.
        let received = 1_000_000_000;
        let ts = corrected_time(
            Some(received + 8_000_000),
            Some(received + 10_000_000),
            received,
        );
        assert_eq!(ts, received - 2_000_000);
        assert_eq!(corrected_time(None, None, received), received);
        assert_eq!(corrected_time(Some(5), None, received), 5);
    }

    #[test]
    fn edge_fills_tenant_ids_and_context() {
        let event = EdgeEvent {
            anonymous_id: Some("anon".into()),
            event_type: "track:Order Completed".into(),
            ..EdgeEvent::default()
        };
        let meta = meta();
        let done = finish(event.clone(), b"raw", &meta).unwrap();
        assert_eq!(done.tenant_id, "acme");
        assert_eq!(done.event_family, "track");
        let StoredContext::Typed(context) = &done.context else {
            panic!("a mapped context stays typed");
        };
        assert_eq!(context.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(context.user_agent.as_deref(), Some("ua"));
        assert_eq!(done.ts, done.received_at);
        let again = finish(event, b"raw", &meta).unwrap();
        assert_eq!(done.event_id, again.event_id, "ids are deterministic");
        assert!(done.event_id.starts_with("evt_"));
    }

    #[test]
    fn event_times_outside_the_bounds_are_refused() {
        for ts in [
            -1,
            i64::MIN,
            1_000_000_000 + MAX_FUTURE_MICROS + 1,
            i64::MAX,
        ] {
            let event = EdgeEvent {
                anonymous_id: Some("a".into()),
                event_type: "page".into(),
                timestamp: Some(ts),
                ..EdgeEvent::default()
            };
            let err = finish(event, b"", &meta()).unwrap_err();
            assert_eq!(err.field, "ts", "{ts}");
        }
    }

    #[test]
    fn identity_is_required() {
        let event = EdgeEvent {
            event_type: "page".into(),
            ..EdgeEvent::default()
        };
        let err = finish(event, b"", &meta()).unwrap_err();
        assert_eq!(err.field, "anonymous_id");
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let xff = Some("1.2.3.4, 198.51.100.7");
        assert_eq!(client_ip(Some(client), xff, &[proxy]), Some(client));
        assert_eq!(client_ip(Some(proxy), xff, &[proxy]), Some(client));
        assert_eq!(client_ip(Some(proxy), None, &[proxy]), Some(proxy));
    }

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
