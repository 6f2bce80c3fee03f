//! The stream's errors, shaped by what the caller does next.

use std::path::PathBuf;

use crate::ShardId;

/// Everything that can go wrong in the stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// An operating-system I/O call failed; `context` says what was being done to which file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes fail their checksum or structure somewhere a crash cannot explain (not a
    /// torn tail). Nothing is skipped: the operator decides (see `tributary stream verify`).
    #[error("corrupt segment {segment} (shard {shard}) at byte offset {offset}: {reason}")]
    Corrupt {
        /// The shard the segment belongs to.
        shard: ShardId,
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in the segment where the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A shard's writer failed to persist (for example a failed fdatasync). Nothing after the
    /// failure is acknowledged; the shard refuses appends until the log is reopened.
    #[error("shard {shard} cannot persist: {reason}; reopen the stream after fixing the disk")]
    Unavailable {
        /// The failed shard.
        shard: ShardId,
        /// The first failure, as text.
        reason: String,
    },
    /// A shard sealed its full segment but could not create the next one (disk full, no file
    /// handles). Nothing was lost and the shard is not failed: its next append tries again.
    #[error(
        "shard {shard} cannot start its next segment: {reason}; nothing was lost, and the next \
         append tries again"
    )]
    NoSegment {
        /// The shard.
        shard: ShardId,
        /// Why the segment could not be created, as text.
        reason: String,
    },
    /// A record in the batch is larger than a configured limit.
    #[error("record {index} of the batch: {field} is {size} bytes, over the limit of {limit}")]
    RecordTooLarge {
        /// The record's index in the batch.
        index: usize,
        /// `key` or `value`.
        field: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A shard number outside `0..shards`.
    #[error("shard {shard} does not exist (the stream has {shards} shards)")]
    UnknownShard {
        /// The shard asked for.
        shard: ShardId,
        /// How many shards the stream has.
        shards: u32,
    },
    /// A consumer name that was never registered.
    #[error("consumer {0:?} is not registered")]
    UnknownConsumer(String),
    /// A consumer name that does not fit `[A-Za-z0-9._-]{{1,64}}`.
    #[error("invalid consumer name {name:?}: {reason}")]
    InvalidConsumerName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The configuration disagrees with what the directory holds, or is invalid in itself.
    #[error("invalid stream configuration: {0}")]
    Config(String),
    /// The stream was closed while the call was under way.
    #[error("the stream is closed")]
    Closed,
    /// The stream was opened read-only (for inspection beside a running server).
    #[error(
        "the stream is open read-only; {0} needs the writer (stop `tributary serve`, or use its API)"
    )]
    ReadOnly(&'static str),
    /// A checkpoint past the shard's end: it would skip records not yet written.
    #[error(
        "consumer {consumer:?}: checkpoint {seq} on shard {shard} is past the shard's end ({next_seq})"
    )]
    CheckpointPastEnd {
        /// The consumer.
        consumer: String,
        /// The shard.
        shard: ShardId,
        /// The checkpoint asked for.
        seq: u64,
        /// The shard's high watermark.
        next_seq: u64,
    },
}

/// What a caller should do about a [`StreamError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorKind {
    /// The input was wrong; retrying the same input fails again (HTTP 4xx).
    InvalidInput,
    /// The stream cannot persist right now; retry later or elsewhere (HTTP 503).
    Unavailable,
    /// Stored data is damaged; an operator must look (never retried automatically).
    Corruption,
    /// Configuration does not fit the data directory.
    Config,
}

impl StreamError {
    /// Classifies the error by what the caller does next.
    pub fn kind(&self) -> StreamErrorKind {
        match self {
            StreamError::RecordTooLarge { .. }
            | StreamError::UnknownShard { .. }
            | StreamError::UnknownConsumer(_)
            | StreamError::InvalidConsumerName { .. }
            | StreamError::CheckpointPastEnd { .. }
            | StreamError::ReadOnly(_) => StreamErrorKind::InvalidInput,
            StreamError::Io { .. }
            | StreamError::Unavailable { .. }
            | StreamError::NoSegment { .. }
            | StreamError::Closed => StreamErrorKind::Unavailable,
            StreamError::Corrupt { .. } => StreamErrorKind::Corruption,
            StreamError::Config(_) => StreamErrorKind::Config,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StreamError::Io {
            context: context.into(),
            source,
        }
    }
}
