//! Where the pipeline's outcomes land: curated rows per (day, family) partition, quarantined
//! rows per arrival day, duplicates counted. The lake writer and the replays share it, so a
//! replayed event lands exactly where the writer would have put it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use tributary_model::Event;
use tributary_pipeline::Outcome;

use crate::buffer::{CuratedBuffer, QuarantineBuffer, QuarantineRow};
use crate::commit::{NewFile, new_file};
use crate::config::LakeConfig;
use crate::error::LakeError;
use crate::family::FamilyRules;
use crate::layout::{curated_partition, day_of, quarantine_partition};
use crate::parquet_io::{ParquetOptions, encode, writer_properties};
use crate::raw_buffer::RawRow;
use crate::schema::{curated_file_schema, quarantine_file_schema, raw_file_schema};
use crate::telemetry;
use crate::writer::LakeTables;

/// What the lake's files look like: tables, schemas, partitioning rules and Parquet settings.
#[derive(Debug, Clone)]
pub(crate) struct Shapes {
    pub tables: LakeTables,
    pub families: FamilyRules,
    pub config: Arc<LakeConfig>,
    pub curated: SchemaRef,
    pub raw: SchemaRef,
    pub quarantine: SchemaRef,
}

impl Shapes {
    pub fn new(tables: LakeTables, config: &LakeConfig) -> Shapes {
        Shapes {
            tables,
            families: FamilyRules::new(config.event_families.clone()),
            curated: curated_file_schema(&config.promoted_properties),
            raw: raw_file_schema(),
            quarantine: quarantine_file_schema(),
            config: Arc::new(config.clone()),
        }
    }

    /// Parquet settings of newly written (not compacted) files.
    pub fn options(&self) -> ParquetOptions {
        ParquetOptions {
            zstd_level: self.config.zstd_level,
            row_group_rows: self.config.row_group_rows,
        }
    }
}

/// A map keyed by partition values, looked up for every event: hashbrown's, for foldhash
/// (SipHash's resistance to chosen keys buys nothing for days and family names) and for
/// `entry_ref`, which copies a borrowed key only when it inserts it.
pub(crate) type FastMap<K, V> = hashbrown::HashMap<K, V>;

/// Where a record came from: what the raw archive and quarantine keep beside the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The stream record's value, as stored.
    pub payload: &'a str,
    pub shard: u32,
    pub seq: u64,
}

/// Curated and quarantined rows waiting to be written, per partition.
#[derive(Default)]
pub(crate) struct OutcomeBuffers {
    /// Per day, per event family. Nested so that finding an event's buffer borrows the family
    /// name instead of copying it into a key: once per event.
    curated: FastMap<i64, FastMap<String, CuratedBuffer>>,
    quarantine: HashMap<i64, QuarantineBuffer>,
    /// Events dropped as repeats of an event already curated.
    pub duplicates: u64,
    /// Events added to curated buffers.
    pub curated_events: u64,
    /// Events added to quarantine buffers.
    pub quarantined_events: u64,
    /// Curated partitions buffered.
    pub curated_partitions: usize,
}

impl OutcomeBuffers {
    /// Whether some partition's buffer holds at least `limit` bytes (time to write).
    pub fn over(&self, limit: u64) -> bool {
        self.curated
            .values()
            .flat_map(FastMap::values)
            .any(|b| b.bytes() >= limit)
            || self.quarantine.values().any(|b| b.bytes() >= limit)
    }

    /// Buffers one outcome of the pipeline for the record at `source`.
    pub fn route(
        &mut self,
        shapes: &Shapes,
        outcome: Outcome,
        source: Source<'_>,
    ) -> Result<(), LakeError> {
        match outcome {
            Outcome::Curated(event) => {
                self.curate(shapes, &event, source);
                Ok(())
            }
            Outcome::Quarantined(event, quarantined) => {
                let reasons: Vec<(String, String, String)> = quarantined
                    .reasons
                    .into_iter()
                    .map(|v| (v.pointer, v.rule, v.message))
                    .collect();
                self.quarantine(shapes, &event, quarantined.schema_version, &reasons, source)
            }
            Outcome::Duplicate { .. } => {
                self.duplicates += 1;
                Ok(())
            }
        }
    }

    fn curate(&mut self, shapes: &Shapes, event: &Event, source: Source<'_>) {
        let family = shapes.families.family_of(&event.event_type);
        let partitions = &mut self.curated_partitions;
        let buffer = self
            .curated
            .entry(day_of(event.ts))
            .or_default()
            .entry_ref(family)
            .or_insert_with(|| {
                *partitions += 1;
                CuratedBuffer::new(shapes.curated.clone(), &shapes.config.promoted_properties)
            });
        match buffer.push(event, source.payload.len()) {
            Ok(()) => self.curated_events += 1,
            Err(error) => {
                // Builders only fail on internal invariants; the raw copy stays, and we say so.
                tracing::error!(%error, shard = source.shard, seq = source.seq, "event not curated");
                metrics::counter!(telemetry::UNDECODABLE).increment(1);
            }
        }
    }

    /// Buffers a quarantined event with every reason (JSON pointer, rule, message).
    pub fn quarantine(
        &mut self,
        shapes: &Shapes,
        event: &Event,
        schema_version: Option<u32>,
        reasons: &[(String, String, String)],
        source: Source<'_>,
    ) -> Result<(), LakeError> {
        let row = QuarantineRow {
            raw: RawRow {
                tenant_id: &event.tenant_id,
                event_id: &event.event_id,
                ts: event.ts,
                received_at: event.received_at,
                shard: source.shard,
                seq: source.seq,
                payload: source.payload,
            },
            event_type: &event.event_type,
            schema_version,
            reasons,
        };
        self.quarantine
            .entry(day_of(event.received_at))
            .or_insert_with(|| QuarantineBuffer::new(shapes.quarantine.clone()))
            .push(row)?;
        self.quarantined_events += 1;
        Ok(())
    }

    /// Sorts and encodes every buffer as a file (CPU work: call it off the async workers).
    pub fn encode(self, shapes: &Shapes, now: i64) -> Result<Vec<NewFile>, LakeError> {
        let options = shapes.options();
        let mut files = Vec::new();
        let curated_props = writer_properties(options, &shapes.curated, &["tenant_id", "ts"])?;
        let partitions = self.curated.into_iter().flat_map(|(day, families)| {
            families
                .into_iter()
                .map(move |(family, buffer)| (day, family, buffer))
        });
        for (day, family, buffer) in partitions {
            let (batch, stats) = buffer.finish()?;
            let contents = encode(&shapes.curated, &[batch], curated_props.clone())?;
            files.push(new_file(
                &shapes.tables.events,
                curated_partition(day, &family),
                stats,
                contents,
                now,
            ));
        }
        let quarantine_props =
            writer_properties(options, &shapes.quarantine, &["tenant_id", "received_at"])?;
        for (day, buffer) in self.quarantine {
            let (batch, stats) = buffer.finish()?;
            let contents = encode(&shapes.quarantine, &[batch], quarantine_props.clone())?;
            files.push(new_file(
                &shapes.tables.quarantine,
                quarantine_partition(day),
                stats,
                contents,
                now,
            ));
        }
        Ok(files)
    }
}
