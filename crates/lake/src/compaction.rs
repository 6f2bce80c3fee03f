//! Compaction: the small files of a partition merged into files of about the target size,
//! swapped in one catalog commit.
//!
//! Each flush writes one small file per partition, so a busy partition gathers hundreds of them
//! a day, and every query pays for each file it opens. Compaction picks a partition's files
//! under half the target size (same schema version), packs them into groups of at most the
//! target size, and for each group writes one file whose rows are a k-way merge of the inputs
//! by (tenant, time) — every input is already sorted that way, so the merge streams one batch
//! per input and memory stays bounded however big the group is. The new file goes live and the
//! inputs stop being live in one commit ([`crate::commit`] protocol: stage, upload, commit), so
//! a query sees the inputs or the output, never both. A commit that finds an input no longer
//! live (retention dropped it meanwhile) fails and changes nothing; the staged output is
//! deleted.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use tributary_catalog::{Catalog, Commit, CommitKind, DataFile, Partition, TableInfo};
use tributary_model::now_micros;

use crate::commit::delete_objects;
use crate::config::LakeConfig;
use crate::error::LakeError;
use crate::fault::crash_point;
use crate::layout::new_file_path;
use crate::parquet_io::{ParquetOptions, read_batches, writer_properties};
use crate::telemetry;

/// Rows per output batch of the merge.
const MERGE_BATCH_ROWS: usize = 8192;

/// What a compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactionSummary {
    /// Output files committed.
    pub files_written: usize,
    /// Input files replaced.
    pub files_replaced: usize,
    /// Rows rewritten.
    pub rows: u64,
}

/// How much bigger than the smaller files merged with it a file may be and still join the
/// merge (see [`tiered`]).
const SIZE_RATIO: u64 = 2;

/// Groups of small files worth merging: per (partition, schema version), the files under half
/// the target that [`tiered`] lets merge, packed in time order into groups of at most the
/// target size and at least two files.
pub fn plan(files: &[DataFile], config: &LakeConfig) -> Vec<Vec<DataFile>> {
    let target = config.compaction.target_file_bytes;
    let mut by_partition: BTreeMap<(String, u32), Vec<&DataFile>> = BTreeMap::new();
    for file in files.iter().filter(|file| file.bytes < target / 2) {
        let key = (
            tributary_catalog::partition_path(&file.partition),
            file.schema_version,
        );
        by_partition.entry(key).or_default().push(file);
    }
    let mut groups = Vec::new();
    for (_, small) in by_partition {
        let mut small = tiered(small);
        if small.len() < config.compaction.min_small_files {
            continue;
        }
        small.sort_by_key(|file| (file.min_ts, file.path.clone()));
        let mut group: Vec<DataFile> = Vec::new();
        let mut group_bytes = 0;
        for file in small {
            if !group.is_empty() && group_bytes + file.bytes > target {
                if group.len() >= 2 {
                    groups.push(std::mem::take(&mut group));
                } else {
                    group.clear();
                }
                group_bytes = 0;
            }
            group_bytes += file.bytes;
            group.push(file.clone());
        }
        if group.len() >= 2 {
            groups.push(group);
        }
    }
    groups
}

/// Of one partition's small files, those worth rewriting now: taken smallest first, a file
/// joins while it is at most [`SIZE_RATIO`] times the files taken before it together; the
/// first bigger one and all after it wait.
///
/// Without this, a partition that fills slowly (a day partition of a quiet event family)
/// merged its one growing output with the minute's new flush files on every pass, rewriting
/// everything it held each minute until the output passed half the target: a byte was
/// rewritten once per pass, dozens of times. With it, a file is rewritten only into a file at
/// least half again its size, so a byte is rewritten a logarithmic number of times, and the
/// partition keeps a few files of geometrically growing sizes meanwhile.
fn tiered(mut small: Vec<&DataFile>) -> Vec<&DataFile> {
    small.sort_by_key(|file| (file.bytes, file.path.clone()));
    let mut taken_bytes = 0u64;
    let mut taken = 0;
    for file in &small {
        if taken > 0 && file.bytes > taken_bytes.saturating_mul(SIZE_RATIO) {
            break;
        }
        taken_bytes += file.bytes;
        taken += 1;
    }
    small.truncate(taken);
    small
}

