//! The backend-neutral stream suite (`common/stream_suite.rs`) run against the embedded log.
//! The Kafka backend instantiates the same suite with its own constructor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tempfile::TempDir;
use tributary_stream::EmbeddedLog;

/// A fresh embedded log in a temp dir: 4 shards, small segments so the suite crosses them.
async fn embedded() -> (TempDir, EmbeddedLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), common::config(4, 4096)).unwrap();
    (dir, log)
}

common::stream_suite::stream_suite!(embedded);
