//! Hand-written decoding of the context structs that keep unknown fields.
//!
//! `EventContext`, `PageContext` and `Campaign` keep every field they do not name in an `extra`
//! map. Serde's derive does that with `#[serde(flatten)]`, which decodes the object through its
//! generic map path, buffers every key and value it does not name into an intermediate tree, and
//! then decodes `extra` out of that tree a second time. These visitors read each key once
//! (without allocating for named ones), decode a named field straight into its slot and an
//! unnamed value straight into `extra`; the result is the derive's (the tests below compare
//! them), at one pass.
//!
//! Serialization stays derived: flattening on the way out costs nothing extra.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Error, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::event::{Campaign, EventContext, PageContext};

/// A key of one of the structs: the index of a named field, or a key kept in `extra`.
enum Key {
    Named(usize),
    Other(String),
}

/// Reads a key and looks it up among a struct's field names, without allocating for them.
struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<Key, E> {
        Ok(match self.0.iter().position(|name| *name == key) {
            Some(index) => Key::Named(index),
            None => Key::Other(key.to_owned()),
        })
    }

    fn visit_string<E: Error>(self, key: String) -> Result<Key, E> {
        Ok(match self.0.iter().position(|name| *name == key) {
            Some(index) => Key::Named(index),
            None => Key::Other(key),
        })
    }
}

/// A struct with named fields and an `extra` map for every other key.
trait KeepsUnknownFields: Default {
    /// The named fields' keys; a key's position is its `index` in [`Self::read_named`].
    const FIELDS: &'static [&'static str];
    /// What the visitor expects, for error messages.
    const EXPECTING: &'static str;

    /// Decodes the next value into named field number `index`.
    fn read_named<'de, A: MapAccess<'de>>(
        &mut self,
        index: usize,
        map: &mut A,
    ) -> Result<(), A::Error>;

    /// Where the other keys go.
    fn extra(&mut self) -> &mut Map<String, Value>;
}

/// Decodes any [`KeepsUnknownFields`] struct from a map in one pass.
struct KeepsUnknownVisitor<T>(PhantomData<T>);

impl<'de, T: KeepsUnknownFields> Visitor<'de> for KeepsUnknownVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::default();
        // A named field given twice is an error, as it is for every derived struct, `null`
        // included; `seen` remembers which came.
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(KeySeed(T::FIELDS))? {
            match key {
                Key::Named(index) => {
                    if seen & (1 << index) != 0 {
                        return Err(A::Error::duplicate_field(T::FIELDS[index]));
                    }
                    seen |= 1 << index;
                    value.read_named(index, &mut map)?;
                }
                // A repeated unnamed key replaces the earlier value, as in any JSON map.
                Key::Other(key) => {
                    let field: Value = map.next_value()?;
                    value.extra().insert(key, field);
                }
            }
        }
        Ok(value)
    }
}

/// `Deserialize` for a [`KeepsUnknownFields`] struct.
macro_rules! deserialize_keeping_unknown_fields {
    ($type:ty) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_map(KeepsUnknownVisitor::<$type>(PhantomData))
            }
        }
    };
}

