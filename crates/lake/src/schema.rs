//! The lake's tables and their Arrow schemas.
//!
//! Two tables, both plain Hive-partitioned Parquet that any engine can read:
//!
//! | table        | location          | partitions (from the path)   | time column   |
//! |--------------|-------------------|------------------------------|---------------|
//! | `events`     | `curated/events`  | `dt=YYYY-MM-DD/event_family=` | `ts`          |
//! | `raw_events` | `raw/events`      | `dt=YYYY-MM-DD/hour=HH`       | `received_at` |
//!
//! Partition columns are not stored in the files (the Hive convention, which Athena's
//! `PARTITIONED BY` expects); every other column is. `dt` is the UTC date of `ts` for curated
//! events (a one-hour query reads one day) and of `received_at` for the raw archive (the
//! archive is append-only in arrival order, which is what a replay walks).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use tributary_catalog::TableDef;

/// SQL name of the curated events table.
pub const EVENTS: &str = "events";
/// SQL name of the raw archive table.
pub const RAW_EVENTS: &str = "raw_events";
/// Object-store prefix of the curated events.
pub const EVENTS_LOCATION: &str = "curated/events";
/// Object-store prefix of the raw archive.
pub const RAW_EVENTS_LOCATION: &str = "raw/events";
/// Name of the quarantine table: events the pipeline rejected, with every reason.
pub const QUARANTINE: &str = "quarantine";
/// Where quarantine files live in the lake.
pub const QUARANTINE_LOCATION: &str = "quarantine/events";

/// The timestamp type of every time column: µs since the epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A property promoted from `properties` to a typed top-level column of `events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotedProperty {
    /// The property's name in `properties`, which is also the column's name.
    pub name: String,
    /// The column's type.
    #[serde(rename = "type")]
    pub kind: PromotedType,
}

/// Types a promoted property can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotedType {
    /// UTF-8 text (a JSON string, or any other JSON value as its text).
    String,
    /// 64-bit integer (a JSON integer, or a string holding one).
    Int64,
    /// 64-bit float (a JSON number, or a string holding one).
    Float64,
    /// Boolean (JSON `true`/`false`, or the strings `"true"`/`"false"`).
    Bool,
}

impl PromotedType {
    /// The Arrow type of the column.
    pub fn data_type(self) -> DataType {
        match self {
            PromotedType::String => DataType::Utf8,
            PromotedType::Int64 => DataType::Int64,
            PromotedType::Float64 => DataType::Float64,
            PromotedType::Bool => DataType::Boolean,
        }
    }
}

/// Column names of the envelope, which a promoted property may not take.
pub const ENVELOPE_COLUMNS: &[&str] = &[
    "event_id",
    "tenant_id",
    "anonymous_id",
    "user_id",
    "session_id",
    "event_type",
    "event_family",
    "ts",
    "received_at",
    "context",
    "properties",
    "enriched",
    "dt",
];

/// String columns of `events` with few distinct values per file (paths are dotted, into the
/// structs): event types, pages, referrers, campaigns and what enrichment derives. Parquet
/// stores them dictionary-encoded; the query engine reads them as Arrow dictionaries, so a
/// filter or a `GROUP BY` on them works on a file's distinct values instead of every row.
/// Ids, URLs, user agents and free text are not listed: their values hardly repeat.
pub const LOW_CARDINALITY_COLUMNS: &[&str] = &[
    "event_type",
    "context.page.path",
    "context.page.referrer",
    "context.locale",
    "context.campaign.source",
    "context.campaign.medium",
    "context.campaign.name",
    "context.campaign.term",
    "context.campaign.content",
    "enriched.browser",
    "enriched.browser_version",
    "enriched.os",
    "enriched.os_version",
    "enriched.device_type",
    "enriched.referrer_class",
    "enriched.referrer_host",
    "enriched.page_host",
    "enriched.country",
    "enriched.region",
    "enriched.city",
];

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// `context.page`.
pub fn page_fields() -> Fields {
    Fields::from(vec![
        text("url"),
        text("path"),
        text("title"),
        text("referrer"),
    ])
}

/// `context.campaign` (the `utm_*` fields without the prefix).
pub fn campaign_fields() -> Fields {
    Fields::from(vec![
        text("source"),
        text("medium"),
        text("name"),
        text("term"),
        text("content"),
    ])
}

/// `context`: page, user agent, ip, locale, campaign, and every other member the producer sent
/// as one JSON object text in `extra` (nothing accepted is lost).
pub fn context_fields() -> Fields {
    Fields::from(vec![
        Field::new("page", DataType::Struct(page_fields()), true),
        text("user_agent"),
        text("ip"),
        text("locale"),
        Field::new("campaign", DataType::Struct(campaign_fields()), true),
        text("extra"),
    ])
}

/// The `map<string, string>` type of `properties`: string values as they are, any other JSON
/// value as its JSON text.
pub fn properties_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("key_value", DataType::Struct(entries), false)),
        false,
    )
}

