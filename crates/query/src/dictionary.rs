//! Low-cardinality strings read as Arrow dictionaries.
//!
//! The lake writes its low-cardinality string columns
//! ([`tributary_lake::schema::LOW_CARDINALITY_COLUMNS`]) dictionary-encoded, as Parquet does by
//! default, but the files' embedded Arrow schema says `Utf8`, so a reader would expand every
//! row's value. The engine declares those columns as `Dictionary(Int32, Utf8)` in the table's
//! schema and hands the Parquet reader, per file, the schema of the file's table version with
//! the same columns as dictionaries ([`file_hints`]): the reader then keeps each column chunk's
//! dictionary and decodes only the keys. Filters run on the distinct values, and
//! [`crate::dictionary_aggregate`] groups on them.
//!
//! A file whose schema version is unknown gets no hint; DataFusion then casts its strings to
//! dictionaries after reading, which is slower but gives the same answers.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use tributary_catalog::SchemaVersion;
use tributary_lake::schema::{ENVELOPE_COLUMNS, EVENTS, LOW_CARDINALITY_COLUMNS, schema_from_json};

/// The type a listed column is read as.
pub(crate) fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The columns of `table` (of `schema`) read as dictionaries, as dotted paths into structs:
/// for `events`, the lake's low-cardinality columns and every promoted string property
/// (promoted because people filter and group on them: products, currencies, plans; an id-like
/// one such as `order_id` reads a little slower, since the reader builds the dictionary of a
/// column chunk Parquet wrote without one).
pub(crate) fn dictionary_columns(table: &str, schema: &Schema) -> Vec<String> {
    if table != EVENTS {
        return Vec::new();
    }
    let promoted = schema.fields().iter().filter(|field| {
        is_string(field.data_type()) && !ENVELOPE_COLUMNS.contains(&field.name().as_str())
    });
    LOW_CARDINALITY_COLUMNS
        .iter()
        .map(|column| column.to_string())
        .chain(promoted.map(|field| field.name().clone()))
        .collect()
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// `schema` with each string column of `columns` as a dictionary of `Utf8`.
pub(crate) fn with_dictionaries(schema: &Schema, columns: &[String]) -> Schema {
    if columns.is_empty() {
        return schema.clone();
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|field| rewrite(field, "", columns))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn rewrite(field: &FieldRef, prefix: &str, columns: &[String]) -> FieldRef {
    let path = if prefix.is_empty() {
        field.name().clone()
    } else {
        format!("{prefix}.{}", field.name())
    };
    let data_type = match field.data_type() {
        data_type if is_string(data_type) && columns.contains(&path) => dictionary_type(),
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|child| rewrite(child, &path, columns))
                .collect(),
        ),
        _ => return Arc::clone(field),
    };
    if &data_type == field.data_type() {
        return Arc::clone(field);
    }
    Arc::new(Field::clone(field).with_data_type(data_type))
}

/// Per schema version of `table`, the Arrow schema its files are read with: the version's
/// schema with the dictionary columns. Versions without any of them are left out (their files
/// need no hint), as are versions whose recorded schema cannot be read.
pub(crate) fn file_hints(table: &str, versions: &[SchemaVersion]) -> HashMap<u32, SchemaRef> {
    versions
        .iter()
        .filter_map(|version| {
            let written = schema_from_json(&version.schema).ok()?;
            let read = with_dictionaries(&written, &dictionary_columns(table, &written));
            (read != written).then(|| (version.version, Arc::new(read)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_lake::schema::{
        PromotedProperty, PromotedType, curated_file_schema, schema_json,
    };

    #[test]
    fn listed_columns_become_dictionaries_at_any_depth() {
        let promoted = [
            PromotedProperty {
                name: "item_id".into(),
                kind: PromotedType::String,
            },
            PromotedProperty {
                name: "revenue".into(),
                kind: PromotedType::Float64,
            },
        ];
        let schema = curated_file_schema(&promoted);
        let read = with_dictionaries(&schema, &dictionary_columns(EVENTS, &schema));
        let field = |path: &[&str]| {
            let mut field = read.field_with_name(path[0]).unwrap().clone();
            for name in &path[1..] {
                let DataType::Struct(children) = field.data_type() else {
                    panic!("{} is not a struct", field.name());
                };
                field = children.find(name).unwrap().1.as_ref().clone();
            }
            field.data_type().clone()
        };
        assert_eq!(field(&["event_type"]), dictionary_type());
        assert_eq!(field(&["context", "page", "path"]), dictionary_type());
        assert_eq!(field(&["enriched", "browser"]), dictionary_type());
        assert_eq!(field(&["event_id"]), DataType::Utf8, "ids are not listed");
        assert_eq!(field(&["item_id"]), dictionary_type(), "a promoted string");
        assert_eq!(field(&["revenue"]), DataType::Float64);
        assert_eq!(field(&["context", "page", "url"]), DataType::Utf8);
        assert_eq!(field(&["context", "page", "path"]), dictionary_type());
        assert_eq!(
            read.field_with_name("context").unwrap().is_nullable(),
            schema.field_with_name("context").unwrap().is_nullable(),
            "nullability is kept: the Parquet reader checks it"
        );
    }

    #[test]
    fn hints_cover_the_events_versions_only() {
        let version = SchemaVersion {
            version: 3,
            schema: schema_json(&curated_file_schema(&[])),
            created_at: 0,
        };
        let hints = file_hints(EVENTS, std::slice::from_ref(&version));
        assert!(hints.contains_key(&3));
        assert!(file_hints("raw_events", &[version]).is_empty());
    }
}
