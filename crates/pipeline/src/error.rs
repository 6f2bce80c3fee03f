//! Pipeline errors.

use crate::enrich::EnrichError;

/// Why a pipeline operation failed. Bad *events* are not errors: they are quarantined (see
/// [`crate::Outcome`]); these are failures of the pipeline's own setup or storage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration value is out of bounds (the message names the field).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Enrichment could not start (e.g. the geography database is unreadable).
    #[error(transparent)]
    Enrich(#[from] EnrichError),
    /// A schema is not a valid JSON Schema (the message says where).
    #[error("schema for {event_type:?} is not a valid JSON Schema: {message}")]
    InvalidSchema {
        /// The event type the schema is for.
        event_type: String,
        /// What the JSON Schema compiler said.
        message: String,
    },
    /// A new schema version would reject events the current one accepts.
    #[error(
        "schema for {event_type:?} version {new_version} is not backward compatible with \
         version {old_version}: {}; add it with force to replace it anyway",
        breaks.join("; ")
    )]
    Incompatible {
        /// The event type.
        event_type: String,
        /// The version in force.
        old_version: u32,
        /// The version that was refused.
        new_version: u32,
        /// Every change that breaks, each naming its JSON pointer.
        breaks: Vec<String>,
    },
    /// The schema registry's storage failed.
    #[error("schema registry: {0}")]
    Registry(String),
    /// Another process (a running `tributary serve`, or a replay) has the dedup store open.
    #[error(
        "dedup store {path} is in use by another process (a running `tributary serve`, or \
         another replay); stop it and try again"
    )]
    DedupInUse {
        /// The store's file.
        path: String,
    },
    /// The dedup store failed.
    #[error("dedup store {path}: {message}")]
    Dedup {
        /// The store's file.
        path: String,
        /// What failed.
        message: String,
    },
}
