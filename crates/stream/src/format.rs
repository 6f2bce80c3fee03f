//! The on-disk format of the embedded log. Version 1.
//!
//! ```text
//! <stream dir>/
//!   STREAM            stream metadata (JSON: format version, shard count), written once
//!   LOCK              held with flock(2) by the one process that has the log open
//!   shards/<shard:05>/<base_seq:020>.log   segment files, named by their first sequence number
//!   shards/<shard:05>/<base_seq:020>.idx   sparse index of a sealed segment (rebuildable)
//!   consumers/<name>.json                  a consumer's checkpoints (see `consumer`)
//! ```
//!
//! ## Segment file
//!
//! A 32-byte header, then frames back to back. All integers little-endian.
//!
//! ```text
//! segment header (32 bytes)
//!   0  [u8; 8]  magic  b"TRIBSEG\0"
//!   8  u16      format version (1)
//!  10  u16      reserved (0)
//!  12  u32      shard
//!  16  u64      base_seq: sequence number of the first record in this segment
//!  24  u32      reserved (0)
//!  28  u32      CRC32C of bytes 0..28
//!
//! frame (one per append to this shard; 40-byte header + body)
//!   0  u32      body_len: bytes of body after this header
//!   4  u32      CRC32C of bytes 8..40+body_len (the rest of the header and the body)
//!   8  u64      first_seq: sequence number of the frame's first record
//!  16  u32      record_count (≥ 1)
//!  20  u32      flags (0; reserved for compression)
//!  24  i64      timestamp: µs since the epoch when the stream accepted the frame
//!  32  u64      durable_offset: segment offset known to be on disk when the frame was written
//!  40  body     record_count × { u32 key_len, u32 value_len, key bytes, value bytes }
//! ```
//!
//! ## Invariants
//! - Frames are contiguous: frame *k + 1* starts where frame *k* ends, and its `first_seq` is
//!   frame *k*'s `first_seq + record_count`. A frame never spans two segments.
//! - Timestamps never decrease within a shard (the writer uses `max(previous, now)`).
//! - Every segment but the newest of its shard is *sealed*: synced, never written again.
//! - A frame is acknowledged only after everything up to its end was synced (in `fsync`
//!   durability), so after a crash only bytes past the last sync can be damaged. A frame whose
//!   checksum fails is a **torn tail** (truncated on open) unless a later valid frame's
//!   `durable_offset` lies beyond it — proof that the bad bytes had been synced before, so the
//!   damage is **corruption** and is reported with segment and offset, never skipped.
//!
//! ## Sparse index file (`.idx`, written when a segment is sealed)
//!
//! ```text
//!   0  [u8; 8]  magic b"TRIBIDX\0"
//!   8  u32      format version (1)
//!  12  u32      entry count n
//!  16  u64      segment length in bytes this index describes
//!  24  u64      next_seq: one past the segment's last record
//!  32  i64      min timestamp      40  i64  max timestamp
//!  48  n × { u64 seq, u64 offset, i64 timestamp }   (one per index interval of frame bytes)
//!  48+24n  u32  CRC32C of everything before it
//! ```
//! An index whose checksum or segment length does not match is ignored and rebuilt by a scan.

use bytes::{BufMut, Bytes};

/// Length of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 32;
/// Length of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 40;
/// Bytes of per-record overhead in a frame body.
pub(crate) const RECORD_OVERHEAD: usize = 8;
/// Magic bytes opening a segment.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"TRIBSEG\0";
/// Magic bytes opening an index file.
pub(crate) const INDEX_MAGIC: &[u8; 8] = b"TRIBIDX\0";
/// The format version this code writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Upper bound on a frame body, so that a damaged length field cannot make us allocate wildly.
pub(crate) const MAX_FRAME_BODY: usize = 1 << 30;

/// The fixed part of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub shard: u32,
    pub base_seq: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.shard.to_le_bytes());
        out[16..24].copy_from_slice(&self.base_seq.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a header; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(format!(
                "header is {} bytes, expected {SEGMENT_HEADER_LEN}",
                bytes.len()
            ));
        }
        if &bytes[0..8] != SEGMENT_MAGIC {
            return Err("not a Tributary segment (bad magic)".into());
        }
        let stored_crc = read_u32(bytes, 28);
        if crc32c::crc32c(&bytes[0..28]) != stored_crc {
            return Err("segment header checksum mismatch".into());
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "segment format version {version}, this build reads {FORMAT_VERSION}"
            ));
        }
        Ok(SegmentHeader {
            shard: read_u32(bytes, 12),
            base_seq: read_u64(bytes, 16),
        })
    }
}

/// The parsed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub body_len: u32,
    pub crc: u32,
    pub first_seq: u64,
    pub record_count: u32,
    pub flags: u32,
    pub timestamp: i64,
    pub durable_offset: u64,
}

impl FrameHeader {
    /// Total length of the frame on disk.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// One past the frame's last sequence number.
    pub fn next_seq(&self) -> u64 {
        self.first_seq.saturating_add(u64::from(self.record_count))
    }

    /// Parses the 40 header bytes without checking the CRC (which needs the body).
    pub fn parse(bytes: &[u8]) -> FrameHeader {
        FrameHeader {
            body_len: read_u32(bytes, 0),
            crc: read_u32(bytes, 4),
            first_seq: read_u64(bytes, 8),
            record_count: read_u32(bytes, 16),
            flags: read_u32(bytes, 20),
            timestamp: read_u64(bytes, 24) as i64,
            durable_offset: read_u64(bytes, 32),
        }
    }

