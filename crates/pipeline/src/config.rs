//! Pipeline settings (`[pipeline]` in the configuration file).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::enrich::EnrichConfig;
use crate::error::PipelineError;
use crate::privacy::PrivacyConfig;

/// What happens to an event whose type has no schema in the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownEventTypes {
    /// Curated like any valid event (the default: a new event type should not need a schema
    /// before its first event is counted).
    #[default]
    Accept,
    /// Quarantined with the reason `no schema for this event type`, until a schema is added
    /// and the quarantine is replayed.
    Quarantine,
}

/// Settings of the pipeline between the stream and the curated lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Events of a type without a schema: `accept` (default) or `quarantine`.
    pub unknown_event_types: UnknownEventTypes,
    /// Enrichment (`[pipeline.enrichment]`).
    pub enrichment: EnrichConfig,
    /// PII handling (`[pipeline.privacy]`).
    pub privacy: PrivacyConfig,
    /// Dedup by event id (`[pipeline.dedup]`).
    pub dedup: DedupConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            unknown_event_types: UnknownEventTypes::Accept,
            enrichment: EnrichConfig::default(),
            privacy: PrivacyConfig::default(),
            dedup: DedupConfig::default(),
        }
    }
}

/// Settings of the dedup store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Drop repeated event ids. Default true.
    pub enabled: bool,
    /// How long an event id is remembered, by the time the collector received it. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The store's file; default `<data_dir>/dedup.log`.
    pub path: Option<PathBuf>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            enabled: true,
            window: Duration::from_secs(24 * 3600),
            path: None,
        }
    }
}

impl PipelineConfig {
    /// Checks the values; the error names the field and the bound.
    pub fn validate(&self) -> Result<(), PipelineError> {
        if self.dedup.enabled && self.dedup.window.is_zero() {
            return Err(PipelineError::Config(
                "pipeline.dedup.window must be more than 0 when dedup is enabled".into(),
            ));
        }
        self.privacy.validate()
    }
}
