//! The per-shard writer thread and its group commit.
//!
//! Every shard has one writer thread that owns the active segment's file offset. Appends arrive
//! on a channel; the writer takes everything that is waiting (up to `max_group_bytes`), encodes
//! one frame per append into one buffer, writes it with one positioned write, syncs once, then
//! publishes the new extent to readers and answers every append of the group. Appends that
//! arrive during the sync wait for the next group — that is the group commit: under load, one
//! `fdatasync` covers many appends, so throughput approaches the disk's sequential bandwidth
//! while each append still returns only once it is durable.
//!
//! ```text
//!  append ─┐                 ┌── encode frames ── pwrite ── fdatasync ── publish ── reply ─┐
//!  append ─┼─▶ channel ─▶ drain                                                             │
//!  append ─┘                 └───────────────────────── next group ◀───────────────────────┘
//! ```
//!
//! A failed write or sync poisons the shard (see [`Shard::fail`]): after a failed `fdatasync`
//! the kernel may have dropped the dirty pages, so nothing later may be acknowledged. A failed
//! creation of the next segment does not: the full one was synced and sealed before, so the
//! appends are refused ([`StreamError::NoSegment`]) and the next one tries again.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tributary_model::now_micros;

use crate::consumer::ConsumerStore;
use crate::format::{FRAME_HEADER_LEN, RECORD_OVERHEAD, SEGMENT_HEADER_LEN, encode_frame};
use crate::index::{IndexEntry, SegmentExtent};
use crate::segment::Segment;
use crate::shard::Shard;
use crate::syncer::{SyncJob, Syncer};
use crate::{Durability, Record, SeqNo, StreamConfig, StreamError};

/// A message to a shard writer.
pub(crate) enum Command {
    /// Append these records (all of this shard) as one frame; answer with the first seq.
    Append {
        records: Vec<Record>,
        reply: oneshot::Sender<Result<SeqNo, StreamError>>,
    },
    /// Apply retention now; answer with the number of segments deleted. (A std channel: the
    /// caller blocks, and may be inside an async runtime where tokio's blocking receive panics.)
    Retention {
        reply: std::sync::mpsc::Sender<Result<u64, StreamError>>,
    },
    /// Sync, then stop.
    Close {
        reply: std::sync::mpsc::Sender<Result<(), StreamError>>,
    },
}

/// Where retention deletes the segments it takes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// On the writer thread, before answering: for an explicit request.
    Wait,
    /// On a thread of its own: between appends, where an unlink of a large file would stall
    /// the shard's appends (and their acknowledgements).
    Background,
}

/// The state the writer thread owns.
pub(crate) struct ShardWriter {
    shard: Arc<Shard>,
    config: Arc<StreamConfig>,
    consumers: Arc<ConsumerStore>,
    active: Arc<Segment>,
    /// Extent of the active segment as written to the file (readers see it once published:
    /// at once, or after the sync under `fsync` durability).
    written: SegmentExtent,
    /// The next sequence number to hand out (ahead of `written` while a group is encoded).
    next_seq: SeqNo,
    /// Bytes of the active segment known to be on disk (advanced by the syncer thread).
    synced_len: Arc<AtomicU64>,
    /// Under `fsync` durability: the syncer thread that overlaps syncs with writing.
    syncer: Option<(Arc<Syncer>, JoinHandle<()>)>,
    /// Frame bytes since the last index entry.
    since_index: u64,
    /// Newest timestamp handed out; timestamps never decrease within a shard.
    last_ts: i64,
    last_sync: Instant,
    last_retention: Instant,
    /// The thread deleting the files of the segments retention took out last, joined at
    /// shutdown. Each such thread first waits for the one before, so that files go oldest
    /// first and a crash leaves only a run of the youngest taken out, next to the retained.
    removal: Option<JoinHandle<()>>,
    /// Encoded frames of the current group, not yet written.
    buf: Vec<u8>,
    /// Index entries for frames in `buf`.
    new_entries: Vec<IndexEntry>,
    /// The active segment is sealed and its successor could not be created yet: the next
    /// append creates it first.
    needs_segment: bool,
}

/// Why an append could not be encoded.
enum AppendFailure {
    /// Writing or syncing failed: the shard must stop acknowledging (see [`Shard::fail`]).
    Persist(StreamError),
    /// The next segment could not be created (disk full, no file handles). Everything before
    /// it is synced and published, nothing is lost, and the next append tries again.
    NoSegment(StreamError),
}

/// One append request: the records and where to send the first sequence number.
type AppendRequest = (Vec<Record>, oneshot::Sender<Result<SeqNo, StreamError>>);

