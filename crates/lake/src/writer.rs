//! The lake writer: a checkpointed consumer of every stream shard that buffers events per
//! partition and writes the raw archive and curated Parquet in one commit.
//!
//! ```text
//! shard 0 reader ─┐                       ┌─ raw/events/dt=…/hour=…      (every record, as stored)
//! shard 1 reader ─┼─▶ bounded channel ─▶ buffers ─┤
//! …              ─┘   (backpressure)      └─ curated/events/dt=…/event_family=…
//!                                 flush: at flush_bytes in a partition, max_buffer_bytes in
//!                                 all, max_open_partitions curated partitions, or
//!                                 flush_interval after the oldest buffered event
//! ```
//!
//! A flush writes every buffered partition and commits all files together with the checkpoint
//! past the events they hold ([`crate::commit`]), so a restart resumes exactly where the lake
//! ends. The flush encodes on a blocking thread and commits while the writer goes on buffering
//! the next events, so one core decodes and runs the pipeline while another encodes Parquet.
//! At most one flush is under way: the next waits for it, so commits (and checkpoints) stay in
//! order, and memory stays bounded by twice `max_buffer_bytes` plus one read per shard
//! (readers push into a bounded channel and block while the writer waits).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use object_store::ObjectStore;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tributary_catalog::{Catalog, CommitKind, ConsumerCheckpoint, TableInfo};
use tributary_model::{Event, now_micros};
use tributary_pipeline::dedup::DedupStore;
use tributary_pipeline::{Outcome, Pipeline, StageCounts, StreamPosition};
use tributary_stream::{ReadBatch, ReadLimits, ShardId, StartPosition, Stream};

use crate::commit::{new_file, publish};
use crate::config::LakeConfig;
use crate::error::LakeError;
use crate::layout::{day_of, hour_of, raw_partition};
use crate::parquet_io::{encode, writer_properties};
use crate::raw_buffer::{RawBuffer, RawRow, RawSizeHints};
use crate::routing::{FastMap, OutcomeBuffers, Shapes, Source};
use crate::schema::{events_table, quarantine_table, raw_events_table};
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

/// What a lake writer writes. Each role keeps its own checkpoint, so one writer can play both
/// (one read and one decode per event, the embedded default) or two writers can play one each
/// (the archive keeps pace whatever the pipeline does, and each side's CPU is its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterRole {
    /// The raw archive and the curated lake (and quarantine), from one read of each record.
    Both,
    /// The raw archive only.
    Archive,
    /// The curated lake and quarantine only: the pipeline's writer.
    Curate,
}

impl WriterRole {
    /// Whether it writes the raw archive.
    pub fn archives(self) -> bool {
        matches!(self, WriterRole::Both | WriterRole::Archive)
    }

    /// Whether it writes the curated lake and quarantine.
    pub fn curates(self) -> bool {
        matches!(self, WriterRole::Both | WriterRole::Curate)
    }

    /// The `writer` label of its metrics: two writers of one process count apart.
    pub fn label(self) -> &'static str {
        match self {
            WriterRole::Both => "both",
            WriterRole::Archive => "archive",
            WriterRole::Curate => "curate",
        }
    }
}

/// The consumer whose checkpoint says how far the raw archive goes, beside `consumer` (the
/// lake config's), which says how far the curated lake goes.
pub fn archive_consumer(consumer: &str) -> String {
    format!("{consumer}-raw")
}

/// Where each role of a writer resumes, per shard. Equal after the first flush; they differ
/// when writers that played one role each are followed by one that plays both (or the
/// reverse), and then the writer reads from the earlier and skips, per role, what that role
/// already wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RoleStart {
    archive: u64,
    curate: u64,
}

impl RoleStart {
    /// Where a writer playing `role` reads from: the earliest record one of its roles needs.
    fn read_from(self, role: WriterRole) -> u64 {
        match role {
            WriterRole::Both => self.archive.min(self.curate),
            WriterRole::Archive => self.archive,
            WriterRole::Curate => self.curate,
        }
    }

