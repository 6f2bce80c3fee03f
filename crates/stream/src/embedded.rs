//! [`EmbeddedLog`]: the default [`Stream`] backend, a directory of segment files per shard.
//!
//! Opening a stream takes an exclusive lock on its directory, checks the shard count against
//! the `STREAM` metadata file, recovers every shard (torn tails are cut, real damage refuses to
//! open) and starts one writer thread per shard (see the `writer` module). Appends are split by
//! shard and handed to the writers; reads go straight to the segment files.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tributary_model::now_micros;

use crate::config::DEFAULT_SHARDS;
use crate::consumer::ConsumerStore;
use crate::format::MAX_FRAME_BODY;
use crate::fsutil::{create_dir_durable, write_atomic};
use crate::segment::ReadBudget;
use crate::shard::Shard;
use crate::stream::{ConsumerLag, ShardLag, ShardStats};
use crate::writer::{Command, ShardWriter};
use crate::{
    Appended, ReadBatch, ReadLimits, Record, Result, SeqNo, ShardId, StartPosition, Stream,
    StreamConfig, StreamError, shard_for_key,
};

/// The embedded, durable, partitioned log. Cheap to clone; all clones share one open stream.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.inner.dir)
            .field("shards", &self.inner.shard_count())
            .field("durability", &self.inner.config.durability)
            .finish()
    }
}

struct Inner {
    dir: PathBuf,
    config: Arc<StreamConfig>,
    shards: Vec<Arc<Shard>>,
    writers: Vec<mpsc::Sender<Command>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    consumers: Arc<ConsumerStore>,
    recovery: RecoveryReport,
    /// Held for the life of a writable stream: `flock` on `LOCK`.
    _lock: Option<File>,
}

impl Inner {
    /// The stream's shard count (from its directory, which may differ from an unset config).
    fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }
}

/// What opening the stream repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Torn tails cut off the newest segment of a shard (never acknowledged data).
    pub truncated: Vec<TruncatedTail>,
    /// Newest segments torn while being created (no header, no frame), renamed to `.torn`.
    pub set_aside: Vec<PathBuf>,
    /// Consumer checkpoints that pointed past their shard's end and were moved back.
    pub clamped_checkpoints: Vec<ClampedCheckpoint>,
}

/// A consumer checkpoint moved back to its shard's end on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClampedCheckpoint {
    /// The consumer.
    pub consumer: String,
    /// The shard.
    pub shard: ShardId,
    /// The checkpoint found.
    pub from: SeqNo,
    /// Where it was moved (the shard's next sequence number).
    pub to: SeqNo,
}

/// One torn tail cut off during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    /// The shard.
    pub shard: ShardId,
    /// The segment that was truncated.
    pub segment: PathBuf,
    /// Its new length: the end of its last complete frame.
    pub offset: u64,
    /// How many bytes were removed.
    pub bytes_removed: u64,
}

/// The result of checking every frame of every segment.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Records in intact frames.
    pub records: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// Every damaged place found, as [`StreamError::Corrupt`] values naming segment and offset.
    pub damage: Vec<StreamError>,
}

/// The `STREAM` metadata file.
#[derive(Debug, Serialize, Deserialize)]
struct StreamMeta {
    format_version: u32,
    shards: u32,
}

