//! Metric names of the pipeline (Prometheus, through the `metrics` facade).

/// Events that entered the pipeline.
pub const EVENTS_IN: &str = "tributary_pipeline_events_in_total";
/// Events that left it for the curated lake.
pub const EVENTS_CURATED: &str = "tributary_pipeline_events_curated_total";
/// Events quarantined, labelled `reason` (the first violation's rule, or `unknown_type`).
pub const EVENTS_QUARANTINED: &str = "tributary_pipeline_events_quarantined_total";
/// Events dropped as duplicates of an event id seen within the window.
pub const DEDUP_HITS: &str = "tributary_pipeline_dedup_hits_total";
/// Enrichment lookups that found nothing, labelled `kind` (`user_agent`, `geo`, `url`, `ip`).
pub const ENRICHMENT_MISSES: &str = "tributary_pipeline_enrichment_misses_total";
/// Fields tokenized or dropped by the privacy rules.
pub const PRIVACY_FIELDS: &str = "tributary_pipeline_privacy_fields_total";