/// The columns stored in a curated events file, promoted properties last, in the given order.
pub fn curated_file_schema(promoted: &[PromotedProperty]) -> SchemaRef {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("anonymous_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("session_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("received_at", timestamp_type(), false),
        Field::new("context", DataType::Struct(context_fields()), false),
        Field::new("properties", properties_type(), false),
        Field::new("enriched", DataType::Struct(enriched_fields()), true),
    ];
    fields.extend(
        promoted
            .iter()
            .map(|property| Field::new(&property.name, property.kind.data_type(), true)),
    );
    Arc::new(Schema::new(fields))
}

/// Fields of the curated `enriched` struct: what the pipeline derived (see
/// `tributary_model::Enrichment`).
pub fn enriched_fields() -> Fields {
    Fields::from(vec![
        text("browser"),
        text("browser_version"),
        text("os"),
        text("os_version"),
        text("device_type"),
        Field::new("is_bot", DataType::Boolean, true),
        text("referrer_class"),
        text("referrer_host"),
        text("page_host"),
        text("country"),
        text("region"),
        text("city"),
    ])
}

/// Fields of one quarantine reason.
pub fn reason_fields() -> Fields {
    Fields::from(vec![
        Field::new("pointer", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ])
}

/// The columns of a quarantine file: where the event came from, why it was rejected (every
/// reason, as JSON pointer + rule + message) and its original payload, so that a replay after
/// a schema fix can validate it again.
pub fn quarantine_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("received_at", timestamp_type(), false),
        Field::new("shard", DataType::UInt32, false),
        Field::new("seq", DataType::UInt64, false),
        Field::new("schema_version", DataType::UInt32, true),
        Field::new(
            "reasons",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(reason_fields()),
                true,
            ))),
            false,
        ),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

/// The catalog definition of `quarantine`, partitioned by the day events arrived.
pub fn quarantine_table(retention_days: Option<u32>) -> TableDef {
    TableDef {
        name: QUARANTINE.into(),
        location: QUARANTINE_LOCATION.into(),
        partition_columns: vec!["dt".into()],
        time_column: "received_at".into(),
        tenant_column: "tenant_id".into(),
        schema: schema_json(&quarantine_file_schema()),
        retention_days,
    }
}

/// The columns stored in a raw archive file: the event exactly as the stream holds it
/// (`payload`, the JSON the collector acknowledged), with the fields a replay and tenant
/// isolation need beside it, and where in the stream it came from.
pub fn raw_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("received_at", timestamp_type(), false),
        Field::new("shard", DataType::UInt32, false),
        Field::new("seq", DataType::UInt64, false),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

/// The SQL type of a partition column: `dt` (the UTC day in `dt=YYYY-MM-DD`) is a DATE, as
/// DuckDB, Athena and Spark read Hive partitions; the others (`event_family`, `hour`) are text.
pub fn partition_type(column: &str) -> DataType {
    if column == "dt" {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

/// The schema as the catalog stores it: Arrow's serde JSON form.
pub fn schema_json(schema: &Schema) -> serde_json::Value {
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

/// The catalog definition of `events`.
pub fn events_table(promoted: &[PromotedProperty], retention_days: Option<u32>) -> TableDef {
    TableDef {
        name: EVENTS.into(),
        location: EVENTS_LOCATION.into(),
        partition_columns: vec!["dt".into(), "event_family".into()],
        time_column: "ts".into(),
        tenant_column: "tenant_id".into(),
        schema: schema_json(&curated_file_schema(promoted)),
        retention_days,
    }
}

/// The catalog definition of `raw_events`.
pub fn raw_events_table(retention_days: Option<u32>) -> TableDef {
    TableDef {
        name: RAW_EVENTS.into(),
        location: RAW_EVENTS_LOCATION.into(),
        partition_columns: vec!["dt".into(), "hour".into()],
        time_column: "received_at".into(),
        tenant_column: "tenant_id".into(),
        schema: schema_json(&raw_file_schema()),
        retention_days,
    }
}

/// Reads a schema back from the catalog's JSON form.
pub fn schema_from_json(value: &serde_json::Value) -> Result<Schema, serde_json::Error> {
    Schema::deserialize(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_round_trip_through_the_catalog_form() {
        let promoted = vec![PromotedProperty {
            name: "revenue".into(),
            kind: PromotedType::Float64,
        }];
        for schema in [
            curated_file_schema(&promoted),
            raw_file_schema(),
            quarantine_file_schema(),
        ] {
            let back = schema_from_json(&schema_json(&schema)).unwrap();
            assert_eq!(&back, schema.as_ref());
        }
    }

    #[test]
    fn promoted_properties_become_typed_columns() {
        let promoted = vec![PromotedProperty {
            name: "revenue".into(),
            kind: PromotedType::Float64,
        }];
        let schema = curated_file_schema(&promoted);
        let field = schema.field_with_name("revenue").unwrap();
        assert_eq!(field.data_type(), &DataType::Float64);
    }
}
