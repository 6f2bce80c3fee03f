//! Result encodings, chosen by the request's `Accept` header.
//!
//! | `Accept`                              | body                                              |
//! |---------------------------------------|---------------------------------------------------|
//! | `application/json` (default, `*/*`)   | `[{"col": value, …}, …]`, nulls written as `null` |
//! | `application/x-ndjson`                | one JSON object per line                          |
//! | `text/csv`                            | RFC 4180 with a header row                        |
//! | `application/vnd.apache.arrow.stream` | Arrow IPC stream (schema, then the batches)       |
//!
//! Timestamps are RFC 3339 text in JSON and CSV (`2026-11-23T10:00:00.250Z`); maps and structs
//! are JSON objects in JSON, and JSON text in a CSV cell.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::writer::{
    EncoderOptions, JsonArray, LineDelimited, WriterBuilder as JsonWriterBuilder, make_encoder,
};
use datafusion::arrow::record_batch::RecordBatch;

/// A response encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of objects, one per row.
    Json,
    /// Newline-delimited JSON objects, one per row.
    NdJson,
    /// CSV with a header row.
    Csv,
    /// Arrow IPC streaming format.
    ArrowStream,
}

/// The media types answered, in the order a wildcard prefers them.
const MEDIA_TYPES: &[(&str, Format)] = &[
    ("application/json", Format::Json),
    ("application/x-ndjson", Format::NdJson),
    ("application/jsonlines", Format::NdJson),
    ("text/csv", Format::Csv),
    ("application/vnd.apache.arrow.stream", Format::ArrowStream),
];

impl Format {
    /// The `Content-Type` of the encoded body.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::NdJson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }

    /// Picks the format for an `Accept` header (none means JSON): the acceptable media range
    /// with the highest `q` that names a format answered here; `Err` with the sentence for a
    /// 406 when none does.
    pub fn negotiate(accept: Option<&str>) -> Result<Format, String> {
        let Some(accept) = accept.map(str::trim).filter(|value| !value.is_empty()) else {
            return Ok(Format::Json);
        };
        let mut ranges: Vec<(f32, usize, Format)> = Vec::new();
        for (position, range) in accept.split(',').enumerate() {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if quality <= 0.0 {
                continue;
            }
            let format = match media.as_str() {
                "*/*" | "application/*" => Some(Format::Json),
                "text/*" => Some(Format::Csv),
                exact => MEDIA_TYPES
                    .iter()
                    .find(|(name, _)| *name == exact)
                    .map(|(_, format)| *format),
            };
            if let Some(format) = format {
                ranges.push((quality, position, format));
            }
        }
        // Highest quality first; among equals, the order the client listed them in.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranges.first().map(|(_, _, format)| *format).ok_or_else(|| {
            let offered: Vec<&str> = MEDIA_TYPES.iter().map(|(name, _)| *name).collect();
            format!(
                "none of the media types in Accept: {accept} is available; use one of {}",
                offered.join(", ")
            )
        })
    }

    /// Encodes a whole result.
    pub fn encode(
        self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Vec<u8>, ArrowError> {
        match self {
            Format::Json => encode_json::<JsonArray>(batches),
            Format::NdJson => encode_json::<LineDelimited>(batches),
            Format::Csv => encode_csv(schema, batches),
            Format::ArrowStream => encode_arrow(schema, batches),
        }
    }
}

fn encode_json<F: datafusion::arrow::json::writer::JsonFormat>(
    batches: &[RecordBatch],
) -> Result<Vec<u8>, ArrowError> {
    let mut writer = JsonWriterBuilder::new()
        // Every row has every key: clients index columns by name without probing.
        .with_explicit_nulls(true)
        .build::<_, F>(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner())
}

fn encode_csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let flat_schema = csv_schema(schema);
    let mut writer = CsvWriterBuilder::new().with_header(true).build(Vec::new());
    // An empty result still gets its header row.
    writer.write(&RecordBatch::new_empty(Arc::clone(&flat_schema)))?;
    for batch in batches {
        writer.write(&flatten_nested(&flat_schema, batch)?)?;
    }
    Ok(writer.into_inner())
}

fn encode_arrow(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    writer.into_inner()
}

fn is_nested(data_type: &DataType) -> bool {
    data_type.is_nested() || matches!(data_type, DataType::Map(..))
}

/// The CSV writer takes flat columns only: nested ones become JSON text.
fn csv_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|field| {
            if is_nested(field.data_type()) {
                Arc::new(Field::new(field.name(), DataType::Utf8, true))
            } else {
                Arc::clone(field)
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn flatten_nested(flat_schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if is_nested(field.data_type()) {
                json_text(field, column.as_ref())
            } else {
                Ok(Arc::clone(column))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(flat_schema), columns)
}

/// Each value of a nested column as its JSON text (NULL stays NULL).
fn json_text(field: &FieldRef, column: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut encoder = make_encoder(field, column, &options)?;
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 32);
    let mut buffer = Vec::new();
    for index in 0..column.len() {
        if column.is_null(index) {
            out.append_null();
            continue;
        }
        buffer.clear();
        encoder.encode(index, &mut buffer);
        out.append_value(String::from_utf8_lossy(&buffer));
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn accept_headers_pick_the_preferred_available_format() {
        assert_eq!(Format::negotiate(None), Ok(Format::Json));
        assert_eq!(Format::negotiate(Some("*/*")), Ok(Format::Json));
        assert_eq!(Format::negotiate(Some("text/csv")), Ok(Format::Csv));
        assert_eq!(
            Format::negotiate(Some("text/html;q=0.9, application/vnd.apache.arrow.stream")),
            Ok(Format::ArrowStream)
        );
        assert_eq!(
            Format::negotiate(Some("application/json;q=0.5, text/csv;q=0.8")),
            Ok(Format::Csv)
        );
        assert!(Format::negotiate(Some("text/html")).is_err());
        assert!(Format::negotiate(Some("application/json;q=0")).is_err());
    }
}
