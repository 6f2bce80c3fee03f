//! Lake errors.

use tributary_catalog::CatalogError;
use tributary_stream::StreamError;

/// Why a lake operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A configuration value is out of bounds (the message names the field).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The catalog refused or failed a step.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Reading the stream failed.
    #[error("reading the stream: {0}")]
    Stream(#[from] StreamError),
    /// The object store failed on a path.
    #[error("object store, {path}: {source}")]
    ObjectStore {
        /// The object's path.
        path: String,
        /// What the store said.
        #[source]
        source: object_store::Error,
    },
    /// Encoding or decoding Parquet failed.
    #[error("parquet, {path}: {source}")]
    Parquet {
        /// The file.
        path: String,
        /// What the codec said.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Building Arrow arrays failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A table the lake needs is missing from the catalog.
    #[error("table {0:?} is not in the catalog")]
    MissingTable(String),
    /// The pipeline failed (its dedup store); bad events are quarantined, not errors.
    #[error(transparent)]
    Pipeline(#[from] tributary_pipeline::PipelineError),
    /// A replay's row predicate could not be evaluated (the message says why).
    #[error("replay predicate: {0}")]
    Predicate(String),
    /// A blocking worker panicked or was cancelled.
    #[error("lake worker stopped: {0}")]
    Worker(String),
}
