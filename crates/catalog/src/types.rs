//! What the catalog records: tables, their schema versions, data files and checkpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Partition values of a file, in the table's partition-column order, e.g.
/// `[("dt", "2026-11-23"), ("event_family", "page")]`.
pub type Partition = Vec<(String, String)>;

/// The Hive path segment of a partition: `dt=2026-11-23/event_family=page`.
pub fn partition_path(partition: &Partition) -> String {
    partition
        .iter()
        .map(|(column, value)| format!("{column}={value}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// What a writer declares about a table; [`crate::Catalog::ensure_table`] creates it or records
/// a new schema version when `schema` changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    /// SQL name, e.g. `events`.
    pub name: String,
    /// Object-store prefix its files live under, e.g. `curated/events`.
    pub location: String,
    /// Hive partition columns, outermost first (strings, taken from the file's path).
    pub partition_columns: Vec<String>,
    /// The timestamp column a file's `min_ts`/`max_ts` describe (`ts` for curated events,
    /// `received_at` for the raw archive).
    pub time_column: String,
    /// The column holding the tenant id, which read keys are scoped by.
    pub tenant_column: String,
    /// The columns stored in the table's files (partition columns excluded): the lake stores the
    /// Arrow schema in its serde JSON form. Compared as a whole to detect a new version.
    pub schema: serde_json::Value,
    /// Partitions whose `dt` is older than this many days are dropped by the lifecycle job;
    /// `None` keeps them forever.
    pub retention_days: Option<u32>,
}

/// A table as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// The definition last declared.
    #[serde(flatten)]
    pub def: TableDef,
    /// Current schema version (1 for a new table).
    pub schema_version: u32,
    /// When the table was created (µs since the epoch).
    pub created_at: i64,
}

/// One recorded version of a table's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// 1, 2, …
    pub version: u32,
    /// The schema as declared.
    pub schema: serde_json::Value,
    /// When it was recorded (µs since the epoch).
    pub created_at: i64,
}

/// A data file of a table, as recorded when it went live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// The table it belongs to.
    pub table: String,
    /// Object-store path, relative to the lake root.
    pub path: String,
    /// Its partition values.
    pub partition: Partition,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Smallest event time in the file (µs).
    pub min_ts: i64,
    /// Largest event time in the file (µs).
    pub max_ts: i64,
    /// Smallest tenant id in the file.
    pub min_tenant: String,
    /// Largest tenant id in the file.
    pub max_tenant: String,
    /// The table schema version it was written with.
    pub schema_version: u32,
}

impl DataFile {
    /// The value of one partition column, if the file has it.
    pub fn partition_value(&self, column: &str) -> Option<&str> {
        self.partition
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a commit was made; kept in the commit log for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitKind {
    /// Buffered events written out by the lake writer.
    Flush,
    /// Small files merged into bigger ones.
    Compaction,
    /// Partitions dropped by the lifecycle job.
    Retention,
    /// Files rebuilt by a replay.
    Replay,
}

impl CommitKind {
    /// The name stored in the commit log.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitKind::Flush => "flush",
            CommitKind::Compaction => "compaction",
            CommitKind::Retention => "retention",
            CommitKind::Replay => "replay",
        }
    }
}

/// Where a named consumer resumes, per stream shard: the next sequence number to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerCheckpoint {
    /// The consumer's name (e.g. `lake`).
    pub consumer: String,
    /// shard → next sequence number to read.
    pub positions: BTreeMap<u32, u64>,
}

/// One atomic change: files that go live, files that stop being live, and where the consumer
/// that produced them resumes. Either all of it is recorded or none of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// Why.
    pub kind: CommitKind,
    /// Files that go live. Each must have been staged first ([`crate::Catalog::stage`]).
    pub added: Vec<DataFile>,
    /// Paths of live files that stop being live (compaction inputs, dropped partitions).
    pub removed: Vec<String>,
    /// The producing consumers' new positions, recorded in the same transaction (a lake
    /// writer that both archives and curates moves one checkpoint per role).
    pub checkpoints: Vec<ConsumerCheckpoint>,
}

/// A file staged by a writer but never committed: left behind by a crash, or being written now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// The table it was meant for.
    pub table: String,
    /// Its object-store path.
    pub path: String,
    /// When it was staged (µs since the epoch).
    pub staged_at: i64,
}

/// The live files of a table at one commit: what one query reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The id of the last commit this snapshot includes (0 before the first).
    pub commit_id: i64,
    /// The table's definition and schema version at that commit.
    pub table: TableInfo,
    /// Its live files.
    pub files: Vec<DataFile>,
}

/// A summary of one partition's live files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The partition's values.
    pub partition: Partition,
    /// Live files.
    pub files: u64,
    /// Rows in them.
    pub rows: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// Smallest event time.
    pub min_ts: i64,
    /// Largest event time.
    pub max_ts: i64,
}

/// An entry of the commit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Increasing id.
    pub id: i64,
    /// Why it was made.
    pub kind: CommitKind,
    /// When (µs since the epoch).
    pub at: i64,
    /// Files that went live.
    pub added: u64,
    /// Files that stopped being live.
    pub removed: u64,
    /// Rows in the added files.
    pub rows_added: u64,
}

/// One version of an event type's JSON Schema (the pipeline's schema registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSchema {
    /// The event type it validates, e.g. `track:Order Completed`.
    pub event_type: String,
    /// 1, 2, … per event type.
    pub version: u32,
    /// The JSON Schema, over the event's `properties`.
    pub schema: serde_json::Value,
    /// Added with force although it was not backward compatible.
    pub forced: bool,
    /// When it was added (µs since the epoch).
    pub created_at: i64,
}