impl ShardWriter {
    /// A writer for `shard`, whose active segment was just recovered.
    pub fn new(
        shard: Arc<Shard>,
        config: Arc<StreamConfig>,
        consumers: Arc<ConsumerStore>,
    ) -> Self {
        let active = shard.active();
        let written = active.extent();
        let last_ts = shard
            .segments()
            .iter()
            .rev()
            .find_map(|s| s.extent().max_ts)
            .unwrap_or(i64::MIN);
        let synced_len = Arc::new(AtomicU64::new(written.len));
        let syncer = (config.durability == Durability::Fsync)
            .then(|| {
                let syncer = Arc::new(Syncer::default());
                let (queue, shard, synced) = (
                    Arc::clone(&syncer),
                    Arc::clone(&shard),
                    Arc::clone(&synced_len),
                );
                std::thread::Builder::new()
                    .name(format!("stream-sync-{}", shard.id))
                    .spawn(move || queue.run(&shard, &synced))
                    .map(|handle| (syncer, handle))
                    .map_err(|e| {
                        tracing::warn!(error = %e, "no syncer thread; syncing on the writer");
                    })
                    .ok()
            })
            .flatten();
        ShardWriter {
            shard,
            config,
            consumers,
            synced_len,
            syncer,
            next_seq: written.next_seq,
            written,
            active,
            // Index the first frame written after open.
            since_index: u64::MAX,
            last_ts,
            last_sync: Instant::now(),
            last_retention: Instant::now(),
            removal: None,
            buf: Vec::with_capacity(1 << 20),
            new_entries: Vec::new(),
            needs_segment: false,
        }
    }

