//! The schema registry: a JSON Schema per event type, versioned, stored in the catalog.
//!
//! A schema validates an event's `properties` (the page-specific fields: an item view's
//! `item_id`, an order's `order_id` and `revenue`); the envelope itself was checked at the
//! edge. The newest version of each type is in force. A new version must be backward
//! compatible — accept every event the version in force accepts — unless it is added with
//! force; [`compatibility_breaks`] names each change that breaks, by JSON pointer.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tributary_catalog::{Catalog, CatalogError, EventSchema};
use tributary_model::{Event, now_micros};

use crate::error::PipelineError;

/// One reason an event failed its schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// JSON pointer into the event, e.g. `/properties/revenue`.
    pub pointer: String,
    /// The JSON Schema keyword that failed (`required`, `type`, `minimum`, …), or `schema`
    /// for a missing schema.
    pub rule: String,
    /// What the validator said, e.g. `"12" is not of type "number"`.
    pub message: String,
}

/// What the registry says of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The schema in force (this version) accepts it.
    Valid {
        /// The schema version.
        version: u32,
    },
    /// The schema in force rejects it, for these reasons (every one, not only the first).
    Invalid {
        /// The schema version.
        version: u32,
        /// Every violation.
        violations: Vec<Violation>,
    },
    /// No schema exists for its event type.
    Unknown,
}

/// A compiled schema version.
struct Compiled {
    version: u32,
    validator: jsonschema::Validator,
}

/// The schemas in force, compiled, by event type. Cheap to share behind an `Arc`; rebuilt
/// (not mutated) when a version is added.
#[derive(Default)]
pub struct SchemaRegistry {
    current: HashMap<String, Compiled>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<(&String, u32)> = self
            .current
            .iter()
            .map(|(name, compiled)| (name, compiled.version))
            .collect();
        types.sort();
        f.debug_struct("SchemaRegistry")
            .field("current", &types)
            .finish()
    }
}

/// Compiles `schema`; the error names the event type.
fn compile(event_type: &str, schema: &Value) -> Result<jsonschema::Validator, PipelineError> {
    jsonschema::validator_for(schema).map_err(|error| PipelineError::InvalidSchema {
        event_type: event_type.to_string(),
        message: error.to_string(),
    })
}

impl SchemaRegistry {
    /// The registry in force given every recorded version (the newest of each type wins).
    pub fn from_versions(versions: &[EventSchema]) -> Result<SchemaRegistry, PipelineError> {
        let mut newest: HashMap<&str, &EventSchema> = HashMap::new();
        for version in versions {
            let slot = newest.entry(&version.event_type).or_insert(version);
            if version.version > slot.version {
                *slot = version;
            }
        }
        let mut current = HashMap::with_capacity(newest.len());
        for (event_type, schema) in newest {
            current.insert(
                event_type.to_string(),
                Compiled {
                    version: schema.version,
                    validator: compile(event_type, &schema.schema)?,
                },
            );
        }
        Ok(SchemaRegistry { current })
    }

    /// Loads the registry from the catalog.
    pub async fn load(catalog: &dyn Catalog) -> Result<SchemaRegistry, PipelineError> {
        let versions = catalog.event_schemas().await.map_err(registry_error)?;
        SchemaRegistry::from_versions(&versions)
    }

    /// The event types that have a schema, with the version in force.
    pub fn types(&self) -> Vec<(String, u32)> {
        let mut types: Vec<(String, u32)> = self
            .current
            .iter()
            .map(|(name, compiled)| (name.clone(), compiled.version))
            .collect();
        types.sort();
        types
    }

    /// Validates `event` against its type's schema in force.
    pub fn validate(&self, event: &mut Event) -> Verdict {
        let Some(compiled) = self.current.get(&event.event_type) else {
            return Verdict::Unknown;
        };
        // The validator wants a `Value`: move the map in and back out rather than copy it.
        let instance = Value::Object(std::mem::take(&mut event.properties));
        let verdict = if compiled.validator.is_valid(&instance) {
            Verdict::Valid {
                version: compiled.version,
            }
        } else {
            let violations = compiled
                .validator
                .iter_errors(&instance)
                .map(|error| Violation {
                    pointer: format!("/properties{}", error.instance_path.as_str()),
                    rule: error
                        .schema_path
                        .as_str()
                        .rsplit('/')
                        .next()
                        .unwrap_or("schema")
                        .to_string(),
                    message: error.to_string(),
                })
                .collect();
            Verdict::Invalid {
                version: compiled.version,
                violations,
            }
        };
        if let Value::Object(properties) = instance {
            event.properties = properties;
        }
        verdict
    }
}

fn registry_error(error: CatalogError) -> PipelineError {
    PipelineError::Registry(error.to_string())
}