    /// Whether the record at `seq` still needs (archiving, curating) by a writer playing
    /// `role`.
    fn needs(self, role: WriterRole, seq: u64) -> (bool, bool) {
        (
            role.archives() && seq >= self.archive,
            role.curates() && seq >= self.curate,
        )
    }
}

/// [`RoleStart`] per shard.
type RoleStarts = BTreeMap<ShardId, RoleStart>;

/// The lake writer.
pub struct LakeWriter {
    stream: Arc<dyn Stream>,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    config: LakeConfig,
    shapes: Shapes,
    pipeline: Option<PipelineStage>,
    role: WriterRole,
}

/// The pipeline between the stream and the curated lake, with the writer's dedup store.
struct PipelineStage {
    pipeline: Arc<Pipeline>,
    /// The writer locks it once per read; a flush under way locks it to write keys out.
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

/// A flush under way: it owns the buffers it writes and borrows the writer.
type Flushing<'a> = Pin<Box<dyn Future<Output = Result<FlushSummary, LakeError>> + Send + 'a>>;

/// Waits for the flush under way, if any; never resolves without one (a `select!` branch).
async fn flush_done(flushing: &mut Option<Flushing<'_>>) -> Result<FlushSummary, LakeError> {
    match flushing.as_mut() {
        Some(flush) => flush.await,
        None => std::future::pending().await,
    }
}

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
            shapes: Shapes::new(tables, &config),
            pipeline: None,
            role: WriterRole::Both,
            stream,
            catalog,
            store,
            config,
        })
    }

    /// Writes only what `role` says (the default is [`WriterRole::Both`]).
    pub fn with_role(mut self, role: WriterRole) -> Self {
        self.role = role;
        self
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
        &self.shapes.tables
    }

    /// The consumers whose checkpoints this writer moves: (archive, curate) for the roles it
    /// plays.
    fn consumers(&self) -> Vec<String> {
        let mut consumers = Vec::new();
        if self.role.archives() {
            consumers.push(archive_consumer(&self.config.consumer));
        }
        if self.role.curates() {
            consumers.push(self.config.consumer.clone());
        }
        consumers
    }

    /// Where each role resumes, per shard: the catalog's checkpoint, or the oldest retained
    /// record for a shard it never committed.
    ///
    /// The archive's checkpoint is made to exist before anything is read: a writer from before
    /// roles kept one checkpoint for both, so a missing archive position starts where the
    /// curated one stands (or at the oldest record). Every writer records it at start, in one
    /// insert-if-missing transaction, so a curating writer that commits first can never move
    /// the point an archiving writer would later start from.
    async fn resume_positions(&self) -> Result<RoleStarts, LakeError> {
        let curated = self.catalog.checkpoint(&self.config.consumer).await?;
        let mut curate = BTreeMap::new();
        for shard in 0..self.stream.shard_count() {
            let next = match curated.positions.get(&shard) {
                Some(&next) => next,
                None => self.stream.resolve(shard, StartPosition::Oldest).await?,
            };
            curate.insert(shard, next);
        }
        let archived = self
            .catalog
            .init_checkpoint(ConsumerCheckpoint {
                consumer: archive_consumer(&self.config.consumer),
                positions: curate.clone(),
            })
            .await?;
        Ok(curate
            .into_iter()
            .map(|(shard, curate)| {
                let archive = archived.positions.get(&shard).copied().unwrap_or(curate);
                (shard, RoleStart { archive, curate })
            })
            .collect())
    }

    /// Consumes the stream until `shutdown` turns true, then flushes what it buffered and
    /// returns. An error (stream, object store, catalog) stops it; events buffered but not
    /// committed are read again by the next run, from the checkpoint.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), LakeError> {
        // Registered so `tributary stream lag` shows the lake's lag; the catalog's checkpoint
        // is the one the writer resumes from.
        for consumer in self.consumers() {
            self.stream
                .register_consumer(&consumer, StartPosition::Oldest)
                .await?;
        }
        let starts = self.resume_positions().await?;
        // Read from the earlier of the roles' positions; each skips what it already wrote.
        let positions: BTreeMap<ShardId, u64> = starts
            .iter()
            .map(|(&shard, start)| (shard, start.read_from(self.role)))
            .collect();
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

        let mut buffers = Buffers::new(positions, RawSizeHints::default(), Arc::new(starts));
        let mut flushing: Option<Flushing<'_>> = None;
        loop {
            let deadline = buffers
                .oldest
                .map(|oldest| oldest + self.config.flush_interval);
            tokio::select! {
                done = flush_done(&mut flushing) => {
                    flushing = None;
                    done?;
                }
                read = receiver.recv() => {
                    let Some((shard, read)) = read else {
                        return Err(LakeError::Worker("every shard reader stopped".into()));
                    };
                    let batch = read?;
                    self.buffer(&mut buffers, shard, batch)?;
                    if buffers.over_size(&self.config) {
                        self.start_flush(&mut buffers, FlushTrigger::Size, &mut flushing).await?;
                    }
                }
                () = sleep_until(deadline) => {
                    self.start_flush(&mut buffers, FlushTrigger::Interval, &mut flushing).await?;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.start_flush(&mut buffers, FlushTrigger::Shutdown, &mut flushing)
                            .await?;
                        if let Some(last) = flushing.take() {
                            last.await?;
                        }
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Waits for the flush under way, then hands what `buffers` holds to a new one (left in
    /// `flushing`) and empties them. Nothing buffered and nothing new consumed: no flush.
    async fn start_flush<'a>(
        &'a self,
        buffers: &mut Buffers,
        trigger: FlushTrigger,
        flushing: &mut Option<Flushing<'a>>,
    ) -> Result<(), LakeError> {
        if let Some(previous) = flushing.take() {
            previous.await?;
        }
        // `committed` counts the flush that just finished or is about to start.
        if buffers.records == 0 && buffers.consumed == buffers.committed {
            buffers.oldest = None;
            return Ok(());
        }
        let next = Buffers::new(
            buffers.consumed.clone(),
            buffers.raw_size_hints(),
            Arc::clone(&buffers.starts),
        );
        let taken = std::mem::replace(buffers, next);
        *flushing = Some(Box::pin(self.flush(taken, trigger)));
        Ok(())
    }

    /// Adds one read's records to the partition buffers.
    fn buffer(
        &self,
        buffers: &mut Buffers,
        shard: ShardId,
        batch: ReadBatch,
    ) -> Result<(), LakeError> {
        if batch.expired_skipped > 0 {
            metrics::counter!(telemetry::EXPIRED_SKIPPED, "writer" => self.role.label())
                .increment(batch.expired_skipped);
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
        let mut counts = StageCounts::default();
        if buffers.oldest.is_none() && !batch.records.is_empty() {
            buffers.oldest = Some(Instant::now());
        }
        let start = buffers.starts.get(&shard).copied().unwrap_or_default();
        for record in &batch.records {
            let (archive, curate) = start.needs(self.role, record.seq);
            if !archive && !curate {
                continue;
            }
            // Validated once: the decoder then reads the checked text without checking it
            // again. A record that is not UTF-8 cannot be an event; it is archived lossily.
            let (payload, decoded) = match std::str::from_utf8(&record.value) {
                Ok(text) => (Cow::Borrowed(text), serde_json::from_str::<Event>(text)),
                Err(_) => {
                    let text = String::from_utf8_lossy(&record.value);
                    let decoded = serde_json::from_slice::<Event>(&record.value);
                    (text, decoded)
                }
            };
            let received_at = decoded
                .as_ref()
                .map_or(record.timestamp, |event| event.received_at);
            buffers.count(record.value.len(), received_at);
            match decoded {
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
                    if archive {
                        buffers.raw_row(&self.shapes.raw, raw);
                    }
                    if !curate {
                        continue;
                    }
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
                                &mut counts,
                            )?
                        }
                        _ => Outcome::Curated(Box::new(event)),
                    };
                    let source = Source {
                        payload: &payload,
                        shard,
                        seq: record.seq,
                    };
                    buffers.outcomes.route(&self.shapes, outcome, source)?;
                }
                Err(error) if archive => {
                    // Not an event (something other than the collector wrote the stream): the
                    // raw archive keeps it, visible to admins; curated cannot hold it.
                    metrics::counter!(telemetry::UNDECODABLE).increment(1);
                    tracing::warn!(%error, shard, seq = record.seq, "stream record is not an event; archived raw only");
                    buffers.raw_row(
                        &self.shapes.raw,
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
                // The archiving writer counts and reports it; this one only curates.
                Err(error) => {
                    tracing::debug!(%error, shard, seq = record.seq, "stream record is not an event; not curated");
                }
            }
        }
        counts.publish();
        buffers.records += batch.records.len() as u64;
        buffers.consumed.insert(shard, batch.next_seq);
        metrics::gauge!(telemetry::BUFFERED_BYTES, "writer" => self.role.label())
            .set(buffers.bytes as f64);
        Ok(())
    }

    /// Writes every partition of `taken` and commits the files with the checkpoint past them.
    async fn flush(
        &self,
        taken: Buffers,
        trigger: FlushTrigger,
    ) -> Result<FlushSummary, LakeError> {
        let started = Instant::now();
        let records = taken.records;
        let positions = taken.consumed.clone();
        let taken_starts = Arc::clone(&taken.starts);
        let oldest_received = taken.oldest_received;

        let now = now_micros();
        let shapes = self.shapes.clone();
        // Sorting and encoding are CPU work: off the async workers.
        let files = tokio::task::spawn_blocking(move || {
            let mut files = taken.outcomes.encode(&shapes, now)?;
            let options = shapes.options();
            let raw_props = writer_properties(options, &shapes.raw, &["tenant_id", "received_at"])?;
            for ((day, hour), buffer) in taken.raw {
                let (batches, stats) = buffer.finish()?;
                let contents = encode(&shapes.raw, &batches, raw_props.clone())?;
                files.push(new_file(
                    &shapes.tables.raw,
                    raw_partition(day, hour),
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
        // One checkpoint per role, never behind where the role started (a role that was
        // ahead of the other skipped what this flush read below its start).
        let role_positions = |role_start: fn(&RoleStart) -> u64| -> BTreeMap<ShardId, u64> {
            positions
                .iter()
                .map(|(&shard, &next)| {
                    let start = taken_starts.get(&shard).map_or(0, role_start);
                    (shard, next.max(start))
                })
                .collect()
        };
        let mut checkpoints = Vec::new();
        if self.role.archives() {
            checkpoints.push(ConsumerCheckpoint {
                consumer: archive_consumer(&self.config.consumer),
                positions: role_positions(|start| start.archive),
            });
        }
        if self.role.curates() {
            checkpoints.push(ConsumerCheckpoint {
                consumer: self.config.consumer.clone(),
                positions: role_positions(|start| start.curate),
            });
        }
        // The dedup store's new keys must be durable before the events they stand for are
        // published; a crash in between leaves keys whose records are read again, at the
        // same positions, and kept (see tributary_pipeline::dedup).
        if let Some(store) = self.pipeline.as_ref().and_then(|stage| stage.dedup.clone()) {
            // The lock is held to write the keys out, not for the fdatasync: the writer
            // buffering the next events locks the store for every read meanwhile.
            tokio::task::spawn_blocking(move || {
                let pending = store.lock().write_out()?;
                pending.sync()
            })
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
            checkpoints.clone(),
        )
        .await?;

        // Mirror the checkpoints into the stream for `tributary stream lag`; the catalog's
        // copy is the one that counts, so a failure here only delays the lag figure.
        for checkpoint in checkpoints {
            let pairs: Vec<(ShardId, u64)> = checkpoint.positions.into_iter().collect();
            if let Err(error) = self.stream.commit(&checkpoint.consumer, &pairs).await {
                tracing::warn!(%error, "could not mirror the lake checkpoint into the stream");
            }
        }

        let elapsed = started.elapsed();
        let writer = self.role.label();
        metrics::counter!(telemetry::FLUSHES, "trigger" => trigger.label(), "writer" => writer)
            .increment(1);
        metrics::histogram!(telemetry::FLUSH_SECONDS, "writer" => writer)
            .record(elapsed.as_secs_f64());
        metrics::counter!(telemetry::EVENTS_COMMITTED, "writer" => writer).increment(records);
        metrics::gauge!(telemetry::BUFFERED_BYTES, "writer" => writer).set(0.0);
        if let Some(oldest) = oldest_received {
            // How old the oldest event of this flush was when it became queryable.
            let freshness = now_micros().saturating_sub(oldest).max(0) as f64 / 1e6;
            metrics::gauge!(telemetry::FRESHNESS_SECONDS, "writer" => writer).set(freshness);
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
    raw: FastMap<(i64, u8), RawBuffer>,
    /// Curated and quarantined rows, duplicates counted.
    outcomes: OutcomeBuffers,
    /// Records buffered.
    records: u64,
    /// Bytes of the records buffered, whichever tables they go to (what
    /// `lake.max_buffer_bytes` bounds).
    bytes: u64,
    /// When the oldest buffered record arrived here.
    oldest: Option<Instant>,
    /// The oldest `received_at` buffered (for the freshness gauge).
    oldest_received: Option<i64>,
    /// Per shard: the next sequence number after what is buffered.
    consumed: BTreeMap<ShardId, u64>,
    /// Per shard: the position last committed.
    committed: BTreeMap<ShardId, u64>,
    /// How big a new raw buffer's tenants are made: the largest of the previous flush.
    raw_hints: RawSizeHints,
    /// Where each role of the writer started, per shard.
    starts: Arc<RoleStarts>,
}

impl Buffers {
    fn new(
        positions: BTreeMap<ShardId, u64>,
        raw_hints: RawSizeHints,
        starts: Arc<RoleStarts>,
    ) -> Buffers {
        Buffers {
            starts,
            raw_hints,
            raw: FastMap::default(),
            outcomes: OutcomeBuffers::default(),
            records: 0,
            bytes: 0,
            oldest: None,
            oldest_received: None,
            committed: positions.clone(),
            consumed: positions,
        }
    }

    /// Counts a record being buffered, for any table: its bytes and when it was received.
    fn count(&mut self, bytes: usize, received_at: i64) {
        self.bytes += bytes as u64;
        self.oldest_received = Some(
            self.oldest_received
                .map_or(received_at, |oldest| oldest.min(received_at)),
        );
    }

    fn raw_row(&mut self, schema: &SchemaRef, row: RawRow<'_>) {
        let hints = &self.raw_hints;
        self.raw
            .entry((day_of(row.received_at), hour_of(row.received_at)))
            .or_insert_with(|| RawBuffer::with_capacity(schema.clone(), hints.clone()))
            .push(row);
    }

    /// Per tenant, the largest size its raw rows reached in one partition: the next flush's
    /// buffers are made that big. (The busiest partition sets it; a buffer for a few late
    /// events reserves that much address space, but only the pages it writes are touched.)
    fn raw_size_hints(&self) -> RawSizeHints {
        let mut hints = RawSizeHints::default();
        for buffer in self.raw.values() {
            hints.merge_max(buffer.size_hints());
        }
        hints
    }

    fn over_size(&self, config: &LakeConfig) -> bool {
        self.bytes >= config.max_buffer_bytes
            || self.outcomes.curated_partitions >= config.max_open_partitions
            || self.outcomes.over(config.flush_bytes)
            || self.raw.values().any(|b| b.bytes() >= config.flush_bytes)
    }
}
