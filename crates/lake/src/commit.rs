//! The lake's commit protocol: how files become live without ever being half there or there
//! twice.
//!
//! ```text
//! 1. stage      catalog records the new paths as staged (durable)      crash → recovery deletes them
//! 2. upload     objects are written at their final paths                crash → recovery deletes them
//! 3. commit     one catalog transaction: new files live, replaced files  crash before → as above;
//!               removed, the consumer's checkpoint moved past the events  after → done
//! 4. (later)    replaced files are deleted after the grace period
//! ```
//!
//! Queries list live files from the catalog, so they see all of a commit or none of it. A crash
//! before step 3 leaves staged objects that no query reads and that [`recover`] deletes on the
//! next start; the checkpoint did not move, so their events are written again. A crash after
//! step 3 loses nothing: the checkpoint moved with the files. Neither a missing nor a
//! duplicated event results. Object stores write each object atomically (local disk: a temp
//! file renamed into place; S3: a PUT or a completed multipart upload), so a reader never
//! finds a partial file at a final path.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tributary_catalog::{
    Catalog, Commit, CommitKind, ConsumerCheckpoint, DataFile, Partition, TableInfo,
};

use crate::buffer::RowStats;
use crate::layout::new_file_path;

use crate::error::LakeError;
use crate::fault::crash_point;

/// A new file: its catalog record and its bytes.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// What the catalog will record (path included).
    pub record: DataFile,
    /// The encoded Parquet file.
    pub contents: Bytes,
}

/// A new file of `table` in `partition`, with the catalog record its rows' `stats` give.
pub fn new_file(
    table: &TableInfo,
    partition: Partition,
    stats: RowStats,
    contents: bytes::Bytes,
    now: i64,
) -> NewFile {
    new_file_versioned(table, table.schema_version, partition, stats, contents, now)
}

/// Like [`new_file`], for a file written with an older schema version of its table (a
/// rewritten file keeps the columns it had).
pub fn new_file_versioned(
    table: &TableInfo,
    schema_version: u32,
    partition: Partition,
    stats: RowStats,
    contents: bytes::Bytes,
    now: i64,
) -> NewFile {
    NewFile {
        record: DataFile {
            table: table.def.name.clone(),
            path: new_file_path(&table.def.location, &partition, now),
            partition,
            rows: stats.rows,
            bytes: contents.len() as u64,
            min_ts: stats.min_ts,
            max_ts: stats.max_ts,
            min_tenant: stats.min_tenant,
            max_tenant: stats.max_tenant,
            schema_version,
        },
        contents,
    }
}

/// Stages, uploads and commits `files` (removing `removed` and moving `checkpoint` in the same
/// commit). `point` prefixes the crash points (`flush`, `compaction`). Returns the commit id.
pub async fn publish(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    kind: CommitKind,
    point: &str,
    files: Vec<NewFile>,
    removed: Vec<String>,
    checkpoints: Vec<ConsumerCheckpoint>,
) -> Result<i64, LakeError> {
    let mut pending = PendingCommit::new(catalog, store, point);
    pending.add(files).await?;
    pending.commit(kind, removed, checkpoints).await
}

/// A commit built up in steps: files are staged and uploaded as they are ready (so a long
/// replay holds one file in memory, not all of them) and go live together at [`Self::commit`].
///
/// Any failure takes back everything staged so far before it returns (and if that fails too,
/// the files stay staged and [`recover`] deletes them on the next start), so a caller just
/// returns the error.
pub struct PendingCommit<'a> {
    catalog: &'a dyn Catalog,
    store: &'a Arc<dyn ObjectStore>,
    point: String,
    added: Vec<DataFile>,
}

