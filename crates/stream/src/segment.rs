//! One segment file: creating it, recovering it on open, scanning and reading its frames.
//!
//! The byte layout is specified in the `format` module. A segment is shared between its
//! shard's writer thread, which appends and then publishes the new extent, and any number of
//! readers, which only read bytes below the published extent with positioned reads (`pread`),
//! so they never see a half-written frame.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::format::{
    FRAME_HEADER_LEN, FrameHeader, SEGMENT_HEADER_LEN, SegmentHeader, decode_body, frame_crc_ok,
};
use crate::fsutil::{self, sync_dir};
use crate::index::{IndexEntry, SegmentExtent, SparseIndex};
use crate::{SeqNo, ShardId, StoredRecord, StreamError};

/// Bytes read from disk at a time while scanning.
const SCAN_CHUNK: usize = 8 << 20;

/// The file name of the segment starting at `base_seq`.
pub(crate) fn segment_file_name(base_seq: u64) -> String {
    format!("{base_seq:020}.log")
}

/// The index file beside a segment.
pub(crate) fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// A segment file and what is known of its contents.
pub(crate) struct Segment {
    /// The shard it belongs to.
    pub shard: ShardId,
    /// Sequence number of its first record.
    pub base_seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Open for reading and (for the active segment) writing.
    pub file: File,
    live: RwLock<Live>,
}

/// The published state: readers never look past `extent.len`.
struct Live {
    extent: SegmentExtent,
    index: SparseIndex,
}

/// Damage found by a scan: where the first bad frame starts and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub offset: u64,
    pub reason: String,
}

/// The result of scanning a segment from its header to its end.
pub(crate) struct Scan {
    pub index: SparseIndex,
    /// Extent of the valid prefix.
    pub extent: SegmentExtent,
    /// Records in the valid prefix.
    pub records: u64,
    /// The first damage, if the valid prefix is not the whole file.
    pub damage: Option<Damage>,
}

/// What recovering the active segment did.
pub(crate) enum Recovered {
    /// The segment is intact (or was truncated) and ready for appends.
    Ready {
        segment: Segment,
        /// `(offset, bytes_removed)` when a torn tail was cut off.
        truncated: Option<(u64, u64)>,
    },
    /// The file held no usable header and no data: it was set aside at this path.
    SetAside(PathBuf),
    /// Read-only: the file has no usable header yet (a writer may be creating it).
    Unreadable,
}