/// Compacts one table: every group [`plan`] finds, one commit each.
pub async fn compact_table(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    table: &TableInfo,
    config: &LakeConfig,
) -> Result<CompactionSummary, LakeError> {
    let snapshot = catalog.snapshot(&table.def.name, None, None).await?;
    let mut summary = CompactionSummary::default();
    for group in plan(&snapshot.files, config) {
        let output = merge_group(catalog, store, &snapshot.table, &group, config).await?;
        summary.files_written += 1;
        summary.files_replaced += group.len();
        summary.rows += output.rows;
        metrics::counter!(telemetry::COMPACTIONS, "table" => table.def.name.clone()).increment(1);
        metrics::counter!(telemetry::COMPACTED_FILES, "table" => table.def.name.clone())
            .increment(group.len() as u64);
    }
    Ok(summary)
}

/// Merges one group into a new file and swaps it in. Returns the new file's record.
async fn merge_group(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    table: &TableInfo,
    group: &[DataFile],
    config: &LakeConfig,
) -> Result<DataFile, LakeError> {
    let partition: Partition = group[0].partition.clone();
    let path = new_file_path(&table.def.location, &partition, now_micros());
    catalog
        .stage(&table.def.name, std::slice::from_ref(&path))
        .await?;
    crash_point("compaction.after_stage");

    let written = write_merged(store, table, group, &path, config).await;
    let record = match written {
        Ok(record) => record,
        Err(error) => {
            // Nothing was committed: take the partial output back (recovery would too).
            let _ = delete_objects(store, std::slice::from_ref(&path)).await;
            let _ = catalog.forget_staged(std::slice::from_ref(&path)).await;
            return Err(error);
        }
    };
    crash_point("compaction.after_upload");

    let commit = Commit {
        kind: CommitKind::Compaction,
        added: vec![record.clone()],
        removed: group.iter().map(|file| file.path.clone()).collect(),
        checkpoints: Vec::new(),
    };
    if let Err(error) = catalog.commit(commit).await {
        let _ = delete_objects(store, std::slice::from_ref(&path)).await;
        let _ = catalog.forget_staged(std::slice::from_ref(&path)).await;
        return Err(error.into());
    }
    crash_point("compaction.after_commit");
    Ok(record)
}

/// One input being merged: its stream, current batch, and the batch's sort keys.
struct Cursor {
    reader: ParquetRecordBatchReader,
    path: String,
    batch: RecordBatch,
    rows: Rows,
    position: usize,
    /// Index of `batch` in the merge's batch list.
    slot: usize,
}

