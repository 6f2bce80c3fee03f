//! Configuration of the lake: the `[lake]` section of `tributary.toml`.
//!
//! Every field has a documented default; these doc comments are the configuration reference
//! (`docs/configuration.md` repeats them; a test checks it names every field).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LakeError;
use crate::family::FamilyRule;
use crate::schema::{ENVELOPE_COLUMNS, PromotedProperty, PromotedType};

/// Settings of the lake writer, compaction and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeConfig {
    /// Run the lake writer inside `tributary serve`. Default true.
    pub enabled: bool,
    /// A partition's buffer is written out once it holds this many bytes of events (as
    /// received). Every buffered partition is flushed with it, in one commit. Default 64 MiB.
    pub flush_bytes: u64,
    /// Buffered events are written out at the latest this long after the oldest of them
    /// arrived: the lake's freshness bound. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Events buffered in all partitions together before a flush is forced; bounds the
    /// writer's memory (to about twice this: one flush may be encoding while the next
    /// fills). Default 256 MiB.
    pub max_buffer_bytes: u64,
    /// Curated partitions (event day × family) buffered at once before a flush is forced.
    /// Events may carry any time from 1970 to a week ahead, so a producer spreading them over
    /// many days would otherwise open a buffer (and later a file) per day, each with its
    /// builders, outside `max_buffer_bytes`. Checked after each read of a shard, so the
    /// buffers hold at most this many partitions plus one read's worth. Default 1,024.
    pub max_open_partitions: usize,
    /// zstd level of the Parquet pages the writer writes (1–22). Default 1: the fastest, and on
    /// clickstream pages about as dense as 3 (`bench lake`); compaction rewrites the files at
    /// its own, higher level anyway.
    pub zstd_level: i32,
    /// Most rows per Parquet row group. Default 1,048,576.
    pub row_group_rows: usize,
    /// Name of the stream consumer the writer reads as (its checkpoint lives in the catalog,
    /// committed with the files). Default `lake`. The raw archive's checkpoint is kept under
    /// this name with `-raw` appended.
    pub consumer: String,
    /// Whether `serve` runs the raw archive as its own stream consumer beside the pipeline's
    /// writer, instead of one writer doing both. Separate, the archive keeps pace whatever the
    /// pipeline does (a slow schema or a failing flush of curated files holds back only the
    /// curated lake), and each side's CPU can be told apart; together, each record is read
    /// and decoded once, which costs less in all (`bench pipeline` measures both). Switching
    /// either way loses and repeats nothing: each side resumes from its own checkpoint.
    /// Default false.
    pub separate_raw_archive: bool,
    /// Ordered rules that derive `event_family` (the partition column) from `event_type`; the
    /// first match wins, and an event no rule matches gets family `other`. Patterns are
    /// exact, or end in `*` to match a prefix. Default: `page`/`screen` → `page`;
    /// `identify`/`alias`/`group` → `identity`; `track:*` → `track`.
    pub event_families: Vec<FamilyRule>,
    /// Properties stored as typed top-level columns of `events` (and not repeated in the
    /// `properties` map; a value that does not convert stays in the map). Default `item_id`,
    /// `order_id`, `currency` (string) and `revenue` (float64).
    pub promoted_properties: Vec<PromotedProperty>,
    /// Compaction of small files.
    pub compaction: CompactionConfig,
    /// How long data is kept.
    pub retention: LakeRetentionConfig,
}

impl Default for LakeConfig {
    fn default() -> Self {
        let promoted = |name: &str, kind| PromotedProperty {
            name: name.into(),
            kind,
        };
        LakeConfig {
            enabled: true,
            flush_bytes: 64 << 20,
            flush_interval: Duration::from_secs(5),
            max_buffer_bytes: 256 << 20,
            max_open_partitions: 1024,
            zstd_level: 1,
            row_group_rows: 1 << 20,
            consumer: "lake".into(),
            separate_raw_archive: false,
            event_families: crate::family::default_rules(),
            promoted_properties: vec![
                promoted("item_id", PromotedType::String),
                promoted("order_id", PromotedType::String),
                promoted("currency", PromotedType::String),
                promoted("revenue", PromotedType::Float64),
            ],
            compaction: CompactionConfig::default(),
            retention: LakeRetentionConfig::default(),
        }
    }
}

/// Settings of the compaction job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Run compaction inside `tributary serve`. Default true.
    pub enabled: bool,
    /// How often partitions are checked for small files. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Size compaction aims for; files under half of it count as small. Default 128 MiB.
    pub target_file_bytes: u64,
    /// A partition is compacted once it has at least this many small files. Default 4.
    pub min_small_files: usize,
    /// Files replaced by a compaction (or dropped by retention) are deleted this long after
    /// they stopped being live, so queries that listed them before the swap can finish.
    /// Default 5 min.
    #[serde(with = "humantime_serde")]
    pub delete_grace: Duration,
    /// zstd level of the curated files (`events`, `quarantine`) compaction writes. Default 1,
    /// the writer's: on curated pages (short, already dictionary- and delta-encoded values)
    /// higher levels come out no denser — level 9 was 2 % *bigger* than level 1 in
    /// `bench lake` — and cost up to 2.5 times the CPU.
    pub zstd_level: i32,
    /// zstd level of the raw archive files compaction writes. Default 6: raw payloads are
    /// whole JSON events, where higher levels find what level 1 misses (level 6: 10 % smaller
    /// than level 1 for 2.4 times the CPU; level 9: another 4 % smaller for another 28 %).
    /// The archive is kept longest and read least, so it is the one table where density is
    /// worth compaction CPU.
    pub raw_zstd_level: i32,
}

