//! `tributary bench …`: benchmarks that print a table for people, then one JSON line with every
//! figure for `docs/performance.md` and for scripts that compare runs.
//!
//! One module per benchmark (`stream`, `ingest`, `lake`, `query`); this module holds what they
//! share: the machine description that goes with every figure, latency
//! percentiles, the progress bar and the scratch directory.

mod ingest;
mod lake;
mod pipeline;
mod pipeline_live;
mod query;
mod stream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tributary_stream::Durability;

use crate::config::Config;

/// The logs every benchmark builds: where, how durable, how many shards.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Scratch directory [default: <data_dir>/bench]. Keep it on the disk the data lives on: on
    /// a RAM disk (tmpfs, /dev/shm) fsync costs nothing and the figures mean nothing.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Durability of the benchmarked logs: fsync, interval:<ms> or none.
    #[arg(long, value_name = "MODE", default_value = "fsync",
          value_parser = |text: &str| text.parse::<Durability>())]
    pub durability: Durability,
    /// Shards of each benchmarked log [default: the stream's default, 1; `bench stream`: 4, the
    /// count its many-writer append goal is set for].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub shards: Option<u32>,
}

impl LogArgs {
    /// Creates this run's scratch directory (under `--dir`, else `<data_dir>/bench`), describes
    /// the machine, and warns when the figures would mean nothing: a debug build, or a RAM disk
    /// where fsync reaches no disk. `bench` names the benchmark in the messages. Returns the
    /// scratch directory, its parent (reported in the JSON line) and the machine.
    pub fn prepare(&self, config: &Config, bench: &str) -> Result<(Scratch, PathBuf, Machine)> {
        let (scratch, parent) = Scratch::for_run(config, self.dir.as_deref(), bench)?;
        let machine = Machine::detect(scratch.path());
        if machine.build == "debug" {
            eprintln!(
                "warning: this is a debug build; its figures are not comparable \
                 (cargo run --release -p tributary -- bench {bench})"
            );
        }
        if machine.on_ram_disk() {
            eprintln!(
                "warning: {} is on a RAM disk ({}): fsync reaches no disk, the figures mean \
                 nothing; pass --dir on the data disk",
                scratch.path().display(),
                machine.filesystem.as_deref().unwrap_or("tmpfs")
            );
        }
        Ok((scratch, parent, machine))
    }
}

/// `tributary bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Group-commit append throughput and latency of the embedded stream against the raw disk
    /// bound (write + fdatasync in a loop), for batch sizes 1/10/100/500 and 1/4/16 writers.
    #[command(after_help = "\
Examples:
  tributary bench stream --quick                 ~15 s; figures are indicative
  tributary bench stream                         ~70 s; the figures for docs/performance.md
  tributary bench stream --durability none       the log's CPU cost without the disk
Build with --release (cargo run --release -p tributary -- bench stream): a debug build is
several times slower and says so in its output.")]
    Stream(stream::StreamBenchArgs),
    /// HTTP ingest throughput and acknowledgement latency: the load generator against an
    /// in-process collector on 127.0.0.1 (separate runtimes), next to the stream's own append
    /// bound for the same record size and concurrency.
    #[command(after_help = "\
Examples:
  tributary bench ingest --quick                 ~15 s: 16 connections, native API
  tributary bench ingest                         ~90 s: 8, 16, 32 and 64 connections
  tributary bench ingest --api kinesis --concurrency 64
  tributary bench ingest --durability none       the HTTP edge's CPU cost without the disk
Build with --release: a debug build is several times slower and says so in its output.")]
    Ingest(ingest::IngestBenchArgs),
    /// Lake writer throughput (events/s, and per core) draining a stream into the raw archive
    /// and curated Parquet; bytes per event on disk before and after compaction; and the share
    /// of a month's files a one-hour query opens.
    #[command(after_help = "\
Examples:
  tributary bench lake --quick                   ~20 s: 300,000 events
  tributary bench lake                           ~2 min: 2,000,000 events
  tributary bench lake --event-bytes 0           events with a browser's full context