/// Writes the k-way merge of `group` to `path` and returns its catalog record.
async fn write_merged(
    store: &Arc<dyn ObjectStore>,
    table: &TableInfo,
    group: &[DataFile],
    path: &str,
    config: &LakeConfig,
) -> Result<DataFile, LakeError> {
    let parquet_error = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let tenant_column = table.def.tenant_column.as_str();
    let time_column = table.def.time_column.as_str();

    // Open every input and read its first batch.
    let mut cursors: Vec<Cursor> = Vec::with_capacity(group.len());
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut schema: Option<SchemaRef> = None;
    let mut converter: Option<RowConverter> = None;
    for file in group {
        let mut reader = read_batches(Arc::clone(store), &file.path).await?;
        let Some(first) = next_batch(&mut reader, &file.path)? else {
            continue;
        };
        let converter = match &mut converter {
            Some(converter) => converter,
            None => {
                let fields = [tenant_column, time_column]
                    .iter()
                    .map(|name| {
                        first
                            .schema()
                            .field_with_name(name)
                            .map(|field| SortField::new(field.data_type().clone()))
                            .map_err(LakeError::Arrow)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                schema = Some(first.schema());
                converter.insert(RowConverter::new(fields)?)
            }
        };
        let rows = sort_keys(converter, &first, tenant_column, time_column)?;
        batches.push(first.clone());
        cursors.push(Cursor {
            reader,
            path: file.path.clone(),
            batch: first,
            rows,
            position: 0,
            slot: batches.len() - 1,
        });
    }
    let (Some(schema), Some(converter)) = (schema, converter) else {
        return Err(LakeError::Config(format!(
            "compaction group of {} files has no rows",
            group.len()
        )));
    };

    let options = ParquetOptions {
        zstd_level: config.compaction.zstd_level_for(&table.def.name),
        row_group_rows: config.row_group_rows,
    };
    let properties = writer_properties(options, &schema, &[tenant_column, time_column])?;
    let output = BufWriter::new(Arc::clone(store), Path::from(path));
    let mut writer = AsyncArrowWriter::try_new(output, Arc::clone(&schema), Some(properties))
        .map_err(parquet_error)?;

    let mut heap: BinaryHeap<Reverse<(OwnedRow, usize)>> = cursors
        .iter()
        .enumerate()
        .map(|(index, cursor)| Reverse((cursor.rows.row(0).owned(), index)))
        .collect();
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(MERGE_BATCH_ROWS);
    let mut stats = crate::buffer::RowStats {
        rows: 0,
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        min_tenant: group
            .iter()
            .map(|f| f.min_tenant.clone())
            .min()
            .unwrap_or_default(),
        max_tenant: group
            .iter()
            .map(|f| f.max_tenant.clone())
            .max()
            .unwrap_or_default(),
    };
    for file in group {
        stats.min_ts = stats.min_ts.min(file.min_ts);
        stats.max_ts = stats.max_ts.max(file.max_ts);
    }

    while let Some(Reverse((_, index))) = heap.pop() {
        let cursor = &mut cursors[index];
        picks.push((cursor.slot, cursor.position));
        cursor.position += 1;
        if cursor.position == cursor.batch.num_rows() {
            // Finish the rows picked so far before this input's batch changes slot.
            if let Some(next) = next_batch(&mut cursor.reader, &cursor.path)? {
                cursor.rows = sort_keys(&converter, &next, tenant_column, time_column)?;
                batches.push(next.clone());
                cursor.slot = batches.len() - 1;
                cursor.batch = next;
                cursor.position = 0;
                heap.push(Reverse((cursor.rows.row(0).owned(), index)));
            }
        } else {
            heap.push(Reverse((cursor.rows.row(cursor.position).owned(), index)));
        }
        if picks.len() == MERGE_BATCH_ROWS || heap.is_empty() {
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            let merged = interleave_record_batch(&refs, &picks)?;
            stats.rows += merged.num_rows() as u64;
            writer.write(&merged).await.map_err(parquet_error)?;
            picks.clear();
            // Keep only the batches cursors still point into; renumber their slots.
            let mut kept = Vec::with_capacity(cursors.len());
            for cursor in &mut cursors {
                kept.push(cursor.batch.clone());
                cursor.slot = kept.len() - 1;
            }
            batches = kept;
        }
    }
    let metadata = writer.close().await.map_err(parquet_error)?;
    let bytes = store
        .head(&Path::from(path))
        .await
        .map_err(|source| LakeError::ObjectStore {
            path: path.to_string(),
            source,
        })?
        .size;
    let expected: u64 = group.iter().map(|file| file.rows).sum();
    let written = u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
    if written != expected || stats.rows != expected {
        return Err(LakeError::Config(format!(
            "compaction of {} files wrote {written} rows, the inputs hold {expected}",
            group.len()
        )));
    }
    Ok(DataFile {
        table: table.def.name.clone(),
        path: path.to_string(),
        partition: group[0].partition.clone(),
        rows: stats.rows,
        bytes,
        min_ts: stats.min_ts,
        max_ts: stats.max_ts,
        min_tenant: stats.min_tenant,
        max_tenant: stats.max_tenant,
        schema_version: group[0].schema_version,
    })
}

fn next_batch(
    reader: &mut ParquetRecordBatchReader,
    path: &str,
) -> Result<Option<RecordBatch>, LakeError> {
    loop {
        match reader.next() {
            None => return Ok(None),
            Some(Err(source)) => {
                return Err(LakeError::Config(format!("reading {path}: {source}")));
            }
            Some(Ok(batch)) if batch.num_rows() == 0 => continue,
            Some(Ok(batch)) => return Ok(Some(batch)),
        }
    }
}

fn sort_keys(
    converter: &RowConverter,
    batch: &RecordBatch,
    tenant_column: &str,
    time_column: &str,
) -> Result<Rows, LakeError> {
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            LakeError::Config(format!("column {name} missing in a compaction input"))
        })
    };
    Ok(converter.convert_columns(&[column(tenant_column)?, column(time_column)?])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, family: &str, bytes: u64, min_ts: i64) -> DataFile {
        DataFile {
            table: "events".into(),
            path: path.into(),
            partition: vec![
                ("dt".into(), "2026-11-23".into()),
                ("event_family".into(), family.into()),
            ],
            rows: 1,
            bytes,
            min_ts,
            max_ts: min_ts,
            min_tenant: "a".into(),
            max_tenant: "a".into(),
            schema_version: 1,
        }
    }

    #[test]
    fn plans_groups_of_small_files_per_partition() {
        let mut config = LakeConfig::default();
        config.compaction.target_file_bytes = 100;
        config.compaction.min_small_files = 3;
        let files = vec![
            file("p1", "page", 30, 1),
            file("p2", "page", 30, 2),
            file("p3", "page", 30, 3),
            file("p4", "page", 30, 4),
            file("big", "page", 80, 0),
            file("t1", "track", 10, 1),
            file("t2", "track", 10, 2),
        ];
        // page: 4 small files, 30 B each, target 100 → [p1 p2 p3] and p4 alone (not merged);
        // `big` is not small; track has only 2 small files, under min_small_files.
        assert_eq!(paths(&plan(&files, &config)), vec![vec!["p1", "p2", "p3"]]);
    }

    fn paths(groups: &[Vec<DataFile>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.iter().map(|f| f.path.as_str()).collect())
            .collect()
    }

    #[test]
    fn a_file_waits_until_the_smaller_ones_are_half_its_size() {
        let mut config = LakeConfig::default();
        config.compaction.target_file_bytes = 1000;
        config.compaction.min_small_files = 3;
        let mut files = vec![
            file("earlier", "page", 100, 0),
            file("f1", "page", 10, 1),
            file("f2", "page", 10, 2),
            file("f3", "page", 10, 3),
        ];
        // 30 bytes of new files do not rewrite 100: they merge among themselves.
        assert_eq!(paths(&plan(&files, &config)), vec![vec!["f1", "f2", "f3"]]);
        files.extend([file("f4", "page", 10, 4), file("f5", "page", 10, 5)]);
        // 50 bytes may: 100 ≤ 2 × 50.
        assert_eq!(
            paths(&plan(&files, &config)),
            vec![vec!["earlier", "f1", "f2", "f3", "f4", "f5"]]
        );
    }

    /// Runs `passes` compaction plans over a partition that gets `per_pass` flush files of
    /// `flush` bytes before each, merging each group into one file, and returns the bytes
    /// rewritten per byte flushed.
    fn rewrite_amplification(config: &LakeConfig, passes: usize, per_pass: usize) -> f64 {
        let flush = 10;
        let mut live: Vec<DataFile> = Vec::new();
        let (mut flushed, mut rewritten, mut next) = (0u64, 0u64, 0i64);
        for _ in 0..passes {
            for _ in 0..per_pass {
                next += 1;
                live.push(file(&format!("f{next}"), "page", flush, next));
                flushed += flush;
            }
            for group in plan(&live, config) {
                let bytes: u64 = group.iter().map(|f| f.bytes).sum();
                rewritten += bytes;
                live.retain(|f| !group.iter().any(|g| g.path == f.path));
                next += 1;
                let min_ts = group.iter().map(|f| f.min_ts).min().unwrap_or(0);
                live.push(file(&format!("m{next}"), "page", bytes, min_ts));
            }
        }
        rewritten as f64 / flushed as f64
    }

    #[test]
    fn a_slowly_filling_partition_is_not_rewritten_on_every_pass() {
        // A day partition that gets 12 flushes a minute and needs 500 minutes to reach half
        // the target: merging the growing output on every pass rewrote each byte ~250 times.
        let mut config = LakeConfig::default();
        config.compaction.target_file_bytes = 2 * 12 * 10 * 500;
        config.compaction.min_small_files = 4;
        let amplification = rewrite_amplification(&config, 500, 12);
        // Every byte is rewritten at least once; each rewrite makes its file at least 1.5
        // times bigger, so log1.5(500) ≈ 15 rewrites at most, fewer in practice.
        assert!(
            (1.0..16.0).contains(&amplification),
            "each flushed byte was rewritten {amplification:.1} times"
        );
    }
}
