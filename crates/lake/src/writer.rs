//! The lake writer: a checkpointed consumer of every stream shard that buffers events per
//! partition and writes the raw archive and curated Parquet in one commit.
//!
//! ```text
//! shard 0 reader ─┐                       ┌─ raw/events/dt=…/hour=…      (every record, as stored)
//! shard 1 reader ─┼─▶ bounded channel ─▶ buffers ─┤
//! …              ─┘   (backpressure)      └─ curated/events/dt=…/event_family=…
//!                                 flush: at flush_bytes in a partition, max_buffer_bytes in
//!                                 all, or flush_interval after the oldest buffered event
//! ```
//!
//! A flush writes every buffered partition and commits all files together with the checkpoint
//! past the events they hold ([`crate::commit`]), so a restart resumes exactly where the lake
//! ends. Readers push into a bounded channel and block while a flush runs, so memory stays
//! bounded by `max_buffer_bytes` plus one read per shard.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use object_store::ObjectStore;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tributary_catalog::{Catalog, CommitKind, ConsumerCheckpoint, DataFile, Partition, TableInfo};
use tributary_model::{Event, now_micros};
use tributary_pipeline::dedup::DedupStore;
use tributary_pipeline::{Outcome, Pipeline, StreamPosition};
use tributary_stream::{ReadBatch, ReadLimits, ShardId, StartPosition, Stream};

use crate::buffer::{CuratedBuffer, QuarantineBuffer, QuarantineRow, RawBuffer, RawRow, RowStats};
use crate::commit::{NewFile, publish};
use crate::config::LakeConfig;
use crate::error::LakeError;
use crate::family::FamilyRules;
use crate::layout::{
    curated_partition, day_of, hour_of, new_file_path, quarantine_partition, raw_partition,
};
use crate::parquet_io::{ParquetOptions, encode, writer_properties};
use crate::schema::{
    curated_file_schema, events_table, quarantine_file_schema, quarantine_table, raw_events_table,
    raw_file_schema,
};
use crate::telemetry;

/// The two tables the writer fills, as registered in the catalog.
#[derive(Debug, Clone)]
pub struct LakeTables {
    /// `events`.
    pub events: TableInfo,
    /// `raw_events`.
    pub raw: TableInfo,
    /// `quarantine`.
    pub quarantine: TableInfo,
}

impl LakeTables {
    /// Creates the tables or records their current schema (a changed list of promoted
    /// properties is a new schema version of `events`).
    pub async fn ensure(
        catalog: &dyn Catalog,
        config: &LakeConfig,
    ) -> Result<LakeTables, LakeError> {
        let events = catalog
            .ensure_table(events_table(
                &config.promoted_properties,
                config.retention.events_days,
            ))
            .await?;
        let raw = catalog
            .ensure_table(raw_events_table(config.retention.raw_days))
            .await?;
        let quarantine = catalog
            .ensure_table(quarantine_table(config.retention.raw_days))
            .await?;
        Ok(LakeTables {
            events,
            raw,
            quarantine,
        })
    }
}

/// What one flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushSummary {
    /// Events (stream records) in it.
    pub records: u64,
    /// Files committed (curated and raw).
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// The commit's id (0 when there was nothing to flush).
    pub commit_id: i64,
}

/// Why a flush happened (a metric label).
#[derive(Debug, Clone, Copy)]
enum FlushTrigger {
    Interval,
    Size,
    Shutdown,
}

impl FlushTrigger {
    fn label(self) -> &'static str {
        match self {
            FlushTrigger::Interval => "interval",
            FlushTrigger::Size => "size",
            FlushTrigger::Shutdown => "shutdown",
        }
    }
}

/// The lake writer.
pub struct LakeWriter {
    stream: Arc<dyn Stream>,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    config: LakeConfig,
    tables: LakeTables,
    families: FamilyRules,
    curated_schema: SchemaRef,
    raw_schema: SchemaRef,
    quarantine_schema: SchemaRef,
    pipeline: Option<PipelineStage>,
}

/// The pipeline between the stream and the curated lake, with the writer's dedup store.
struct PipelineStage {
    pipeline: Arc<Pipeline>,
    /// Only the writer's task uses it; the lock is never contended.
    dedup: Option<Arc<parking_lot::Mutex<DedupStore>>>,
}