Build with --release: a debug build is several times slower and says so in its output.")]
    Lake(lake::LakeBenchArgs),
    /// Tributary's SQL against DuckDB over the same Parquet files: 13 web-analytics queries
    /// on 10 million generated events (cached between runs), best of 3 warm runs each, the
    /// ratio per query and its geometric mean, and a check that both engines answer the same.
    #[command(after_help = "\
Examples:
  tributary bench query --quick                  1,000,000 events (~1 min the first time)
  tributary bench query                          10,000,000 events (generated once, then cached)
  tributary bench query --duckdb /path/to/venv/bin/python
  tributary bench query --no-duckdb              Tributary's figures only
DuckDB comes from PyPI: tests/e2e/setup_python.sh installs it into ~/.cache/tributary-venv.
Build with --release: a debug build is several times slower and says so in its output.")]
    Query(query::QueryBenchArgs),
    /// The pipeline's throughput: decode + validate + dedup + enrich + tokenize on one thread,
    /// and the lake writer's events/s per core without and with the pipeline in front of it.
    #[command(after_help = "\
Examples:
  tributary bench pipeline --quick               ~30 s: 200,000 events
  tributary bench pipeline                       1,000,000 events
  tributary bench pipeline --event-bytes 400     events trimmed as bench ingest sends them
Build with --release: a debug build is several times slower and says so in its output.")]
    Pipeline(pipeline::PipelineBenchArgs),
}

/// Runs one benchmark.
pub fn run(config: &Config, command: &BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Stream(args) => stream::run(config, args),
        BenchCommand::Ingest(args) => ingest::run(config, args),
        BenchCommand::Lake(args) => lake::run(config, args),
        BenchCommand::Query(args) => query::run(config, args),
        BenchCommand::Pipeline(args) => pipeline::run(config, args),
    }
}

/// The machine a figure was measured on; printed with every result because a figure without
/// its machine cannot be compared.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// CPU model name, when the OS tells.
    pub cpu: Option<String>,
    /// Total memory in bytes, when the OS tells.
    pub memory_bytes: Option<u64>,
    /// `linux`, `macos`, …
    pub os: &'static str,
    /// `x86_64`, `aarch64`, …
    pub arch: &'static str,
    /// Kernel release, when the OS tells.
    pub kernel: Option<String>,
    /// `release` or `debug`: a debug build's figures are not comparable.
    pub build: &'static str,
    /// Filesystem type of the benchmark directory (`ext4`, `xfs`, `tmpfs`, …), when known.
    pub filesystem: Option<String>,
    /// The device or source mounted there, when known.
    pub device: Option<String>,
    /// Where that filesystem is mounted.
    pub mount: Option<String>,
}

impl Machine {
    /// Describes this machine and the filesystem holding `dir` (which must exist).
    pub fn detect(dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, name)| name.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = tributary_query::config::parse_mem_total(&meminfo);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|text| text.trim().to_owned());
        let mount = std::fs::canonicalize(dir)
            .ok()
            .and_then(|dir| mount_of(&dir));
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            memory_bytes,
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            filesystem: mount.as_ref().map(|m| m.filesystem.clone()),
            device: mount.as_ref().map(|m| m.device.clone()),
            mount: mount.map(|m| m.point.display().to_string()),
        }
    }

    /// Whether fsync on the benchmark directory reaches no disk at all.
    pub fn on_ram_disk(&self) -> bool {
        matches!(self.filesystem.as_deref(), Some("tmpfs" | "ramfs"))
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} cores", self.cores)];
        if let Some(cpu) = &self.cpu {
            parts.push(cpu.clone());
        }
        if let Some(memory) = self.memory_bytes {
            parts.push(format!("{} RAM", crate::output::bytes(memory)));
        }
        parts.push(format!("{} {}", self.os, self.arch));
        if let (Some(fs), Some(device)) = (&self.filesystem, &self.device) {
            parts.push(format!("{fs} on {device}"));
        }
        parts.push(format!("{} build", self.build));
        parts.join(", ")
    }
}

struct Mount {
    point: PathBuf,
    filesystem: String,
    device: String,
}