    /// The thread body: serve commands until `Close` or until every sender is gone.
    pub fn run(mut self, commands: Receiver<Command>) {
        loop {
            let command = match commands.recv_timeout(self.idle_timeout()) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.housekeeping();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.shut_down();
                    return;
                }
            };
            let mut deferred = None;
            match command {
                Command::Append { records, reply } => {
                    let mut group_bytes = group_size(&records);
                    let mut group = vec![(records, reply)];
                    while group_bytes < self.config.max_group_bytes {
                        match commands.try_recv() {
                            Ok(Command::Append { records, reply }) => {
                                group_bytes += group_size(&records);
                                group.push((records, reply));
                            }
                            Ok(other) => {
                                deferred = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                }
                other => deferred = Some(other),
            }
            if let Some(command) = deferred
                && self.control(command)
            {
                return;
            }
            self.housekeeping();
        }
    }

    /// Handles a non-append command; returns true when the writer must stop.
    fn control(&mut self, command: Command) -> bool {
        match command {
            Command::Append { records, reply } => {
                self.commit_group(vec![(records, reply)]);
                false
            }
            Command::Retention { reply } => {
                // Asked for explicitly: the caller expects the files gone when answered.
                let _ = reply.send(self.apply_retention(Removal::Wait));
                false
            }
            Command::Close { reply } => {
                let _ = reply.send(self.shut_down());
                true
            }
        }
    }

    fn idle_timeout(&self) -> Duration {
        let retention = self
            .config
            .retention
            .check_interval
            .saturating_sub(self.last_retention.elapsed());
        match self.config.durability {
            Durability::Interval(every) if self.synced() < self.written.len => every
                .saturating_sub(self.last_sync.elapsed())
                .min(retention),
            _ => retention,
        }
        .max(Duration::from_millis(1))
    }

    /// Periodic work between groups: interval syncs and retention.
    fn housekeeping(&mut self) {
        if let Durability::Interval(every) = self.config.durability
            && self.synced() < self.written.len
            && self.last_sync.elapsed() >= every
            && let Err(e) = self.sync_active()
        {
            self.shard.fail(e.to_string());
        }
        if self.last_retention.elapsed() >= self.config.retention.check_interval
            && let Err(e) = self.apply_retention(Removal::Background)
        {
            tracing::warn!(shard = self.shard.id, error = %e, "retention failed; will retry");
        }
    }

    /// Writes one group of appends durably and answers them.
    fn commit_group(&mut self, group: Vec<AppendRequest>) {
        if let Some(error) = self.shard.failure() {
            for (_, reply) in group {
                let _ = reply.send(Err(unavailable(&error)));
            }
            return;
        }
        let timestamp = now_micros().max(self.last_ts);
        self.last_ts = timestamp;
        let mut answers = Vec::with_capacity(group.len());
        let mut outcome = Ok(());
        // Set when the next segment could not be created; the appends from there on are
        // refused without poisoning the shard.
        let mut no_segment = None;
        let mut refused = Vec::new();
        for (records, reply) in group {
            if outcome.is_ok() && no_segment.is_none() {
                match self.encode_append(&records, timestamp) {
                    Ok(first_seq) => {
                        answers.push((first_seq, reply));
                        continue;
                    }
                    Err(AppendFailure::Persist(e)) => outcome = Err(e),
                    Err(AppendFailure::NoSegment(e)) => no_segment = Some(e),
                }
            }
            match no_segment {
                Some(_) => refused.push(reply),
                None => answers.push((0, reply)),
            }
        }
        if let Some(error) = no_segment {
            tracing::warn!(shard = self.shard.id, %error, "cannot start the next segment; the next append tries again");
            // The appends before the failed roll-over were written, synced and published by
            // the seal.
            for (first_seq, reply) in answers {
                let _ = reply.send(Ok(first_seq));
            }
            let reason = error.to_string();
            for reply in refused {
                let _ = reply.send(Err(StreamError::NoSegment {
                    shard: self.shard.id,
                    reason: reason.clone(),
                }));
            }
            return;
        }
        match outcome.and_then(|()| self.flush()) {
            Ok(()) => match &self.syncer {
                Some((syncer, _)) => syncer.submit(SyncJob {
                    segment: Arc::clone(&self.active),
                    extent: self.written,
                    entries: std::mem::take(&mut self.new_entries),
                    replies: answers,
                }),
                None => {
                    if self.config.durability == Durability::Fsync {
                        // No syncer thread could be started: sync here, then answer.
                        if let Err(e) = self.sync_active() {
                            self.shard.fail(e.to_string());
                            let error = self.shard.failure().unwrap_or(e);
                            for (_, reply) in answers {
                                let _ = reply.send(Err(unavailable(&error)));
                            }
                            return;
                        }
                        self.publish_written();
                    }
                    for (first_seq, reply) in answers {
                        let _ = reply.send(Ok(first_seq));
                    }
                }
            },
            Err(e) => {
                self.shard.fail(e.to_string());
                let error = self.shard.failure().unwrap_or(e);
                for (_, reply) in answers {
                    let _ = reply.send(Err(unavailable(&error)));
                }
            }
        }
    }

    /// Encodes one append as a frame into the buffer, rolling the segment over first if the
    /// frame would not fit. Returns the frame's first sequence number.
    fn encode_append(
        &mut self,
        records: &[Record],
        timestamp: i64,
    ) -> Result<SeqNo, AppendFailure> {
        if self.needs_segment {
            self.open_next_segment().map_err(AppendFailure::NoSegment)?;
        }
        let frame_len = (FRAME_HEADER_LEN + group_size(records)) as u64;
        let written = self.written.len + self.buf.len() as u64;
        if written > SEGMENT_HEADER_LEN as u64 && written + frame_len > self.config.segment_bytes {
            self.flush()
                .and_then(|()| self.seal_active())
                .map_err(AppendFailure::Persist)?;
            self.open_next_segment().map_err(AppendFailure::NoSegment)?;
        }
        let offset = self.written.len + self.buf.len() as u64;
        let first_seq = self.next_seq;
        if self.since_index >= self.config.index_interval_bytes {
            self.new_entries.push(IndexEntry {
                seq: first_seq,
                offset,
                timestamp,
            });
            self.since_index = 0;
        }
        self.since_index = self.since_index.saturating_add(frame_len);
        let durable_offset = self.synced();
        encode_frame(
            &mut self.buf,
            first_seq,
            timestamp,
            durable_offset,
            records.iter().map(|r| (&r.key[..], &r.value[..])),
        );
        self.next_seq += records.len() as u64;
        Ok(first_seq)
    }

    /// Writes the buffered frames to the file. Outside `fsync` durability they are published to
    /// readers at once; under it, the syncer publishes them after their sync.
    fn flush(&mut self) -> Result<(), StreamError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.active
            .file
            .write_all_at(&self.buf, self.written.len)
            .map_err(|e| StreamError::io(format!("writing {}", self.active.path.display()), e))?;
        self.written = SegmentExtent {
            len: self.written.len + self.buf.len() as u64,
            next_seq: self.next_seq,
            min_ts: self.written.min_ts.or(Some(self.last_ts)),
            max_ts: Some(self.last_ts),
        };
        self.buf.clear();
        if self.config.durability != Durability::Fsync {
            self.publish_written();
        }
        Ok(())
    }

