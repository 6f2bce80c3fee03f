//! Replays: running stored events through the pipeline again and swapping the result into the
//! lake in one commit.
//!
//! ```text
//! replay quarantine --where P     quarantine rows matching P ─▶ pipeline ─┬▶ curated (now valid)
//!                                                                          ├▶ dropped (duplicate)
//!                                                                          └▶ stay (still invalid)
//!                                  files that lost rows are rewritten without them
//!
//! replay raw --since S --until U  raw rows received in [S, U) ─▶ pipeline ─▶ curated / quarantine
//!                                  curated and quarantine rows received in [S, U) are dropped
//!                                  (their files rewritten), so the range is rebuilt, not doubled
//! ```
//!
//! New and rewritten files are staged and uploaded as they are ready, and go live, with the
//! replaced files leaving, in **one** catalog commit ([`crate::commit::PendingCommit`]): a query
//! sees the lake before the replay or after it, never half of it, and a replay that fails or
//! is killed changes nothing (recovery deletes its staged files). The catalog refuses the
//! commit if a replaced file stopped being live meanwhile (compaction, retention); run the
//! replay again.
//!
//! Both are idempotent. The pipeline is deterministic, and the dedup store is position-aware:
//! an event replayed from the position it was first seen at is "first" again, a retry from
//! another position is still a duplicate. So a second raw replay of the same range rebuilds
//! the same rows, and a second quarantine replay finds nothing more to move.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array, UInt64Array,
};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimestampMicrosecondType, UInt32Type, UInt64Type,
};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use serde::Serialize;
use tributary_catalog::{Catalog, CommitKind, DataFile, TableInfo};
use tributary_model::{Event, now_micros};
use tributary_pipeline::dedup::DedupStore;
use tributary_pipeline::registry::SchemaRegistry;
use tributary_pipeline::{Outcome, Pipeline, StageCounts, StreamPosition};

use crate::buffer::RowStats;
use crate::commit::{NewFile, PendingCommit, new_file_versioned};
use crate::config::LakeConfig;
use crate::error::LakeError;
use crate::parquet_io::{encode, read_all, writer_properties};
use crate::routing::{OutcomeBuffers, Shapes, Source};
use crate::schema::{EVENTS, QUARANTINE, RAW_EVENTS, quarantine_file_schema};
use crate::writer::LakeTables;

/// Chooses rows: the `--where` predicate of a quarantine replay.
pub trait RowFilter: Send + Sync {
    /// For each row of `batch` (the columns of [`quarantine_filter_schema`]), whether it is
    /// chosen. A null counts as not chosen. The error says what is wrong with the predicate.
    fn select(&self, batch: &RecordBatch) -> Result<BooleanArray, String>;
}

/// What a [`RowFilter`] of quarantine rows sees: the file's columns and the `dt` partition
/// column (the day the event arrived, `YYYY-MM-DD`), as SQL over `quarantine` does.
pub fn quarantine_filter_schema() -> SchemaRef {
    let file = quarantine_file_schema();
    let mut fields: Vec<Field> = file.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("dt", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Hears how far a replay is.
pub trait ReplayProgress: Send + Sync {
    /// The replay will read `files` files of `bytes` bytes in all.
    fn planned(&self, files: u64, bytes: u64);
    /// One file of `bytes` bytes is done.
    fn file_done(&self, bytes: u64);
}

/// A [`ReplayProgress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl ReplayProgress for Silent {
    fn planned(&self, _files: u64, _bytes: u64) {}
    fn file_done(&self, _bytes: u64) {}
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Files read.
    pub files_read: u64,
    /// Events run through the pipeline.
    pub events: u64,
    /// Of those, written to the curated lake.
    pub curated: u64,
    /// Of those, (still) quarantined.
    pub quarantined: u64,
    /// Of those, dropped as repeats of an event already curated.
    pub duplicates: u64,
    /// Rows removed from existing curated files (raw replay: the rows being rebuilt).
    pub curated_rows_replaced: u64,
    /// Rows removed from existing quarantine files.
    pub quarantine_rows_replaced: u64,
    /// Stored payloads that are not events (left where they were).
    pub unreadable: u64,
    /// Files that went live.
    pub files_added: u64,
    /// Files that stopped being live.
    pub files_removed: u64,
    /// The replay's commit; `None` when there was nothing to change.
    pub commit_id: Option<i64>,
}

/// A half-open range of arrival times, `[since, until)`, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedRange {
    /// First µs in the range.
    pub since: i64,
    /// First µs after it.
    pub until: i64,
}