    /// Cheap plausibility test used before reading a body: a zeroed or random header fails it.
    pub fn is_plausible(&self) -> bool {
        self.record_count > 0
            && self.flags == 0
            && (self.body_len as usize) <= MAX_FRAME_BODY
            && (self.body_len as usize) >= self.record_count as usize * RECORD_OVERHEAD
    }
}

/// Checks a whole frame (header + body) against its CRC.
pub(crate) fn frame_crc_ok(frame: &[u8]) -> bool {
    if frame.len() < FRAME_HEADER_LEN {
        return false;
    }
    let stored = read_u32(frame, 4);
    crc32c::crc32c(&frame[8..]) == stored
}

/// Appends one encoded frame to `out`. The caller has checked the record sizes against limits.
pub(crate) fn encode_frame<'a>(
    out: &mut Vec<u8>,
    first_seq: u64,
    timestamp: i64,
    durable_offset: u64,
    records: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
) {
    let start = out.len();
    let record_count = records.len() as u32;
    let body_len: usize = records
        .clone()
        .map(|(key, value)| RECORD_OVERHEAD + key.len() + value.len())
        .sum();
    out.reserve(FRAME_HEADER_LEN + body_len);
    out.put_u32_le(body_len as u32);
    out.put_u32_le(0); // CRC, patched below
    out.put_u64_le(first_seq);
    out.put_u32_le(record_count);
    out.put_u32_le(0);
    out.put_i64_le(timestamp);
    out.put_u64_le(durable_offset);
    for (key, value) in records {
        out.put_u32_le(key.len() as u32);
        out.put_u32_le(value.len() as u32);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One record decoded from a frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedRecord {
    pub key: Bytes,
    pub value: Bytes,
}

/// The most records [`decode_body`] reserves room for before reading them; frames the
/// collector writes hold far fewer.
const MAX_RESERVED_RECORDS: usize = 16_384;

/// Splits a verified frame body into records, sharing the body's buffer.
pub(crate) fn decode_body(body: &Bytes, record_count: u32) -> Result<Vec<DecodedRecord>, String> {
    // Reserved up to a bound, then grown as records are found: a count read from a damaged or
    // crafted file (up to a 1 GiB body ÷ 8 bytes) must not become a reservation eight times
    // the body's size before the loop below finds out.
    let mut records = Vec::with_capacity((record_count as usize).min(MAX_RESERVED_RECORDS));
    let mut at = 0usize;
    for i in 0..record_count {
        if at + RECORD_OVERHEAD > body.len() {
            return Err(format!("record {i} header runs past the frame body"));
        }
        let key_len = read_u32(body, at) as usize;
        let value_len = read_u32(body, at + 4) as usize;
        at += RECORD_OVERHEAD;
        let end = at
            .checked_add(key_len)
            .and_then(|k| k.checked_add(value_len))
            .filter(|&end| end <= body.len())
            .ok_or_else(|| format!("record {i} runs past the frame body"))?;
        records.push(DecodedRecord {
            key: body.slice(at..at + key_len),
            value: body.slice(at + key_len..end),
        });
        at = end;
    }
    if at != body.len() {
        return Err(format!(
            "{} stray bytes after the last record",
            body.len() - at
        ));
    }
    Ok(records)
}

/// Reads a little-endian u32 at `at`; the caller guarantees the bounds.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Reads a little-endian u64 at `at`; the caller guarantees the bounds.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_header_round_trip_and_damage() {
        let header = SegmentHeader {
            shard: 3,
            base_seq: 42,
        };
        let mut bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), header);
        bytes[17] ^= 1;
        assert!(
            SegmentHeader::decode(&bytes)
                .unwrap_err()
                .contains("checksum")
        );
        assert!(
            SegmentHeader::decode(&[0u8; 32])
                .unwrap_err()
                .contains("magic")
        );
    }

    proptest! {
        #[test]
        fn frame_round_trip(
            first_seq in 0u64..u64::MAX / 2,
            timestamp in any::<i64>(),
            durable in any::<u64>(),
            records in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..40), prop::collection::vec(any::<u8>(), 0..300)),
                1..20,
            ),
        ) {
            let mut out = vec![0xAA; 3]; // frames are appended after existing bytes
            encode_frame(
                &mut out,
                first_seq,
                timestamp,
                durable,
                records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            );
            let frame = &out[3..];
            prop_assert!(frame_crc_ok(frame));
            let header = FrameHeader::parse(frame);
            prop_assert!(header.is_plausible());
            prop_assert_eq!(header.frame_len() as usize, frame.len());
            prop_assert_eq!(header.first_seq, first_seq);
            prop_assert_eq!(header.timestamp, timestamp);
            prop_assert_eq!(header.durable_offset, durable);
            let body = Bytes::copy_from_slice(&frame[FRAME_HEADER_LEN..]);
            let decoded = decode_body(&body, header.record_count).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (d, (k, v)) in decoded.iter().zip(&records) {
                prop_assert_eq!(&d.key[..], &k[..]);
                prop_assert_eq!(&d.value[..], &v[..]);
            }
        }

        #[test]
        fn any_single_bit_flip_is_detected(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut out = Vec::new();
            encode_frame(&mut out, 7, 1, 0, records.iter().map(|v| (&b"k"[..], v.as_slice())));
            // Bytes 0..4 (body_len) are covered by the frame extent check, not the CRC.
            let at = 4 + flip.index(out.len() - 4);
            out[at] ^= 1 << bit;
            prop_assert!(!frame_crc_ok(&out));
        }

        #[test]
        fn decode_body_never_panics(body in prop::collection::vec(any::<u8>(), 0..200), count in 0u32..50) {
            let _ = decode_body(&Bytes::from(body), count);
        }
    }
}