/// Adds `schema` as the next version of `event_type` in the catalog, after checking that it
/// compiles and — unless `force` — that it is backward compatible with the version in force.
/// Returns the recorded version.
pub async fn add_schema(
    catalog: &dyn Catalog,
    event_type: &str,
    schema: Value,
    force: bool,
) -> Result<EventSchema, PipelineError> {
    if event_type.is_empty() {
        return Err(PipelineError::Config(
            "a schema needs an event type (e.g. \"track:Order Completed\")".into(),
        ));
    }
    compile(event_type, &schema)?;
    let versions = catalog.event_schemas().await.map_err(registry_error)?;
    let current = versions
        .iter()
        .filter(|version| version.event_type == event_type)
        .max_by_key(|version| version.version);
    let next = current.map_or(1, |current| current.version + 1);
    if let Some(current) = current {
        if current.schema == schema {
            // Adding the same schema again is a no-op, so scripts can apply schemas blindly.
            return Ok(current.clone());
        }
        let breaks = compatibility_breaks(&current.schema, &schema);
        if !breaks.is_empty() && !force {
            return Err(PipelineError::Incompatible {
                event_type: event_type.to_string(),
                old_version: current.version,
                new_version: next,
                breaks,
            });
        }
    }
    let record = EventSchema {
        event_type: event_type.to_string(),
        version: next,
        schema,
        forced: force,
        created_at: now_micros(),
    };
    catalog
        .add_event_schema(record.clone())
        .await
        .map_err(registry_error)?;
    Ok(record)
}

/// The changes from `old` to `new` that make `new` reject events `old` accepts, each naming
/// its JSON pointer into the schema. Empty when `new` is backward compatible as far as these
/// rules see: new required fields, narrowed types, removed enum values, tighter bounds,
/// closed `additionalProperties`, and the same rules inside every `properties` and `items`.
pub fn compatibility_breaks(old: &Value, new: &Value) -> Vec<String> {
    let mut breaks = Vec::new();
    compare(old, new, "", &mut breaks);
    breaks
}