impl EmbeddedLog {
    /// Opens the stream in `dir`, creating it if needed, and recovers every shard.
    pub fn open(dir: impl AsRef<Path>, config: StreamConfig) -> Result<EmbeddedLog> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&dir)?;
        let lock = lock_dir(&dir)?;
        let shard_count = check_meta(&dir, config.shards)?;
        let config = Arc::new(config);
        let consumers = Arc::new(ConsumerStore::open(
            &dir.join("consumers"),
            shard_count as usize,
        )?);
        let (shards, mut recovery) =
            open_shards(&dir, shard_count, config.index_interval_bytes, true)?;
        let next_seqs: Vec<SeqNo> = shards.iter().map(|s| s.next_seq()).collect();
        for (consumer, shard, from, to) in consumers.clamp_to(&next_seqs)? {
            tracing::warn!(
                %consumer, shard, from, to,
                "checkpoint was past the shard's end (records lost in an OS crash under \
                 interval/none durability); moved back"
            );
            recovery.clamped_checkpoints.push(ClampedCheckpoint {
                consumer,
                shard,
                from,
                to,
            });
        }
        let mut writers = Vec::with_capacity(shards.len());
        let mut threads = Vec::with_capacity(shards.len());
        for shard in &shards {
            let (sender, receiver) = mpsc::channel();
            let writer = ShardWriter::new(
                Arc::clone(shard),
                Arc::clone(&config),
                Arc::clone(&consumers),
            );
            let thread = std::thread::Builder::new()
                .name(format!("stream-shard-{}", shard.id))
                .spawn(move || writer.run(receiver))
                .map_err(|e| StreamError::io("starting a shard writer thread", e))?;
            writers.push(sender);
            threads.push(thread);
        }
        Ok(EmbeddedLog {
            inner: Arc::new(Inner {
                dir,
                config,
                shards,
                writers,
                threads: Mutex::new(threads),
                consumers,
                recovery,
                _lock: Some(lock),
            }),
        })
    }

    /// Opens an existing stream for reading only, beside a process that may be writing it:
    /// no lock, no writer, nothing on disk changed. The shard count comes from the directory.
    /// What it sees is a snapshot as of the call (a half-written frame at a shard's end is the
    /// end); appends, commits and retention answer [`StreamError::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<EmbeddedLog> {
        let dir = dir.as_ref().to_path_buf();
        let meta = read_meta(&dir)?.ok_or_else(|| {
            StreamError::Config(format!("no stream in {} (no STREAM file)", dir.display()))
        })?;
        let config = Arc::new(StreamConfig {
            shards: Some(meta.shards),
            ..StreamConfig::default()
        });
        let consumers = Arc::new(ConsumerStore::open_existing(
            &dir.join("consumers"),
            meta.shards as usize,
        )?);
        let (shards, recovery) =
            open_shards(&dir, meta.shards, config.index_interval_bytes, false)?;
        Ok(EmbeddedLog {
            inner: Arc::new(Inner {
                dir,
                config,
                shards,
                writers: Vec::new(),
                threads: Mutex::new(Vec::new()),
                consumers,
                recovery,
                _lock: None,
            }),
        })
    }

    /// Whether this handle can append (false for [`EmbeddedLog::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.inner.writers.is_empty()
    }

    /// The stream directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration the stream runs with.
    pub fn config(&self) -> &StreamConfig {
        &self.inner.config
    }

    /// What opening the stream repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// [`Stream::append`] for callers outside an async runtime: blocks the calling thread until
    /// the records are durable. Must not be called from within an async task.
    pub fn append_blocking(&self, records: Vec<Record>) -> Result<Vec<Appended>> {
        let submitted = self.submit(records)?;
        let mut first_seqs = Vec::with_capacity(submitted.waits.len());
        for (shard, wait) in submitted.waits {
            first_seqs.push((
                shard,
                wait.blocking_recv().map_err(|_| StreamError::Closed)??,
            ));
        }
        Ok(submitted.placement.resolve(&first_seqs))
    }

    /// Reads without waiting (ignores `limits.max_wait`).
    pub fn read_blocking(
        &self,
        shard: ShardId,
        from: SeqNo,
        limits: ReadLimits,
    ) -> Result<ReadBatch> {
        let mut budget = ReadBudget::new(limits.max_records, limits.max_bytes);
        self.shard(shard)?.read(from, &mut budget)
    }

    /// Checks the CRC and sequence continuity of every frame in every segment.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for shard in &self.inner.shards {
            for segment in shard.segments() {
                let scan = segment.verify(self.inner.config.index_interval_bytes)?;
                report.segments += 1;
                report.records += scan.records;
                report.bytes += segment.extent().len;
                if let Some(damage) = scan.damage {
                    report.damage.push(StreamError::Corrupt {
                        shard: shard.id,
                        segment: segment.path.clone(),
                        offset: damage.offset,
                        reason: damage.reason,
                    });
                }
            }
        }
        Ok(report)
    }

    /// Applies retention on every shard now; returns the number of segments deleted.
    pub fn enforce_retention(&self) -> Result<u64> {
        if self.is_read_only() {
            return Err(StreamError::ReadOnly("retention"));
        }
        let mut waits = Vec::with_capacity(self.inner.writers.len());
        for writer in &self.inner.writers {
            let (reply, wait) = mpsc::channel();
            writer
                .send(Command::Retention { reply })
                .map_err(|_| StreamError::Closed)?;
            waits.push(wait);
        }
        let mut deleted = 0;
        for wait in waits {
            deleted += wait.recv().map_err(|_| StreamError::Closed)??;
        }
        Ok(deleted)
    }

    /// Syncs every shard and stops the writers. Appends after this fail with
    /// [`StreamError::Closed`]; reads keep working. Idempotent.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    fn writer(&self, shard: ShardId) -> Result<&mpsc::Sender<Command>> {
        if self.is_read_only() {
            return Err(StreamError::ReadOnly("appending"));
        }
        self.inner
            .writers
            .get(shard as usize)
            .ok_or(StreamError::UnknownShard {
                shard,
                shards: self.inner.shard_count(),
            })
    }

    fn shard(&self, shard: ShardId) -> Result<&Arc<Shard>> {
        self.inner
            .shards
            .get(shard as usize)
            .ok_or(StreamError::UnknownShard {
                shard,
                shards: self.inner.shard_count(),
            })
    }

    /// Validates the records, splits them by shard and hands each part to its writer.
    fn submit(&self, records: Vec<Record>) -> Result<Submitted> {
        let config = &self.inner.config;
        for (index, record) in records.iter().enumerate() {
            if record.key.len() > config.max_key_bytes {
                return Err(StreamError::RecordTooLarge {
                    index,
                    field: "key",
                    size: record.key.len(),
                    limit: config.max_key_bytes,
                });
            }
            if record.value.len() > config.max_value_bytes {
                return Err(StreamError::RecordTooLarge {
                    index,
                    field: "value",
                    size: record.value.len(),
                    limit: config.max_value_bytes,
                });
            }
        }
        let mut by_shard: BTreeMap<ShardId, Vec<Record>> = BTreeMap::new();
        let mut placement = Vec::with_capacity(records.len());
        for record in records {
            let shard = shard_for_key(&record.key, self.inner.shard_count());
            let part = by_shard.entry(shard).or_default();
            placement.push((shard, part.len() as u64));
            part.push(record);
        }
        let mut waits = Vec::with_capacity(by_shard.len());
        for (shard, part) in by_shard {
            let body: usize = part.iter().map(|r| 8 + r.key.len() + r.value.len()).sum();
            if body > MAX_FRAME_BODY {
                return Err(StreamError::RecordTooLarge {
                    index: 0,
                    field: "batch",
                    size: body,
                    limit: MAX_FRAME_BODY,
                });
            }
            let (reply, wait) = oneshot::channel();
            self.writer(shard)?
                .send(Command::Append {
                    records: part,
                    reply,
                })
                .map_err(|_| StreamError::Closed)?;
            waits.push((shard, wait));
        }
        Ok(Submitted {
            placement: Placement(placement),
            waits,
        })
    }

    fn resolve_now(&self, shard: ShardId, position: StartPosition) -> Result<SeqNo> {
        let shard = self.shard(shard)?;
        let (first, next) = (shard.first_seq(), shard.next_seq());
        Ok(match position {
            StartPosition::Oldest => first,
            StartPosition::Latest => next,
            StartPosition::AtSeq(seq) => seq.clamp(first, next),
            StartPosition::AfterSeq(seq) => seq.saturating_add(1).clamp(first, next),
            StartPosition::AtTimestamp(ts) => shard.seek_timestamp(ts)?,
        })
    }

    fn lag_of(&self, name: &str) -> Result<ConsumerLag> {
        let state = self.inner.consumers.get(name)?;
        let now = now_micros();
        let mut shards = Vec::with_capacity(self.inner.shards.len());
        for (shard, (&checkpoint, &expired_unread)) in self
            .inner
            .shards
            .iter()
            .zip(state.positions.iter().zip(&state.expired_unread))
        {
            let next_seq = shard.next_seq();
            let from = checkpoint.max(shard.first_seq());
            let lag_records = next_seq.saturating_sub(from);
            let iterator_age_ms = if lag_records == 0 {
                0
            } else {
                shard
                    .timestamp_of(from)?
                    .map_or(0, |ts| (now.saturating_sub(ts).max(0) / 1000) as u64)
            };
            shards.push(ShardLag {
                shard: shard.id,
                checkpoint,
                next_seq,
                lag_records,
                iterator_age_ms,
                expired_unread,
            });
        }
        Ok(ConsumerLag {
            consumer: name.to_string(),
            shards,
        })
    }
}

