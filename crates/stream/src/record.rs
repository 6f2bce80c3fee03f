//! Records, positions and read results: the values that cross the [`Stream`](crate::Stream) API.

use bytes::Bytes;
use tributary_model::TimestampMicros;

/// A shard of the stream (a partition, in Kafka's words).
pub type ShardId = u32;

/// A record's position within its shard. Sequence numbers only grow; they start at 0 and
/// normally have no gaps (a repaired segment may leave one).
pub type SeqNo = u64;

/// A record to append: the partition key picks the shard, the value is opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partition key, e.g. `tenant:session`. Records with one key keep their order.
    pub key: Bytes,
    /// The payload (for Tributary, one event as JSON).
    pub value: Bytes,
}

impl Record {
    /// A record from anything that converts into bytes.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Record {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its shard.
    pub shard: ShardId,
    /// Its sequence number in that shard.
    pub seq: SeqNo,
}

/// A record read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its sequence number within the shard.
    pub seq: SeqNo,
    /// When the stream accepted it (µs since the epoch). Non-decreasing within a shard, which
    /// is what makes [`StartPosition::AtTimestamp`] a binary search.
    pub timestamp: TimestampMicros,
    /// The partition key it was appended with.
    pub key: Bytes,
    /// The payload.
    pub value: Bytes,
}

/// Where a reader starts in a shard — the Kinesis shard iterator types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still retained (`TRIM_HORIZON`).
    Oldest,
    /// Just after the newest record: only records appended from now on (`LATEST`).
    Latest,
    /// At this sequence number (`AT_SEQUENCE_NUMBER`).
    AtSeq(SeqNo),
    /// Just after this sequence number (`AFTER_SEQUENCE_NUMBER`).
    AfterSeq(SeqNo),
    /// At the first record accepted at or after this time (`AT_TIMESTAMP`), µs since the epoch.
    AtTimestamp(TimestampMicros),
}

/// Bounds of one read call.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// At most this many records.
    pub max_records: usize,
    /// At most about this many payload bytes (at least one record is always returned).
    pub max_bytes: usize,
    /// When nothing is there yet, wait up to this long for an append (long polling).
    pub max_wait: std::time::Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_records: 10_000,
            max_bytes: 4 << 20,
            max_wait: std::time::Duration::ZERO,
        }
    }
}

/// The result of one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// Records in sequence order.
    pub records: Vec<StoredRecord>,
    /// Where the next read should start.
    pub next_seq: SeqNo,
    /// Records between the requested position and the oldest retained one that retention
    /// deleted before this read reached them; counted, never hidden.
    pub expired_skipped: u64,
}
