//! Helpers shared by the stream crate's integration tests: configs, read-everything loops, and
//! an independent reader/writer of the on-disk format (written from the spec in `format.rs`, not
//! from the crate's code, so that the tests check the implementation against the document).
#![allow(dead_code)]

pub mod stream_suite;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tributary_stream::{
    Durability, EmbeddedLog, ReadLimits, ShardId, StoredRecord, StreamConfig, StreamError,
};

/// Segment header length (format v1).
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Frame header length (format v1).
pub const FRAME_HEADER_LEN: u64 = 40;

/// A config with `shards` shards, fsync durability and small segments.
pub fn config(shards: u32, segment_bytes: u64) -> StreamConfig {
    StreamConfig {
        shards: Some(shards),
        segment_bytes,
        durability: Durability::Fsync,
        ..StreamConfig::default()
    }
}

/// Opens a log, panicking with the error's text.
pub fn open(dir: &Path, config: &StreamConfig) -> EmbeddedLog {
    match EmbeddedLog::open(dir, config.clone()) {
        Ok(log) => log,
        Err(err) => panic!("open {}: {err}", dir.display()),
    }
}

/// Closes and drops a log.
pub fn close(log: EmbeddedLog) {
    log.close().unwrap();
    drop(log);
}

/// Reads `shard` from `from` to its end with the given limits, checking that batches are
/// contiguous, respect `max_records`, and that nothing expired on the way.
pub fn read_from(
    log: &EmbeddedLog,
    shard: ShardId,
    from: u64,
    limits: ReadLimits,
) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut at = from;
    for _ in 0..1_000_000 {
        let batch = log
            .read_blocking(shard, at, limits)
            .unwrap_or_else(|err| panic!("read shard {shard} from {at}: {err}"));
        assert_eq!(
            batch.expired_skipped, 0,
            "shard {shard} from {at}: unexpected expiry"
        );
        assert!(
            batch.records.len() <= limits.max_records,
            "shard {shard}: {} records over max_records {}",
            batch.records.len(),
            limits.max_records
        );
        let Some(last) = batch.records.last() else {
            assert_eq!(
                batch.next_seq, at,
                "empty read of shard {shard} moved next_seq"
            );
            return out;
        };
        assert_eq!(
            batch.records[0].seq, at,
            "shard {shard}: batch does not start at {at}"
        );
        for pair in batch.records.windows(2) {
            assert_eq!(
                pair[1].seq,
                pair[0].seq + 1,
                "shard {shard}: gap inside a batch"
            );
        }
        assert_eq!(
            batch.next_seq,
            last.seq + 1,
            "shard {shard}: next_seq after a batch"
        );
        at = batch.next_seq;
        out.extend(batch.records);
    }
    panic!("shard {shard}: read did not reach the end");
}

/// Reads all of `shard` from seq 0.
pub fn read_all(log: &EmbeddedLog, shard: ShardId) -> Vec<StoredRecord> {
    read_from(log, shard, 0, ReadLimits::default())
}

/// The directory of one shard.
pub fn shard_dir(dir: &Path, shard: ShardId) -> PathBuf {
    dir.join("shards").join(format!("{shard:05}"))
}

/// The segment files (`*.log`) of one shard, oldest first.
pub fn segments(dir: &Path, shard: ShardId) -> Vec<PathBuf> {
    files_with_extension(dir, shard, "log")
}

/// The sparse index files (`*.idx`) of one shard, oldest first.
pub fn index_files(dir: &Path, shard: ShardId) -> Vec<PathBuf> {
    files_with_extension(dir, shard, "idx")
}

fn files_with_extension(dir: &Path, shard: ShardId, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(shard_dir(dir, shard)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// The file name a segment starting at `base_seq` has.
pub fn segment_name(base_seq: u64) -> String {
    format!("{base_seq:020}.log")
}

/// `shards/<shard:05>/<name>`, the part of a segment path that an error must end with.
pub fn segment_suffix(segment: &Path) -> PathBuf {
    let name = segment.file_name().unwrap();
    let shard = segment.parent().unwrap().file_name().unwrap();
    Path::new("shards").join(shard).join(name)
}

/// Asserts that `reported` names the segment file `expected`.
pub fn assert_same_segment(reported: &Path, expected: &Path) {
    assert!(
        reported.ends_with(segment_suffix(expected)),
        "error names segment {} but the damage is in {}",
        reported.display(),
        expected.display()
    );
}

/// Unpacks a `StreamError::Corrupt`, panicking on anything else.
pub fn expect_corrupt(err: StreamError) -> (ShardId, PathBuf, u64, String) {
    match err {
        StreamError::Corrupt {
            shard,
            segment,
            offset,
            reason,
        } => (shard, segment, offset, reason),
        other => panic!("expected StreamError::Corrupt, got {other:?}: {other}"),
    }
}

/// A parsed segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u16,
    pub shard: u32,
    pub base_seq: u64,
    pub crc_ok: bool,
}

/// One frame as found on disk by the independent parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub offset: u64,
    pub len: u64,
    pub first_seq: u64,
    pub record_count: u32,
    pub flags: u32,
    pub timestamp: i64,
    pub durable_offset: u64,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Frame {
    /// One past the frame's last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
    /// One past the frame's last sequence number.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + u64::from(self.record_count)
    }
}

