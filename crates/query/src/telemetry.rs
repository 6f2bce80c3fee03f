//! The query API's metrics: every name in one place, emitted once per request.

/// Requests answered, by `status`.
pub const REQUESTS: &str = "tributary_query_requests_total";
/// From receiving a request to having its answer encoded.
pub const DURATION: &str = "tributary_query_duration_seconds";
/// Rows answered.
pub const ROWS: &str = "tributary_query_rows_total";
/// Files read by answered queries (after pruning).
pub const FILES_SCANNED: &str = "tributary_query_files_scanned_total";
