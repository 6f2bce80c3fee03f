//! # tributary-catalog
//!
//! The lake's table of contents (DESIGN.md: the Glue Data Catalog's part). It records
//!
//! - **tables** with their location, partition columns, schema **versions** and retention;
//! - **data files**: which objects of the lake are live, with partition values, row counts,
//!   bytes, min/max event time and min/max tenant (what query planning prunes with);
//! - **consumer checkpoints** of the writers that produced those files.
//!
//! Everything a writer changes goes in one [`Commit`]: files that go live, files that stop
//! being live and the producing consumer's checkpoint, recorded atomically. That is the lake's
//! commit protocol (see `tributary-lake`): a file is *staged* before it is uploaded, goes live
//! only together with the checkpoint past its events, and a staged file that never went live
//! is deleted on recovery. A query lists one [`Snapshot`], so it sees a compaction's inputs or
//! its output, never both.
//!
//! [`Catalog`] is the seam: [`EmbeddedCatalog`] keeps it in a SQLite file beside the data
//! (WAL mode, synchronous commits); a shared catalog service can implement the same trait when
//! several machines write one lake.
#![deny(missing_docs)]

mod embedded;
mod error;
mod types;

use async_trait::async_trait;

pub use embedded::EmbeddedCatalog;
pub use error::CatalogError;
pub use types::{
    Commit, CommitKind, CommitRecord, ConsumerCheckpoint, DataFile, EventSchema, Partition,
    PartitionInfo, SchemaVersion, Snapshot, StagedFile, TableDef, TableInfo, partition_path,
};

/// The operations the lake and the query engine need from a catalog.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Creates the table, or updates its definition; a changed `schema` is recorded as a new
    /// schema version. Returns the table as it now is.
    async fn ensure_table(&self, def: TableDef) -> Result<TableInfo, CatalogError>;

    /// One table, or `None`.
    async fn table(&self, name: &str) -> Result<Option<TableInfo>, CatalogError>;

    /// Every table, by name.
    async fn tables(&self) -> Result<Vec<TableInfo>, CatalogError>;

    /// Every recorded schema version of a table, oldest first.
    async fn schema_versions(&self, table: &str) -> Result<Vec<SchemaVersion>, CatalogError>;

    /// Records the intent to write these paths for `table`, durably, before any byte is
    /// uploaded, so that recovery can find and delete what a crash left behind.
    async fn stage(&self, table: &str, paths: &[String]) -> Result<(), CatalogError>;

    /// Applies a commit atomically. Fails, changing nothing, when an added file was not staged,
    /// a removed file is not live (someone else removed it first) or the checkpoint would move
    /// a shard backwards.
    async fn commit(&self, commit: Commit) -> Result<i64, CatalogError>;

    /// Files staged but not committed, oldest first.
    async fn staged(&self) -> Result<Vec<StagedFile>, CatalogError>;

    /// Forgets staged files (after their objects were deleted).
    async fn forget_staged(&self, paths: &[String]) -> Result<(), CatalogError>;

    /// The live files of a table, optionally only those whose event-time range meets
    /// `[ts_from, ts_until]` (µs, inclusive), as of one commit.
    async fn snapshot(
        &self,
        table: &str,
        ts_from: Option<i64>,
        ts_until: Option<i64>,
    ) -> Result<Snapshot, CatalogError>;

    /// Per-partition summary of a table's live files.
    async fn partitions(&self, table: &str) -> Result<Vec<PartitionInfo>, CatalogError>;

    /// Files that stopped being live before `cutoff` (µs): safe to delete once no query that
    /// could still read them is running.
    async fn removed_before(&self, cutoff: i64) -> Result<Vec<String>, CatalogError>;

    /// Forgets removed files (after their objects were deleted).
    async fn purge_removed(&self, paths: &[String]) -> Result<(), CatalogError>;

    /// Where a consumer resumes (empty for a new consumer).
    async fn checkpoint(&self, consumer: &str) -> Result<ConsumerCheckpoint, CatalogError>;

    /// Records `checkpoint`'s position for every shard the consumer has none on yet, leaving
    /// positions it has untouched, in one transaction; returns the consumer's checkpoint as it
    /// then stands. Two writers that both start a consumer agree on where it starts.
    async fn init_checkpoint(
        &self,
        checkpoint: ConsumerCheckpoint,
    ) -> Result<ConsumerCheckpoint, CatalogError>;

    /// Sets a consumer's position outright, backwards included (replays rebuild from an
    /// earlier point on purpose).
    async fn reset_checkpoint(&self, checkpoint: ConsumerCheckpoint) -> Result<(), CatalogError>;

    /// The most recent commits, newest first.
    async fn commits(&self, limit: usize) -> Result<Vec<CommitRecord>, CatalogError>;

    /// Every version of every event schema, by event type then version.
    async fn event_schemas(&self) -> Result<Vec<EventSchema>, CatalogError>;

    /// Records `schema` as its event type's next version. `schema.version` must be one more
    /// than the newest recorded (1 for a new type); if another writer took that number first
    /// the call fails with [`CatalogError::SchemaVersionTaken`] and nothing is recorded.
    async fn add_event_schema(&self, schema: EventSchema) -> Result<(), CatalogError>;
}