fn compare(old: &Value, new: &Value, at: &str, breaks: &mut Vec<String>) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        // `true`/`false` schemas: only `true` → `false` narrows.
        if old.as_bool() != Some(false) && new.as_bool() == Some(false) {
            breaks.push(format!("{at}: the schema now rejects everything"));
        }
        return;
    };
    let names = |map: &Map<String, Value>, key: &str| -> Vec<String> {
        map.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_required = names(old, "required");
    for field in names(new, "required") {
        if !old_required.contains(&field) {
            breaks.push(format!("{at}/required: {field:?} is now required"));
        }
    }
    if let Some(new_types) = types_of(new) {
        match types_of(old) {
            None => breaks.push(format!(
                "{at}/type: now restricted to {}",
                new_types.join(", ")
            )),
            Some(old_types) => {
                let lost: Vec<&String> = old_types
                    .iter()
                    .filter(|t| {
                        // integers are numbers: number ⊇ integer.
                        let widened =
                            t.as_str() == "integer" && new_types.iter().any(|n| n == "number");
                        !(new_types.contains(t) || widened)
                    })
                    .collect();
                if !lost.is_empty() {
                    breaks.push(format!(
                        "{at}/type: no longer accepts {}",
                        lost.iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    if let Some(new_enum) = new.get("enum").and_then(Value::as_array) {
        match old.get("enum").and_then(Value::as_array) {
            None => breaks.push(format!("{at}/enum: values are now restricted")),
            Some(old_enum) => {
                for value in old_enum {
                    if !new_enum.contains(value) {
                        breaks.push(format!("{at}/enum: {value} is no longer allowed"));
                    }
                }
            }
        }
    }
    for (keyword, tighter_when_larger) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
    ] {
        let (old_bound, new_bound) = (
            old.get(keyword).and_then(Value::as_f64),
            new.get(keyword).and_then(Value::as_f64),
        );
        let tighter = match (old_bound, new_bound) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(o), Some(n)) => (n > o) == tighter_when_larger && n != o,
        };
        if tighter {
            breaks.push(format!(
                "{at}/{keyword}: tightened from {} to {}",
                old_bound.map_or("none".into(), |b| b.to_string()),
                new_bound.map_or("none".into(), |b| b.to_string())
            ));
        }
    }
    if new.get("pattern").is_some() && new.get("pattern") != old.get("pattern") {
        breaks.push(format!("{at}/pattern: a new or changed pattern"));
    }
    if new.get("format").is_some() && new.get("format") != old.get("format") {
        breaks.push(format!("{at}/format: a new or changed format"));
    }
    let closed =
        |map: &Map<String, Value>| map.get("additionalProperties") == Some(&Value::Bool(false));
    let empty = Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if closed(new) && !closed(old) {
        breaks.push(format!(
            "{at}/additionalProperties: now false, properties not listed are rejected"
        ));
    } else if closed(new) {
        for name in old_props.keys() {
            if !new_props.contains_key(name) {
                breaks.push(format!(
                    "{at}/properties/{}: removed while additionalProperties is false",
                    escape(name)
                ));
            }
        }
    }
    for (name, new_prop) in new_props {
        let pointer = format!("{at}/properties/{}", escape(name));
        match old_props.get(name) {
            Some(old_prop) => compare(old_prop, new_prop, &pointer, breaks),
            // A property the old schema did not describe accepted anything.
            None => compare(&Value::Bool(true), new_prop, &pointer, breaks),
        }
    }
    if let Some(new_items) = new.get("items") {
        let old_items = old.get("items").cloned().unwrap_or(Value::Bool(true));
        compare(&old_items, new_items, &format!("{at}/items"), breaks);
    }
}

fn types_of(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(one) => Some(vec![one.clone()]),
        Value::Array(many) => Some(
            many.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// JSON pointer escaping of one segment (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A registry that can be swapped while consumers read it: consumers take a cheap snapshot per
/// batch; adding a schema publishes a new one.
#[derive(Debug, Clone, Default)]
pub struct SharedRegistry {
    inner: Arc<parking_lot::RwLock<Arc<SchemaRegistry>>>,
}

impl SharedRegistry {
    /// Starts with `registry`.
    pub fn new(registry: SchemaRegistry) -> SharedRegistry {
        SharedRegistry {
            inner: Arc::new(parking_lot::RwLock::new(Arc::new(registry))),
        }
    }

    /// The registry in force now.
    pub fn snapshot(&self) -> Arc<SchemaRegistry> {
        Arc::clone(&self.inner.read())
    }

    /// Replaces the registry (after a schema was added).
    pub fn publish(&self, registry: SchemaRegistry) {
        *self.inner.write() = Arc::new(registry);
    }

    /// Reloads from the catalog and publishes.
    pub async fn reload(&self, catalog: &dyn Catalog) -> Result<(), PipelineError> {
        self.publish(SchemaRegistry::load(catalog).await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_schema() -> Value {
        json!({
            "type": "object",
            "required": ["order_id", "revenue"],
            "properties": {
                "order_id": {"type": "string", "minLength": 1},
                "revenue": {"type": "number", "minimum": 0}
            }
        })
    }

    fn registry() -> SchemaRegistry {
        SchemaRegistry::from_versions(&[EventSchema {
            event_type: "track:Order Completed".into(),
            version: 2,
            schema: order_schema(),
            forced: false,
            created_at: 0,
        }])
        .unwrap()
    }

    fn event(event_type: &str, properties: Value) -> Event {
        serde_json::from_value(json!({
            "event_id": "e", "tenant_id": "t", "anonymous_id": "a", "session_id": "s",
            "event_type": event_type, "ts": 1, "received_at": 2, "properties": properties
        }))
        .unwrap()
    }

    #[test]
    fn valid_events_name_the_version_and_keep_their_properties() {
        let mut e = event(
            "track:Order Completed",
            json!({"order_id": "o1", "revenue": 9.5}),
        );
        let before = e.properties.clone();
        assert_eq!(registry().validate(&mut e), Verdict::Valid { version: 2 });
        assert_eq!(e.properties, before);
    }

    #[test]
    fn every_violation_is_reported_with_pointer_and_rule() {
        let mut e = event("track:Order Completed", json!({"revenue": "12", "x": 1}));
        let Verdict::Invalid {
            version,
            violations,
        } = registry().validate(&mut e)
        else {
            panic!("expected invalid");
        };
        assert_eq!(version, 2);
        let pairs: Vec<(&str, &str)> = violations
            .iter()
            .map(|v| (v.pointer.as_str(), v.rule.as_str()))
            .collect();
        assert!(
            pairs.contains(&("/properties", "required")),
            "{violations:?}"
        );
        assert!(
            pairs.contains(&("/properties/revenue", "type")),
            "{violations:?}"
        );
        assert_eq!(
            e.properties["revenue"], "12",
            "properties survive validation"
        );
    }

    #[test]
    fn types_without_a_schema_are_unknown() {
        let mut e = event("page", json!({}));
        assert_eq!(registry().validate(&mut e), Verdict::Unknown);
    }

    #[test]
    fn invalid_schemas_are_refused_with_the_event_type() {
        let error = SchemaRegistry::from_versions(&[EventSchema {
            event_type: "track:X".into(),
            version: 1,
            schema: json!({"type": "no-such-type"}),
            forced: false,
            created_at: 0,
        }])
        .unwrap_err();
        assert!(error.to_string().contains("track:X"), "{error}");
    }

    #[test]
    fn loosening_is_compatible() {
        let mut looser = order_schema();
        looser["required"] = json!(["order_id"]);
        looser["properties"]["revenue"]["type"] = json!(["number", "string"]);
        looser["properties"]["coupon"] = json!({"type": "string"});
        assert_eq!(
            compatibility_breaks(&order_schema(), &looser),
            Vec::<String>::new()
        );
    }

    #[test]
    fn tightening_names_every_break() {
        let mut tighter = order_schema();
        tighter["required"] = json!(["order_id", "revenue", "currency"]);
        tighter["properties"]["revenue"]["type"] = json!("integer");
        tighter["properties"]["revenue"]["minimum"] = json!(1);
        tighter["additionalProperties"] = json!(false);
        let breaks = compatibility_breaks(&order_schema(), &tighter);
        for needle in [
            "/required: \"currency\"",
            "/properties/revenue/type: no longer accepts number",
            "/properties/revenue/minimum: tightened from 0 to 1",
            "/additionalProperties",
        ] {
            assert!(
                breaks.iter().any(|b| b.contains(needle)),
                "{needle} in {breaks:?}"
            );
        }
    }
}
