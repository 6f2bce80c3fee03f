//! PII handling: configured fields are tokenized with a keyed HMAC or dropped before an event
//! reaches the curated lake or the index.
//!
//! A token is `tok_<key id>_<32 hex digits>`: the first 128 bits of
//! HMAC-SHA256(key, tenant ‖ 0x00 ‖ value). It is deterministic — the same e-mail of the same
//! tenant always gives the same token, so joins and distinct counts on it still work — and it
//! cannot be reversed without the key. The tenant is part of the input so tokens of two tenants
//! never match. The key id in the token says which key made it; see docs/operations.md for
//! rotating the key (a new id, then `tributary replay raw` to re-tokenize history if wanted).
//!
//! Field paths are dotted: `properties.email`, `properties.customer.email`,
//! `context.traits.email` (any context field the model does not name lives in its `extra`),
//! `context.ip`, `context.user_agent`, `context.page.url`, `context.page.referrer`, `user_id`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use tributary_model::Event;

use crate::error::PipelineError;

/// Settings of PII handling (`[pipeline.privacy]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Fields replaced by their token. Default: `properties.email`, `context.traits.email`
    /// (Segment's identify traits are merged into properties; its context traits are kept in
    /// context).
    pub tokenize: Vec<String>,
    /// Fields removed entirely.
    pub drop: Vec<String>,
    /// The id written into tokens, so tokens of an old key can be told apart after a rotation.
    pub key_id: String,
    /// The HMAC key (at least 16 bytes of text). Unset: `tributary serve` generates one into
    /// `<data_dir>/privacy.key` on first start and uses it from then on.
    pub key: Option<String>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            tokenize: vec!["properties.email".into(), "context.traits.email".into()],
            drop: Vec::new(),
            key_id: "k1".into(),
            key: None,
        }
    }
}

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

impl PrivacyConfig {
    /// Checks paths, key id and key length.
    pub fn validate(&self) -> Result<(), PipelineError> {
        for path in self.tokenize.iter().chain(&self.drop) {
            FieldPath::parse(path)?;
        }
        if self.key_id.is_empty()
            || !self
                .key_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(PipelineError::Config(format!(
                "pipeline.privacy.key_id is {:?}: it must be letters, digits and '-', not empty",
                self.key_id
            )));
        }
        if let Some(key) = &self.key
            && key.len() < MIN_KEY_BYTES
        {
            return Err(PipelineError::Config(format!(
                "pipeline.privacy.key is {} bytes, must be at least {MIN_KEY_BYTES}",
                key.len()
            )));
        }
        Ok(())
    }
}

/// Where a field lives in the event model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldPath {
    UserId,
    AnonymousId,
    Ip,
    UserAgent,
    PageUrl,
    PageReferrer,
    PageTitle,
    /// A path inside `properties`.
    Properties(Vec<String>),
    /// A path inside `context.extra`.
    ContextExtra(Vec<String>),
}

impl FieldPath {
    fn parse(path: &str) -> Result<FieldPath, PipelineError> {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(PipelineError::Config(format!(
                "pipeline.privacy: field path {path:?} has an empty segment"
            )));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(match refs.as_slice() {
            ["user_id"] => FieldPath::UserId,
            ["anonymous_id"] => FieldPath::AnonymousId,
            ["context", "ip"] => FieldPath::Ip,
            ["context", "user_agent"] => FieldPath::UserAgent,
            ["context", "page", "url"] => FieldPath::PageUrl,
            ["context", "page", "referrer"] => FieldPath::PageReferrer,
            ["context", "page", "title"] => FieldPath::PageTitle,
            ["properties", _, ..] => FieldPath::Properties(parts[1..].to_vec()),
            ["context", "page" | "campaign" | "locale", ..] => {
                return Err(PipelineError::Config(format!(
                    "pipeline.privacy: field path {path:?} is not supported; supported are \
                     user_id, anonymous_id, context.ip, context.user_agent, context.page.url, \
                     context.page.referrer, context.page.title, properties.<…> and \
                     context.<other field>.<…>"
                )));
            }
            ["context", _, ..] => FieldPath::ContextExtra(parts[1..].to_vec()),
            _ => {
                return Err(PipelineError::Config(format!(
                    "pipeline.privacy: field path {path:?} must start with properties., \
                     context. or be user_id / anonymous_id"
                )));
            }
        })
    }
}

