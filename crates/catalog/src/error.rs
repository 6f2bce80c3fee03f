//! Catalog errors.

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The store itself failed (I/O, locked past the busy timeout, corrupt file).
    #[error("catalog store {path}: {source}")]
    Store {
        /// The catalog's database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A value stored in the catalog could not be read back.
    #[error("catalog record {what} is unreadable: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        detail: String,
    },
    /// The named table does not exist.
    #[error("table {0:?} does not exist in the catalog")]
    UnknownTable(String),
    /// A commit added a file that was never staged (or was already committed).
    #[error("file {path} was not staged before its commit (or is already live)")]
    NotStaged {
        /// Its path.
        path: String,
    },
    /// A commit removed a file that is not live: a concurrent commit removed it first.
    #[error("file {path} is not live; a concurrent commit removed it first")]
    NotLive {
        /// Its path.
        path: String,
    },
    /// A commit would move a consumer's checkpoint backwards.
    #[error(
        "checkpoint of consumer {consumer:?} on shard {shard} would move back from {from} to {to}"
    )]
    CheckpointRegression {
        /// The consumer.
        consumer: String,
        /// The shard.
        shard: u32,
        /// The recorded position.
        from: u64,
        /// The proposed one.
        to: u64,
    },
    /// An event schema version was added by someone else first.
    #[error("event schema {event_type:?} version {version} already exists")]
    SchemaVersionTaken {
        /// The event type.
        event_type: String,
        /// The version both tried to add.
        version: u32,
    },
    /// The blocking worker that ran the operation panicked or was cancelled.
    #[error("catalog worker stopped: {0}")]
    Worker(String),
}
