//! The sparse index of a segment: one entry per `index_interval_bytes` of frames, mapping a
//! sequence number and a timestamp to the byte offset of the frame that starts there.
//!
//! Lookups return the offset to start scanning from; the scan does the rest. The index of the
//! active segment lives in memory (rebuilt by the recovery scan on open); a sealed segment's is
//! written to a `.idx` file (layout in the `format` module) so that opening a stream does not
//! read every segment.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::StreamError;
use crate::format::{INDEX_MAGIC, read_u32, read_u64};
use crate::fsutil::write_atomic;

/// One index entry: the frame starting at `offset` has first sequence `seq`, time `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub seq: u64,
    pub offset: u64,
    pub timestamp: i64,
}

/// Summary of a segment's contents, stored in the index footer and kept live in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SegmentExtent {
    /// Bytes of the segment covered (header + complete frames).
    pub len: u64,
    /// One past the last record's sequence number.
    pub next_seq: u64,
    /// Oldest and newest frame timestamps; `None` while the segment has no frame.
    pub min_ts: Option<i64>,
    /// Newest frame timestamp.
    pub max_ts: Option<i64>,
}

/// The entries of one segment, in offset order (and so in seq and timestamp order).
#[derive(Debug, Clone, Default)]
pub(crate) struct SparseIndex {
    entries: Vec<IndexEntry>,
}

impl SparseIndex {
    /// Adds an entry; callers add in offset order.
    pub fn push(&mut self, entry: IndexEntry) {
        self.entries.push(entry);
    }

    /// Offset of the last indexed frame starting at or before `seq`, or `None` to start at the
    /// first frame.
    pub fn floor_by_seq(&self, seq: u64) -> Option<u64> {
        let after = self.entries.partition_point(|e| e.seq <= seq);
        after.checked_sub(1).map(|i| self.entries[i].offset)
    }

    /// Offset of the last indexed frame strictly older than `timestamp`: the first frame at or
    /// after `timestamp` is at or after it.
    pub fn floor_by_timestamp(&self, timestamp: i64) -> Option<u64> {
        let after = self.entries.partition_point(|e| e.timestamp < timestamp);
        after.checked_sub(1).map(|i| self.entries[i].offset)
    }

    /// Writes the index of a sealed segment durably.
    pub fn save(&self, path: &Path, extent: &SegmentExtent) -> Result<(), StreamError> {
        let mut out = Vec::with_capacity(52 + self.entries.len() * 24);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&extent.len.to_le_bytes());
        out.extend_from_slice(&extent.next_seq.to_le_bytes());
        out.extend_from_slice(&extent.min_ts.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&extent.max_ts.unwrap_or(i64::MIN).to_le_bytes());
        for entry in &self.entries {
            out.extend_from_slice(&entry.seq.to_le_bytes());
            out.extend_from_slice(&entry.offset.to_le_bytes());
            out.extend_from_slice(&entry.timestamp.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        write_atomic(path, &out)
    }

    /// Loads a saved index if it is intact and describes a segment of `segment_len` bytes;
    /// `None` means "rebuild it by scanning".
    pub fn load(path: &Path, segment_len: u64) -> Option<(SparseIndex, SegmentExtent)> {
        let mut bytes = Vec::new();
        File::open(path).ok()?.read_to_end(&mut bytes).ok()?;
        if bytes.len() < 52 || &bytes[0..8] != INDEX_MAGIC || read_u32(&bytes, 8) != 1 {
            return None;
        }
        let count = read_u32(&bytes, 12) as usize;
        let body_len = 48usize.checked_add(count.checked_mul(24)?)?;
        if bytes.len() != body_len + 4
            || crc32c::crc32c(&bytes[..body_len]) != read_u32(&bytes, body_len)
        {
            return None;
        }
        let ts = |at| match read_u64(&bytes, at) as i64 {
            i64::MIN => None,
            value => Some(value),
        };
        let extent = SegmentExtent {
            len: read_u64(&bytes, 16),
            next_seq: read_u64(&bytes, 24),
            min_ts: ts(32),
            max_ts: ts(40),
        };
        if extent.len != segment_len {
            return None;
        }
        let entries = (0..count)
            .map(|i| {
                let at = 48 + i * 24;
                IndexEntry {
                    seq: read_u64(&bytes, at),
                    offset: read_u64(&bytes, at + 8),
                    timestamp: read_u64(&bytes, at + 16) as i64,
                }
            })
            .collect();
        Some((SparseIndex { entries }, extent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SparseIndex {
        let mut index = SparseIndex::default();
        for (i, (seq, ts)) in [(0, 10), (5, 20), (9, 20), (20, 30)]
            .into_iter()
            .enumerate()
        {
            index.push(IndexEntry {
                seq,
                offset: 32 + 100 * i as u64,
                timestamp: ts,
            });
        }
        index
    }

    #[test]
    fn floor_by_seq_finds_the_frame_to_scan_from() {
        let index = index();
        assert_eq!(index.floor_by_seq(0), Some(32));
        assert_eq!(index.floor_by_seq(4), Some(32));
        assert_eq!(index.floor_by_seq(5), Some(132));
        assert_eq!(index.floor_by_seq(19), Some(232));
        assert_eq!(index.floor_by_seq(1000), Some(332));
        assert_eq!(SparseIndex::default().floor_by_seq(3), None);
    }

    #[test]
    fn floor_by_timestamp_stops_before_equal_times() {
        let index = index();
        assert_eq!(index.floor_by_timestamp(5), None);
        assert_eq!(index.floor_by_timestamp(10), None);
        assert_eq!(index.floor_by_timestamp(20), Some(32));
        assert_eq!(index.floor_by_timestamp(25), Some(232));
    }

    #[test]
    fn save_load_round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.idx");
        let extent = SegmentExtent {
            len: 4096,
            next_seq: 25,
            min_ts: Some(10),
            max_ts: Some(30),
        };
        index().save(&path, &extent).unwrap();
        let (loaded, loaded_extent) = SparseIndex::load(&path, 4096).unwrap();
        assert_eq!(loaded.entries, index().entries);
        assert_eq!(loaded_extent, extent);
        assert!(
            SparseIndex::load(&path, 4097).is_none(),
            "length mismatch must force a rebuild"
        );

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[60] ^= 0xff;
        std::fs::remove_file(&path).unwrap();
        write_atomic(&path, &bytes).unwrap();
        assert!(
            SparseIndex::load(&path, 4096).is_none(),
            "damaged index must force a rebuild"
        );
    }
}
