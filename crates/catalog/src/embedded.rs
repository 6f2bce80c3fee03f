//! The embedded catalog: one SQLite file (WAL mode, `synchronous = FULL`) beside the data.
//!
//! SQLite gives the catalog what it needs and nothing it must build: multi-row atomic commits
//! that survive a crash at any instant, readers that never block the writer (a `tributary
//! query` beside a running server), and a file an operator can open with `sqlite3` when
//! something looks wrong. Every operation runs on a blocking worker thread, because a commit
//! waits for an fsync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::Catalog;
use crate::error::CatalogError;
use crate::types::{
    Commit, CommitKind, CommitRecord, ConsumerCheckpoint, DataFile, EventSchema, Partition,
    PartitionInfo, SchemaVersion, Snapshot, StagedFile, TableDef, TableInfo, partition_path,
};

/// File states in the `files` table.
const STAGED: &str = "staged";
const LIVE: &str = "live";
const REMOVED: &str = "removed";

/// How long a statement waits for a lock held by another process (e.g. the server while a CLI
/// reads) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    partition_columns TEXT NOT NULL,
    time_column TEXT NOT NULL,
    tenant_column TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    retention_days INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_versions (
    table_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (table_name, version)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    table_name TEXT NOT NULL,
    state TEXT NOT NULL,
    partition TEXT,
    partition_key TEXT,
    rows INTEGER,
    bytes INTEGER,
    min_ts INTEGER,
    max_ts INTEGER,
    min_tenant TEXT,
    max_tenant TEXT,
    schema_version INTEGER,
    staged_at INTEGER NOT NULL,
    committed_in INTEGER,
    removed_at INTEGER
);
CREATE INDEX IF NOT EXISTS files_by_table_state ON files (table_name, state, min_ts);
CREATE TABLE IF NOT EXISTS checkpoints (
    consumer TEXT NOT NULL,
    shard INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    PRIMARY KEY (consumer, shard)
);
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    rows_added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_schemas (
    event_type TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema TEXT NOT NULL,
    forced INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (event_type, version)
);
"#;