impl CompactionConfig {
    /// The zstd level compaction writes `table`'s files at.
    pub fn zstd_level_for(&self, table: &str) -> i32 {
        if table == crate::schema::RAW_EVENTS {
            self.raw_zstd_level
        } else {
            self.zstd_level
        }
    }
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: true,
            interval: Duration::from_secs(60),
            target_file_bytes: 128 << 20,
            min_small_files: 4,
            delete_grace: Duration::from_secs(300),
            zstd_level: 1,
            raw_zstd_level: 6,
        }
    }
}

/// Per-table retention: partitions whose `dt` is older than this many days are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeRetentionConfig {
    /// Days of curated `events` kept. Default unset (kept forever).
    pub events_days: Option<u32>,
    /// Days of the raw archive kept. Default unset (kept forever: it is the source of every
    /// replay).
    pub raw_days: Option<u32>,
}

impl LakeConfig {
    /// Checks the values; the error names the field and the bound.
    pub fn validate(&self) -> Result<(), LakeError> {
        let bad = |message: String| Err(LakeError::Config(message));
        if self.flush_bytes < 1024 {
            return bad(format!(
                "lake.flush_bytes is {}, must be at least 1024",
                self.flush_bytes
            ));
        }
        if self.flush_interval.is_zero() {
            return bad("lake.flush_interval must be more than 0".into());
        }
        if self.max_buffer_bytes < self.flush_bytes {
            return bad(format!(
                "lake.max_buffer_bytes ({}) must be at least lake.flush_bytes ({})",
                self.max_buffer_bytes, self.flush_bytes
            ));
        }
        if self.max_open_partitions == 0 {
            return bad("lake.max_open_partitions must be at least 1".into());
        }
        for (key, level) in [
            ("compaction.zstd_level", self.compaction.zstd_level),
            ("compaction.raw_zstd_level", self.compaction.raw_zstd_level),
        ] {
            if !(1..=22).contains(&level) {
                return bad(format!("lake.{key} is {level}, must be 1..=22"));
            }
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad(format!(
                "lake.zstd_level is {}, must be 1..=22",
                self.zstd_level
            ));
        }
        if self.row_group_rows == 0 {
            return bad("lake.row_group_rows must be more than 0".into());
        }
        if self.consumer.is_empty() {
            return bad("lake.consumer must not be empty".into());
        }
        for (index, rule) in self.event_families.iter().enumerate() {
            rule.validate()
                .map_err(|why| LakeError::Config(format!("lake.event_families[{index}]: {why}")))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (index, property) in self.promoted_properties.iter().enumerate() {
            let name = property.name.as_str();
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return bad(format!(
                    "lake.promoted_properties[{index}].name {name:?} must be letters, digits \
                     and _, not starting with a digit"
                ));
            }
            if ENVELOPE_COLUMNS.contains(&name) {
                return bad(format!(
                    "lake.promoted_properties[{index}].name {name:?} is an envelope column"
                ));
            }
            if !seen.insert(name) {
                return bad(format!(
                    "lake.promoted_properties[{index}].name {name:?} is listed twice"
                ));
            }
        }
        if self.compaction.target_file_bytes < 1 << 20 {
            return bad(format!(
                "lake.compaction.target_file_bytes is {}, must be at least 1 MiB",
                self.compaction.target_file_bytes
            ));
        }
        if self.compaction.min_small_files < 2 {
            return bad(format!(
                "lake.compaction.min_small_files is {}, must be at least 2",
                self.compaction.min_small_files
            ));
        }
        if self.compaction.interval.is_zero() {
            return bad("lake.compaction.interval must be more than 0".into());
        }
        for (field, days) in [
            ("events_days", self.retention.events_days),
            ("raw_days", self.retention.raw_days),
        ] {
            if days == Some(0) {
                return bad(format!(
                    "lake.retention.{field} is 0, must be at least 1 (or unset to keep forever)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        LakeConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut config = LakeConfig::default();
        config.promoted_properties.push(PromotedProperty {
            name: "ts".into(),
            kind: PromotedType::String,
        });
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains("lake.promoted_properties[4].name"),
            "{message}"
        );

        let config = LakeConfig {
            max_buffer_bytes: 10,
            ..LakeConfig::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("lake.max_buffer_bytes"), "{message}");

        let mut config = LakeConfig::default();
        config.compaction.raw_zstd_level = 0;
        let message = config.validate().unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid configuration: lake.compaction.raw_zstd_level is 0, must be 1..=22"
        );
    }

    #[test]
    fn compaction_compresses_the_raw_archive_at_its_own_level() {
        let compaction = CompactionConfig {
            zstd_level: 2,
            raw_zstd_level: 7,
            ..CompactionConfig::default()
        };
        assert_eq!(compaction.zstd_level_for(crate::schema::RAW_EVENTS), 7);
        assert_eq!(compaction.zstd_level_for(crate::schema::EVENTS), 2);
        assert_eq!(compaction.zstd_level_for(crate::schema::QUARANTINE), 2);
    }
}