impl<'a> PendingCommit<'a> {
    /// An empty commit into `catalog` and `store`; `point` prefixes its crash points.
    pub fn new(
        catalog: &'a dyn Catalog,
        store: &'a Arc<dyn ObjectStore>,
        point: &str,
    ) -> PendingCommit<'a> {
        PendingCommit {
            catalog,
            store,
            point: point.to_string(),
            added: Vec::new(),
        }
    }

    /// Files added so far.
    pub fn added(&self) -> &[DataFile] {
        &self.added
    }

    /// Stages `files` (one catalog transaction per table) and uploads them.
    pub async fn add(&mut self, files: Vec<NewFile>) -> Result<(), LakeError> {
        if files.is_empty() {
            return Ok(());
        }
        let result = self.stage_and_upload(&files).await;
        if let Err(error) = result {
            self.abandon(&files).await;
            return Err(error);
        }
        self.added.extend(files.into_iter().map(|file| file.record));
        Ok(())
    }

    async fn stage_and_upload(&self, files: &[NewFile]) -> Result<(), LakeError> {
        let mut by_table: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for file in files {
            by_table
                .entry(file.record.table.as_str())
                .or_default()
                .push(file.record.path.clone());
        }
        for (table, paths) in &by_table {
            self.catalog.stage(table, paths).await?;
        }
        crash_point(&format!("{}.after_stage", self.point));
        for file in files {
            upload(self.store, &file.record.path, file.contents.clone()).await?;
        }
        Ok(())
    }

    /// Makes every added file live, `removed` not live, and moves `checkpoints`, in one
    /// catalog transaction. Returns the commit id.
    pub async fn commit(
        mut self,
        kind: CommitKind,
        removed: Vec<String>,
        checkpoints: Vec<ConsumerCheckpoint>,
    ) -> Result<i64, LakeError> {
        crash_point(&format!("{}.after_upload", self.point));
        let added = std::mem::take(&mut self.added);
        let paths: Vec<String> = added.iter().map(|file| file.path.clone()).collect();
        let commit = Commit {
            kind,
            added,
            removed,
            checkpoints,
        };
        match self.catalog.commit(commit).await {
            Ok(id) => {
                crash_point(&format!("{}.after_commit", self.point));
                Ok(id)
            }
            Err(error) => {
                self.forget(&paths).await;
                Err(error.into())
            }
        }
    }

    /// Gives the commit up: takes back every file added so far.
    pub async fn abort(mut self) {
        self.abandon(&[]).await;
    }

    /// Takes back the uploads of a failed step and of every step before it.
    async fn abandon(&mut self, failed: &[NewFile]) {
        let mut paths: Vec<String> = self.added.drain(..).map(|file| file.path).collect();
        paths.extend(failed.iter().map(|file| file.record.path.clone()));
        self.forget(&paths).await;
    }

    async fn forget(&self, paths: &[String]) {
        // Nothing went live: take the uploads back now rather than at the next start. If this
        // fails too, they stay staged and [`recover`] deletes them.
        if delete_objects(self.store, paths).await.is_ok() {
            let _ = self.catalog.forget_staged(paths).await;
        }
    }
}

/// Writes one object.
pub async fn upload(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    contents: Bytes,
) -> Result<(), LakeError> {
    store
        .put(&Path::from(path), PutPayload::from_bytes(contents))
        .await
        .map(|_| ())
        .map_err(|source| LakeError::ObjectStore {
            path: path.to_string(),
            source,
        })
}

/// Deletes objects, treating one already gone as deleted.
pub async fn delete_objects(
    store: &Arc<dyn ObjectStore>,
    paths: &[String],
) -> Result<(), LakeError> {
    for path in paths {
        match store.delete(&Path::from(path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(LakeError::ObjectStore {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// What [`recover`] cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recovery {
    /// Staged files of interrupted commits, deleted.
    pub abandoned: Vec<String>,
}

/// Deletes the files of commits a crash interrupted (staged, never committed). Run before any
/// writer of the lake starts.
pub async fn recover(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
) -> Result<Recovery, LakeError> {
    let staged: Vec<String> = catalog
        .staged()
        .await?
        .into_iter()
        .map(|f| f.path)
        .collect();
    if !staged.is_empty() {
        delete_objects(store, &staged).await?;
        catalog.forget_staged(&staged).await?;
        tracing::warn!(
            files = staged.len(),
            "deleted the files of interrupted lake commits; their events are written again"
        );
    }
    Ok(Recovery { abandoned: staged })
}
