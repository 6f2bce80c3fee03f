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
    /// bytes; past it sorts and aggregations spill to disk, and a query that still needs more
    /// fails with `resources_exhausted`. 0 (the default) means a quarter of the machine's
    /// memory (see [`QueryConfig::effective_memory_limit_bytes`]): SQL runs in the process that
    /// ingests, and one heavy `GROUP BY` must not take the memory the collector and the lake
    /// writer need.
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

/// What `memory_limit_bytes = 0` resolves to where the machine's memory cannot be read.
const FALLBACK_MEMORY_LIMIT_BYTES: u64 = 1 << 30;

impl QueryConfig {
    /// `memory_limit_bytes` with 0 resolved to a quarter of the machine's memory: the smaller
    /// of `MemTotal` and the cgroup's `memory.max` (a container's limit), or 1 GiB where
    /// neither can be read.
    pub fn effective_memory_limit_bytes(&self) -> u64 {
        if self.memory_limit_bytes > 0 {
            return self.memory_limit_bytes;
        }
        machine_memory_bytes().map_or(FALLBACK_MEMORY_LIMIT_BYTES, |bytes| bytes / 4)
    }

    /// `target_partitions` with 0 resolved to the number of cores.
    pub fn effective_target_partitions(&self) -> usize {
        if self.target_partitions > 0 {
            return self.target_partitions;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

/// The memory this process may use: the smaller of the machine's (`MemTotal` in
/// `/proc/meminfo`) and its cgroup's limit (`memory.max`, cgroup v2), where they can be read.
fn machine_memory_bytes() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| parse_mem_total(&meminfo));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(total), Some(cgroup)) => Some(total.min(cgroup)),
        (total, cgroup) => total.or(cgroup),
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes (also what the benchmarks report as the
/// machine's memory).
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
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

    #[test]
    fn the_memory_limit_defaults_to_a_quarter_of_the_machine() {
        assert_eq!(
            parse_mem_total("MemTotal:       24683656 kB\nMemFree: 1 kB\n"),
            Some(24_683_656 * 1024)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        let explicit = QueryConfig {
            memory_limit_bytes: 123,
            ..QueryConfig::default()
        };
        assert_eq!(explicit.effective_memory_limit_bytes(), 123);
        let automatic = QueryConfig::default().effective_memory_limit_bytes();
        match machine_memory_bytes() {
            Some(machine) => assert_eq!(automatic, machine / 4),
            None => assert_eq!(automatic, FALLBACK_MEMORY_LIMIT_BYTES),
        }
        assert!(automatic > 0);
    }
}