/// Appends handed to the writers, waiting for their answers.
struct Submitted {
    placement: Placement,
    waits: Vec<(ShardId, oneshot::Receiver<Result<SeqNo>>)>,
}

/// For every input record: its shard and its index within that shard's part of the batch.
struct Placement(Vec<(ShardId, u64)>);

impl Placement {
    fn resolve(&self, first_seqs: &[(ShardId, SeqNo)]) -> Vec<Appended> {
        self.0
            .iter()
            .map(|&(shard, index)| {
                let first = first_seqs
                    .iter()
                    .find(|(s, _)| *s == shard)
                    .map_or(0, |(_, seq)| *seq);
                Appended {
                    shard,
                    seq: first + index,
                }
            })
            .collect()
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        let mut threads = self.threads.lock();
        if threads.is_empty() {
            return Ok(());
        }
        let mut first_error = None;
        for writer in &self.writers {
            let (reply, wait) = mpsc::channel();
            if writer.send(Command::Close { reply }).is_ok()
                && let Ok(Err(e)) = wait.recv()
            {
                first_error.get_or_insert(e);
            }
        }
        for thread in threads.drain(..) {
            let _ = thread.join();
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the stream failed");
        }
    }
}

#[async_trait]
impl Stream for EmbeddedLog {
    fn shard_count(&self) -> u32 {
        self.inner.shard_count()
    }

