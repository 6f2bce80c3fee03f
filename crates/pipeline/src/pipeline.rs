//! [`Pipeline`]: validate → enrich → mask → dedup, one event at a time.

use serde::{Deserialize, Serialize};
use tributary_model::Event;

use crate::config::{PipelineConfig, UnknownEventTypes};
use crate::dedup::{DedupStore, DedupVerdict};
use crate::enrich::Enricher;
use crate::error::PipelineError;
use crate::privacy::Privacy;
use crate::registry::{SchemaRegistry, SharedRegistry, Verdict, Violation};
use crate::telemetry;

/// Where a record sits in the stream: the dedup store's notion of "the same record".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The shard.
    pub shard: u32,
    /// The record's sequence number in its shard.
    pub seq: u64,
}

/// Why an event was quarantined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The schema version that rejected it; `None` when its type has no schema.
    pub schema_version: Option<u32>,
    /// Every reason.
    pub reasons: Vec<Violation>,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Valid, enriched and masked: it goes to the curated lake.
    Curated(Box<Event>),
    /// Invalid: it goes to quarantine with its original payload and these reasons (the event
    /// comes back as validated, neither enriched nor masked).
    Quarantined(Box<Event>, Quarantined),
    /// Its id was seen within the window at another position: counted once already.
    Duplicate {
        /// Where the id was first seen.
        first: StreamPosition,
    },
}

/// The pipeline's per-event work, shared by every shard's consumer.
#[derive(Debug)]
pub struct Pipeline {
    registry: SharedRegistry,
    enricher: Enricher,
    privacy: Privacy,
    unknown_event_types: UnknownEventTypes,
}

impl Pipeline {
    /// Builds the pipeline from `config`, the schema `registry` and the privacy key.
    pub fn new(
        config: &PipelineConfig,
        registry: SharedRegistry,
        privacy_key: &[u8],
    ) -> Result<Pipeline, PipelineError> {
        config.validate()?;
        Ok(Pipeline {
            registry,
            enricher: Enricher::new(&config.enrichment)?,
            privacy: Privacy::new(&config.privacy, privacy_key)?,
            unknown_event_types: config.unknown_event_types,
        })
    }

    /// The schema registry (to publish a new version to running consumers).
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// The privacy rules (to tokenize a value the same way, e.g. to look a user up).
    pub fn privacy(&self) -> &Privacy {
        &self.privacy
    }

    /// Runs `event`, read at `position`, through validation, enrichment, privacy and (with a
    /// store) dedup, against `registry` (take one [`SharedRegistry::snapshot`] per batch).
    /// Errors are the dedup store's only: a bad event is an [`Outcome::Quarantined`].
    pub fn process(
        &self,
        registry: &SchemaRegistry,
        mut event: Event,
        position: StreamPosition,
        dedup: Option<&mut DedupStore>,
    ) -> Result<Outcome, PipelineError> {
        metrics::counter!(telemetry::EVENTS_IN).increment(1);
        match registry.validate(&mut event) {
            Verdict::Valid { .. } => {}
            Verdict::Invalid {
                version,
                violations,
            } => {
                let reason = violations
                    .first()
                    .map_or("schema".to_string(), |v| v.rule.clone());
                metrics::counter!(telemetry::EVENTS_QUARANTINED, "reason" => reason).increment(1);
                return Ok(Outcome::Quarantined(
                    Box::new(event),
                    Quarantined {
                        schema_version: Some(version),
                        reasons: violations,
                    },
                ));
            }
            Verdict::Unknown => {
                if self.unknown_event_types == UnknownEventTypes::Quarantine {
                    metrics::counter!(telemetry::EVENTS_QUARANTINED, "reason" => "unknown_type")
                        .increment(1);
                    let reason = Violation {
                        pointer: "/event_type".into(),
                        rule: "schema".into(),
                        message: format!(
                            "no schema for event type {:?} (pipeline.unknown_event_types = \
                             \"quarantine\")",
                            event.event_type
                        ),
                    };
                    return Ok(Outcome::Quarantined(
                        Box::new(event),
                        Quarantined {
                            schema_version: None,
                            reasons: vec![reason],
                        },
                    ));
                }
            }
        }
        if let Some(store) = dedup
            && let DedupVerdict::Repeat { first } = store.check(
                &event.tenant_id,
                &event.event_id,
                position,
                event.received_at,
            )?
        {
            metrics::counter!(telemetry::DEDUP_HITS).increment(1);
            return Ok(Outcome::Duplicate { first });
        }
        let report = self.enricher.enrich(&mut event);
        for (missed, kind) in [
            (report.user_agent_miss, "user_agent"),
            (report.geo_miss, "geo"),
            (report.bad_url, "url"),
            (report.bad_ip, "ip"),
        ] {
            if missed {
                metrics::counter!(telemetry::ENRICHMENT_MISSES, "kind" => kind).increment(1);
            }
        }
        let masked = self.privacy.apply(&mut event);
        if masked > 0 {
            metrics::counter!(telemetry::PRIVACY_FIELDS).increment(masked as u64);
        }
        metrics::counter!(telemetry::EVENTS_CURATED).increment(1);
        Ok(Outcome::Curated(Box::new(event)))
    }
}