impl ReceivedRange {
    fn contains(&self, received_at: i64) -> bool {
        received_at >= self.since && received_at < self.until
    }
}

/// Runs replays of one lake through one pipeline.
pub struct Replayer {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    shapes: Shapes,
    pipeline: Arc<Pipeline>,
    dedup: Option<DedupStore>,
    /// What the pipeline did, published to the metrics after each file.
    counts: StageCounts,
}

impl Replayer {
    /// A replayer of the lake in `store` and `catalog`, laid out per `config`, running events
    /// through `pipeline` and `dedup` (the same store the lake writer uses: a replay and a
    /// running writer cannot share it, see [`DedupStore::open`]).
    pub async fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        config: &LakeConfig,
        pipeline: Arc<Pipeline>,
        dedup: Option<DedupStore>,
    ) -> Result<Replayer, LakeError> {
        config.validate()?;
        let tables = LakeTables::ensure(catalog.as_ref(), config).await?;
        Ok(Replayer {
            shapes: Shapes::new(tables, config),
            catalog,
            store,
            pipeline,
            dedup,
            counts: StageCounts::default(),
        })
    }

    /// Runs the quarantined events that `filter` chooses through the pipeline again (after a
    /// schema fix, say): those that pass move to the curated lake, repeats of curated events
    /// are dropped, the rest stay with their reasons brought up to date.
    pub async fn quarantine(
        &mut self,
        filter: &dyn RowFilter,
        progress: &dyn ReplayProgress,
    ) -> Result<ReplaySummary, LakeError> {
        let snapshot = self.catalog.snapshot(QUARANTINE, None, None).await?;
        plan(progress, &snapshot.files);
        let registry = self.pipeline.registry().snapshot();
        let (catalog, store) = (Arc::clone(&self.catalog), Arc::clone(&self.store));
        let mut run = Run::new(catalog.as_ref(), &store);
        let result = async {
            for file in &snapshot.files {
                let batches = read_all(Arc::clone(&self.store), &file.path).await?;
                let mut kept = Vec::with_capacity(batches.len());
                let mut changed = 0u64;
                for batch in batches {
                    let chosen = filter
                        .select(&with_day(&batch, file.partition_value("dt").unwrap_or(""))?)
                        .map_err(LakeError::Predicate)?;
                    let keep = self.replay_quarantined(&registry, &batch, &chosen, &mut run)?;
                    changed += keep.iter().filter(|keep| !*keep).count() as u64;
                    kept.push(filter_record_batch(&batch, &BooleanArray::from(keep))?);
                }
                if changed > 0 {
                    run.summary.quarantine_rows_replaced += changed;
                    let table = &self.shapes.tables.quarantine;
                    run.replace(&self.shapes, table, file, kept).await?;
                }
                run.flush_if_over(&self.shapes).await?;
                run.summary.files_read += 1;
                self.counts.publish();
                progress.file_done(file.bytes);
            }
            Ok(())
        }
        .await;
        run.finish(&self.shapes, self.dedup.as_mut(), result).await
    }

    /// Decodes a stored payload and runs it through the pipeline as read at `position`; `None`
    /// (counted as unreadable) when the payload is not an event.
    fn reprocess(
        &mut self,
        registry: &SchemaRegistry,
        payload: &str,
        position: StreamPosition,
        run: &mut Run<'_>,
    ) -> Result<Option<Outcome>, LakeError> {
        let Ok(event) = serde_json::from_str::<Event>(payload) else {
            run.summary.unreadable += 1;
            return Ok(None);
        };
        run.summary.events += 1;
        let outcome = self.pipeline.process(
            registry,
            event,
            position,
            self.dedup.as_mut(),
            &mut self.counts,
        )?;
        Ok(Some(outcome))
    }

    /// Runs the chosen rows of one quarantine batch through the pipeline; returns, per row,
    /// whether it stays in its file as it is.
    fn replay_quarantined(
        &mut self,
        registry: &SchemaRegistry,
        batch: &RecordBatch,
        chosen: &BooleanArray,
        run: &mut Run<'_>,
    ) -> Result<Vec<bool>, LakeError> {
        let payload = string_column(batch, "payload")?;
        let (shard, seq) = positions(batch)?;
        let version = batch
            .column_by_name("schema_version")
            .and_then(|c| c.as_primitive_opt::<UInt32Type>())
            .ok_or_else(|| missing("schema_version"))?;
        let mut keep = vec![true; batch.num_rows()];
        for (row, stays) in keep.iter_mut().enumerate() {
            if !(chosen.is_valid(row) && chosen.value(row)) {
                continue;
            }
            let text = payload.value(row);
            let position = StreamPosition {
                shard: shard.value(row),
                seq: seq.value(row),
            };
            let Some(outcome) = self.reprocess(registry, text, position, run)? else {
                continue;
            };
            let old_version = version.is_valid(row).then(|| version.value(row));
            if let Outcome::Quarantined(_, quarantined) = &outcome {
                // Same schema version, same event: the same reasons. Leave the row alone
                // (a second replay then rewrites nothing).
                if quarantined.schema_version == old_version {
                    run.summary.quarantined += 1;
                    continue;
                }
            }
            *stays = false;
            let source = Source {
                payload: text,
                shard: position.shard,
                seq: position.seq,
            };
            run.outcomes.route(&self.shapes, outcome, source)?;
        }
        Ok(keep)
    }

    /// Rebuilds the curated lake and quarantine for the events received in `range` from the
    /// raw archive: their current rows are dropped and the raw records run through the
    /// pipeline again (after a pipeline change, or to repair a damaged range).
    pub async fn raw(
        &mut self,
        range: ReceivedRange,
        progress: &dyn ReplayProgress,
    ) -> Result<ReplaySummary, LakeError> {
        if range.until <= range.since {
            return Err(LakeError::Config(format!(
                "replay range is empty: --until ({}) must be after --since ({})",
                range.until, range.since
            )));
        }
        let last = range.until - 1;
        let raw = self
            .catalog
            .snapshot(RAW_EVENTS, Some(range.since), Some(last))
            .await?;
        let quarantine = self
            .catalog
            .snapshot(QUARANTINE, Some(range.since), Some(last))
            .await?;
        let curated = self.catalog.snapshot(EVENTS, None, None).await?;
        // Curated files are partitioned by event time, not arrival: read each footer's
        // `received_at` statistics to find the files that can hold rows of the range.
        let mut touched = Vec::new();
        for file in &curated.files {
            if may_hold_received(&self.store, file, range).await? {
                touched.push(file.clone());
            }
        }
        let mut all: Vec<DataFile> = touched.clone();
        all.extend(quarantine.files.iter().cloned());
        all.extend(raw.files.iter().cloned());
        plan(progress, &all);

        let registry = self.pipeline.registry().snapshot();
        let (catalog, store) = (Arc::clone(&self.catalog), Arc::clone(&self.store));
        let mut run = Run::new(catalog.as_ref(), &store);
        let result = async {
            // Drop the rows being rebuilt from the files that hold them.
            for (files, table) in [
                (&touched, &self.shapes.tables.events),
                (&quarantine.files, &self.shapes.tables.quarantine),
            ] {
                for file in files {
                    let batches = read_all(Arc::clone(&self.store), &file.path).await?;
                    let mut kept = Vec::with_capacity(batches.len());
                    let mut dropped = 0u64;
                    for batch in batches {
                        let received = timestamp_column(&batch, "received_at")?;
                        let keep: BooleanArray = received
                            .iter()
                            .map(|at| Some(!at.is_some_and(|at| range.contains(at))))
                            .collect();
                        dropped += keep.false_count() as u64;
                        kept.push(filter_record_batch(&batch, &keep)?);
                    }
                    if dropped > 0 {
                        if table.def.name == EVENTS {
                            run.summary.curated_rows_replaced += dropped;
                        } else {
                            run.summary.quarantine_rows_replaced += dropped;
                        }
                        run.replace(&self.shapes, table, file, kept).await?;
                    }
                    run.summary.files_read += 1;
                    self.counts.publish();
                    progress.file_done(file.bytes);
                }
            }
            // Run the raw records of the range through the pipeline, file by file in the
            // order they were written (names start with the writer's clock).
            let mut raw_files = raw.files.clone();
            raw_files.sort_by(|a, b| a.path.cmp(&b.path));
            for file in &raw_files {
                let batches = read_all(Arc::clone(&self.store), &file.path).await?;
                for batch in batches {
                    self.replay_raw_batch(&registry, &batch, range, &mut run)?;
                    run.flush_if_over(&self.shapes).await?;
                }
                run.summary.files_read += 1;
                self.counts.publish();
                progress.file_done(file.bytes);
            }
            Ok(())
        }
        .await;
        run.finish(&self.shapes, self.dedup.as_mut(), result).await
    }

    /// Runs the records of one raw batch received in `range` through the pipeline, in arrival
    /// order (so that of two copies of an event the first stays first).
    fn replay_raw_batch(
        &mut self,
        registry: &SchemaRegistry,
        batch: &RecordBatch,
        range: ReceivedRange,
        run: &mut Run<'_>,
    ) -> Result<(), LakeError> {
        let tenant = string_column(batch, "tenant_id")?;
        let payload = string_column(batch, "payload")?;
        let received = timestamp_column(batch, "received_at")?;
        let (shard, seq) = positions(batch)?;
        let mut rows: Vec<usize> = (0..batch.num_rows())
            // An empty tenant marks a record that never was an event: raw only, by design.
            .filter(|&row| range.contains(received.value(row)) && !tenant.value(row).is_empty())
            .collect();
        rows.sort_by_key(|&row| (received.value(row), shard.value(row), seq.value(row)));
        for row in rows {
            let text = payload.value(row);
            let position = StreamPosition {
                shard: shard.value(row),
                seq: seq.value(row),
            };
            let Some(outcome) = self.reprocess(registry, text, position, run)? else {
                continue;
            };
            let source = Source {
                payload: text,
                shard: position.shard,
                seq: position.seq,
            };
            run.outcomes.route(&self.shapes, outcome, source)?;
        }
        Ok(())
    }
}

