//! How the lake writes Parquet: zstd pages, page-level statistics and the page index, the sort
//! order recorded in the footer, and encodings chosen per column for clickstream data.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::LakeError;

/// Columns whose values are unique per row, or ids that repeat only a few times (a session's
/// events, a visitor's sessions): a dictionary costs a hash and a probe per value there and
/// saves nothing zstd does not. Without one, curated files came out 3 % smaller and no slower
/// (`bench pipeline`: 40.9 against 42.1 bytes per event).
const UNIQUE_COLUMNS: &[&str] = &[
    "event_id",
    "payload",
    "anonymous_id",
    "session_id",
    "user_id",
];
/// Sorted timestamps: delta encoding stores most of them in a byte or two.
const DELTA_COLUMNS: &[&str] = &["ts", "received_at", "seq"];
/// Leaf columns (dotted paths) whose min/max would prune nothing: long free text (payloads,
/// URLs, titles, user agents, leftover JSON and property values), and random ids (files are
/// sorted by tenant and time, so every page's id range spans nearly all ids). Their
/// statistics are not kept; computing them compared every value with the page's extremes,
/// byte by byte over shared prefixes like `https://shop.example.com/` (the ids alone cost
/// 1.6 % of the writer's CPU in `bench pipeline`).
const NO_STATISTICS_COLUMNS: &[&str] = &[
    "event_id",
    "anonymous_id",
    "session_id",
    "user_id",
    "payload",
    "context.page.url",
    "context.page.title",
    "context.user_agent",
    "context.extra",
    "properties.key_value.value",
];

/// Settings of every Parquet file the lake writes.
#[derive(Debug, Clone, Copy)]
pub struct ParquetOptions {
    /// zstd level.
    pub zstd_level: i32,
    /// Most rows per row group.
    pub row_group_rows: usize,
}

/// Writer properties for files of `schema`, sorted by `sort_columns`.
pub fn writer_properties(
    options: ParquetOptions,
    schema: &SchemaRef,
    sort_columns: &[&str],
) -> Result<WriterProperties, LakeError> {
    let level = ZstdLevel::try_new(options.zstd_level).map_err(|source| LakeError::Parquet {
        path: "(writer properties)".into(),
        source,
    })?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        // Page-level min/max: readers prune row groups *and* pages (the page index).
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_created_by("tributary".into());
    let sorting: Vec<SortingColumn> = sort_columns
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .map(|index| SortingColumn {
            column_idx: i32::try_from(index).unwrap_or(i32::MAX),
            descending: false,
            nulls_first: false,
        })
        .collect();
    builder = builder.set_sorting_columns(Some(sorting));
    for path in NO_STATISTICS_COLUMNS {
        let column = ColumnPath::new(path.split('.').map(str::to_owned).collect());
        builder = builder.set_column_statistics_enabled(column, EnabledStatistics::None);
    }
    for field in schema.fields() {
        let name = field.name().as_str();
        if UNIQUE_COLUMNS.contains(&name) {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
            // Unique strings (UUIDs, payloads) all have about the same length: delta-packed
            // lengths cost almost nothing, where PLAIN spends 4 bytes a value on them before
            // compression (about 2 B/event on event_id alone).
            if matches!(field.data_type(), DataType::Utf8 | DataType::Binary) {
                builder = builder
                    .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_LENGTH_BYTE_ARRAY);
            }
        }
        let integer_like = matches!(
            field.data_type(),
            DataType::Timestamp(_, _) | DataType::UInt64 | DataType::Int64
        );
        if DELTA_COLUMNS.contains(&name) && integer_like {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(name), false)
                .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
        }
    }
    Ok(builder.build())
}

/// Encodes sorted batches of `schema`, in order, as one complete Parquet file in memory.
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    properties: WriterProperties,
) -> Result<Bytes, LakeError> {
    let parquet_error = |source| LakeError::Parquet {
        path: "(new file)".into(),
        source,
    };
    let memory: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut buffer = Vec::with_capacity(memory / 8);
    let mut writer = ArrowWriter::try_new(&mut buffer, schema.clone(), Some(properties))
        .map_err(parquet_error)?;
    for batch in batches {
        writer.write(batch).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(Bytes::from(buffer))
}

/// A reader of a file's record batches. The file is fetched whole: lake files are bounded
/// by the flush and compaction sizes, and one request beats many ranged ones on S3.
pub async fn read_batches(
    store: Arc<dyn ObjectStore>,
    path: &str,
) -> Result<ParquetRecordBatchReader, LakeError> {
    let contents = store
        .get(&Path::from(path))
        .await
        .map_err(|source| LakeError::ObjectStore {
            path: path.to_string(),
            source,
        })?
        .bytes()
        .await
        .map_err(|source| LakeError::ObjectStore {
            path: path.to_string(),
            source,
        })?;
    ParquetRecordBatchReaderBuilder::try_new(contents)
        .and_then(|builder| builder.with_batch_size(8192).build())
        .map_err(|source| LakeError::Parquet {
            path: path.to_string(),
            source,
        })
}

/// Reads a whole file (tests and small files).
pub async fn read_all(
    store: Arc<dyn ObjectStore>,
    path: &str,
) -> Result<Vec<RecordBatch>, LakeError> {
    read_batches(store, path)
        .await?
        .collect::<Result<Vec<_>, _>>()
        .map_err(LakeError::Arrow)
}
