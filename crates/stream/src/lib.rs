//! # tributary-stream
//!
//! The durable, ordered, partitioned buffer between the collector and everything downstream —
//! the part of DESIGN.md that the cloud architecture fills with Kinesis Data Streams.
//!
//! ```text
//!   collector ──append(batch)──▶ ┌──────────── Stream ────────────┐
//!      ▲   (returns once durable) │ shard 0: seg ▸ seg ▸ seg(active)│──read──▶ pipeline, lake, …
//!      └──────── sequence nos ────│ shard 1: …                      │   (named consumers with
//!                                 │ shard N-1: …                    │    durable checkpoints)
//!                                 └─────────────────────────────────┘
//! ```
//!
//! Everything downstream is a projection of what this crate holds, so its first duty is never to
//! lose an acknowledged record: [`Stream::append`] returns only once the batch is durable under
//! the configured [`Durability`], and recovery on open truncates only a torn tail that was never
//! acknowledged.
//!
//! - [`Stream`] is the backend-neutral trait, shaped after what both the embedded log and Apache
//!   Kafka offer: shards are partitions, sequence numbers are offsets, named consumers with
//!   checkpoints are consumer groups with committed offsets.
//! - [`EmbeddedLog`] is the default backend: one directory of segment files per shard, group
//!   commit, a sparse index by sequence number and timestamp, retention and consumer checkpoints.
//!   The on-disk format is specified in the `format` module.
//! - [`shard_for_key`] is the stable key → shard mapping (Kafka's murmur2 partitioner), part of
//!   the on-disk contract.
#![deny(missing_docs)]

mod config;
mod consumer;
mod embedded;
mod error;
mod format;
mod fsutil;
mod index;
mod partition;
mod record;
mod retention;
mod segment;
mod shard;
mod stream;
mod syncer;
mod writer;

pub use config::{DEFAULT_SHARDS, Durability, RetentionConfig, StreamConfig};
pub use embedded::{ClampedCheckpoint, EmbeddedLog, RecoveryReport, TruncatedTail, VerifyReport};
pub use error::{StreamError, StreamErrorKind};
pub use partition::{murmur2, shard_for_key};
pub use record::{
    Appended, ReadBatch, ReadLimits, Record, SeqNo, ShardId, StartPosition, StoredRecord,
};
pub use stream::{ConsumerLag, ShardLag, ShardStats, Stream};

/// `Result` with this crate's error.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;