/// One replay's commit in the making.
struct Run<'a> {
    pending: PendingCommit<'a>,
    outcomes: OutcomeBuffers,
    removed: Vec<String>,
    summary: ReplaySummary,
}

impl<'a> Run<'a> {
    fn new(catalog: &'a dyn Catalog, store: &'a Arc<dyn ObjectStore>) -> Run<'a> {
        Run {
            pending: PendingCommit::new(catalog, store, "replay"),
            outcomes: OutcomeBuffers::default(),
            removed: Vec::new(),
            summary: ReplaySummary::default(),
        }
    }

    /// Replaces `file` of `table` with a file of the `kept` rows (none when they are all gone).
    async fn replace(
        &mut self,
        shapes: &Shapes,
        table: &TableInfo,
        file: &DataFile,
        kept: Vec<RecordBatch>,
    ) -> Result<(), LakeError> {
        self.removed.push(file.path.clone());
        let rows: usize = kept.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(());
        }
        let Some(schema) = kept.first().map(RecordBatch::schema) else {
            return Ok(());
        };
        let options = shapes.options();
        let table = table.clone();
        let file = file.clone();
        // Filtering keeps the file's order (tenant, time), so no sort is needed.
        let new = tokio::task::spawn_blocking(move || {
            let batch = concat_batches(&schema, &kept)?;
            let time = table.def.time_column.as_str();
            let tenant = table.def.tenant_column.as_str();
            let stats = batch_stats(&batch, time, tenant)?;
            let properties = writer_properties(options, &schema, &[tenant, time])?;
            let contents = encode(&schema, &[batch], properties)?;
            Ok::<_, LakeError>(new_file_versioned(
                &table,
                file.schema_version,
                file.partition.clone(),
                stats,
                contents,
                now_micros(),
            ))
        })
        .await
        .map_err(|error| LakeError::Worker(error.to_string()))??;
        self.add(vec![new]).await
    }

    async fn add(&mut self, files: Vec<NewFile>) -> Result<(), LakeError> {
        self.summary.files_added += files.len() as u64;
        self.pending.add(files).await
    }

    /// Writes the buffered outcomes once a partition's buffer is full.
    async fn flush_if_over(&mut self, shapes: &Shapes) -> Result<(), LakeError> {
        if self.outcomes.over(shapes.config.flush_bytes) {
            self.flush(shapes).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, shapes: &Shapes) -> Result<(), LakeError> {
        let outcomes = std::mem::take(&mut self.outcomes);
        self.summary.curated += outcomes.curated_events;
        self.summary.quarantined += outcomes.quarantined_events;
        self.summary.duplicates += outcomes.duplicates;
        let shapes = shapes.clone();
        let files = tokio::task::spawn_blocking(move || outcomes.encode(&shapes, now_micros()))
            .await
            .map_err(|error| LakeError::Worker(error.to_string()))??;
        self.add(files).await
    }

    /// Commits what the run did (the dedup store's new keys made durable first), or, when
    /// `result` is an error, takes every staged file back and returns it.
    async fn finish(
        mut self,
        shapes: &Shapes,
        dedup: Option<&mut DedupStore>,
        result: Result<(), LakeError>,
    ) -> Result<ReplaySummary, LakeError> {
        let prepared = match result {
            Ok(()) => self.flush(shapes).await,
            Err(error) => Err(error),
        };
        let synced = prepared.and_then(|()| match dedup {
            Some(store) => store.sync().map_err(LakeError::from),
            None => Ok(()),
        });
        if let Err(error) = synced {
            self.pending.abort().await;
            return Err(error);
        }
        let mut summary = self.summary;
        if self.pending.added().is_empty() && self.removed.is_empty() {
            return Ok(summary);
        }
        summary.files_removed = self.removed.len() as u64;
        summary.commit_id = Some(
            self.pending
                .commit(CommitKind::Replay, self.removed, Vec::new())
                .await?,
        );
        Ok(summary)
    }
}

