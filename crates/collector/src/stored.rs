//! The JSON an accepted event is stored as in the stream.
//!
//! It has exactly the shape of [`tributary_model::Event`] (downstream reads it as one), but it
//! is written without re-parsing what the producer sent where nothing needs to change: the
//! native API keeps `properties` and `context` as the JSON text it already validated, and the
//! edge only adds the members it sets (`ip`, `user_agent`) in front of the producer's context.
//! Text fields borrow from the request where they can. Building a `serde_json::Map` per event
//! and serializing it back was the collector's largest per-event cost.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tributary_model::{EventContext, TimestampMicros};

/// One event as the stream stores it (the model's `Event` fields, in its order).
#[derive(Debug, Clone)]
pub struct StoredEvent<'a> {
    /// See [`tributary_model::Event::event_id`].
    pub event_id: Cow<'a, str>,
    /// The key's tenant.
    pub tenant_id: &'a str,
    /// Cookie id of the visitor (may be empty when only `user_id` is known).
    pub anonymous_id: Cow<'a, str>,
    /// Known user id.
    pub user_id: Option<Cow<'a, str>>,
    /// Producer's session (may be empty).
    pub session_id: Cow<'a, str>,
    /// `page`, `track:<name>`, …
    pub event_type: Cow<'a, str>,
    /// Default family from the type.
    pub event_family: &'static str,
    /// Skew-corrected event time.
    pub ts: TimestampMicros,
    /// When the collector received it.
    pub received_at: TimestampMicros,
    /// The context.
    pub context: StoredContext<'a>,
    /// Page-specific fields.
    pub properties: StoredProperties<'a>,
}

/// A stored context.
#[derive(Debug, Clone)]
pub enum StoredContext<'a> {
    /// Built by a mapping (Segment) with the edge's fields filled in. (Boxed: the raw variant
    /// is the common, small one.)
    Typed(Box<EventContext>),
    /// The producer's context object as sent (native), plus the members the edge adds because
    /// the object lacks them.
    Raw {
        /// The object's JSON text.
        json: &'a RawValue,
        /// `ip` to add, when the object has none.
        ip: Option<&'a str>,
        /// `user_agent` to add, when the object has none.
        user_agent: Option<&'a str>,
    },
}

/// Stored properties.
#[derive(Debug, Clone)]
pub enum StoredProperties<'a> {
    /// Built by a mapping (Segment, whose fields are merged).
    Map(Map<String, Value>),
    /// A JSON object exactly as the producer sent it (native).
    Raw(&'a RawValue),
}

impl StoredEvent<'_> {
    /// `tenant:session`, else `tenant:anonymous_id`, else `tenant:user_id` — the same rule as
    /// [`tributary_model::Event::partition_key`].
    pub fn partition_key(&self) -> String {
        let within = [&self.session_id, &self.anonymous_id]
            .into_iter()
            .find(|id| !id.is_empty())
            .map(|id| id.as_ref())
            .or(self.user_id.as_deref())
            .unwrap_or("");
        let mut key = String::with_capacity(self.tenant_id.len() + 1 + within.len());
        key.push_str(self.tenant_id);
        key.push(':');
        key.push_str(within);
        key
    }

    /// The event as JSON, written straight into a buffer: raw parts are copied as they are,
    /// text is escaped by serde_json.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        // Sized for the common event so the buffer is not grown (and copied) while written:
        // raw parts and text as they are, plus room for member names, quotes and numbers.
        let raw_len = match (&self.context, &self.properties) {
            (
                StoredContext::Raw {
                    json,
                    ip,
                    user_agent,
                },
                StoredProperties::Raw(p),
            ) => {
                json.get().len()
                    + p.get().len()
                    + ip.map_or(0, str::len)
                    + user_agent.map_or(0, str::len)
            }
            _ => 256,
        };
        let text_len = self.event_id.len()
            + self.tenant_id.len()
            + self.anonymous_id.len()
            + self.user_id.as_ref().map_or(0, |id| id.len())
            + self.session_id.len()
            + self.event_type.len();
        let mut out = Vec::with_capacity(raw_len + text_len + 256);
        out.extend_from_slice(b"{\"event_id\":");
        serde_json::to_writer(&mut out, &self.event_id)?;
        out.extend_from_slice(b",\"tenant_id\":");
        serde_json::to_writer(&mut out, self.tenant_id)?;
        out.extend_from_slice(b",\"anonymous_id\":");
        serde_json::to_writer(&mut out, &self.anonymous_id)?;
        if let Some(user_id) = &self.user_id {
            out.extend_from_slice(b",\"user_id\":");
            serde_json::to_writer(&mut out, user_id)?;
        }
        out.extend_from_slice(b",\"session_id\":");
        serde_json::to_writer(&mut out, &self.session_id)?;
        out.extend_from_slice(b",\"event_type\":");
        serde_json::to_writer(&mut out, &self.event_type)?;
        out.extend_from_slice(b",\"event_family\":");
        serde_json::to_writer(&mut out, self.event_family)?;
        out.extend_from_slice(b",\"ts\":");
        serde_json::to_writer(&mut out, &self.ts)?;
        out.extend_from_slice(b",\"received_at\":");
        serde_json::to_writer(&mut out, &self.received_at)?;
        out.extend_from_slice(b",\"context\":");
        match &self.context {
            StoredContext::Typed(context) => serde_json::to_writer(&mut out, context.as_ref())?,
            StoredContext::Raw {
                json,
                ip,
                user_agent,
            } => write_raw_context(&mut out, json, *ip, *user_agent)?,
        }
        out.extend_from_slice(b",\"properties\":");
        match &self.properties {
            StoredProperties::Map(map) => serde_json::to_writer(&mut out, map)?,
            StoredProperties::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
        }
        out.push(b'}');
        Ok(out)
    }
}

