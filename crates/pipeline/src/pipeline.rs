//! [`Pipeline`]: validate → enrich → mask → dedup, one event at a time.

use serde::{Deserialize, Serialize};
use tributary_model::Event;

use crate::config::{PipelineConfig, UnknownEventTypes};
use crate::dedup::{DedupStore, DedupVerdict};
use crate::enrich::Enricher;
use crate::error::PipelineError;
use crate::privacy::Privacy;
use crate::registry::{SchemaRegistry, SharedRegistry, Verdict, Violation};
use crate::telemetry::StageCounts;

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
    /// store) dedup, against `registry` (take one [`SharedRegistry::snapshot`] per batch),
    /// counting what it did in `counts` (publish them once per batch). Errors are the dedup
    /// store's only: a bad event is an [`Outcome::Quarantined`].
    pub fn process(
        &self,
        registry: &SchemaRegistry,
        mut event: Event,
        position: StreamPosition,
        dedup: Option<&mut DedupStore>,
        counts: &mut StageCounts,
    ) -> Result<Outcome, PipelineError> {
        counts.events_in += 1;
        match registry.validate(&mut event) {
            Verdict::Valid { .. } => {}
            Verdict::Invalid {
                version,
                violations,
            } => {
                counts.quarantine(violations.first().map_or("schema", |v| v.rule.as_str()));
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
                    counts.quarantine("unknown_type");
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
            counts.dedup_hits += 1;
            return Ok(Outcome::Duplicate { first });
        }
        let report = self.enricher.enrich(&mut event);
        let misses = [
            report.user_agent_miss,
            report.geo_miss,
            report.bad_url,
            report.bad_ip,
        ];
        for (count, missed) in counts.enrichment_misses.iter_mut().zip(misses) {
            *count += u64::from(missed);
        }
        counts.privacy_fields += self.privacy.apply(&mut event) as u64;
        counts.curated += 1;
        Ok(Outcome::Curated(Box::new(event)))
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use serde_json::json;
    use tributary_model::{Event, EventContext};

    use super::*;
    use crate::dedup::DedupStore;
    use tributary_catalog::EventSchema;

    fn event(id: &str, event_type: &str, properties: serde_json::Value) -> Event {
        Event {
            event_id: id.into(),
            tenant_id: "acme".into(),
            anonymous_id: "a".into(),
            user_id: None,
            session_id: "s".into(),
            event_type: event_type.into(),
            event_family: String::new(),
            ts: 1_000_000,
            received_at: 1_000_000,
            context: EventContext::default(),
            properties: properties.as_object().cloned().unwrap_or_default(),
            enriched: None,
        }
    }

    fn pipeline() -> Pipeline {
        let schema = EventSchema {
            event_type: "track:Order Completed".into(),
            version: 1,
            schema: json!({"type": "object", "required": ["order_id"]}),
            forced: false,
            created_at: 0,
        };
        let registry = SchemaRegistry::from_versions(&[schema]).unwrap();
        Pipeline::new(
            &PipelineConfig::default(),
            SharedRegistry::new(registry),
            b"a test key of enough bytes, 32+!",
        )
        .unwrap()
    }

    #[test]
    fn counts_gather_per_batch_and_publish_once() {
        let pipeline = pipeline();
        let registry = pipeline.registry().snapshot();
        let dir = tempfile::tempdir().unwrap();
        let mut dedup = DedupStore::open(
            dir.path().join("dedup.log"),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let mut counts = StageCounts::default();
        let at = |seq| StreamPosition { shard: 0, seq };
        let mut run = |event, seq| {
            pipeline
                .process(&registry, event, at(seq), Some(&mut dedup), &mut counts)
                .unwrap()
        };
        let order = |id| event(id, "track:Order Completed", json!({"order_id": "o1"}));
        assert!(matches!(run(order("e1"), 1), Outcome::Curated(_)));
        assert!(matches!(run(order("e1"), 2), Outcome::Duplicate { .. }));
        let invalid = event("e2", "track:Order Completed", json!({}));
        assert!(matches!(run(invalid.clone(), 3), Outcome::Quarantined(..)));
        assert!(matches!(run(invalid, 4), Outcome::Quarantined(..)));
        assert!(matches!(
            run(event("e3", "page", json!({})), 5),
            Outcome::Curated(_)
        ));

        assert_eq!(counts.events_in, 5);
        assert_eq!(counts.curated, 2);
        assert_eq!(counts.dedup_hits, 1);
        assert_eq!(counts.quarantined, vec![("required".to_string(), 2)]);

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || counts.publish());
        let published: Vec<(String, Vec<String>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                DebugValue::Counter(value) => Some((
                    key.key().name().to_string(),
                    key.key().labels().map(|l| l.value().to_string()).collect(),
                    value,
                )),
                _ => None,
            })
            .collect();
        let value_of = |name: &str, label: Option<&str>| {
            published
                .iter()
                .find(|(n, labels, _)| {
                    n == name && label.is_none_or(|l| labels.iter().any(|v| v == l))
                })
                .map(|(_, _, value)| *value)
        };
        assert_eq!(value_of(crate::telemetry::EVENTS_IN, None), Some(5));
        assert_eq!(value_of(crate::telemetry::EVENTS_CURATED, None), Some(2));
        assert_eq!(value_of(crate::telemetry::DEDUP_HITS, None), Some(1));
        assert_eq!(
            value_of(crate::telemetry::EVENTS_QUARANTINED, Some("required")),
            Some(2)
        );
        // Publishing starts the counts again from zero.
        assert_eq!(counts.events_in, 0);
        assert!(counts.quarantined.is_empty());
    }
}