fn plan(progress: &dyn ReplayProgress, files: &[DataFile]) {
    progress.planned(
        files.len() as u64,
        files.iter().map(|file| file.bytes).sum(),
    );
}

/// Whether `file` can hold rows received in `range`, by its footer's `received_at` statistics
/// (a file without them is assumed to).
async fn may_hold_received(
    store: &Arc<dyn ObjectStore>,
    file: &DataFile,
    range: ReceivedRange,
) -> Result<bool, LakeError> {
    let parquet_error = |source| LakeError::Parquet {
        path: file.path.clone(),
        source,
    };
    // Two small ranged reads (the 8-byte tail, then the footer) instead of the whole file.
    let location = Path::from(file.path.as_str());
    let fetch = |range: std::ops::Range<u64>| {
        let location = location.clone();
        async move {
            store
                .get_range(&location, range)
                .await
                .map_err(|source| LakeError::ObjectStore {
                    path: file.path.clone(),
                    source,
                })
        }
    };
    if file.bytes < 8 {
        return Ok(true);
    }
    let tail = fetch(file.bytes - 8..file.bytes).await?;
    let tail = FooterTail::try_from(tail.as_ref()).map_err(parquet_error)?;
    let length = tail.metadata_length() as u64;
    let start = (file.bytes - 8).saturating_sub(length);
    let footer = fetch(start..file.bytes - 8).await?;
    let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(parquet_error)?;
    for group in metadata.row_groups() {
        let statistics = group
            .columns()
            .iter()
            .find(|column| column.column_path().string() == "received_at")
            .and_then(|column| column.statistics());
        let Some(Statistics::Int64(values)) = statistics else {
            return Ok(true);
        };
        let (Some(&min), Some(&max)) = (values.min_opt(), values.max_opt()) else {
            return Ok(true);
        };
        if max >= range.since && min < range.until {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `batch` with a `dt` column of `day` appended (see [`quarantine_filter_schema`]).
fn with_day(batch: &RecordBatch, day: &str) -> Result<RecordBatch, LakeError> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("dt", DataType::Utf8, false));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![day; batch.num_rows()])));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The catalog statistics of a batch: rows, time range and tenant range.
fn batch_stats(batch: &RecordBatch, time: &str, tenant: &str) -> Result<RowStats, LakeError> {
    let times = timestamp_column(batch, time)?;
    let tenants = string_column(batch, tenant)?;
    Ok(RowStats {
        rows: batch.num_rows() as u64,
        min_ts: arrow::compute::min(times).unwrap_or(i64::MAX),
        max_ts: arrow::compute::max(times).unwrap_or(i64::MIN),
        min_tenant: arrow::compute::min_string(tenants)
            .unwrap_or_default()
            .to_string(),
        max_tenant: arrow::compute::max_string(tenants)
            .unwrap_or_default()
            .to_string(),
    })
}

/// The `shard` and `seq` columns: where each row's record is in the stream.
fn positions(batch: &RecordBatch) -> Result<(&UInt32Array, &UInt64Array), LakeError> {
    let shard = batch
        .column_by_name("shard")
        .and_then(|c| c.as_primitive_opt::<UInt32Type>())
        .ok_or_else(|| missing("shard"))?;
    let seq = batch
        .column_by_name("seq")
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| missing("seq"))?;
    Ok((shard, seq))
}

fn missing(column: &str) -> LakeError {
    LakeError::Config(format!(
        "lake file has no usable {column:?} column (is it a file of this table?)"
    ))
}

fn string_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray, LakeError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_string_opt::<i32>())
        .ok_or_else(|| missing(name))
}

fn timestamp_column<'b>(
    batch: &'b RecordBatch,
    name: &str,
) -> Result<&'b TimestampMicrosecondArray, LakeError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| missing(name))
}
