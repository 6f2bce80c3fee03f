//! How much of the lake a query read: the figure behind "a one-hour query reads one hour".

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// What the table scans of one query read, counted when the scans were planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    /// Table scans planned (a self-join or a subquery over the same table counts each scan).
    pub scans: u64,
    /// Live files the catalog listed for those scans. When a query filters on the table's time
    /// column the catalog lists only files whose event-time range meets the filter, so this is
    /// already narrower than the table; `Catalog::partitions` gives the table's total.
    pub files_listed: u64,
    /// Files actually read, after pruning by partition values, event time and tenant.
    pub files_scanned: u64,
    /// Bytes of the files read (whole files; Parquet reads fewer when it prunes row groups and
    /// pages).
    pub bytes_scanned: u64,
}

impl ScanStats {
    /// Files listed but not read.
    pub fn files_pruned(&self) -> u64 {
        self.files_listed.saturating_sub(self.files_scanned)
    }
}

/// Shared by the table providers of one query; each scan adds what it planned.
#[derive(Debug, Default)]
pub(crate) struct ScanCounter {
    scans: AtomicU64,
    files_listed: AtomicU64,
    files_scanned: AtomicU64,
    bytes_scanned: AtomicU64,
}

impl ScanCounter {
    /// Records one planned scan.
    pub(crate) fn record(&self, files_listed: u64, files_scanned: u64, bytes_scanned: u64) {
        // Relaxed: the counts are read after planning finished, which happens-after every scan.
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.files_listed.fetch_add(files_listed, Ordering::Relaxed);
        self.files_scanned
            .fetch_add(files_scanned, Ordering::Relaxed);
        self.bytes_scanned
            .fetch_add(bytes_scanned, Ordering::Relaxed);
    }

    /// The totals so far.
    pub(crate) fn snapshot(&self) -> ScanStats {
        ScanStats {
            scans: self.scans.load(Ordering::Relaxed),
            files_listed: self.files_listed.load(Ordering::Relaxed),
            files_scanned: self.files_scanned.load(Ordering::Relaxed),
            bytes_scanned: self.bytes_scanned.load(Ordering::Relaxed),
        }
    }
}
