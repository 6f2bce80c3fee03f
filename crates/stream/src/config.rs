//! Configuration of the embedded log: the `[stream]` section of `tributary.toml`.
//!
//! Every field has a documented default; the doc comments here are the configuration reference
//! (`docs/configuration.md` repeats them; a test checks it names every field).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::StreamError;

/// The shard count of a new stream when `stream.shards` is not set.
///
/// One: under `fsync` durability every shard a request touches costs its own `fdatasync` per
/// group commit, and a batch of events from many sessions touches every shard. On the 2-core
/// reference machine one shard took `bench ingest` from ~240,000 events/s (p99 24 ms, 4 shards)
/// to ~430,000 (p99 7 ms). More shards pay off when appends come from more cores than one
/// writer thread keeps up with (`bench stream` with large batches).
pub const DEFAULT_SHARDS: u32 = 1;

/// Settings of the embedded partitioned log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Number of shards, 1..=4096. Fixed when the stream directory is created; reopening with
    /// another number is refused (it would move keys between shards). Unset (the default): an
    /// existing stream keeps its count and a new one gets [`DEFAULT_SHARDS`].
    pub shards: Option<u32>,
    /// When `append` returns: `fsync` (default), `interval:<ms>` or `none`. See [`Durability`].
    pub durability: Durability,
    /// A segment file is rolled over once it reaches this many bytes. Default 128 MiB.
    pub segment_bytes: u64,
    /// One sparse-index entry per this many bytes of segment data. Default 4 KiB.
    pub index_interval_bytes: u64,
    /// Largest partition key accepted, in bytes. Default 1 KiB.
    pub max_key_bytes: usize,
    /// Largest record value accepted, in bytes. Default 1 MiB.
    pub max_value_bytes: usize,
    /// Most bytes one group commit writes before it syncs; bounds the unsynced window and the
    /// writer's memory. Default 16 MiB.
    pub max_group_bytes: usize,
    /// How long records are kept.
    pub retention: RetentionConfig,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            shards: None,
            durability: Durability::Fsync,
            segment_bytes: 128 << 20,
            index_interval_bytes: 4 << 10,
            max_key_bytes: 1 << 10,
            max_value_bytes: 1 << 20,
            max_group_bytes: 16 << 20,
            retention: RetentionConfig::default(),
        }
    }
}

impl StreamConfig {
    /// Checks the values against each other; the error names the field and the bound.
    pub fn validate(&self) -> Result<(), StreamError> {
        let bad = |msg: String| Err(StreamError::Config(msg));
        if let Some(shards) = self.shards
            && !(1..=4096).contains(&shards)
        {
            return bad(format!("stream.shards is {shards}, must be 1..=4096"));
        }
        if self.segment_bytes < 4096 {
            return bad(format!(
                "stream.segment_bytes is {}, must be at least 4096",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return bad("stream.index_interval_bytes must be at least 1".into());
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > u16::MAX as usize {
            return bad(format!(
                "stream.max_key_bytes is {}, must be 1..=65535",
                self.max_key_bytes
            ));
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > (256 << 20) {
            return bad(format!(
                "stream.max_value_bytes is {}, must be 1..=268435456",
                self.max_value_bytes
            ));
        }
        if self.max_group_bytes < 4096 {
            return bad(format!(
                "stream.max_group_bytes is {}, must be at least 4096",
                self.max_group_bytes
            ));
        }
        if let Durability::Interval(every) = self.durability
            && every.is_zero()
        {
            return bad("stream.durability interval must be at least 1 ms".into());
        }
        Ok(())
    }
}

/// How much an acknowledged append survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`: `append` returns after `fdatasync` covered the batch. Survives process crash,
    /// kernel panic and power loss (on a disk that honours flushes). Concurrent appends to a shard
    /// share one sync (group commit).
    Fsync,
    /// `interval:<ms>`: `append` returns once the batch is written to the page cache; a
    /// background sync runs every `<ms>`. Survives a process crash; an OS crash or power loss
    /// can lose up to the last `<ms>` of acknowledged records.
    Interval(Duration),
    /// `none`: no sync except at segment roll-over and clean shutdown. Survives a process crash;
    /// an OS crash or power loss can lose everything since the last roll-over. For benchmarks
    /// and replays only.
    None,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Fsync => f.write_str("fsync"),
            Durability::Interval(every) => write!(f, "interval:{}", every.as_millis()),
            Durability::None => f.write_str("none"),
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            other => {
                let Some(millis) = other.strip_prefix("interval:") else {
                    return Err(format!(
                        "durability {other:?} is not one of fsync, interval:<ms>, none"
                    ));
                };
                let millis: u64 = millis.parse().map_err(|_| {
                    format!("durability {other:?}: <ms> must be a whole number of milliseconds")
                })?;
                if millis == 0 {
                    return Err(format!(
                        "durability {other:?}: the interval must be at least 1 ms"
                    ));
                }
                Ok(Durability::Interval(Duration::from_millis(millis)))
            }
        }
    }
}

impl Serialize for Durability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Durability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Retention: whole segments are deleted once every record in them is past a limit. The active
/// segment of a shard is never deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete a segment once its newest record is older than this (e.g. `"7d"`, `"36h"`).
    /// Default 7 days; `"0s"` keeps records forever.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Delete the oldest segments of a shard while the shard holds more than this many bytes.
    /// Default unset (no size limit).
    pub max_bytes_per_shard: Option<u64>,
    /// How often the writer checks retention when idle. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes_per_shard: None,
            check_interval: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_and_prints() {
        for text in ["fsync", "none", "interval:250"] {
            let parsed: Durability = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn durability_errors_name_the_forms() {
        let err = "sometimes".parse::<Durability>().unwrap_err();
        assert!(err.contains("fsync, interval:<ms>, none"), "{err}");
        assert!("interval:0".parse::<Durability>().is_err());
        assert!("interval:x".parse::<Durability>().is_err());
    }

    #[test]
    fn defaults_validate() {
        StreamConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_shards_is_refused_by_name() {
        let config = StreamConfig {
            shards: Some(0),
            ..StreamConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("stream.shards"), "{err}");
    }

    #[test]
    fn toml_round_trip_with_durations() {
        let text = "shards = 8\ndurability = \"interval:100\"\n[retention]\nmax_age = \"36h\"\n";
        let config: StreamConfig = toml::from_str(text).unwrap();
        assert_eq!(config.shards, Some(8));
        assert_eq!(
            config.durability,
            Durability::Interval(Duration::from_millis(100))
        );
        assert_eq!(config.retention.max_age, Duration::from_secs(36 * 3600));
        assert_eq!(config.segment_bytes, StreamConfig::default().segment_bytes);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<StreamConfig>("shard = 8").is_err());
    }
}
