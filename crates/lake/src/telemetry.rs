//! Metric names of the lake, exported at `/metrics` (docs/operations.md lists them).

/// Counter: flushes, by `trigger` (`interval`, `size`, `shutdown`).
pub const FLUSHES: &str = "tributary_lake_flushes_total";
/// Histogram: seconds a flush took (encode, upload, commit).
pub const FLUSH_SECONDS: &str = "tributary_lake_flush_seconds";
/// Counter: stream records committed to the lake.
pub const EVENTS_COMMITTED: &str = "tributary_lake_events_total";
/// Counter: files written, by `table`.
pub const FILES_WRITTEN: &str = "tributary_lake_files_written_total";
/// Counter: rows written, by `table`.
pub const ROWS_WRITTEN: &str = "tributary_lake_rows_written_total";
/// Counter: bytes of files written, by `table`.
pub const BYTES_WRITTEN: &str = "tributary_lake_bytes_written_total";
/// Gauge: bytes of events buffered, not yet written.
pub const BUFFERED_BYTES: &str = "tributary_lake_buffered_bytes";
/// Gauge: age of the oldest event of the last flush when it became queryable, in seconds.
pub const FRESHNESS_SECONDS: &str = "tributary_lake_freshness_seconds";
/// Counter: stream records that are not events (archived raw only).
pub const UNDECODABLE: &str = "tributary_lake_undecodable_total";
/// Counter: records stream retention deleted before the lake wrote them.
pub const EXPIRED_SKIPPED: &str = "tributary_lake_expired_skipped_total";
/// Counter: writer restarts after an error, by `task` (`writer`, `maintenance`).
pub const ERRORS: &str = "tributary_lake_errors_total";
/// Counter: compactions committed, by `table`.
pub const COMPACTIONS: &str = "tributary_lake_compactions_total";
/// Counter: small files replaced by compaction, by `table`.
pub const COMPACTED_FILES: &str = "tributary_lake_compacted_files_total";
/// Counter: partitions dropped by retention, by `table`.
pub const PARTITIONS_DROPPED: &str = "tributary_lake_partitions_dropped_total";
/// Counter: replaced or dropped files deleted after the grace period.
pub const FILES_DELETED: &str = "tributary_lake_files_deleted_total";