/// Aborts the shard readers when the writer stops, however it stops.
struct Readers(Vec<JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

/// One shard's read, or the error that stopped its reader.
type ShardRead = (ShardId, Result<ReadBatch, LakeError>);

impl LakeWriter {
    /// A writer of the lake in `store`, recorded in `catalog`, reading `stream`.
    pub async fn new(
        stream: Arc<dyn Stream>,
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        config: LakeConfig,
    ) -> Result<LakeWriter, LakeError> {
        config.validate()?;
        let tables = LakeTables::ensure(catalog.as_ref(), &config).await?;
        Ok(LakeWriter {
            families: FamilyRules::new(config.event_families.clone()),
            curated_schema: curated_file_schema(&config.promoted_properties),
            raw_schema: raw_file_schema(),
            quarantine_schema: quarantine_file_schema(),
            pipeline: None,
            stream,
            catalog,
            store,
            config,
            tables,
        })
    }

    /// Sends every event through `pipeline` (validation, enrichment, privacy) before the
    /// curated lake, quarantining what it rejects, and drops repeated event ids with `dedup`.
    /// Without a pipeline, events go to the curated lake as the collector accepted them.
    pub fn with_pipeline(mut self, pipeline: Arc<Pipeline>, dedup: Option<DedupStore>) -> Self {
        self.pipeline = Some(PipelineStage {
            pipeline,
            dedup: dedup.map(|store| Arc::new(parking_lot::Mutex::new(store))),
        });
        self
    }

    /// The tables it writes.
    pub fn tables(&self) -> &LakeTables {
        &self.tables
    }

    /// Where each shard resumes: the catalog's checkpoint, or the oldest retained record for a
    /// shard the writer never committed.
    async fn resume_positions(&self) -> Result<BTreeMap<ShardId, u64>, LakeError> {
        let checkpoint = self.catalog.checkpoint(&self.config.consumer).await?;
        let mut positions = BTreeMap::new();
        for shard in 0..self.stream.shard_count() {
            let next = match checkpoint.positions.get(&shard) {
                Some(&next) => next,
                None => self.stream.resolve(shard, StartPosition::Oldest).await?,
            };
            positions.insert(shard, next);
        }
        Ok(positions)
    }

    /// Consumes the stream until `shutdown` turns true, then flushes what it buffered and
    /// returns. An error (stream, object store, catalog) stops it; events buffered but not
    /// committed are read again by the next run, from the checkpoint.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), LakeError> {
        // Registered so `tributary stream lag` shows the lake's lag; the catalog's checkpoint
        // is the one the writer resumes from.
        self.stream
            .register_consumer(&self.config.consumer, StartPosition::Oldest)
            .await?;
        let positions = self.resume_positions().await?;
        let (sender, mut receiver) = mpsc::channel::<ShardRead>(positions.len().max(1) * 2);
        let _readers = Readers(
            positions
                .iter()
                .map(|(&shard, &next)| {
                    tokio::spawn(read_shard(
                        Arc::clone(&self.stream),
                        shard,
                        next,
                        sender.clone(),
                    ))
                })
                .collect(),
        );
        drop(sender);

        let mut buffers = Buffers::new(positions);
        loop {
            let deadline = buffers
                .oldest
                .map(|oldest| oldest + self.config.flush_interval);
            tokio::select! {
                read = receiver.recv() => {
                    let Some((shard, read)) = read else {
                        return Err(LakeError::Worker("every shard reader stopped".into()));
                    };
                    let batch = read?;
                    self.buffer(&mut buffers, shard, batch)?;
                    if buffers.over_size(&self.config) {
                        self.flush(&mut buffers, FlushTrigger::Size).await?;
                    }
                }
                () = sleep_until(deadline) => {
                    self.flush(&mut buffers, FlushTrigger::Interval).await?;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.flush(&mut buffers, FlushTrigger::Shutdown).await?;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Adds one read's records to the partition buffers.
    fn buffer(
        &self,
        buffers: &mut Buffers,
        shard: ShardId,
        batch: ReadBatch,
    ) -> Result<(), LakeError> {
        if batch.expired_skipped > 0 {
            metrics::counter!(telemetry::EXPIRED_SKIPPED).increment(batch.expired_skipped);
            tracing::error!(
                shard,
                records = batch.expired_skipped,
                "stream retention deleted records before the lake wrote them"
            );
        }
        // One registry snapshot per read: a schema added meanwhile applies from the next one.
        let registry = self
            .pipeline
            .as_ref()
            .map(|stage| stage.pipeline.registry().snapshot());
        // Locked once per read, not per event (only this task ever takes it).
        let mut dedup = self
            .pipeline
            .as_ref()
            .and_then(|stage| stage.dedup.as_ref())
            .map(|store| store.lock());
        if buffers.oldest.is_none() && !batch.records.is_empty() {
            buffers.oldest = Some(Instant::now());
        }
        for record in &batch.records {
            let payload = String::from_utf8_lossy(&record.value);
            match serde_json::from_slice::<Event>(&record.value) {
                Ok(event) => {
                    let raw = RawRow {
                        tenant_id: &event.tenant_id,
                        event_id: &event.event_id,
                        ts: event.ts,
                        received_at: event.received_at,
                        shard,
                        seq: record.seq,
                        payload: &payload,
                    };
                    buffers.raw_row(&self.raw_schema, raw);
                    let outcome = match (&self.pipeline, &registry) {
                        (Some(stage), Some(registry)) => {
                            let position = StreamPosition {
                                shard,
                                seq: record.seq,
                            };
                            stage.pipeline.process(
                                registry,
                                event,
                                position,
                                dedup.as_deref_mut(),
                            )?
                        }
                        _ => Outcome::Curated(Box::new(event)),
                    };
                    match outcome {
                        Outcome::Curated(event) => {
                            self.curate(buffers, &event, record.value.len(), shard, record.seq)
                        }
                        Outcome::Quarantined(event, quarantined) => {
                            let reasons: Vec<(String, String, String)> = quarantined
                                .reasons
                                .into_iter()
                                .map(|v| (v.pointer, v.rule, v.message))
                                .collect();
                            let row = QuarantineRow {
                                raw: RawRow {
                                    tenant_id: &event.tenant_id,
                                    event_id: &event.event_id,
                                    ts: event.ts,
                                    received_at: event.received_at,
                                    shard,
                                    seq: record.seq,
                                    payload: &payload,
                                },
                                event_type: &event.event_type,
                                schema_version: quarantined.schema_version,
                                reasons: &reasons,
                            };
                            buffers
                                .quarantine
                                .entry(day_of(event.received_at))
                                .or_insert_with(|| {
                                    QuarantineBuffer::new(self.quarantine_schema.clone())
                                })
                                .push(row)?;
                        }
                        Outcome::Duplicate { .. } => buffers.duplicates += 1,
                    }
                }
                Err(error) => {
                    // Not an event (something other than the collector wrote the stream): the
                    // raw archive keeps it, visible to admins; curated cannot hold it.
                    metrics::counter!(telemetry::UNDECODABLE).increment(1);
                    tracing::warn!(%error, shard, seq = record.seq, "stream record is not an event; archived raw only");
                    buffers.raw_row(
                        &self.raw_schema,
                        RawRow {
                            tenant_id: "",
                            event_id: "",
                            ts: record.timestamp,
                            received_at: record.timestamp,
                            shard,
                            seq: record.seq,
                            payload: &payload,
                        },
                    );
                }
            }
        }
        buffers.records += batch.records.len() as u64;
        buffers.consumed.insert(shard, batch.next_seq);
        metrics::gauge!(telemetry::BUFFERED_BYTES).set(buffers.raw_bytes as f64);
        Ok(())
    }

    /// Adds a curated event to its partition's buffer.
    fn curate(&self, buffers: &mut Buffers, event: &Event, size: usize, shard: ShardId, seq: u64) {
        let family = self.families.family_of(&event.event_type);
        let key = (day_of(event.ts), family.to_string());
        let buffer = buffers.curated.entry(key).or_insert_with(|| {
            CuratedBuffer::new(
                self.curated_schema.clone(),
                &self.config.promoted_properties,
            )
        });
        if let Err(error) = buffer.push(event, size) {
            // Builders only fail on internal invariants; keep the raw copy and say so.
            tracing::error!(%error, shard, seq, "event not curated");
            metrics::counter!(telemetry::UNDECODABLE).increment(1);
        }
    }

    /// Writes every buffered partition and commits the files with the checkpoint.
    async fn flush(
        &self,
        buffers: &mut Buffers,
        trigger: FlushTrigger,
    ) -> Result<FlushSummary, LakeError> {
        if buffers.records == 0 && buffers.consumed == buffers.committed {
            buffers.oldest = None;
            return Ok(FlushSummary::default());
        }
        let started = Instant::now();
        let taken = std::mem::replace(buffers, Buffers::new(buffers.consumed.clone()));
        let records = taken.records;
        let positions = taken.consumed.clone();
        let oldest_received = taken.oldest_received;

        let now = now_micros();
        let options = ParquetOptions {
            zstd_level: self.config.zstd_level,
            row_group_rows: self.config.row_group_rows,
        };
        let events = self.tables.events.clone();
        let raw = self.tables.raw.clone();
        let curated_schema = self.curated_schema.clone();
        let raw_schema = self.raw_schema.clone();
        let quarantine = self.tables.quarantine.clone();
        let quarantine_schema = self.quarantine_schema.clone();
        // Sorting and encoding are CPU work: off the async workers.
        let files = tokio::task::spawn_blocking(move || {
            let mut files = Vec::new();
            let curated_props = writer_properties(options, &curated_schema, &["tenant_id", "ts"])?;
            for ((day, family), buffer) in taken.curated {
                let (batch, stats) = buffer.finish()?;
                let contents = encode(&batch, curated_props.clone())?;
                files.push(new_file(
                    &events,
                    curated_partition(day, &family),
                    stats,
                    contents,
                    now,
                ));
            }
            let raw_props = writer_properties(options, &raw_schema, &["tenant_id", "received_at"])?;
            for ((day, hour), buffer) in taken.raw {
                let (batch, stats) = buffer.finish()?;
                let contents = encode(&batch, raw_props.clone())?;
                files.push(new_file(
                    &raw,
                    raw_partition(day, hour),
                    stats,
                    contents,
                    now,
                ));
            }
            let quarantine_props =
                writer_properties(options, &quarantine_schema, &["tenant_id", "received_at"])?;
            for (day, buffer) in taken.quarantine {
                let (batch, stats) = buffer.finish()?;
                let contents = encode(&batch, quarantine_props.clone())?;
                files.push(new_file(
                    &quarantine,
                    quarantine_partition(day),
                    stats,
                    contents,
                    now,
                ));
            }
            Ok::<_, LakeError>(files)
        })
        .await
        .map_err(|error| LakeError::Worker(error.to_string()))??;

        let summary_files = files.len();
        let bytes: u64 = files.iter().map(|f| f.record.bytes).sum();
        for file in &files {
            metrics::counter!(telemetry::FILES_WRITTEN, "table" => file.record.table.clone())
                .increment(1);
            metrics::counter!(telemetry::ROWS_WRITTEN, "table" => file.record.table.clone())
                .increment(file.record.rows);
            metrics::counter!(telemetry::BYTES_WRITTEN, "table" => file.record.table.clone())
                .increment(file.record.bytes);
        }
        let checkpoint = ConsumerCheckpoint {
            consumer: self.config.consumer.clone(),
            positions: positions.clone(),
        };
        // The dedup store's new keys must be durable before the events they stand for are
        // published; a crash in between leaves keys whose records are read again, at the
        // same positions, and kept (see tributary_pipeline::dedup).
        if let Some(store) = self.pipeline.as_ref().and_then(|stage| stage.dedup.clone()) {
            tokio::task::spawn_blocking(move || store.lock().sync())
                .await
                .map_err(|error| LakeError::Worker(error.to_string()))??;
        }
        let commit_id = publish(
            self.catalog.as_ref(),
            &self.store,
            CommitKind::Flush,
            "flush",
            files,
            Vec::new(),
            Some(checkpoint),
        )
        .await?;
        buffers.committed = positions.clone();

        // Mirror the checkpoint into the stream for `tributary stream lag`; the catalog's copy
        // is the one that counts, so a failure here only delays the lag figure.
        let pairs: Vec<(ShardId, u64)> = positions.into_iter().collect();
        if let Err(error) = self.stream.commit(&self.config.consumer, &pairs).await {
            tracing::warn!(%error, "could not mirror the lake checkpoint into the stream");
        }

        let elapsed = started.elapsed();
        metrics::counter!(telemetry::FLUSHES, "trigger" => trigger.label()).increment(1);
        metrics::histogram!(telemetry::FLUSH_SECONDS).record(elapsed.as_secs_f64());
        metrics::counter!(telemetry::EVENTS_COMMITTED).increment(records);
        metrics::gauge!(telemetry::BUFFERED_BYTES).set(0.0);
        if let Some(oldest) = oldest_received {
            // How old the oldest event of this flush was when it became queryable.
            let freshness = (now_micros() - oldest).max(0) as f64 / 1e6;
            metrics::gauge!(telemetry::FRESHNESS_SECONDS).set(freshness);
        }
        tracing::debug!(
            records,
            files = summary_files,
            bytes,
            ?elapsed,
            trigger = trigger.label(),
            "lake flush"
        );
        Ok(FlushSummary {
            records,
            files: summary_files,
            bytes,
            commit_id,
        })
    }
}

fn new_file(
    table: &TableInfo,
    partition: Partition,
    stats: RowStats,
    contents: bytes::Bytes,
    now: i64,
) -> NewFile {
    NewFile {
        record: DataFile {
            table: table.def.name.clone(),
            path: new_file_path(&table.def.location, &partition, now),
            partition,
            rows: stats.rows,
            bytes: contents.len() as u64,
            min_ts: stats.min_ts,
            max_ts: stats.max_ts,
            min_tenant: stats.min_tenant,
            max_tenant: stats.max_tenant,
            schema_version: table.schema_version,
        },
        contents,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// How long a reader waits for new records before asking again (long polling).
const READ_WAIT: Duration = Duration::from_millis(500);

/// Reads one shard from `next` on and forwards every non-empty read, in order. Stops when the
/// writer drops the channel, or after forwarding an error.
async fn read_shard(
    stream: Arc<dyn Stream>,
    shard: ShardId,
    mut next: u64,
    sender: mpsc::Sender<ShardRead>,
) {
    let limits = ReadLimits {
        max_records: 8192,
        max_bytes: 4 << 20,
        max_wait: READ_WAIT,
    };
    loop {
        match stream.read(shard, next, limits).await {
            Ok(batch) => {
                if batch.records.is_empty() && batch.expired_skipped == 0 {
                    next = batch.next_seq;
                    continue;
                }
                next = batch.next_seq;
                if sender.send((shard, Ok(batch))).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = sender.send((shard, Err(error.into()))).await;
                return;
            }
        }
    }
}

/// What the writer holds between flushes.
struct Buffers {
    curated: HashMap<(i64, String), CuratedBuffer>,
    raw: HashMap<(i64, u8), RawBuffer>,
    quarantine: HashMap<i64, QuarantineBuffer>,
    /// Duplicates the pipeline dropped since the last flush.
    duplicates: u64,
    /// Records buffered.
    records: u64,
    /// Payload bytes buffered.
    raw_bytes: u64,
    /// When the oldest buffered record arrived here.
    oldest: Option<Instant>,
    /// The oldest `received_at` buffered (for the freshness gauge).
    oldest_received: Option<i64>,
    /// Per shard: the next sequence number after what is buffered.
    consumed: BTreeMap<ShardId, u64>,
    /// Per shard: the position last committed.
    committed: BTreeMap<ShardId, u64>,
}

impl Buffers {
    fn new(positions: BTreeMap<ShardId, u64>) -> Buffers {
        Buffers {
            curated: HashMap::new(),
            raw: HashMap::new(),
            quarantine: HashMap::new(),
            duplicates: 0,
            records: 0,
            raw_bytes: 0,
            oldest: None,
            oldest_received: None,
            committed: positions.clone(),
            consumed: positions,
        }
    }

    fn raw_row(&mut self, schema: &SchemaRef, row: RawRow<'_>) {
        self.raw_bytes += row.payload.len() as u64;
        self.oldest_received = Some(
            self.oldest_received
                .map_or(row.received_at, |oldest| oldest.min(row.received_at)),
        );
        self.raw
            .entry((day_of(row.received_at), hour_of(row.received_at)))
            .or_insert_with(|| RawBuffer::new(schema.clone()))
            .push(row);
    }

    fn over_size(&self, config: &LakeConfig) -> bool {
        self.raw_bytes >= config.max_buffer_bytes
            || self
                .curated
                .values()
                .any(|b| b.bytes() >= config.flush_bytes)
            || self.raw.values().any(|b| b.bytes() >= config.flush_bytes)
            || self
                .quarantine
                .values()
                .any(|b| b.bytes() >= config.flush_bytes)
    }
}
