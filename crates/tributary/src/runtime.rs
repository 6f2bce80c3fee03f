//! The tokio runtimes the commands run on.
//!
//! Commands that only inspect the stream need a runtime just to call the async `Stream` trait,
//! while `serve` runs producers, consumers and the stream's own work side by side. Both are
//! multi-threaded: a backend may use `block_in_place`, which a current-thread runtime refuses.

use anyhow::{Context, Result};
use tokio::runtime::{Builder, Runtime};

/// A runtime with `workers` worker threads (at least one), timers and I/O enabled.
pub fn build(workers: usize) -> Result<Runtime> {
    build_named(workers, "tributary-worker")
}

/// [`build`] with threads named `name`, so that per-thread CPU figures (`top -H`, `bench
/// ingest`) tell two runtimes of one process apart.
pub fn build_named(workers: usize, name: &str) -> Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Worker threads for a long-running server: one per core.
pub fn server_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