/// Applies the privacy rules to events.
#[derive(Clone)]
pub struct Privacy {
    tokenize: Vec<FieldPath>,
    drop: Vec<FieldPath>,
    key_id: String,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Privacy")
            .field("tokenize", &self.tokenize)
            .field("drop", &self.drop)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Privacy {
    /// Rules from `config`, tokenizing with `key` (the configured key, or the generated one).
    pub fn new(config: &PrivacyConfig, key: &[u8]) -> Result<Privacy, PipelineError> {
        config.validate()?;
        if key.len() < MIN_KEY_BYTES {
            return Err(PipelineError::Config(format!(
                "the privacy key is {} bytes, must be at least {MIN_KEY_BYTES}",
                key.len()
            )));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|error| PipelineError::Config(format!("privacy key: {error}")))?;
        Ok(Privacy {
            tokenize: config
                .tokenize
                .iter()
                .map(|path| FieldPath::parse(path))
                .collect::<Result<_, _>>()?,
            drop: config
                .drop
                .iter()
                .map(|path| FieldPath::parse(path))
                .collect::<Result<_, _>>()?,
            key_id: config.key_id.clone(),
            mac,
        })
    }

    /// The token of `value` for `tenant`.
    pub fn token(&self, tenant: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(tenant.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("tok_{}_{}", self.key_id, hex::encode(&digest[..16]))
    }

    /// Whether `value` is already a token of the current key (a replay must not hash a token
    /// again).
    fn is_token(&self, value: &str) -> bool {
        value
            .strip_prefix("tok_")
            .and_then(|rest| rest.strip_prefix(self.key_id.as_str()))
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|digits| {
                digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit())
            })
    }

    /// Drops, then tokenizes, the configured fields of `event`. Returns how many fields it
    /// changed.
    pub fn apply(&self, event: &mut Event) -> usize {
        let mut changed = 0;
        for path in &self.drop {
            changed += usize::from(self.drop_field(event, path));
        }
        if self.tokenize.is_empty() {
            return changed;
        }
        // Taken out for the loop rather than cloned: this runs for every event, and no field
        // path can name the tenant.
        let tenant = std::mem::take(&mut event.tenant_id);
        for path in &self.tokenize {
            changed += self.tokenize_field(event, path, &tenant);
        }
        event.tenant_id = tenant;
        changed
    }

    fn drop_field(&self, event: &mut Event, path: &FieldPath) -> bool {
        let page = event.context.page.as_mut();
        match path {
            FieldPath::UserId => event.user_id.take().is_some(),
            FieldPath::AnonymousId => !std::mem::take(&mut event.anonymous_id).is_empty(),
            FieldPath::Ip => event.context.ip.take().is_some(),
            FieldPath::UserAgent => event.context.user_agent.take().is_some(),
            FieldPath::PageUrl => page.and_then(|p| p.url.take()).is_some(),
            FieldPath::PageReferrer => page.and_then(|p| p.referrer.take()).is_some(),
            FieldPath::PageTitle => page.and_then(|p| p.title.take()).is_some(),
            FieldPath::Properties(parts) => remove_in(&mut event.properties, parts),
            FieldPath::ContextExtra(parts) => remove_in(&mut event.context.extra, parts),
        }
    }

    fn tokenize_field(&self, event: &mut Event, path: &FieldPath, tenant: &str) -> usize {
        let one = |slot: &mut Option<String>| match slot {
            Some(value) if !self.is_token(value) => {
                *value = self.token(tenant, value);
                1
            }
            _ => 0,
        };
        let page = event.context.page.as_mut();
        match path {
            FieldPath::UserId => one(&mut event.user_id),
            FieldPath::AnonymousId => {
                if event.anonymous_id.is_empty() || self.is_token(&event.anonymous_id) {
                    0
                } else {
                    event.anonymous_id = self.token(tenant, &event.anonymous_id);
                    1
                }
            }
            FieldPath::Ip => one(&mut event.context.ip),
            FieldPath::UserAgent => one(&mut event.context.user_agent),
            FieldPath::PageUrl => page.map_or(0, |p| one(&mut p.url)),
            FieldPath::PageReferrer => page.map_or(0, |p| one(&mut p.referrer)),
            FieldPath::PageTitle => page.map_or(0, |p| one(&mut p.title)),
            FieldPath::Properties(parts) => self.tokenize_in(&mut event.properties, parts, tenant),
            FieldPath::ContextExtra(parts) => {
                self.tokenize_in(&mut event.context.extra, parts, tenant)
            }
        }
    }

    /// Tokenizes the value at `parts` inside `map`: a string by its text, a number or boolean
    /// by its JSON text, an array element by element; null and objects are left alone (an
    /// object is not one value — name its fields).
    fn tokenize_in(&self, map: &mut Map<String, Value>, parts: &[String], tenant: &str) -> usize {
        let Some(value) = lookup_mut(map, parts) else {
            return 0;
        };
        self.tokenize_value(value, tenant)
    }

    fn tokenize_value(&self, value: &mut Value, tenant: &str) -> usize {
        match value {
            Value::String(text) if self.is_token(text) => 0,
            Value::String(text) => {
                *text = self.token(tenant, text);
                1
            }
            Value::Number(_) | Value::Bool(_) => {
                *value = Value::String(self.token(tenant, &value.to_string()));
                1
            }
            Value::Array(items) => items
                .iter_mut()
                .map(|item| self.tokenize_value(item, tenant))
                .sum(),
            Value::Null | Value::Object(_) => 0,
        }
    }
}