/// `{` + the added members + the producer's members as sent. The object was checked to start
/// with `{`; members the edge adds are ones it lacks, so no key appears twice.
fn write_raw_context(
    out: &mut Vec<u8>,
    json: &RawValue,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> serde_json::Result<()> {
    #[derive(Serialize)]
    struct Added<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        ip: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_agent: Option<&'a str>,
    }
    let text = json.get();
    let members = text.strip_prefix('{').unwrap_or(text).trim_start();
    if ip.is_none() && user_agent.is_none() {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    let start = out.len();
    serde_json::to_writer(&mut *out, &Added { ip, user_agent })?;
    // Reopen the object just written (drop its `}`) and continue with the producer's members.
    out.truncate(out.len() - 1);
    if !members.starts_with('}') && out.len() > start + 1 {
        out.push(b',');
    }
    out.extend_from_slice(members.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::Event;

    fn event<'a>(context: StoredContext<'a>, properties: StoredProperties<'a>) -> StoredEvent<'a> {
        StoredEvent {
            event_id: "e".into(),
            tenant_id: "acme",
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
        let context = raw(r#"{ "locale":"de", "page":{"url":"u","search":"?q"}, "app":{"v":1}}"#);
        let properties = raw(r#"{"n": 1}"#);
        let stored = event(
            StoredContext::Raw {
                json: &context,
                ip: Some("203.0.113.9"),
                user_agent: None,
            },
            StoredProperties::Raw(&properties),
        );
        let back: Event = serde_json::from_slice(&stored.to_json().unwrap()).unwrap();
        assert_eq!(back.context.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(back.context.locale.as_deref(), Some("de"));
        let page = back.context.page.clone().unwrap();
        assert_eq!(page.url.as_deref(), Some("u"));
        assert_eq!(page.extra["search"], "?q");
        assert_eq!(back.context.extra["app"]["v"], 1);
        assert_eq!(back.properties["n"], 1);
        assert_eq!(back.partition_key(), stored.partition_key());
    }

    #[test]
    fn empty_raw_context_and_nothing_added() {
        for (ip, user_agent, raw_text, expected) in [
            (None, None, "{}", "{}"),
            (Some("1"), None, "{ }", r#"{"ip":"1"}"#),
            (
                Some("1"),
                Some("u\"a"),
                "{}",
                r#"{"ip":"1","user_agent":"u\"a"}"#,
            ),
            (None, None, r#"{"locale":"x"}"#, r#"{"locale":"x"}"#),
            (
                None,
                Some("ua"),
                r#"{"locale":"x"}"#,
                r#"{"user_agent":"ua","locale":"x"}"#,
            ),
        ] {
            let json = raw(raw_text);
            let mut out = Vec::new();
            write_raw_context(&mut out, &json, ip, user_agent).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn typed_path_equals_the_model_serialization() {
        let typed = EventContext {
            locale: Some("en".into()),
            ..EventContext::default()
        };
        let mut properties = Map::new();
        properties.insert("k".into(), Value::from("v\u{1}\"quoted\""));
        let mut stored = event(
            StoredContext::Typed(Box::new(typed.clone())),
            StoredProperties::Map(properties.clone()),
        );
        stored.user_id = Some("u-1".into());
        let model = Event {
            event_id: "e".into(),
            tenant_id: "acme".into(),
            anonymous_id: "a".into(),
            user_id: Some("u-1".into()),
            session_id: "s".into(),
            event_type: "page".into(),
            event_family: "page".into(),
            ts: 1,
            received_at: 2,
            context: typed,
            properties,
            enriched: None,
        };
        assert_eq!(
            String::from_utf8(stored.to_json().unwrap()).unwrap(),
            serde_json::to_string(&model).unwrap()
        );
    }
}
