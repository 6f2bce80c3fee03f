//! The JSON an accepted event is stored as in the stream.
//!
//! It has exactly the shape of [`tributary_model::Event`] (downstream reads it as one), but it
//! is written without re-parsing what the producer sent where nothing needs to change: the
//! native API keeps `properties` and `context` as the raw JSON text it already validated, and
//! the edge only adds the fields it sets (`context.ip`, `context.user_agent`) in front of it.
//! Building a `serde_json::Map` per event and serializing it back was the collector's largest
//! per-event cost.

use serde::ser::{Error as _, Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tributary_model::{EventContext, TimestampMicros};

/// One event as the stream stores it (the model's `Event` fields, in its order).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// See [`tributary_model::Event::event_id`].
    pub event_id: String,
    /// The key's tenant.
    pub tenant_id: String,
    /// Cookie id of the visitor (may be empty when only `user_id` is known).
    pub anonymous_id: String,
    /// Known user id.
    pub user_id: Option<String>,
    /// Producer's session (may be empty).
    pub session_id: String,
    /// `page`, `track:<name>`, …
    pub event_type: String,
    /// Default family from the type.
    pub event_family: &'static str,
    /// Skew-corrected event time.
    pub ts: TimestampMicros,
    /// When the collector received it.
    pub received_at: TimestampMicros,
    /// Context: typed fields, plus the producer's raw context when it is kept as sent.
    pub context: StoredContext,
    /// Page-specific fields.
    pub properties: StoredProperties,
}

/// A stored context: the typed fields the edge knows, and optionally the producer's own
/// context object as sent (then the typed part holds only what the edge adds to it).
#[derive(Debug, Clone, Default)]
pub struct StoredContext {
    /// Typed fields (the whole context when `raw` is `None`).
    pub typed: EventContext,
    /// The producer's context object as sent; it has no `ip`/`user_agent` key wherever the
    /// typed part has one.
    pub raw: Option<Box<RawValue>>,
}

/// Stored properties: a parsed map (Segment, whose fields are merged) or the producer's object
/// as sent (native).
#[derive(Debug, Clone)]
pub enum StoredProperties {
    /// Built by a mapping.
    Map(Map<String, Value>),
    /// A JSON object exactly as the producer sent it.
    Raw(Box<RawValue>),
}

impl StoredEvent {
    /// `tenant:session`, else `tenant:anonymous_id`, else `tenant:user_id` — the same rule as
    /// [`tributary_model::Event::partition_key`].
    pub fn partition_key(&self) -> String {
        let within = [&self.session_id, &self.anonymous_id]
            .into_iter()
            .find(|id| !id.is_empty())
            .map(String::as_str)
            .or(self.user_id.as_deref())
            .unwrap_or("");
        let mut key = String::with_capacity(self.tenant_id.len() + 1 + within.len());
        key.push_str(&self.tenant_id);
        key.push(':');
        key.push_str(within);
        key
    }
}

impl Serialize for StoredEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = if self.user_id.is_some() { 11 } else { 10 };
        let mut out = serializer.serialize_struct("Event", fields)?;
        out.serialize_field("event_id", &self.event_id)?;
        out.serialize_field("tenant_id", &self.tenant_id)?;
        out.serialize_field("anonymous_id", &self.anonymous_id)?;
        if let Some(user_id) = &self.user_id {
            out.serialize_field("user_id", user_id)?;
        }
        out.serialize_field("session_id", &self.session_id)?;
        out.serialize_field("event_type", &self.event_type)?;
        out.serialize_field("event_family", self.event_family)?;
        out.serialize_field("ts", &self.ts)?;
        out.serialize_field("received_at", &self.received_at)?;
        out.serialize_field("context", &self.context)?;
        match &self.properties {
            StoredProperties::Map(map) => out.serialize_field("properties", map)?,
            StoredProperties::Raw(raw) => out.serialize_field("properties", raw)?,
        }
        out.end()
    }
}

impl Serialize for StoredContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(raw) = &self.raw else {
            return self.typed.serialize(serializer);
        };
        // `{` + the edge's typed additions + the producer's members, as sent.
        let added = serde_json::to_string(&self.typed).map_err(S::Error::custom)?;
        let added = added.strip_suffix('}').unwrap_or(&added);
        let text = raw.get();
        let members = text.strip_prefix('{').unwrap_or(text).trim_start();
        let mut merged = String::with_capacity(added.len() + text.len() + 1);
        merged.push_str(added);
        if added.len() > 1 && !members.starts_with('}') {
            merged.push(',');
        }
        merged.push_str(members);
        let merged = RawValue::from_string(merged).map_err(S::Error::custom)?;
        merged.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::Event;

    fn event(context: StoredContext, properties: StoredProperties) -> StoredEvent {
        StoredEvent {
            event_id: "e".into(),
            tenant_id: "acme".into(),
            anonymous_id: "a".into(),
            user_id: None,
            session_id: "s".into(),
            event_type: "page".into(),
            event_family: "page",
            ts: 1,
            received_at: 2,
            context,
            properties,
        }
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn raw_context_gets_the_edge_fields_in_front_and_reads_back_as_an_event() {
        let context = StoredContext {
            typed: EventContext {
                ip: Some("203.0.113.9".into()),
                ..EventContext::default()
            },
            raw: Some(raw(
                r#"{ "locale":"de", "page":{"url":"u","search":"?q"}, "app":{"v":1}}"#,
            )),
        };
        let json =
            serde_json::to_string(&event(context, StoredProperties::Raw(raw(r#"{"n": 1}"#))))
                .unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back.context.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(back.context.locale.as_deref(), Some("de"));
        let page = back.context.page.clone().unwrap();
        assert_eq!(page.url.as_deref(), Some("u"));
        assert_eq!(page.extra["search"], "?q");
        assert_eq!(back.context.extra["app"]["v"], 1);
        assert_eq!(back.properties["n"], 1);
        assert_eq!(
            back.partition_key(),
            event(StoredContext::default(), StoredProperties::Map(Map::new())).partition_key()
        );
    }

    #[test]
    fn empty_raw_context_and_nothing_added() {
        for (typed, raw_text, expected) in [
            (EventContext::default(), "{}", "{}"),
            (
                EventContext {
                    ip: Some("1".into()),
                    ..EventContext::default()
                },
                "{ }",
                r#"{"ip":"1"}"#,
            ),
            (
                EventContext::default(),
                r#"{"locale":"x"}"#,
                r#"{"locale":"x"}"#,
            ),
        ] {
            let context = StoredContext {
                typed,
                raw: Some(raw(raw_text)),
            };
            assert_eq!(serde_json::to_string(&context).unwrap(), expected);
        }
    }

    #[test]
    fn typed_path_equals_the_model_serialization() {
        let typed = EventContext {
            locale: Some("en".into()),
            ..EventContext::default()
        };
        let mut properties = Map::new();
        properties.insert("k".into(), Value::from("v"));
        let stored = event(
            StoredContext {
                typed: typed.clone(),
                raw: None,
            },
            StoredProperties::Map(properties.clone()),
        );
        let model = Event {
            event_id: "e".into(),
            tenant_id: "acme".into(),
            anonymous_id: "a".into(),
            user_id: None,
            session_id: "s".into(),
            event_type: "page".into(),
            event_family: "page".into(),
            ts: 1,
            received_at: 2,
            context: typed,
            properties,
        };
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            serde_json::to_string(&model).unwrap()
        );
    }
}