fn lookup_mut<'a>(map: &'a mut Map<String, Value>, parts: &[String]) -> Option<&'a mut Value> {
    let (first, rest) = parts.split_first()?;
    let mut value = map.get_mut(first)?;
    for part in rest {
        value = value.as_object_mut()?.get_mut(part)?;
    }
    Some(value)
}

fn remove_in(map: &mut Map<String, Value>, parts: &[String]) -> bool {
    match parts {
        [] => false,
        [last] => map.remove(last).is_some(),
        [first, rest @ ..] => map
            .get_mut(first)
            .and_then(Value::as_object_mut)
            .is_some_and(|inner| remove_in(inner, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn event(properties: Value, context_extra: Value) -> Event {
        serde_json::from_value(json!({
            "event_id": "e1", "tenant_id": "acme", "anonymous_id": "a1", "session_id": "s1",
            "event_type": "identify", "ts": 1, "received_at": 2,
            "context": merge(json!({"ip": "203.0.113.9"}), context_extra),
            "properties": properties,
        }))
        .unwrap()
    }

    fn merge(mut base: Value, extra: Value) -> Value {
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        base
    }

    fn privacy(config: PrivacyConfig) -> Privacy {
        Privacy::new(&config, KEY).unwrap()
    }

    #[test]
    fn default_rules_tokenize_emails_in_properties_and_context_traits() {
        let privacy = privacy(PrivacyConfig::default());
        let mut e = event(
            json!({"email": "ann@example.com", "plan": "pro"}),
            json!({"traits": {"email": "ann@example.com"}}),
        );
        assert_eq!(privacy.apply(&mut e), 2);
        let token = e.properties["email"].as_str().unwrap().to_string();
        assert!(
            token.starts_with("tok_k1_") && token.len() == 7 + 32,
            "{token}"
        );
        assert_eq!(e.context.extra["traits"]["email"], json!(token));
        assert_eq!(e.properties["plan"], "pro");
        assert!(
            !serde_json::to_string(&e)
                .unwrap()
                .contains("ann@example.com")
        );
    }

    #[test]
    fn tokens_are_deterministic_per_tenant_and_differ_across_tenants_and_keys() {
        let a = privacy(PrivacyConfig::default());
        assert_eq!(a.token("acme", "x"), a.token("acme", "x"));
        assert_ne!(a.token("acme", "x"), a.token("globex", "x"));
        assert_ne!(a.token("acme", "x"), a.token("acme", "y"));
        let other = Privacy::new(&PrivacyConfig::default(), b"another key of 16+ bytes").unwrap();
        assert_ne!(a.token("acme", "x"), other.token("acme", "x"));
    }

    #[test]
    fn applying_twice_changes_nothing_more() {
        let privacy = privacy(PrivacyConfig::default());
        let mut e = event(json!({"email": "ann@example.com"}), json!({}));
        privacy.apply(&mut e);
        let once = e.clone();
        assert_eq!(privacy.apply(&mut e), 0);
        assert_eq!(e, once);
    }

    #[test]
    fn drops_typed_and_nested_fields_and_tokenizes_numbers_and_arrays() {
        let privacy = privacy(PrivacyConfig {
            tokenize: vec!["properties.phones".into(), "properties.customer.zip".into()],
            drop: vec!["context.ip".into(), "properties.customer.name".into()],
            ..PrivacyConfig::default()
        });
        let mut e = event(
            json!({"phones": ["555-1", "555-2"], "customer": {"zip": 12345, "name": "Ann"}}),
            json!({}),
        );
        assert_eq!(privacy.apply(&mut e), 5);
        assert_eq!(e.context.ip, None);
        assert!(e.properties["customer"].get("name").is_none());
        assert!(
            e.properties["customer"]["zip"]
                .as_str()
                .unwrap()
                .starts_with("tok_")
        );
        assert!(
            e.properties["phones"][1]
                .as_str()
                .unwrap()
                .starts_with("tok_")
        );
    }

    #[test]
    fn bad_paths_keys_and_key_ids_are_refused_with_the_field_named() {
        for (config, needle) in [
            (
                PrivacyConfig {
                    tokenize: vec!["properties..email".into()],
                    ..PrivacyConfig::default()
                },
                "empty segment",
            ),
            (
                PrivacyConfig {
                    drop: vec!["traits.email".into()],
                    ..PrivacyConfig::default()
                },
                "must start with",
            ),
            (
                PrivacyConfig {
                    key_id: "k 1".into(),
                    ..PrivacyConfig::default()
                },
                "key_id",
            ),
            (
                PrivacyConfig {
                    key: Some("short".into()),
                    ..PrivacyConfig::default()
                },
                "at least 16",
            ),
        ] {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
        assert!(Privacy::new(&PrivacyConfig::default(), b"short").is_err());
    }
}