    fn shard_for_key(&self, key: &[u8]) -> ShardId {
        shard_for_key(key, self.inner.shard_count())
    }

    async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>> {
        let submitted = self.submit(records)?;
        let mut first_seqs = Vec::with_capacity(submitted.waits.len());
        for (shard, wait) in submitted.waits {
            first_seqs.push((shard, wait.await.map_err(|_| StreamError::Closed)??));
        }
        Ok(submitted.placement.resolve(&first_seqs))
    }

    async fn resolve(&self, shard: ShardId, position: StartPosition) -> Result<SeqNo> {
        self.resolve_now(shard, position)
    }

    async fn read(&self, shard: ShardId, from: SeqNo, limits: ReadLimits) -> Result<ReadBatch> {
        let handle = self.shard(shard)?;
        if !limits.max_wait.is_zero() && from >= handle.next_seq() {
            let mut watermark = handle.subscribe();
            let _ = tokio::time::timeout(limits.max_wait, async {
                while *watermark.borrow_and_update() <= from {
                    if watermark.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        self.read_blocking(shard, from, limits)
    }

    async fn register_consumer(&self, name: &str, start: StartPosition) -> Result<()> {
        crate::consumer::validate_name(name)?;
        if self.is_read_only() {
            return Err(StreamError::ReadOnly("registering a consumer"));
        }
        let positions = (0..self.inner.shard_count())
            .map(|shard| self.resolve_now(shard, start))
            .collect::<Result<Vec<_>>>()?;
        self.inner.consumers.register(name, positions)?;
        Ok(())
    }

    async fn consumers(&self) -> Result<Vec<String>> {
        Ok(self.inner.consumers.names())
    }

    async fn checkpoints(&self, name: &str) -> Result<Vec<SeqNo>> {
        Ok(self.inner.consumers.get(name)?.positions)
    }

    async fn commit(&self, name: &str, positions: &[(ShardId, SeqNo)]) -> Result<()> {
        if self.is_read_only() {
            return Err(StreamError::ReadOnly("committing a checkpoint"));
        }
        for &(shard, seq) in positions {
            let next_seq = self.shard(shard)?.next_seq();
            if seq > next_seq {
                return Err(StreamError::CheckpointPastEnd {
                    consumer: name.to_string(),
                    shard,
                    seq,
                    next_seq,
                });
            }
        }
        self.inner.consumers.commit(name, positions)
    }

    async fn shard_stats(&self) -> Result<Vec<ShardStats>> {
        Ok(self
            .inner
            .shards
            .iter()
            .map(|shard| {
                let (bytes, segments, oldest, newest) = shard.summary();
                ShardStats {
                    shard: shard.id,
                    first_seq: shard.first_seq(),
                    next_seq: shard.next_seq(),
                    bytes,
                    segments,
                    oldest_timestamp: oldest,
                    newest_timestamp: newest,
                }
            })
            .collect())
    }

    async fn consumer_lag(&self, name: &str) -> Result<ConsumerLag> {
        self.lag_of(name)
    }

    async fn check_writable(&self) -> Result<()> {
        if self.is_read_only() {
            return Err(StreamError::ReadOnly("appending"));
        }
        if self.inner.threads.lock().is_empty() {
            return Err(StreamError::Closed);
        }
        match self.inner.shards.iter().find_map(|shard| shard.failure()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Takes the directory's exclusive lock, writing our pid into it for the error others see.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StreamError::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StreamError::Config(format!(
                "stream directory {} is in use by another process (pid {}); stop it or use \
                 another --data directory",
                dir.display(),
                holder.trim()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StreamError::io(format!("locking {}", path.display()), e));
        }
    }
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(|e| StreamError::io(format!("writing {}", path.display()), e))?;
    Ok(file)
}

/// Reads the `STREAM` metadata file, if there is one.
fn read_meta(dir: &Path) -> Result<Option<StreamMeta>> {
    let path = dir.join("STREAM");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StreamError::io(format!("reading {}", path.display()), e)),
    };
    let meta: StreamMeta = serde_json::from_str(&text)
        .map_err(|e| StreamError::Config(format!("{} is unreadable: {e}", path.display())))?;
    if meta.format_version != 1 {
        return Err(StreamError::Config(format!(
            "{} has format version {}, this build reads 1",
            path.display(),
            meta.format_version
        )));
    }
    Ok(Some(meta))
}

/// Opens every shard, recovering (writable) or just reading (read-only) its newest segment.
fn open_shards(
    dir: &Path,
    count: u32,
    index_interval_bytes: u64,
    writable: bool,
) -> Result<(Vec<Arc<Shard>>, RecoveryReport)> {
    let mut recovery = RecoveryReport::default();
    let mut shards = Vec::with_capacity(count as usize);
    for id in 0..count {
        shards.push(Arc::new(Shard::open(
            dir,
            id,
            index_interval_bytes,
            writable,
            &mut recovery,
        )?));
    }
    Ok((shards, recovery))
}

/// Creates the `STREAM` metadata file, or checks the configuration against it; answers the
/// stream's shard count (`configured`, else the existing stream's, else [`DEFAULT_SHARDS`]).
fn check_meta(dir: &Path, configured: Option<u32>) -> Result<u32> {
    let path = dir.join("STREAM");
    match (read_meta(dir)?, configured) {
        (Some(meta), Some(shards)) if meta.shards != shards => Err(StreamError::Config(format!(
            "the stream in {} has {} shards but stream.shards is {shards}; the shard count \
                 is fixed when a stream is created (changing it would move keys between shards)",
            dir.display(),
            meta.shards
        ))),
        (Some(meta), _) => Ok(meta.shards),
        (None, configured) => {
            let shards = configured.unwrap_or(DEFAULT_SHARDS);
            let meta = StreamMeta {
                format_version: 1,
                shards,
            };
            let json = serde_json::to_vec(&meta)
                .map_err(|e| StreamError::Config(format!("serializing stream metadata: {e}")))?;
            write_atomic(&path, &json)?;
            Ok(shards)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StreamConfig {
        StreamConfig {
            shards: Some(2),
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..StreamConfig::default()
        }
    }

    fn value(i: usize) -> Vec<u8> {
        format!("event-{i}-{}", "x".repeat(i % 97)).into_bytes()
    }

    #[test]
    fn append_read_reopen_across_many_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut acked = Vec::new();
        {
            let log = EmbeddedLog::open(dir.path(), config()).unwrap();
            for batch in 0..60 {
                let records: Vec<Record> = (0..7)
                    .map(|i| Record::new(format!("key-{}", (batch + i) % 5), value(batch * 7 + i)))
                    .collect();
                let values: Vec<Vec<u8>> = records.iter().map(|r| r.value.to_vec()).collect();
                let appended = log.append_blocking(records).unwrap();
                acked.extend(appended.into_iter().zip(values));
            }
            log.close().unwrap();
            assert!(matches!(
                log.append_blocking(vec![Record::new("k", "v")]),
                Err(StreamError::Closed)
            ));
        }
        let log = EmbeddedLog::open(dir.path(), config()).unwrap();
        assert!(log.recovery_report().truncated.is_empty());
        for shard in 0..2 {
            let batch = log
                .read_blocking(
                    shard,
                    0,
                    ReadLimits {
                        max_records: usize::MAX,
                        max_bytes: usize::MAX,
                        ..ReadLimits::default()
                    },
                )
                .unwrap();
            let expected: Vec<(SeqNo, Vec<u8>)> = acked
                .iter()
                .filter(|(a, _)| a.shard == shard)
                .map(|(a, v)| (a.seq, v.clone()))
                .collect();
            let got: Vec<(SeqNo, Vec<u8>)> = batch
                .records
                .iter()
                .map(|r| (r.seq, r.value.to_vec()))
                .collect();
            assert_eq!(got, expected, "shard {shard}");
            assert!(
                log.inner.shards[shard as usize].segments().len() > 3,
                "expected roll-overs"
            );
            // Reading from the middle lands exactly on the asked record (sparse index + scan).
            let mid = expected.len() as u64 / 2;
            let part = log
                .read_blocking(
                    shard,
                    mid,
                    ReadLimits {
                        max_records: 3,
                        ..ReadLimits::default()
                    },
                )
                .unwrap();
            assert_eq!(part.records.len(), 3);
            assert_eq!(part.records[0].seq, mid);
            assert_eq!(part.next_seq, mid + 3);
        }
        let report = log.verify().unwrap();
        assert!(report.damage.is_empty(), "{:?}", report.damage);
        assert_eq!(report.records, acked.len() as u64);
    }

    #[test]
    fn second_open_is_refused_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let _log = EmbeddedLog::open(dir.path(), config()).unwrap();
        let err = EmbeddedLog::open(dir.path(), config())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("in use"), "{err}");
    }