impl KeepsUnknownFields for EventContext {
    const FIELDS: &'static [&'static str] = &["page", "user_agent", "ip", "locale", "campaign"];
    const EXPECTING: &'static str = "an event context object";

    fn read_named<'de, A: MapAccess<'de>>(
        &mut self,
        index: usize,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match index {
            0 => self.page = map.next_value()?,
            1 => self.user_agent = map.next_value()?,
            2 => self.ip = map.next_value()?,
            3 => self.locale = map.next_value()?,
            _ => self.campaign = map.next_value()?,
        }
        Ok(())
    }

    fn extra(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

impl KeepsUnknownFields for PageContext {
    const FIELDS: &'static [&'static str] = &["url", "path", "title", "referrer"];
    const EXPECTING: &'static str = "a page context object";

    fn read_named<'de, A: MapAccess<'de>>(
        &mut self,
        index: usize,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let slot = match index {
            0 => &mut self.url,
            1 => &mut self.path,
            2 => &mut self.title,
            _ => &mut self.referrer,
        };
        *slot = map.next_value()?;
        Ok(())
    }

    fn extra(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

impl KeepsUnknownFields for Campaign {
    const FIELDS: &'static [&'static str] = &["source", "medium", "name", "term", "content"];
    const EXPECTING: &'static str = "a campaign object";

    fn read_named<'de, A: MapAccess<'de>>(
        &mut self,
        index: usize,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let slot = match index {
            0 => &mut self.source,
            1 => &mut self.medium,
            2 => &mut self.name,
            3 => &mut self.term,
            _ => &mut self.content,
        };
        *slot = map.next_value()?;
        Ok(())
    }

    fn extra(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

deserialize_keeping_unknown_fields!(EventContext);
deserialize_keeping_unknown_fields!(PageContext);
deserialize_keeping_unknown_fields!(Campaign);

#[cfg(test)]
mod tests {
    //! The visitors against serde's derive with `flatten`, the behaviour they replace.

    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{Map, Value, json};

    use crate::event::{Campaign, EventContext, PageContext};

    #[derive(Debug, Deserialize)]
    struct DerivedContext {
        #[serde(default)]
        page: Option<DerivedPage>,
        #[serde(default)]
        user_agent: Option<String>,
        #[serde(default)]
        ip: Option<String>,
        #[serde(default)]
        locale: Option<String>,
        #[serde(default)]
        campaign: Option<DerivedCampaign>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    }

    #[derive(Debug, Deserialize)]
    struct DerivedPage {
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        referrer: Option<String>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    }

    #[derive(Debug, Deserialize)]
    struct DerivedCampaign {
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        medium: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        term: Option<String>,
        #[serde(default)]
        content: Option<String>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    }

    fn same_page(ours: &PageContext, derived: &DerivedPage) -> bool {
        ours.url == derived.url
            && ours.path == derived.path
            && ours.title == derived.title
            && ours.referrer == derived.referrer
            && ours.extra == derived.extra
    }

    fn same_campaign(ours: &Campaign, derived: &DerivedCampaign) -> bool {
        ours.source == derived.source
            && ours.medium == derived.medium
            && ours.name == derived.name
            && ours.term == derived.term
            && ours.content == derived.content
            && ours.extra == derived.extra
    }

    fn same_context(ours: &EventContext, derived: &DerivedContext) -> bool {
        let page = match (&ours.page, &derived.page) {
            (Some(ours), Some(derived)) => same_page(ours, derived),
            (None, None) => true,
            _ => false,
        };
        let campaign = match (&ours.campaign, &derived.campaign) {
            (Some(ours), Some(derived)) => same_campaign(ours, derived),
            (None, None) => true,
            _ => false,
        };
        page && campaign
            && ours.user_agent == derived.user_agent
            && ours.ip == derived.ip
            && ours.locale == derived.locale
            && ours.extra == derived.extra
    }

    /// Compares both decoders on one JSON text: same value, or both refuse it.
    fn check(text: &str) -> Result<(), TestCaseError> {
        let ours = serde_json::from_str::<EventContext>(text);
        let derived = serde_json::from_str::<DerivedContext>(text);
        match (&ours, &derived) {
            (Ok(ours), Ok(derived)) => {
                prop_assert!(
                    same_context(ours, derived),
                    "{text}: {ours:?} vs {derived:?}"
                );
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{text}: ours {ours:?}, derived {derived:?}"),
        }
        Ok(())
    }

    /// Any JSON value, as text.
    fn any_value() -> BoxedStrategy<String> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z/:. ]{0,12}".prop_map(Value::from),
        ];
        scalar
            .prop_recursive(2, 8, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                    prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
            .prop_map(|value| value.to_string())
            .boxed()
    }

    /// An object's text over the named keys and a few others, keys possibly repeated, values
    /// of every JSON kind or from `nested`.
    fn object(
        keys: &'static [&'static str],
        nested: BoxedStrategy<String>,
    ) -> BoxedStrategy<String> {
        let key = prop_oneof![
            prop::sample::select(keys).prop_map(str::to_string),
            "[a-z_]{1,6}",
        ];
        let value = prop_oneof![any_value(), nested];
        prop::collection::vec((key, value), 0..7)
            .prop_map(|pairs| {
                let fields: Vec<String> = pairs
                    .iter()
                    .map(|(key, value)| format!("\"{key}\":{value}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
            .boxed()
    }

    proptest! {
        #[test]
        fn contexts_decode_as_the_derive_does(
            text in object(
                <EventContext as super::KeepsUnknownFields>::FIELDS,
                prop_oneof![
                    object(<PageContext as super::KeepsUnknownFields>::FIELDS, any_value()),
                    object(<Campaign as super::KeepsUnknownFields>::FIELDS, any_value()),
                ]
                .boxed(),
            ),
        ) {
            check(&text)?;
        }
    }

    #[test]
    fn named_fields_are_read_and_others_kept() {
        let context: EventContext = serde_json::from_value(json!({
            "page": {"url": "https://a.example/x", "hash": "#top"},
            "ip": "10.1.2.3",
            "locale": null,
            "campaign": {"source": "news", "id": 7},
            "library": {"name": "analytics.js"}
        }))
        .unwrap();
        let page = context.page.as_ref().unwrap();
        assert_eq!(page.url.as_deref(), Some("https://a.example/x"));
        assert_eq!(page.extra["hash"], "#top");
        assert_eq!(context.ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(context.locale, None);
        let campaign = context.campaign.as_ref().unwrap();
        assert_eq!(campaign.source.as_deref(), Some("news"));
        assert_eq!(campaign.extra["id"], 7);
        assert_eq!(context.extra["library"]["name"], "analytics.js");
    }

    #[test]
    fn a_named_field_of_the_wrong_type_is_refused_by_name() {
        let error = serde_json::from_str::<EventContext>(r#"{"ip": 42}"#).unwrap_err();
        assert!(error.to_string().contains("expected a string"), "{error}");
        let error = serde_json::from_str::<PageContext>(r#"{"url": "a", "url": "b"}"#).unwrap_err();
        assert!(
            error.to_string().contains("duplicate field `url`"),
            "{error}"
        );
    }
}