impl Segment {
    /// Creates a new, empty segment durably (file synced, directory synced).
    pub fn create(dir: &Path, shard: ShardId, base_seq: u64) -> Result<Segment, StreamError> {
        let path = dir.join(segment_file_name(base_seq));
        let context = || format!("creating segment {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StreamError::io(context(), e))?;
        let header = SegmentHeader { shard, base_seq }.encode();
        let finished = file
            .write_all_at(&header, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| StreamError::io(context(), e))
            .and_then(|()| sync_dir(dir));
        if let Err(error) = finished {
            // The file holds no frame yet: take it back, so that the writer's retry can create
            // it afresh (a crash instead leaves it for recovery to set aside as torn).
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        Ok(Segment {
            shard,
            base_seq,
            path,
            file,
            live: RwLock::new(Live {
                extent: SegmentExtent {
                    len: SEGMENT_HEADER_LEN as u64,
                    next_seq: base_seq,
                    min_ts: None,
                    max_ts: None,
                },
                index: SparseIndex::default(),
            }),
        })
    }

    /// Opens a sealed segment: its saved index when intact, else a scan. Damage found by the
    /// scan is not fatal here (reads report it when they reach it); `next_base` is the following
    /// segment's first sequence number, the best bound for a damaged segment's end.
    pub fn open_sealed(
        path: &Path,
        shard: ShardId,
        base_seq: u64,
        next_base: u64,
        index_interval: u64,
        writable: bool,
    ) -> Result<Segment, StreamError> {
        let file = open_file(path, writable)?;
        let len = file_len(&file, path)?;
        if let Some((index, extent)) = SparseIndex::load(&index_path(path), len) {
            return Ok(Segment::with_state(
                shard, base_seq, path, file, extent, index,
            ));
        }
        check_header(&file, path, shard, base_seq)?;
        let scan = scan(&file, path, base_seq, len, index_interval)?;
        let mut extent = scan.extent;
        if let Some(damage) = &scan.damage {
            tracing::warn!(
                segment = %path.display(),
                offset = damage.offset,
                reason = %damage.reason,
                "sealed segment is damaged; reads reaching the damage will fail"
            );
            extent.len = len;
            extent.next_seq = next_base.max(extent.next_seq);
        } else if writable && let Err(e) = scan.index.save(&index_path(path), &extent) {
            tracing::warn!(segment = %path.display(), error = %e, "could not save rebuilt index");
        }
        Ok(Segment::with_state(
            shard, base_seq, path, file, extent, scan.index,
        ))
    }

    /// Recovers the newest segment of a shard: scans every frame, cuts off a torn tail, and
    /// refuses (with [`StreamError::Corrupt`]) damage that a later frame proves was synced.
    /// Read-only (`writable == false`), it changes nothing: the valid prefix is the segment, as
    /// a live writer's half-written frame is not damage.
    pub fn recover_active(
        path: &Path,
        shard: ShardId,
        base_seq: u64,
        index_interval: u64,
        writable: bool,
    ) -> Result<Recovered, StreamError> {
        let file = open_file(path, writable)?;
        let len = file_len(&file, path)?;
        if let Err(reason) = read_header(&file, path, len).and_then(|h| {
            if h.shard != shard || h.base_seq != base_seq {
                Err(format!(
                    "header says shard {} base {}, file is in shard {shard} named base {base_seq}",
                    h.shard, h.base_seq
                ))
            } else {
                Ok(())
            }
        }) {
            // A crash while creating the segment leaves a short or unwritten header and no
            // frame; anything more is damage we must not paper over.
            if proof_of_synced_data(&file, len, 0)?.is_none() {
                if !writable {
                    return Ok(Recovered::Unreadable);
                }
                drop(file);
                // Kept aside rather than deleted, for whoever wants to look at it.
                let aside = path.with_extension("torn");
                tracing::warn!(segment = %path.display(), %reason, "setting aside a segment torn while being created");
                std::fs::rename(path, &aside)
                    .map_err(|e| StreamError::io(format!("renaming {}", path.display()), e))?;
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                return Ok(Recovered::SetAside(aside));
            }
            return Err(StreamError::Corrupt {
                shard,
                segment: path.to_path_buf(),
                offset: 0,
                reason,
            });
        }
        let scan = scan(&file, path, base_seq, len, index_interval)?;
        let mut truncated = None;
        if let Some(damage) = scan.damage {
            if let Some(proof) = proof_of_synced_data(&file, len, damage.offset)? {
                return Err(StreamError::Corrupt {
                    shard,
                    segment: path.to_path_buf(),
                    offset: damage.offset,
                    reason: format!(
                        "{}; the frame at offset {proof} shows these bytes had been synced, so \
                         this is not a torn write",
                        damage.reason
                    ),
                });
            }
            if !writable {
                let segment =
                    Segment::with_state(shard, base_seq, path, file, scan.extent, scan.index);
                return Ok(Recovered::Ready {
                    segment,
                    truncated: None,
                });
            }
            let removed = len - damage.offset;
            tracing::warn!(
                segment = %path.display(),
                offset = damage.offset,
                bytes_removed = removed,
                reason = %damage.reason,
                "truncating torn tail left by a crash"
            );
            file.set_len(damage.offset)
                .and_then(|()| file.sync_all())
                .map_err(|e| StreamError::io(format!("truncating {}", path.display()), e))?;
            truncated = Some((damage.offset, removed));
        }
        // What a crashed process wrote but never synced may sit only in the page cache. Sync it
        // now: frames written from here on claim (through `durable_offset`) that it is on disk.
        if writable {
            file.sync_data()
                .map_err(|e| StreamError::io(format!("syncing {}", path.display()), e))?;
        }
        let segment = Segment::with_state(shard, base_seq, path, file, scan.extent, scan.index);
        Ok(Recovered::Ready { segment, truncated })
    }

    fn with_state(
        shard: ShardId,
        base_seq: u64,
        path: &Path,
        file: File,
        extent: SegmentExtent,
        index: SparseIndex,
    ) -> Segment {
        Segment {
            shard,
            base_seq,
            path: path.to_path_buf(),
            file,
            live: RwLock::new(Live { extent, index }),
        }
    }

    /// What readers may see of this segment.
    pub fn extent(&self) -> SegmentExtent {
        self.live.read().extent
    }

    /// Publishes frames the writer has persisted: readers see them from now on.
    pub fn publish(&self, extent: SegmentExtent, new_entries: &mut Vec<IndexEntry>) {
        let mut live = self.live.write();
        live.extent = extent;
        for entry in new_entries.drain(..) {
            live.index.push(entry);
        }
    }

    /// Seals the segment: syncs it and saves its index, so opening the stream never scans it.
    pub fn seal(&self) -> Result<(), StreamError> {
        self.file
            .sync_data()
            .map_err(|e| StreamError::io(format!("syncing {}", self.path.display()), e))?;
        let live = self.live.read();
        live.index.save(&index_path(&self.path), &live.extent)
    }

    /// Reads records with `seq >= from_seq` into `out` until the budget or the segment ends.
    /// Every frame read is checked against its CRC; damage is an error naming this file.
    pub fn read_into(
        &self,
        from_seq: SeqNo,
        budget: &mut ReadBudget,
        out: &mut Vec<StoredRecord>,
    ) -> Result<(), StreamError> {
        let (extent, start) = {
            let live = self.live.read();
            let start = live
                .index
                .floor_by_seq(from_seq)
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            (live.extent, start)
        };
        let mut frames = FrameCursor::new(self, start, extent.len, budget.chunk_bytes());
        while !budget.exhausted() {
            let Some((header, frame)) = frames.next_frame()? else {
                break;
            };
            if header.next_seq() <= from_seq {
                continue;
            }
            let body = frame.slice(FRAME_HEADER_LEN..);
            let records = decode_body(&body, header.record_count)
                .map_err(|reason| self.corrupt(frames.frame_offset, reason))?;
            for (i, record) in records.into_iter().enumerate() {
                let seq = header.first_seq + i as u64;
                if seq < from_seq {
                    continue;
                }
                if budget.exhausted() {
                    break;
                }
                budget.take(record.value.len());
                out.push(StoredRecord {
                    seq,
                    timestamp: header.timestamp,
                    key: record.key,
                    value: record.value,
                });
            }
        }
        Ok(())
    }

    /// The first sequence number whose frame time is at or after `timestamp`, if any.
    pub fn seek_timestamp(&self, timestamp: i64) -> Result<Option<SeqNo>, StreamError> {
        let (extent, start) = {
            let live = self.live.read();
            let start = live
                .index
                .floor_by_timestamp(timestamp)
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            (live.extent, start)
        };
        let mut frames = FrameCursor::new(self, start, extent.len, 1 << 20);
        while let Some((header, _)) = frames.next_frame()? {
            if header.timestamp >= timestamp {
                return Ok(Some(header.first_seq));
            }
        }
        Ok(None)
    }

    /// Scans every frame of the published extent, for `verify`.
    pub fn verify(&self, index_interval: u64) -> Result<Scan, StreamError> {
        let len = self.extent().len;
        scan(&self.file, &self.path, self.base_seq, len, index_interval)
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> StreamError {
        StreamError::Corrupt {
            shard: self.shard,
            segment: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Limits of one read, counted down as records are taken.
pub(crate) struct ReadBudget {
    records_left: usize,
    bytes_left: usize,
    taken: usize,
    max_bytes: usize,
}

impl ReadBudget {
    /// A budget of at most `max_records` records and about `max_bytes` payload bytes.
    pub fn new(max_records: usize, max_bytes: usize) -> ReadBudget {
        ReadBudget {
            records_left: max_records.max(1),
            bytes_left: max_bytes,
            taken: 0,
            max_bytes,
        }
    }

    /// True once no further record may be taken (at least one always is).
    pub fn exhausted(&self) -> bool {
        self.records_left == 0 || (self.taken > 0 && self.bytes_left == 0)
    }

    fn take(&mut self, bytes: usize) {
        self.taken += 1;
        self.records_left -= 1;
        self.bytes_left = self.bytes_left.saturating_sub(bytes);
    }

    fn chunk_bytes(&self) -> usize {
        self.max_bytes.clamp(64 << 10, 8 << 20)
    }
}

/// Walks the frames of a segment between two offsets, reading the file in chunks and checking
/// every frame's CRC and sequence continuity.
struct FrameCursor<'a> {
    segment: &'a Segment,
    /// Offset of the next frame.
    offset: u64,
    /// Offset of the frame last returned.
    frame_offset: u64,
    end: u64,
    chunk: Bytes,
    /// File offset of `chunk[0]`.
    chunk_start: u64,
    chunk_size: usize,
    expected_seq: Option<u64>,
}

impl<'a> FrameCursor<'a> {
    fn new(segment: &'a Segment, start: u64, end: u64, chunk_size: usize) -> FrameCursor<'a> {
        FrameCursor {
            segment,
            offset: start,
            frame_offset: start,
            end,
            chunk: Bytes::new(),
            chunk_start: start,
            chunk_size,
            expected_seq: None,
        }
    }

    /// Makes `[offset, offset + len)` available in the chunk.
    fn ensure(&mut self, offset: u64, len: usize) -> Result<(), StreamError> {
        let have_end = self.chunk_start + self.chunk.len() as u64;
        if offset >= self.chunk_start && offset + len as u64 <= have_end {
            return Ok(());
        }
        let want = (self.end - offset).min(len.max(self.chunk_size) as u64) as usize;
        let buf = fsutil::read_exact_at_uninit(&self.segment.file, offset, want)
            .map_err(|e| StreamError::io(format!("reading {}", self.segment.path.display()), e))?;
        self.chunk = Bytes::from(buf);
        self.chunk_start = offset;
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Option<(FrameHeader, Bytes)>, StreamError> {
        if self.offset >= self.end {
            return Ok(None);
        }
        let at = self.offset;
        if self.end - at < FRAME_HEADER_LEN as u64 {
            return Err(self.segment.corrupt(at, "incomplete frame header"));
        }
        self.ensure(at, FRAME_HEADER_LEN)?;
        let rel = (at - self.chunk_start) as usize;
        let header = FrameHeader::parse(&self.chunk[rel..rel + FRAME_HEADER_LEN]);
        if !header.is_plausible() || at + header.frame_len() > self.end {
            return Err(self.segment.corrupt(at, "implausible frame header"));
        }
        let frame_len = header.frame_len() as usize;
        self.ensure(at, frame_len)?;
        let rel = (at - self.chunk_start) as usize;
        let frame = self.chunk.slice(rel..rel + frame_len);
        if !frame_crc_ok(&frame) {
            return Err(self.segment.corrupt(at, "frame checksum mismatch"));
        }
        if let Some(expected) = self.expected_seq
            && header.first_seq != expected
        {
            return Err(self.segment.corrupt(
                at,
                format!(
                    "sequence gap: expected {expected}, frame starts at {}",
                    header.first_seq
                ),
            ));
        }
        self.expected_seq = Some(header.next_seq());
        self.frame_offset = at;
        self.offset = at + header.frame_len();
        Ok(Some((header, frame)))
    }
}

fn open_file(path: &Path, writable: bool) -> Result<File, StreamError> {
    OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| StreamError::io(format!("opening {}", path.display()), e))
}

fn file_len(file: &File, path: &Path) -> Result<u64, StreamError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| StreamError::io(format!("reading metadata of {}", path.display()), e))
}

fn read_header(file: &File, path: &Path, len: u64) -> Result<SegmentHeader, String> {
    if len < SEGMENT_HEADER_LEN as u64 {
        return Err(format!(
            "file is {len} bytes, shorter than a segment header"
        ));
    }
    let mut bytes = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| format!("reading header of {}: {e}", path.display()))?;
    SegmentHeader::decode(&bytes)
}

fn check_header(
    file: &File,
    path: &Path,
    shard: ShardId,
    base_seq: u64,
) -> Result<(), StreamError> {
    let len = file_len(file, path)?;
    let header = read_header(file, path, len).map_err(|reason| StreamError::Corrupt {
        shard,
        segment: path.to_path_buf(),
        offset: 0,
        reason,
    })?;
    if header.shard != shard || header.base_seq != base_seq {
        return Err(StreamError::Corrupt {
            shard,
            segment: path.to_path_buf(),
            offset: 0,
            reason: format!(
                "header says shard {} base {}, expected shard {shard} base {base_seq}",
                header.shard, header.base_seq
            ),
        });
    }
    Ok(())
}

/// Scans frames from the header to `len`, building the index, and stops at the first damage.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    base_seq: u64,
    len: u64,
    index_interval: u64,
) -> Result<Scan, StreamError> {
    let mut index = SparseIndex::default();
    let mut extent = SegmentExtent {
        len: SEGMENT_HEADER_LEN as u64,
        next_seq: base_seq,
        min_ts: None,
        max_ts: None,
    };
    let mut records = 0u64;
    let mut since_index = u64::MAX;
    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut chunk: Vec<u8> = Vec::new();
    let mut chunk_start = offset;
    let damage = loop {
        if offset >= len {
            break None;
        }
        if len - offset < FRAME_HEADER_LEN as u64 {
            break Some(Damage {
                offset,
                reason: "incomplete frame header at the end of the file".into(),
            });
        }
        let need_header = offset + FRAME_HEADER_LEN as u64;
        if offset < chunk_start || need_header > chunk_start + chunk.len() as u64 {
            chunk = read_chunk(file, path, offset, len, FRAME_HEADER_LEN)?;
            chunk_start = offset;
        }
        let rel = (offset - chunk_start) as usize;
        let header = FrameHeader::parse(&chunk[rel..rel + FRAME_HEADER_LEN]);
        if !header.is_plausible() {
            break Some(Damage {
                offset,
                reason: "implausible frame header".into(),
            });
        }
        let frame_end = offset + header.frame_len();
        if frame_end > len {
            break Some(Damage {
                offset,
                reason: format!(
                    "frame of {} bytes runs past the end of the file ({len} bytes)",
                    header.frame_len()
                ),
            });
        }
        if frame_end > chunk_start + chunk.len() as u64 {
            chunk = read_chunk(file, path, offset, len, header.frame_len() as usize)?;
            chunk_start = offset;
        }
        let rel = (offset - chunk_start) as usize;
        if !frame_crc_ok(&chunk[rel..rel + header.frame_len() as usize]) {
            break Some(Damage {
                offset,
                reason: "frame checksum mismatch".into(),
            });
        }
        if header.first_seq != extent.next_seq {
            break Some(Damage {
                offset,
                reason: format!(
                    "sequence gap: expected {}, frame starts at {}",
                    extent.next_seq, header.first_seq
                ),
            });
        }
        if since_index >= index_interval {
            index.push(IndexEntry {
                seq: header.first_seq,
                offset,
                timestamp: header.timestamp,
            });
            since_index = 0;
        }
        since_index = since_index.saturating_add(header.frame_len());
        records += u64::from(header.record_count);
        extent.len = frame_end;
        extent.next_seq = header.next_seq();
        extent.min_ts.get_or_insert(header.timestamp);
        extent.max_ts = Some(header.timestamp);
        offset = frame_end;
    };
    Ok(Scan {
        index,
        extent,
        records,
        damage,
    })
}

fn read_chunk(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    at_least: usize,
) -> Result<Vec<u8>, StreamError> {
    let want = (len - offset).min(SCAN_CHUNK.max(at_least) as u64) as usize;
    let mut buf = vec![0u8; want];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| StreamError::io(format!("reading {}", path.display()), e))?;
    Ok(buf)
}

/// Looks past a damaged offset for a valid frame whose `durable_offset` lies beyond it: proof
/// that the damaged bytes had been synced before that frame was written, so the damage is not a
/// torn write. Returns that frame's offset.
fn proof_of_synced_data(
    file: &File,
    len: u64,
    damaged_at: u64,
) -> Result<Option<u64>, StreamError> {
    if len <= damaged_at + 1 {
        return Ok(None);
    }
    let mut tail = vec![0u8; (len - damaged_at) as usize];
    file.read_exact_at(&mut tail, damaged_at)
        .map_err(|e| StreamError::io("reading a damaged segment tail", e))?;
    for rel in 1..tail.len().saturating_sub(FRAME_HEADER_LEN - 1) {
        let header = FrameHeader::parse(&tail[rel..rel + FRAME_HEADER_LEN]);
        let at = damaged_at + rel as u64;
        if !header.is_plausible()
            || header.durable_offset <= damaged_at
            || header.durable_offset > at
            || rel as u64 + header.frame_len() > tail.len() as u64
        {
            continue;
        }
        if frame_crc_ok(&tail[rel..rel + header.frame_len() as usize]) {
            return Ok(Some(at));
        }
    }
    Ok(None)
}
