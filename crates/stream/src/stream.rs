//! The backend-neutral [`Stream`] trait.
//!
//! It is shaped so that both the embedded log and Apache Kafka implement it without pretending:
//!
//! | here                         | embedded log                  | Kafka                             |
//! |------------------------------|-------------------------------|-----------------------------------|
//! | shard                        | a directory of segment files  | a partition of the topic          |
//! | sequence number              | record index within the shard | offset                            |
//! | `append` returns             | after group-commit fdatasync  | after `acks=all` produce          |
//! | named consumer + checkpoint  | checkpoint file, per shard    | consumer group, committed offsets |
//! | `StartPosition::AtTimestamp` | sparse timestamp index        | `offsetsForTimes`                 |
//! | retention by age / size      | whole segments deleted        | `retention.ms` / `retention.bytes`|

use async_trait::async_trait;
use tributary_model::TimestampMicros;

use crate::{Appended, ReadBatch, ReadLimits, Record, Result, SeqNo, ShardId, StartPosition};

/// A durable, ordered, partitioned log of records.
///
/// Implementations guarantee: records with one partition key land on one shard, in append
/// order; `append` returns only once its records are durable (per the backend's durability
/// setting); sequence numbers within a shard only grow.
#[async_trait]
pub trait Stream: Send + Sync + 'static {
    /// How many shards the stream has.
    fn shard_count(&self) -> u32;

    /// The shard a partition key maps to (stable across versions and restarts).
    fn shard_for_key(&self, key: &[u8]) -> ShardId;

    /// Appends `records`, each to the shard of its key, and returns where each one landed, in
    /// input order, once all are durable. The records of one call that share a shard are
    /// stored atomically (all or none survive a crash); across shards there is no atomicity.
    async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>>;

    /// The sequence number a reader starting at `position` in `shard` begins with.
    async fn resolve(&self, shard: ShardId, position: StartPosition) -> Result<SeqNo>;

    /// Reads records of `shard` from `from` on, within `limits`. Waits up to
    /// `limits.max_wait` for an append when there is nothing to read yet.
    async fn read(&self, shard: ShardId, from: SeqNo, limits: ReadLimits) -> Result<ReadBatch>;

    /// Registers a named consumer (idempotent: an existing one keeps its checkpoints). A new
    /// consumer starts every shard at `start`.
    async fn register_consumer(&self, name: &str, start: StartPosition) -> Result<()>;

    /// The names of the registered consumers, sorted.
    async fn consumers(&self) -> Result<Vec<String>>;

    /// A consumer's checkpoints: per shard, the next sequence number it will read.
    async fn checkpoints(&self, name: &str) -> Result<Vec<SeqNo>>;

    /// Durably records that consumer `name` has processed every record before each given
    /// sequence number, for each `(shard, next_seq)` pair, in one atomic step.
    async fn commit(&self, name: &str, positions: &[(ShardId, SeqNo)]) -> Result<()>;

    /// Size and extent of every shard.
    async fn shard_stats(&self) -> Result<Vec<ShardStats>>;

    /// How far consumer `name` is behind, per shard.
    async fn consumer_lag(&self, name: &str) -> Result<ConsumerLag>;

    /// Whether appends can currently be persisted: `Ok` or the reason they cannot (a shard
    /// whose disk failed, a closed stream, an unreachable broker). Backs `/readyz`.
    async fn check_writable(&self) -> Result<()>;
}

/// Extent and size of one shard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShardStats {
    /// The shard.
    pub shard: ShardId,
    /// Sequence number of the oldest retained record.
    pub first_seq: SeqNo,
    /// Sequence number the next appended record will get (the high watermark).
    pub next_seq: SeqNo,
    /// Bytes on disk (or in the broker) for this shard.
    pub bytes: u64,
    /// Number of segment files (embedded log) or 1 (Kafka).
    pub segments: u32,
    /// Time of the oldest retained record, if any.
    pub oldest_timestamp: Option<TimestampMicros>,
    /// Time of the newest record, if any.
    pub newest_timestamp: Option<TimestampMicros>,
}

/// How far a consumer is behind on one shard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShardLag {
    /// The shard.
    pub shard: ShardId,
    /// The consumer's checkpoint: the next sequence number it will read.
    pub checkpoint: SeqNo,
    /// The shard's high watermark.
    pub next_seq: SeqNo,
    /// Records appended but not yet consumed (retained ones only).
    pub lag_records: u64,
    /// Milliseconds from now back to the oldest unconsumed record's time (0 when caught up) —
    /// Kinesis' `IteratorAgeMilliseconds`.
    pub iterator_age_ms: u64,
    /// Records that retention deleted before this consumer read them, since it was registered.
    pub expired_unread: u64,
}

/// A consumer's lag on every shard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerLag {
    /// The consumer.
    pub consumer: String,
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardLag>,
}

impl ConsumerLag {
    /// Total records behind across shards.
    pub fn total_lag_records(&self) -> u64 {
        self.shards.iter().map(|s| s.lag_records).sum()
    }

    /// The largest iterator age across shards.
    pub fn max_iterator_age_ms(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.iterator_age_ms)
            .max()
            .unwrap_or(0)
    }
}