/// A segment parsed by the spec: header, the valid frames from the start, and where parsing
/// stopped (equal to the file length when every byte belongs to a valid frame).
#[derive(Debug, Clone)]
pub struct ParsedSegment {
    pub header: SegmentHeader,
    pub frames: Vec<Frame>,
    pub valid_len: u64,
    pub file_len: u64,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Parses a segment file following the format document.
pub fn parse_segment(path: &Path) -> ParsedSegment {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() as u64 >= SEGMENT_HEADER_LEN,
        "{} is shorter than a segment header",
        path.display()
    );
    assert_eq!(&bytes[0..8], b"TRIBSEG\0", "{}: magic", path.display());
    let header = SegmentHeader {
        version: u16::from_le_bytes([bytes[8], bytes[9]]),
        shard: u32_at(&bytes, 12),
        base_seq: u64_at(&bytes, 16),
        crc_ok: crc32c::crc32c(&bytes[0..28]) == u32_at(&bytes, 28),
    };
    let mut frames = Vec::new();
    let mut at = SEGMENT_HEADER_LEN as usize;
    while at + FRAME_HEADER_LEN as usize <= bytes.len() {
        let body_len = u32_at(&bytes, at) as usize;
        let end = at + FRAME_HEADER_LEN as usize + body_len;
        if end > bytes.len() {
            break;
        }
        if crc32c::crc32c(&bytes[at + 8..end]) != u32_at(&bytes, at + 4) {
            break;
        }
        let record_count = u32_at(&bytes, at + 16);
        let mut records = Vec::new();
        let mut p = at + FRAME_HEADER_LEN as usize;
        for _ in 0..record_count {
            let key_len = u32_at(&bytes, p) as usize;
            let value_len = u32_at(&bytes, p + 4) as usize;
            p += 8;
            records.push((
                bytes[p..p + key_len].to_vec(),
                bytes[p + key_len..p + key_len + value_len].to_vec(),
            ));
            p += key_len + value_len;
        }
        assert_eq!(
            p,
            end,
            "{}: frame at {at} has stray body bytes",
            path.display()
        );
        frames.push(Frame {
            offset: at as u64,
            len: (end - at) as u64,
            first_seq: u64_at(&bytes, at + 8),
            record_count,
            flags: u32_at(&bytes, at + 20),
            timestamp: u64_at(&bytes, at + 24) as i64,
            durable_offset: u64_at(&bytes, at + 32),
            records,
        });
        at = end;
    }
    ParsedSegment {
        header,
        frames,
        valid_len: at as u64,
        file_len: bytes.len() as u64,
    }
}

/// Encodes one frame by the format document (independently of the crate's encoder).
pub fn encode_frame(
    first_seq: u64,
    timestamp: i64,
    durable_offset: u64,
    records: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    let body_len: usize = records.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(40 + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&durable_offset.to_le_bytes());
    for (key, value) in records {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// XORs `mask` into the byte at `offset` of `path` (and syncs).
pub fn flip_byte(path: &Path, offset: u64, mask: u8) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut byte = [0u8];
    file.read_exact(&mut byte).unwrap();
    byte[0] ^= mask;
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&byte).unwrap();
    file.sync_all().unwrap();
}

/// Overwrites bytes at `offset` of `path`.
pub fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Appends `bytes` at the end of `path`.
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Cuts `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
    file.sync_all().unwrap();
}

/// Length of a file.
pub fn file_len(path: &Path) -> u64 {
    File::open(path).unwrap().metadata().unwrap().len()
}

/// Deterministic pseudo-random bytes (splitmix64), so a value can be regenerated from its id.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    tributary_model::now_micros()
}

/// Creates (or replaces) `path` with `bytes`, synced.
pub fn write_file(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Reads all of `shard` from 0, returning the first error instead of panicking.
pub fn read_all_or_error(
    log: &EmbeddedLog,
    shard: ShardId,
) -> Result<Vec<StoredRecord>, StreamError> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let batch = log.read_blocking(shard, at, ReadLimits::default())?;
        if batch.records.is_empty() {
            return Ok(out);
        }
        at = batch.next_seq;
        out.extend(batch.records);
    }
}
