//! The `[query]` section of `tributary.toml`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits and execution settings of the SQL engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Most rows one query answers; further rows are dropped and the answer is marked truncated
    /// (`X-Tributary-Truncated: true`). A request may ask for fewer, never for more.
    pub max_rows: usize,
    /// How long one query may plan and run before it is cancelled (e.g. `"30s"`, `"2m"`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Threads of work a query is split into; 0 means the number of CPU cores.
    pub target_partitions: usize,
    /// Rows per Arrow batch inside the engine.
    pub batch_size: usize,
    /// Memory all running queries may use together for sorts, joins and aggregations, in
    /// bytes; a query needing more fails with `resources_exhausted`. 0 means no limit.
    pub memory_limit_bytes: u64,
    /// Queries that may run at once (at least 1); more wait for a turn, the wait counting
    /// against `timeout`. Bounds the CPU and memory SQL can take from ingest.
    pub max_concurrent_queries: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_rows: 10_000,
            timeout: Duration::from_secs(30),
            target_partitions: 0,
            batch_size: 8192,
            memory_limit_bytes: 0,
            max_concurrent_queries: 4,
        }
    }
}

impl QueryConfig {
    /// `target_partitions` with 0 resolved to the number of cores.
    pub fn effective_target_partitions(&self) -> usize {
        if self.target_partitions > 0 {
            return self.target_partitions;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_humane_durations_and_refuses_unknown_keys() {
        let config: QueryConfig =
            serde_json::from_str(r#"{"timeout": "2m", "max_rows": 5}"#).unwrap();
        assert_eq!(config.timeout, Duration::from_secs(120));
        assert_eq!(config.max_rows, 5);
        assert_eq!(config.batch_size, QueryConfig::default().batch_size);
        assert!(serde_json::from_str::<QueryConfig>(r#"{"max_row": 5}"#).is_err());
    }

    #[test]
    fn zero_partitions_means_every_core() {
        assert!(QueryConfig::default().effective_target_partitions() >= 1);
        let config = QueryConfig {
            target_partitions: 3,
            ..QueryConfig::default()
        };
        assert_eq!(config.effective_target_partitions(), 3);
    }
}