    #[test]
    fn an_unset_shard_count_keeps_the_streams_own_or_starts_with_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let unset = || StreamConfig {
            shards: None,
            ..config()
        };
        let fresh = EmbeddedLog::open(dir.path().join("new"), unset()).unwrap();
        assert_eq!(fresh.shard_count(), DEFAULT_SHARDS);
        drop(EmbeddedLog::open(dir.path().join("old"), config()).unwrap());
        let reopened = EmbeddedLog::open(dir.path().join("old"), unset()).unwrap();
        assert_eq!(reopened.shard_count(), 2);
        let key = b"acme:s-1".to_vec();
        let appended = reopened
            .append_blocking(vec![Record::new(key.clone(), b"v".to_vec())])
            .unwrap();
        assert_eq!(appended[0].shard, shard_for_key(&key, 2));
    }

    #[test]
    fn shard_count_is_fixed_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path(), config()).unwrap());
        let err = EmbeddedLog::open(
            dir.path(),
            StreamConfig {
                shards: Some(3),
                ..config()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("has 2 shards but stream.shards is 3"), "{err}");
    }

    /// Regression: closing (or dropping the last handle) from inside an async task must not
    /// panic, which tokio's blocking receive does there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_and_drop_inside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), config()).unwrap();
        log.append(vec![Record::new("k", "v")]).await.unwrap();
        log.close().unwrap();
        drop(log);
        let log = EmbeddedLog::open(dir.path(), config()).unwrap();
        assert_eq!(log.enforce_retention().unwrap(), 0);
        drop(log);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_only_open_reads_beside_a_live_writer_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = EmbeddedLog::open(dir.path(), config()).unwrap();
        writer
            .register_consumer("lake", StartPosition::Oldest)
            .await
            .unwrap();
        let appended = writer
            .append(
                (0..50)
                    .map(|i| Record::new(format!("k{i}"), value(i)))
                    .collect(),
            )
            .await
            .unwrap();
        // A half-written frame at the end of shard 0, as a live writer may leave for a moment.
        let active = writer.inner.shards[0].active();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&active.path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[7u8; 19]))
            .unwrap();
        let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
        assert!(reader.is_read_only());
        let total: usize = (0..2)
            .map(|shard| {
                reader
                    .read_blocking(shard, 0, ReadLimits::default())
                    .unwrap()
                    .records
                    .len()
            })
            .sum();
        assert_eq!(total, appended.len());
        assert_eq!(reader.consumers().await.unwrap(), vec!["lake".to_string()]);
        assert!(matches!(
            reader.append(vec![Record::new("k", "v")]).await,
            Err(StreamError::ReadOnly(_))
        ));
        assert!(matches!(
            reader.commit("lake", &[(0, 1)]).await,
            Err(StreamError::ReadOnly(_))
        ));
        assert!(reader.check_writable().await.is_err());
        let len = std::fs::metadata(&active.path).unwrap().len();
        drop(reader);
        assert_eq!(
            std::fs::metadata(&active.path).unwrap().len(),
            len,
            "read-only truncated"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoints_cannot_pass_the_end_and_are_clamped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path(), config()).unwrap();
            log.register_consumer("lake", StartPosition::Oldest)
                .await
                .unwrap();
            log.append(vec![Record::new("k", "v")]).await.unwrap();
            let shard = log.shard_for_key(b"k");
            let err = log.commit("lake", &[(shard, 5)]).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StreamError::CheckpointPastEnd {
                        seq: 5,
                        next_seq: 1,
                        ..
                    }
                ),
                "{err}"
            );
            log.commit("lake", &[(shard, 1)]).await.unwrap();
        }
        // As if an OS crash under `none` durability lost records a consumer had committed past.
        let file = dir.path().join("consumers/lake.json");
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("[0,1]", "[0,9]")
            .replace("[1,0]", "[9,0]");
        crate::fsutil::write_atomic(&file, text.as_bytes()).unwrap();
        let log = EmbeddedLog::open(dir.path(), config()).unwrap();
        let clamped = &log.recovery_report().clamped_checkpoints;
        assert_eq!(clamped.len(), 1, "{clamped:?}");
        assert_eq!((clamped[0].from, clamped[0].to), (9, 1));
        assert!(log.checkpoints("lake").await.unwrap().contains(&1));
    }
}
