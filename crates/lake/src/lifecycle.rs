//! Lifecycle: partitions older than a table's retention are dropped, and files that stopped
//! being live (compaction inputs, dropped partitions) are deleted once the grace period has
//! passed — late enough that a query which listed them before the swap has finished.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tokio::sync::watch;
use tributary_catalog::{Catalog, Commit, CommitKind, TableInfo};
use tributary_model::now_micros;

use crate::commit::delete_objects;
use crate::compaction::{CompactionSummary, compact_table};
use crate::config::LakeConfig;
use crate::error::LakeError;
use crate::fault::crash_point;
use crate::layout::{day_of, parse_day};
use crate::telemetry;

/// What one retention pass dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionSummary {
    /// Partitions dropped.
    pub partitions: usize,
    /// Files that stopped being live.
    pub files: usize,
}

/// Drops the partitions of `table` whose `dt` is more than its retention's days before today
/// (UTC), in one commit. A table without retention is left alone.
pub async fn apply_retention(
    catalog: &dyn Catalog,
    table: &TableInfo,
    now: i64,
) -> Result<RetentionSummary, LakeError> {
    let Some(days) = table.def.retention_days else {
        return Ok(RetentionSummary::default());
    };
    let oldest_kept = day_of(now) - i64::from(days) + 1;
    let snapshot = catalog.snapshot(&table.def.name, None, None).await?;
    let mut partitions = std::collections::BTreeSet::new();
    let mut removed = Vec::new();
    for file in &snapshot.files {
        let Some(day) = file.partition_value("dt").and_then(parse_day) else {
            continue;
        };
        if day < oldest_kept {
            partitions.insert(tributary_catalog::partition_path(&file.partition));
            removed.push(file.path.clone());
        }
    }
    if removed.is_empty() {
        return Ok(RetentionSummary::default());
    }
    let summary = RetentionSummary {
        partitions: partitions.len(),
        files: removed.len(),
    };
    catalog
        .commit(Commit {
            kind: CommitKind::Retention,
            added: Vec::new(),
            removed,
            checkpoints: Vec::new(),
        })
        .await?;
    crash_point("retention.after_commit");
    metrics::counter!(telemetry::PARTITIONS_DROPPED, "table" => table.def.name.clone())
        .increment(summary.partitions as u64);
    tracing::info!(
        table = %table.def.name,
        partitions = summary.partitions,
        files = summary.files,
        days,
        "retention dropped partitions"
    );
    Ok(summary)
}

/// Deletes files that stopped being live more than `grace` ago, then forgets them. Returns how
/// many were deleted.
pub async fn delete_replaced(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    grace: Duration,
) -> Result<usize, LakeError> {
    let grace = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
    let paths = catalog
        .removed_before(now_micros().saturating_sub(grace))
        .await?;
    if paths.is_empty() {
        return Ok(0);
    }
    delete_objects(store, &paths).await?;
    catalog.purge_removed(&paths).await?;
    metrics::counter!(telemetry::FILES_DELETED).increment(paths.len() as u64);
    Ok(paths.len())
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceSummary {
    /// Compaction, all tables together.
    pub compaction: CompactionSummary,
    /// Retention, all tables together.
    pub retention: RetentionSummary,
    /// Replaced files deleted.
    pub deleted: usize,
}

/// One pass over every lake table: retention, compaction, deletion of replaced files.
pub async fn maintain(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    tables: &[TableInfo],
    config: &LakeConfig,
    compact: bool,
) -> Result<MaintenanceSummary, LakeError> {
    let mut summary = MaintenanceSummary::default();
    for table in tables {
        let dropped = apply_retention(catalog, table, now_micros()).await?;
        summary.retention.partitions += dropped.partitions;
        summary.retention.files += dropped.files;
        if compact {
            let compacted = compact_table(catalog, store, table, config).await?;
            summary.compaction.files_written += compacted.files_written;
            summary.compaction.files_replaced += compacted.files_replaced;
            summary.compaction.rows += compacted.rows;
        }
    }
    summary.deleted = delete_replaced(catalog, store, config.compaction.delete_grace).await?;
    Ok(summary)
}

/// Runs [`maintain`] every `compaction.interval` until `shutdown` turns true. Errors are logged
/// and counted, and the next pass tries again.
pub async fn run_maintenance(
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    tables: Vec<TableInfo>,
    config: LakeConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.compaction.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        match maintain(
            catalog.as_ref(),
            &store,
            &tables,
            &config,
            config.compaction.enabled,
        )
        .await
        {
            Ok(summary) => {
                if summary.compaction.files_written > 0 || summary.retention.files > 0 {
                    tracing::info!(?summary, "lake maintenance");
                }
            }
            Err(error) => {
                metrics::counter!(telemetry::ERRORS, "task" => "maintenance").increment(1);
                tracing::error!(%error, "lake maintenance failed; retrying next interval");
            }
        }
    }
}
