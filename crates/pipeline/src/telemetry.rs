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

/// The enrichment miss kinds, in [`StageCounts`]'s order.
const MISS_KINDS: [&str; 4] = ["user_agent", "geo", "url", "ip"];

/// What the pipeline did to a run of events (one read of a shard, one replayed file), counted
/// here and handed to the metrics registry once per run by [`StageCounts::publish`].
///
/// Counting each event straight into the registry built a key and looked it up for every
/// counter of every event: about 3 % of the lake writer's CPU with the pipeline, before the
/// Prometheus recorder's own hashing.
#[derive(Debug, Default)]
pub struct StageCounts {
    pub(crate) events_in: u64,
    pub(crate) curated: u64,
    pub(crate) dedup_hits: u64,
    pub(crate) privacy_fields: u64,
    /// Per enrichment miss kind, in `MISS_KINDS`' order.
    pub(crate) enrichment_misses: [u64; 4],
    /// Per quarantine reason; a handful of distinct rules, so a list beats a map.
    pub(crate) quarantined: Vec<(String, u64)>,
}

impl StageCounts {
    /// Counts one quarantined event under `reason`.
    pub(crate) fn quarantine(&mut self, reason: &str) {
        match self
            .quarantined
            .iter_mut()
            .find(|(known, _)| known == reason)
        {
            Some((_, count)) => *count += 1,
            None => self.quarantined.push((reason.to_string(), 1)),
        }
    }

    /// Adds the counts to the metrics registry and starts again from zero.
    pub fn publish(&mut self) {
        let counts = std::mem::take(self);
        let nonzero = |value: u64| (value > 0).then_some(value);
        if let Some(value) = nonzero(counts.events_in) {
            metrics::counter!(EVENTS_IN).increment(value);
        }
        if let Some(value) = nonzero(counts.curated) {
            metrics::counter!(EVENTS_CURATED).increment(value);
        }
        if let Some(value) = nonzero(counts.dedup_hits) {
            metrics::counter!(DEDUP_HITS).increment(value);
        }
        if let Some(value) = nonzero(counts.privacy_fields) {
            metrics::counter!(PRIVACY_FIELDS).increment(value);
        }
        for (kind, value) in MISS_KINDS.into_iter().zip(counts.enrichment_misses) {
            if value > 0 {
                metrics::counter!(ENRICHMENT_MISSES, "kind" => kind).increment(value);
            }
        }
        for (reason, value) in counts.quarantined {
            metrics::counter!(EVENTS_QUARANTINED, "reason" => reason).increment(value);
        }
    }
}
