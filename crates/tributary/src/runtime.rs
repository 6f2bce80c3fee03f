//! The tokio runtimes the commands run on.
//!
//! Commands that only inspect the stream need a runtime just to call the async `Stream` trait,
//! while `serve` runs producers, consumers and the stream's own work side by side. Both are
//! multi-threaded: a backend may use `block_in_place`, which a current-thread runtime refuses.

use anyhow::{Context, Result};
use tokio::runtime::{Builder, Runtime};

/// The stack of each worker thread.
const WORKER_STACK_BYTES: usize = 8 << 20;

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
        // SQL planning recurses once per level of a nested expression, with frames of about a
        // kilobyte; the query crate caps the nesting (`complexity.rs`) well inside 8 MiB, where
        // tokio's 2 MiB default left little margin. Untouched stack costs no memory.
        .thread_stack_size(WORKER_STACK_BYTES)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Worker threads for a long-running server: one per core.
pub fn server_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