    /// Makes everything written visible to readers.
    fn publish_written(&mut self) {
        self.active.publish(self.written, &mut self.new_entries);
        self.shard.publish_watermark(self.next_seq);
    }

    /// Where the active segment is known to be on disk.
    fn synced(&self) -> u64 {
        self.synced_len.load(Ordering::Acquire)
    }

    /// Syncs whatever of the active segment is not yet on disk (after the syncer's queue).
    fn sync_active(&mut self) -> Result<(), StreamError> {
        if let Some((syncer, _)) = &self.syncer {
            syncer.wait_idle();
        }
        if self.synced() < self.written.len {
            self.active.file.sync_data().map_err(|e| {
                StreamError::io(format!("syncing {}", self.active.path.display()), e)
            })?;
            self.synced_len
                .fetch_max(self.written.len, Ordering::Release);
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Syncs and stops the syncer thread: the writer is going away.
    fn shut_down(&mut self) -> Result<(), StreamError> {
        let result = self.sync_active();
        if let Some(removal) = self.removal.take() {
            let _ = removal.join();
        }
        if let Some((syncer, handle)) = self.syncer.take() {
            syncer.stop();
            let _ = handle.join();
        }
        result
    }

    /// Seals the active segment; [`Self::open_next_segment`] starts its successor.
    fn seal_active(&mut self) -> Result<(), StreamError> {
        // Every job on this segment is answered before it is sealed; then what the writer
        // wrote last (not yet handed to the syncer) is synced and published by the seal.
        self.sync_active()?;
        self.publish_written();
        self.active.seal()?;
        self.needs_segment = true;
        Ok(())
    }

    /// Starts a new segment at the next sequence number, after [`Self::seal_active`]. A
    /// failure here loses nothing (the sealed segment holds everything written), so it does
    /// not poison the shard: `needs_segment` stays set and the next append tries again, which
    /// is what a disk that was full for a moment or a passing shortage of file handles needs.
    fn open_next_segment(&mut self) -> Result<(), StreamError> {
        let segment = Arc::new(Segment::create(
            &self.shard.dir,
            self.shard.id,
            self.next_seq,
        )?);
        self.needs_segment = false;
        self.shard.push_segment(Arc::clone(&segment));
        self.written = segment.extent();
        // The syncer is idle (see above), so nothing races this reset to the new file.
        self.synced_len.store(self.written.len, Ordering::Release);
        self.since_index = u64::MAX;
        self.active = segment;
        // Size-based retention is due as soon as a segment is sealed.
        if self.config.retention.max_bytes_per_shard.is_some()
            && let Err(e) = self.apply_retention(Removal::Background)
        {
            tracing::warn!(shard = self.shard.id, error = %e, "retention failed; will retry");
        }
        Ok(())
    }

    /// Deletes whole sealed segments past the age or size limit, counting records that
    /// registered consumers had not read yet. Returns how many segments were deleted.
    fn apply_retention(&mut self, removal: Removal) -> Result<u64, StreamError> {
        self.last_retention = Instant::now();
        let detached =
            crate::retention::detach(&self.shard, &self.config.retention, &self.consumers)?;
        let count = detached.len() as u64;
        if detached.is_empty() {
            return Ok(0);
        }
        let previous = self.removal.take();
        if removal == Removal::Wait {
            if let Some(previous) = previous {
                let _ = previous.join();
            }
            crate::retention::remove(&detached)?;
            return Ok(count);
        }
        // Shared with the thread, so that the writer can still delete them if none starts.
        let detached = Arc::new(detached);
        let doomed = Arc::clone(&detached);
        let spawned = std::thread::Builder::new()
            .name(format!("stream-retention-{}", self.shard.id))
            .spawn(move || {
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
                if let Err(e) = crate::retention::remove(&doomed) {
                    // The files stay; the next open finds them and retention takes them again.
                    tracing::warn!(error = %e, "retention could not delete a segment");
                }
            });
        match spawned {
            Ok(handle) => self.removal = Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "no retention thread; deleting on the writer");
                crate::retention::remove(&detached)?;
            }
        }
        Ok(count)
    }
}

/// The error every append of a failed shard gets.
pub(crate) fn unavailable(error: &StreamError) -> StreamError {
    match error {
        StreamError::Unavailable { shard, reason } => StreamError::Unavailable {
            shard: *shard,
            reason: reason.clone(),
        },
        other => StreamError::Unavailable {
            shard: 0,
            reason: other.to_string(),
        },
    }
}

/// Bytes a batch of records takes in a frame body.
fn group_size(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| RECORD_OVERHEAD + r.key.len() + r.value.len())
        .sum()
}