/// The mount holding `dir` (canonical), from `/proc/self/mountinfo`: the longest mount point
/// that is an ancestor of `dir`.
fn mount_of(dir: &Path) -> Option<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<Mount> = None;
    for line in text.lines() {
        // "36 35 98:0 /root /mount/point opts [optional fields…] - fstype source superopts"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let point = PathBuf::from(point.replace("\\040", " "));
        let mut right = right.split(' ');
        let filesystem = right.next().unwrap_or_default().to_owned();
        let device = right.next().unwrap_or_default().to_owned();
        let longer = best
            .as_ref()
            .is_none_or(|b| point.as_os_str().len() >= b.point.as_os_str().len());
        if dir.starts_with(&point) && longer {
            best = Some(Mount {
                point,
                filesystem,
                device,
            });
        }
    }
    best
}

/// Latency samples in microseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    /// Records one sample.
    pub fn push(&mut self, elapsed: Duration) {
        self.micros
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    /// Merges another thread's samples.
    pub fn extend(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// Sorts the samples; percentiles read the sorted samples.
    pub fn finish(mut self) -> Percentiles {
        self.micros.sort_unstable();
        Percentiles {
            sorted: self.micros,
        }
    }
}

/// Sorted latency samples.
#[derive(Debug)]
pub struct Percentiles {
    sorted: Vec<u32>,
}

impl Percentiles {
    /// The `p`-th percentile (0–100) in microseconds, nearest-rank; 0 without samples.
    pub fn get(&self, p: f64) -> u32 {
        if self.sorted.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// The largest sample.
    pub fn max(&self) -> u32 {
        self.sorted.last().copied().unwrap_or(0)
    }

    /// How many samples there are.
    pub fn count(&self) -> u64 {
        self.sorted.len() as u64
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal), `len` steps long.
pub fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A scratch directory for one benchmark run, deleted (with the parents it had to create) when
/// dropped, also after an error.
pub struct Scratch {
    path: PathBuf,
    created: Vec<PathBuf>,
}

impl Scratch {
    /// The scratch directory of one run of benchmark `bench`: a fresh `<bench>-<pid>-<µs>`
    /// under `dir`, else under `<data_dir>/bench`. Returns it and its parent.
    pub fn for_run(config: &Config, dir: Option<&Path>, bench: &str) -> Result<(Scratch, PathBuf)> {
        let parent = dir.map_or_else(|| config.data_dir.join("bench"), Path::to_path_buf);
        let name = format!(
            "{bench}-{}-{}",
            std::process::id(),
            tributary_model::now_micros()
        );
        Ok((Scratch::create(&parent, &name)?, parent))
    }

    /// Creates `parent/name`, and `parent` if needed.
    pub fn create(parent: &Path, name: &str) -> Result<Scratch> {
        let path = parent.join(name);
        let mut created = Vec::new();
        let mut ancestor = Some(path.as_path());
        while let Some(dir) = ancestor {
            if dir.as_os_str().is_empty() || dir.exists() {
                break;
            }
            created.push(dir.to_path_buf());
            ancestor = dir.parent();
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the benchmark directory {}", path.display()))?;
        Ok(Scratch { path, created })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), %error, "could not delete the benchmark directory");
        }
        // Parents this run created go too, if nothing else was put there meanwhile.
        for dir in self.created.iter().skip(1) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Rounds to `digits` decimals, for JSON figures that do not pretend to more precision.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Latencies::default();
        for micros in 1..=100 {
            samples.push(Duration::from_micros(micros));
        }
        let p = samples.finish();
        assert_eq!(p.get(50.0), 50);
        assert_eq!(p.get(99.0), 99);
        assert_eq!(p.get(100.0), 100);
        assert_eq!(p.max(), 100);
        assert_eq!(Latencies::default().finish().get(50.0), 0);
    }

    #[test]
    fn scratch_removes_what_it_created() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("data").join("bench");
        {
            let scratch = Scratch::create(&parent, "run-1").unwrap();
            std::fs::create_dir(scratch.path().join("cell")).unwrap();
        }
        assert!(!root.path().join("data").exists());
    }

    #[test]
    fn machine_describes_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine::detect(dir.path());
        assert!(machine.cores >= 1);
        if cfg!(target_os = "linux") {
            assert!(machine.filesystem.is_some(), "{machine:?}");
        }
    }
}