/// The catalog in a SQLite file. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct EmbeddedCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for EmbeddedCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCatalog")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl EmbeddedCatalog {
    /// Opens (creating if needed) the catalog database at `path`; its directory must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedCatalog, CatalogError> {
        let path = path.as_ref().to_path_buf();
        let store_error = |source| CatalogError::Store {
            path: path.display().to_string(),
            source,
        };
        let connection = Connection::open(&path).map_err(store_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        // WAL: readers never block the writer; FULL: a commit is on disk when it returns.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(store_error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(store_error)?;
        connection.execute_batch(SCHEMA).map_err(store_error)?;
        Ok(EmbeddedCatalog {
            inner: Arc::new(Inner {
                path,
                connection: Mutex::new(connection),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` with the connection on a blocking worker thread.
    async fn run<T, F>(&self, work: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, CatalogError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut connection = inner.connection.lock();
            work(&mut connection)
        })
        .await
        .map_err(|error| CatalogError::Worker(error.to_string()))?
    }

    fn store_error(&self) -> impl Fn(rusqlite::Error) -> CatalogError + Send + Clone + 'static {
        let path = self.inner.path.display().to_string();
        move |source| CatalogError::Store {
            path: path.clone(),
            source,
        }
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn corrupt(what: impl Into<String>, detail: impl ToString) -> CatalogError {
    CatalogError::Corrupt {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// SQLite stores integers as i64; counts and sequence numbers here never come near 2^63.
fn to_sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn read_table(
    tx: &Connection,
    name: &str,
    err: &impl Fn(rusqlite::Error) -> CatalogError,
) -> Result<Option<TableInfo>, CatalogError> {
    let row = tx
        .query_row(
            "SELECT t.location, t.partition_columns, t.schema_version, t.retention_days, \
                    t.created_at, v.schema, t.time_column, t.tenant_column \
             FROM tables t JOIN schema_versions v \
               ON v.table_name = t.name AND v.version = t.schema_version \
             WHERE t.name = ?1",
            params![name],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, String>(7)?,
                ))
            },
        )
        .optional()
        .map_err(err)?;
    let Some((
        location,
        partition_columns,
        version,
        retention,
        created_at,
        schema,
        time_column,
        tenant_column,
    )) = row
    else {
        return Ok(None);
    };
    let partition_columns: Vec<String> = serde_json::from_str(&partition_columns)
        .map_err(|e| corrupt(format!("tables.{name}.partition_columns"), e))?;
    let schema: serde_json::Value = serde_json::from_str(&schema)
        .map_err(|e| corrupt(format!("schema_versions.{name}.{version}"), e))?;
    Ok(Some(TableInfo {
        def: TableDef {
            name: name.to_string(),
            location,
            partition_columns,
            time_column,
            tenant_column,
            schema,
            retention_days: retention.and_then(|days| u32::try_from(days).ok()),
        },
        schema_version: u32::try_from(version).unwrap_or(0),
        created_at,
    }))
}

fn ensure_table_in(
    tx: &Transaction<'_>,
    def: &TableDef,
    err: &impl Fn(rusqlite::Error) -> CatalogError,
) -> Result<(), CatalogError> {
    let now = now_micros();
    let schema_text = def.schema.to_string();
    let columns = serde_json::to_string(&def.partition_columns)
        .map_err(|e| corrupt("partition columns", e))?;
    let retention = def.retention_days.map(i64::from);
    match read_table(tx, &def.name, err)? {
        None => {
            tx.execute(
                "INSERT INTO tables (name, location, partition_columns, time_column, \
                 tenant_column, schema_version, retention_days, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
                params![
                    def.name,
                    def.location,
                    columns,
                    def.time_column,
                    def.tenant_column,
                    retention,
                    now
                ],
            )
            .map_err(err)?;
            tx.execute(
                "INSERT INTO schema_versions (table_name, version, schema, created_at) \
                 VALUES (?1, 1, ?2, ?3)",
                params![def.name, schema_text, now],
            )
            .map_err(err)?;
        }
        Some(existing) => {
            let mut version = i64::from(existing.schema_version);
            if existing.def.schema != def.schema {
                version += 1;
                tx.execute(
                    "INSERT INTO schema_versions (table_name, version, schema, created_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![def.name, version, schema_text, now],
                )
                .map_err(err)?;
            }
            tx.execute(
                "UPDATE tables SET location = ?2, partition_columns = ?3, schema_version = ?4, \
                 retention_days = ?5, time_column = ?6, tenant_column = ?7 WHERE name = ?1",
                params![
                    def.name,
                    def.location,
                    columns,
                    version,
                    retention,
                    def.time_column,
                    def.tenant_column
                ],
            )
            .map_err(err)?;
        }
    }
    Ok(())
}

fn apply_commit(
    tx: &Transaction<'_>,
    commit: &Commit,
    err: &impl Fn(rusqlite::Error) -> CatalogError,
) -> Result<i64, CatalogError> {
    let now = now_micros();
    let rows_added: u64 = commit.added.iter().map(|file| file.rows).sum();
    tx.execute(
        "INSERT INTO commits (kind, at, added, removed, rows_added) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            commit.kind.as_str(),
            now,
            to_sql_int(commit.added.len() as u64),
            to_sql_int(commit.removed.len() as u64),
            to_sql_int(rows_added)
        ],
    )
    .map_err(err)?;
    let commit_id = tx.last_insert_rowid();
    for file in &commit.added {
        let partition =
            serde_json::to_string(&file.partition).map_err(|e| corrupt("partition", e))?;
        let changed = tx
            .execute(
                "UPDATE files SET state = ?2, partition = ?3, partition_key = ?4, rows = ?5, \
                 bytes = ?6, min_ts = ?7, max_ts = ?8, min_tenant = ?9, max_tenant = ?10, \
                 schema_version = ?11, committed_in = ?12, table_name = ?13 \
                 WHERE path = ?1 AND state = ?14",
                params![
                    file.path,
                    LIVE,
                    partition,
                    partition_path(&file.partition),
                    to_sql_int(file.rows),
                    to_sql_int(file.bytes),
                    file.min_ts,
                    file.max_ts,
                    file.min_tenant,
                    file.max_tenant,
                    i64::from(file.schema_version),
                    commit_id,
                    file.table,
                    STAGED
                ],
            )
            .map_err(err)?;
        if changed != 1 {
            return Err(CatalogError::NotStaged {
                path: file.path.clone(),
            });
        }
    }
    for path in &commit.removed {
        let changed = tx
            .execute(
                "UPDATE files SET state = ?2, removed_at = ?3 WHERE path = ?1 AND state = ?4",
                params![path, REMOVED, now, LIVE],
            )
            .map_err(err)?;
        if changed != 1 {
            return Err(CatalogError::NotLive { path: path.clone() });
        }
    }
    for checkpoint in &commit.checkpoints {
        for (&shard, &next_seq) in &checkpoint.positions {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT next_seq FROM checkpoints WHERE consumer = ?1 AND shard = ?2",
                    params![checkpoint.consumer, i64::from(shard)],
                    |row| row.get(0),
                )
                .optional()
                .map_err(err)?;
            if let Some(current) = current.map(from_sql_int)
                && next_seq < current
            {
                return Err(CatalogError::CheckpointRegression {
                    consumer: checkpoint.consumer.clone(),
                    shard,
                    from: current,
                    to: next_seq,
                });
            }
            tx.execute(
                "INSERT INTO checkpoints (consumer, shard, next_seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (consumer, shard) DO UPDATE SET next_seq = excluded.next_seq",
                params![checkpoint.consumer, i64::from(shard), to_sql_int(next_seq)],
            )
            .map_err(err)?;
        }
    }
    Ok(commit_id)
}

fn read_file_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(DataFileRow, String)> {
    Ok((
        DataFileRow {
            table: row.get(0)?,
            path: row.get(1)?,
            rows: row.get(3)?,
            bytes: row.get(4)?,
            min_ts: row.get(5)?,
            max_ts: row.get(6)?,
            min_tenant: row.get(7)?,
            max_tenant: row.get(8)?,
            schema_version: row.get(9)?,
        },
        row.get(2)?,
    ))
}

struct DataFileRow {
    table: String,
    path: String,
    rows: i64,
    bytes: i64,
    min_ts: i64,
    max_ts: i64,
    min_tenant: String,
    max_tenant: String,
    schema_version: i64,
}

impl DataFileRow {
    fn into_file(self, partition: &str) -> Result<DataFile, CatalogError> {
        let partition: Partition = serde_json::from_str(partition)
            .map_err(|e| corrupt(format!("files.{}.partition", self.path), e))?;
        Ok(DataFile {
            table: self.table,
            path: self.path,
            partition,
            rows: from_sql_int(self.rows),
            bytes: from_sql_int(self.bytes),
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            min_tenant: self.min_tenant,
            max_tenant: self.max_tenant,
            schema_version: u32::try_from(self.schema_version).unwrap_or(0),
        })
    }
}

fn parse_kind(text: &str) -> Result<CommitKind, CatalogError> {
    Ok(match text {
        "flush" => CommitKind::Flush,
        "compaction" => CommitKind::Compaction,
        "retention" => CommitKind::Retention,
        "replay" => CommitKind::Replay,
        other => return Err(corrupt("commits.kind", format!("unknown kind {other:?}"))),
    })
}

#[async_trait]
impl Catalog for EmbeddedCatalog {
    async fn event_schemas(&self) -> Result<Vec<EventSchema>, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let rows: Vec<(String, i64, String, bool, i64)> = connection
                .prepare(
                    "SELECT event_type, version, schema, forced, created_at FROM event_schemas \
                     ORDER BY event_type, version",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| {
                            Ok((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                            ))
                        })?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            rows.into_iter()
                .map(|(event_type, version, schema, forced, created_at)| {
                    Ok(EventSchema {
                        schema: serde_json::from_str(&schema).map_err(|e| {
                            corrupt(format!("event_schemas.{event_type}.{version}"), e)
                        })?,
                        event_type,
                        version: u32::try_from(version).unwrap_or(0),
                        forced,
                        created_at,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_event_schema(&self, schema: EventSchema) -> Result<(), CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            let newest: Option<i64> = tx
                .query_row(
                    "SELECT max(version) FROM event_schemas WHERE event_type = ?1",
                    params![schema.event_type],
                    |row| row.get(0),
                )
                .map_err(&err)?;
            if newest.unwrap_or(0) + 1 != i64::from(schema.version) {
                return Err(CatalogError::SchemaVersionTaken {
                    event_type: schema.event_type,
                    version: schema.version,
                });
            }
            tx.execute(
                "INSERT INTO event_schemas (event_type, version, schema, forced, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    schema.event_type,
                    schema.version,
                    schema.schema.to_string(),
                    schema.forced,
                    schema.created_at
                ],
            )
            .map_err(&err)?;
            tx.commit().map_err(&err)
        })
        .await
    }

    async fn ensure_table(&self, def: TableDef) -> Result<TableInfo, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            ensure_table_in(&tx, &def, &err)?;
            let info = read_table(&tx, &def.name, &err)?
                .ok_or_else(|| CatalogError::UnknownTable(def.name.clone()))?;
            tx.commit().map_err(&err)?;
            Ok(info)
        })
        .await
    }

    async fn table(&self, name: &str) -> Result<Option<TableInfo>, CatalogError> {
        let err = self.store_error();
        let name = name.to_string();
        self.run(move |connection| read_table(connection, &name, &err))
            .await
    }

    async fn tables(&self) -> Result<Vec<TableInfo>, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let names: Vec<String> = connection
                .prepare("SELECT name FROM tables ORDER BY name")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| row.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            let mut tables = Vec::with_capacity(names.len());
            for name in names {
                if let Some(table) = read_table(connection, &name, &err)? {
                    tables.push(table);
                }
            }
            Ok(tables)
        })
        .await
    }

    async fn schema_versions(&self, table: &str) -> Result<Vec<SchemaVersion>, CatalogError> {
        let err = self.store_error();
        let table = table.to_string();
        self.run(move |connection| {
            let rows: Vec<(i64, String, i64)> = connection
                .prepare(
                    "SELECT version, schema, created_at FROM schema_versions \
                     WHERE table_name = ?1 ORDER BY version",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![table], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            rows.into_iter()
                .map(|(version, schema, created_at)| {
                    Ok(SchemaVersion {
                        version: u32::try_from(version).unwrap_or(0),
                        schema: serde_json::from_str(&schema)
                            .map_err(|e| corrupt(format!("schema_versions.{table}"), e))?,
                        created_at,
                    })
                })
                .collect()
        })
        .await
    }

    async fn stage(&self, table: &str, paths: &[String]) -> Result<(), CatalogError> {
        let err = self.store_error();
        let table = table.to_string();
        let paths = paths.to_vec();
        self.run(move |connection| {
            let now = now_micros();
            let tx = connection.transaction().map_err(&err)?;
            for path in &paths {
                tx.execute(
                    "INSERT INTO files (path, table_name, state, staged_at) VALUES (?1, ?2, ?3, ?4)",
                    params![path, table, STAGED, now],
                )
                .map_err(&err)?;
            }
            tx.commit().map_err(&err)
        })
        .await
    }

    async fn commit(&self, commit: Commit) -> Result<i64, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            // Dropping the transaction on an error rolls every statement back.
            let id = apply_commit(&tx, &commit, &err)?;
            tx.commit().map_err(&err)?;
            Ok(id)
        })
        .await
    }

    async fn staged(&self) -> Result<Vec<StagedFile>, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            connection
                .prepare(
                    "SELECT table_name, path, staged_at FROM files WHERE state = ?1 \
                     ORDER BY staged_at, path",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![STAGED], |row| {
                            Ok(StagedFile {
                                table: row.get(0)?,
                                path: row.get(1)?,
                                staged_at: row.get(2)?,
                            })
                        })?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)
        })
        .await
    }

    async fn forget_staged(&self, paths: &[String]) -> Result<(), CatalogError> {
        let err = self.store_error();
        let paths = paths.to_vec();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            for path in &paths {
                tx.execute(
                    "DELETE FROM files WHERE path = ?1 AND state = ?2",
                    params![path, STAGED],
                )
                .map_err(&err)?;
            }
            tx.commit().map_err(&err)
        })
        .await
    }

    async fn snapshot(
        &self,
        table: &str,
        ts_from: Option<i64>,
        ts_until: Option<i64>,
    ) -> Result<Snapshot, CatalogError> {
        let err = self.store_error();
        let table = table.to_string();
        self.run(move |connection| {
            // One read transaction: the files and the commit id belong to the same instant.
            let tx = connection.transaction().map_err(&err)?;
            let info =
                read_table(&tx, &table, &err)?.ok_or(CatalogError::UnknownTable(table.clone()))?;
            let commit_id: i64 = tx
                .query_row("SELECT COALESCE(MAX(id), 0) FROM commits", [], |row| {
                    row.get(0)
                })
                .map_err(&err)?;
            let rows: Vec<(DataFileRow, String)> = tx
                .prepare(
                    "SELECT table_name, path, partition, rows, bytes, min_ts, max_ts, \
                            min_tenant, max_tenant, schema_version \
                     FROM files WHERE table_name = ?1 AND state = ?2 \
                       AND max_ts >= ?3 AND min_ts <= ?4 \
                     ORDER BY partition_key, min_ts, path",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(
                            params![
                                table,
                                LIVE,
                                ts_from.unwrap_or(i64::MIN),
                                ts_until.unwrap_or(i64::MAX)
                            ],
                            read_file_row,
                        )?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
            let files = rows
                .into_iter()
                .map(|(row, partition)| row.into_file(&partition))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Snapshot {
                commit_id,
                table: info,
                files,
            })
        })
        .await
    }

    async fn partitions(&self, table: &str) -> Result<Vec<PartitionInfo>, CatalogError> {
        let err = self.store_error();
        let table = table.to_string();
        self.run(move |connection| {
            let rows: Vec<(String, i64, i64, i64, i64, i64)> = connection
                .prepare(
                    "SELECT partition, COUNT(*), SUM(rows), SUM(bytes), MIN(min_ts), MAX(max_ts) \
                     FROM files WHERE table_name = ?1 AND state = ?2 \
                     GROUP BY partition_key ORDER BY partition_key",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![table, LIVE], |row| {
                            Ok((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                                row.get(5)?,
                            ))
                        })?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            rows.into_iter()
                .map(|(partition, files, rows, bytes, min_ts, max_ts)| {
                    Ok(PartitionInfo {
                        partition: serde_json::from_str(&partition)
                            .map_err(|e| corrupt(format!("partition of {table}"), e))?,
                        files: from_sql_int(files),
                        rows: from_sql_int(rows),
                        bytes: from_sql_int(bytes),
                        min_ts,
                        max_ts,
                    })
                })
                .collect()
        })
        .await
    }

    async fn removed_before(&self, cutoff: i64) -> Result<Vec<String>, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            connection
                .prepare(
                    "SELECT path FROM files WHERE state = ?1 AND removed_at < ?2 ORDER BY path",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![REMOVED, cutoff], |row| row.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)
        })
        .await
    }

    async fn purge_removed(&self, paths: &[String]) -> Result<(), CatalogError> {
        let err = self.store_error();
        let paths = paths.to_vec();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            for path in &paths {
                tx.execute(
                    "DELETE FROM files WHERE path = ?1 AND state = ?2",
                    params![path, REMOVED],
                )
                .map_err(&err)?;
            }
            tx.commit().map_err(&err)
        })
        .await
    }

    async fn checkpoint(&self, consumer: &str) -> Result<ConsumerCheckpoint, CatalogError> {
        let err = self.store_error();
        let consumer = consumer.to_string();
        self.run(move |connection| {
            let rows: Vec<(i64, i64)> = connection
                .prepare("SELECT shard, next_seq FROM checkpoints WHERE consumer = ?1")
                .and_then(|mut statement| {
                    statement
                        .query_map(params![consumer], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            let positions = rows
                .into_iter()
                .map(|(shard, next)| (u32::try_from(shard).unwrap_or(0), from_sql_int(next)))
                .collect();
            Ok(ConsumerCheckpoint {
                consumer,
                positions,
            })
        })
        .await
    }

    async fn init_checkpoint(
        &self,
        checkpoint: ConsumerCheckpoint,
    ) -> Result<ConsumerCheckpoint, CatalogError> {
        let err = self.store_error();
        let consumer = checkpoint.consumer.clone();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            for (&shard, &next_seq) in &checkpoint.positions {
                tx.execute(
                    "INSERT INTO checkpoints (consumer, shard, next_seq) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (consumer, shard) DO NOTHING",
                    params![checkpoint.consumer, i64::from(shard), to_sql_int(next_seq)],
                )
                .map_err(&err)?;
            }
            tx.commit().map_err(&err)
        })
        .await?;
        self.checkpoint(&consumer).await
    }

    async fn reset_checkpoint(&self, checkpoint: ConsumerCheckpoint) -> Result<(), CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let tx = connection.transaction().map_err(&err)?;
            tx.execute(
                "DELETE FROM checkpoints WHERE consumer = ?1",
                params![checkpoint.consumer],
            )
            .map_err(&err)?;
            for (&shard, &next_seq) in &checkpoint.positions {
                tx.execute(
                    "INSERT INTO checkpoints (consumer, shard, next_seq) VALUES (?1, ?2, ?3)",
                    params![checkpoint.consumer, i64::from(shard), to_sql_int(next_seq)],
                )
                .map_err(&err)?;
            }
            tx.commit().map_err(&err)
        })
        .await
    }

    async fn commits(&self, limit: usize) -> Result<Vec<CommitRecord>, CatalogError> {
        let err = self.store_error();
        self.run(move |connection| {
            let rows: Vec<(i64, String, i64, i64, i64, i64)> = connection
                .prepare(
                    "SELECT id, kind, at, added, removed, rows_added FROM commits \
                     ORDER BY id DESC LIMIT ?1",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![to_sql_int(limit as u64)], |row| {
                            Ok((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                                row.get(5)?,
                            ))
                        })?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(&err)?;
            rows.into_iter()
                .map(|(id, kind, at, added, removed, rows_added)| {
                    Ok(CommitRecord {
                        id,
                        kind: parse_kind(&kind)?,
                        at,
                        added: from_sql_int(added),
                        removed: from_sql_int(removed),
                        rows_added: from_sql_int(rows_added),
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_def() -> TableDef {
        TableDef {
            name: "events".into(),
            location: "curated/events".into(),
            partition_columns: vec!["dt".into(), "event_family".into()],
            time_column: "ts".into(),
            tenant_column: "tenant_id".into(),
            schema: serde_json::json!([{"name": "event_id", "type": "utf8"}]),
            retention_days: None,
        }
    }

    fn file(path: &str, dt: &str, min_ts: i64, max_ts: i64) -> DataFile {
        DataFile {
            table: "events".into(),
            path: path.into(),
            partition: vec![
                ("dt".into(), dt.into()),
                ("event_family".into(), "page".into()),
            ],
            rows: 10,
            bytes: 1000,
            min_ts,
            max_ts,
            min_tenant: "acme".into(),
            max_tenant: "zeta".into(),
            schema_version: 1,
        }
    }

    #[tokio::test]
    async fn event_schema_versions_are_sequential_and_survive_reopening() {
        let (dir, catalog) = catalog();
        let schema = |version| EventSchema {
            event_type: "track:Order Completed".into(),
            version,
            schema: serde_json::json!({"required": ["order_id"]}),
            forced: false,
            created_at: 1,
        };
        catalog.add_event_schema(schema(1)).await.unwrap();
        // A writer that read version 0 as the newest loses the race and records nothing.
        let taken = catalog.add_event_schema(schema(1)).await.unwrap_err();
        assert!(matches!(
            taken,
            CatalogError::SchemaVersionTaken { version: 1, .. }
        ));
        assert!(catalog.add_event_schema(schema(3)).await.is_err());
        catalog.add_event_schema(schema(2)).await.unwrap();
        drop(catalog);
        let reopened = EmbeddedCatalog::open(dir.path().join("catalog.db")).unwrap();
        let versions: Vec<u32> = reopened
            .event_schemas()
            .await
            .unwrap()
            .iter()
            .map(|s| s.version)
            .collect();
        assert_eq!(versions, vec![1, 2]);
    }

    fn catalog() -> (tempfile::TempDir, EmbeddedCatalog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = EmbeddedCatalog::open(dir.path().join("catalog.db")).unwrap();
        (dir, catalog)
    }

    fn flush(files: Vec<DataFile>, positions: &[(u32, u64)]) -> Commit {
        Commit {
            kind: CommitKind::Flush,
            added: files,
            removed: vec![],
            checkpoints: vec![ConsumerCheckpoint {
                consumer: "lake".into(),
                positions: positions.iter().copied().collect(),
            }],
        }
    }

    #[tokio::test]
    async fn a_changed_schema_is_a_new_version() {
        let (_dir, catalog) = catalog();
        assert_eq!(
            catalog
                .ensure_table(events_def())
                .await
                .unwrap()
                .schema_version,
            1
        );
        assert_eq!(
            catalog
                .ensure_table(events_def())
                .await
                .unwrap()
                .schema_version,
            1
        );
        let mut changed = events_def();
        changed.schema = serde_json::json!([{"name": "event_id"}, {"name": "revenue"}]);
        let info = catalog.ensure_table(changed.clone()).await.unwrap();
        assert_eq!(info.schema_version, 2);
        assert_eq!(info.def.schema, changed.schema);
        let versions = catalog.schema_versions("events").await.unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[tokio::test]
    async fn files_go_live_with_their_checkpoint() {
        let (_dir, catalog) = catalog();
        catalog.ensure_table(events_def()).await.unwrap();
        catalog
            .stage("events", &["a.parquet".into()])
            .await
            .unwrap();
        assert_eq!(catalog.staged().await.unwrap().len(), 1);
        assert!(
            catalog
                .snapshot("events", None, None)
                .await
                .unwrap()
                .files
                .is_empty()
        );

        let id = catalog
            .commit(flush(
                vec![file("a.parquet", "2026-11-23", 10, 20)],
                &[(0, 5), (1, 7)],
            ))
            .await
            .unwrap();
        let snapshot = catalog.snapshot("events", None, None).await.unwrap();
        assert_eq!(snapshot.commit_id, id);
        assert_eq!(
            snapshot.files,
            vec![file("a.parquet", "2026-11-23", 10, 20)]
        );
        assert!(catalog.staged().await.unwrap().is_empty());
        let checkpoint = catalog.checkpoint("lake").await.unwrap();
        assert_eq!(checkpoint.positions.get(&1), Some(&7));
    }

    #[tokio::test]
    async fn a_failed_commit_changes_nothing() {
        let (_dir, catalog) = catalog();
        catalog.ensure_table(events_def()).await.unwrap();
        catalog
            .stage("events", &["a.parquet".into()])
            .await
            .unwrap();
        // b was never staged: the whole commit, a and the checkpoint included, is refused.
        let error = catalog
            .commit(flush(
                vec![file("a.parquet", "d", 1, 2), file("b.parquet", "d", 1, 2)],
                &[(0, 9)],
            ))
            .await
            .unwrap_err();
        assert!(matches!(error, CatalogError::NotStaged { ref path } if path == "b.parquet"));
        assert!(
            catalog
                .snapshot("events", None, None)
                .await
                .unwrap()
                .files
                .is_empty()
        );
        assert!(
            catalog
                .checkpoint("lake")
                .await
                .unwrap()
                .positions
                .is_empty()
        );
        assert_eq!(catalog.staged().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_checkpoint_never_moves_back_in_a_commit() {
        let (_dir, catalog) = catalog();
        catalog.ensure_table(events_def()).await.unwrap();
        catalog.commit(flush(vec![], &[(0, 10)])).await.unwrap();
        let error = catalog.commit(flush(vec![], &[(0, 9)])).await.unwrap_err();
        assert!(matches!(
            error,
            CatalogError::CheckpointRegression {
                from: 10,
                to: 9,
                ..
            }
        ));
        catalog
            .reset_checkpoint(ConsumerCheckpoint {
                consumer: "lake".into(),
                positions: [(0, 3)].into_iter().collect(),
            })
            .await
            .unwrap();
        assert_eq!(catalog.checkpoint("lake").await.unwrap().positions[&0], 3);
    }

    #[tokio::test]
    async fn init_checkpoint_fills_only_missing_shards() {
        let (_dir, catalog) = catalog();
        catalog.ensure_table(events_def()).await.unwrap();
        catalog.commit(flush(vec![], &[(0, 10)])).await.unwrap();
        let checkpoint = |positions: &[(u32, u64)]| ConsumerCheckpoint {
            consumer: "lake".into(),
            positions: positions.iter().copied().collect(),
        };
        // Shard 0 keeps its 10 (not the 2 offered); shard 1 had none and takes 5.
        let now = catalog
            .init_checkpoint(checkpoint(&[(0, 2), (1, 5)]))
            .await
            .unwrap();
        assert_eq!(now, checkpoint(&[(0, 10), (1, 5)]));
        // A second start offering other positions changes nothing.
        let again = catalog
            .init_checkpoint(checkpoint(&[(0, 7), (1, 9)]))
            .await
            .unwrap();
        assert_eq!(again, now);
    }

    #[tokio::test]
    async fn compaction_swaps_files_atomically_and_detects_conflicts() {
        let (_dir, catalog) = catalog();
        catalog.ensure_table(events_def()).await.unwrap();
        catalog
            .stage("events", &["a".into(), "b".into()])
            .await
            .unwrap();
        catalog
            .commit(flush(
                vec![file("a", "d", 1, 5), file("b", "d", 6, 9)],
                &[(0, 2)],
            ))
            .await
            .unwrap();
        catalog.stage("events", &["ab".into()]).await.unwrap();
        let swap = Commit {
            kind: CommitKind::Compaction,
            added: vec![file("ab", "d", 1, 9)],
            removed: vec!["a".into(), "b".into()],
            checkpoints: Vec::new(),
        };
        catalog.commit(swap.clone()).await.unwrap();
        let live: Vec<String> = catalog
            .snapshot("events", None, None)
            .await
            .unwrap()
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(live, vec!["ab".to_string()]);
        // The same inputs cannot be removed twice.
        catalog.stage("events", &["ab2".into()]).await.unwrap();
        let mut again = swap;
        again.added = vec![file("ab2", "d", 1, 9)];
        assert!(matches!(
            catalog.commit(again).await.unwrap_err(),
            CatalogError::NotLive { .. }
        ));
        // Removed files are listed for deletion after the grace period, then purged.
        let removed = catalog.removed_before(i64::MAX).await.unwrap();
        assert_eq!(removed, vec!["a".to_string(), "b".to_string()]);
        catalog.purge_removed(&removed).await.unwrap();
        assert!(catalog.removed_before(i64::MAX).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn snapshots_prune_by_time_and_partitions_summarize() {
        let (_dir, catalog) = catalog();
        catalog.ensure_table(events_def()).await.unwrap();
        catalog
            .stage("events", &["a".into(), "b".into(), "c".into()])
            .await
            .unwrap();
        catalog
            .commit(flush(
                vec![
                    file("a", "2026-11-22", 0, 99),
                    file("b", "2026-11-23", 100, 199),
                    file("c", "2026-11-23", 200, 299),
                ],
                &[],
            ))
            .await
            .unwrap();
        let hit = catalog
            .snapshot("events", Some(150), Some(210))
            .await
            .unwrap();
        assert_eq!(
            hit.files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        let partitions = catalog.partitions("events").await.unwrap();
        assert_eq!(partitions.len(), 2);
        assert_eq!(partitions[1].files, 2);
        assert_eq!(partitions[1].rows, 20);
        assert_eq!(partitions[1].min_ts, 100);
        assert_eq!(catalog.commits(10).await.unwrap()[0].rows_added, 30);
    }

    #[tokio::test]
    async fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        {
            let catalog = EmbeddedCatalog::open(&path).unwrap();
            catalog.ensure_table(events_def()).await.unwrap();
            catalog
                .stage("events", &["a".into(), "orphan".into()])
                .await
                .unwrap();
            catalog
                .commit(flush(vec![file("a", "d", 1, 2)], &[(3, 4)]))
                .await
                .unwrap();
        }
        let catalog = EmbeddedCatalog::open(&path).unwrap();
        assert_eq!(
            catalog
                .snapshot("events", None, None)
                .await
                .unwrap()
                .files
                .len(),
            1
        );
        assert_eq!(catalog.checkpoint("lake").await.unwrap().positions[&3], 4);
        let staged = catalog.staged().await.unwrap();
        assert_eq!(staged.len(), 1);
        assert_eq!(staged[0].path, "orphan");
        catalog.forget_staged(&["orphan".into()]).await.unwrap();
        assert!(catalog.staged().await.unwrap().is_empty());
        assert!(matches!(
            catalog.snapshot("nope", None, None).await.unwrap_err(),
            CatalogError::UnknownTable(_)
        ));
    }
}
