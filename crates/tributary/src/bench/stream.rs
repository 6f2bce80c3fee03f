//! `tributary bench stream`: how close group commit gets to what the disk can do.
//!
//! For every batch size B in {1, 10, 100, 500} and writer count W in {1, 4, 16} (a "cell"), a
//! fresh [`EmbeddedLog`] in a fresh directory takes `append_blocking` calls from W OS threads for
//! a fixed time. Each call is one batch of B records under ONE key drawn from 1000
//! `tenant:session-i` keys: a producer's batch is one session's events, so it lands on one shard
//! as one frame. The figures: records/s, MB/s of values, p50/p99 latency of an append call.
//!
//! In the same run, on the same disk, the raw bound: one thread, one plain file,
//! `loop { write_all(B × record_bytes); sync_data() }`. The ratio of the best cell for a batch
//! size to the raw loop for that size says what group commit buys (above 1: several writers
//! share one sync) or costs (below 1: the log's own overhead) — the number to watch over time.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tributary_stream::{Durability, EmbeddedLog, Record, StreamConfig};

use super::{Latencies, Machine, progress_bar, round};
use crate::config::Config;
use crate::exit::OK;
use crate::output::{self, Table};

/// Records per `append_blocking` call.
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 500];
/// Concurrent writer threads.
const WRITER_COUNTS: [usize; 3] = [1, 4, 16];
/// Distinct partition keys the writers draw from.
pub(super) const KEY_POOL: usize = 1000;
/// Seconds per cell in a full run: long enough for p99 to settle on a disk doing ~1000 syncs/s.
const FULL_SECONDS: f64 = 4.0;
/// Seconds per cell with `--quick`: 16 runs of 0.6 s stay well under a minute.
const QUICK_SECONDS: f64 = 0.6;

/// Arguments of `tributary bench stream`.
#[derive(Debug, Args)]
pub struct StreamBenchArgs {
    /// 0.6 s per cell instead of 4 s (the whole run takes ~15 s instead of ~70 s).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub log: super::LogArgs,
    /// Size of each record's value in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub record_bytes: u32,
    /// Run only the first N cells (and the raw loop for their batch sizes); for tests.
    #[arg(long, hide = true, value_name = "N")]
    pub cells: Option<usize>,
    /// Seconds per cell, overriding --quick; for tests.
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub seconds: Option<f64>,
}

/// The JSON line, in the order a person reads it.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    version: &'static str,
    machine: Machine,
    params: Params,
    cells: Vec<Cell>,
    raw: Vec<Raw>,
    ratios: Vec<Ratio>,
}

/// What the run was asked to do.
#[derive(Debug, Serialize)]
struct Params {
    durability: String,
    shards: u32,
    record_bytes: usize,
    seconds_per_cell: f64,
    key_pool: usize,
    dir: PathBuf,
}

/// One (batch size, writer count) measurement; `bench ingest` reports it as its stream bound.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Cell {
    pub(super) batch: usize,
    pub(super) writers: usize,
    pub(super) records: u64,
    pub(super) appends: u64,
    pub(super) seconds: f64,
    pub(super) records_per_s: f64,
    pub(super) mb_per_s: f64,
    pub(super) p50_us: u32,
    pub(super) p99_us: u32,
    pub(super) max_us: u32,
}

/// The raw disk loop for one batch size.
#[derive(Debug, Clone, Serialize)]
struct Raw {
    batch: usize,
    records: u64,
    syncs: u64,
    seconds: f64,
    records_per_s: f64,
    mb_per_s: f64,
    p50_us: u32,
    p99_us: u32,
}

/// Best group commit over the raw loop, per batch size.
#[derive(Debug, Clone, Serialize)]
struct Ratio {
    batch: usize,
    best_writers: usize,
    best_records_per_s: f64,
    raw_records_per_s: f64,
    ratio: f64,
}

/// Shards when `--shards` is not given: the append goal (a million records/s with batches of
/// 500 from many writers) needs more than one writer thread.
const STREAM_BENCH_SHARDS: u32 = 4;

/// Runs the benchmark, prints the table and the JSON line.
pub fn run(config: &Config, args: &StreamBenchArgs) -> Result<ExitCode> {
    let seconds = args.seconds.unwrap_or(if args.quick {
        QUICK_SECONDS
    } else {
        FULL_SECONDS
    });
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(crate::exit::UsageError(format!(
            "--seconds is {seconds}, must be in (0, 3600]"
        ))
        .into());
    }
    let duration = Duration::from_secs_f64(seconds);
    let record_bytes = args.record_bytes as usize;
    let shards = args.log.shards.unwrap_or(STREAM_BENCH_SHARDS);

    let mut plan: Vec<(usize, usize)> = BATCH_SIZES
        .iter()
        .flat_map(|&batch| WRITER_COUNTS.iter().map(move |&writers| (batch, writers)))
        .collect();
    if let Some(limit) = args.cells {
        plan.truncate(limit.max(1));
    }
    let mut raw_batches: Vec<usize> = plan.iter().map(|&(batch, _)| batch).collect();
    raw_batches.dedup();

    let (scratch, parent, machine) = args.log.prepare(config, "stream")?;

    let bar = progress_bar((plan.len() + raw_batches.len()) as u64);
    let value = sample_value(record_bytes);
    let keys = session_keys();
    let mut cells = Vec::with_capacity(plan.len());
    for &(batch, writers) in &plan {
        bar.set_message(format!("append: batch {batch}, {writers} writers"));
        let stream_config = StreamConfig {
            shards: Some(shards),
            durability: args.log.durability,
            ..StreamConfig::default()
        };
        let dir = scratch.path().join(format!("b{batch}-w{writers}"));
        let cell = run_cell(&dir, stream_config, batch, writers, duration, &keys, &value)
            .with_context(|| format!("benchmark cell batch={batch} writers={writers}"))?;
        cells.push(cell);
        bar.inc(1);
    }
    let mut raws = Vec::with_capacity(raw_batches.len());
    for &batch in &raw_batches {
        bar.set_message(format!("raw disk: batch {batch}"));
        let path = scratch.path().join(format!("raw-b{batch}.bin"));
        raws.push(
            run_raw(&path, batch, record_bytes, duration)
                .with_context(|| format!("raw disk loop batch={batch}"))?,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ratios = ratios(&cells, &raws);

    output::print(&render(
        &machine, args, seconds, &parent, &cells, &raws, &ratios,
    ))?;
    output::json_line(&Report {
        bench: "stream",
        version: env!("CARGO_PKG_VERSION"),
        machine,
        params: Params {
            durability: args.log.durability.to_string(),
            shards,
            record_bytes,
            seconds_per_cell: seconds,
            key_pool: KEY_POOL,
            dir: parent,
        },
        cells,
        raw: raws,
        ratios,
    })?;
    drop(scratch);
    Ok(ExitCode::from(OK))
}

/// The partition keys writers draw from: [`KEY_POOL`] sessions of one tenant.
pub(super) fn session_keys() -> Vec<Bytes> {
    (0..KEY_POOL)
        .map(|i| Bytes::from(format!("tenant:session-{i}")))
        .collect()
}

/// A value of `len` printable bytes; not all zeros, so nothing below can shortcut it.
pub(super) fn sample_value(len: usize) -> Bytes {
    let mut rng = StdRng::seed_from_u64(0x7269_6275);
    (0..len)
        .map(|_| rng.random_range(b'a'..=b'z'))
        .collect::<Vec<u8>>()
        .into()
}

/// One cell: a fresh log in `dir` (deleted afterwards), `writers` threads appending batches of
/// `batch` records, each batch under one key drawn from `keys`, with `value` as every record's
/// value, for `duration`.
pub(super) fn run_cell(
    dir: &std::path::Path,
    config: StreamConfig,
    batch: usize,
    writers: usize,
    duration: Duration,
    keys: &[Bytes],
    value: &Bytes,
) -> Result<Cell> {
    let log = EmbeddedLog::open(dir, config)
        .with_context(|| format!("opening a fresh stream in {}", dir.display()))?;
    // All writers start together, and the clock starts when they do.
    let start_line = Barrier::new(writers + 1);
    let (elapsed, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                let log = &log;
                let start_line = &start_line;
                scope.spawn(move || -> Result<(u64, Latencies)> {
                    let mut rng = StdRng::seed_from_u64(writer as u64);
                    let mut latencies = Latencies::default();
                    let mut records = 0u64;
                    start_line.wait();
                    let deadline = Instant::now() + duration;
                    while Instant::now() < deadline {
                        let key = &keys[rng.random_range(0..keys.len())];
                        let records_of_batch: Vec<Record> = (0..batch)
                            .map(|_| Record {
                                key: key.clone(),
                                value: value.clone(),
                            })
                            .collect();
                        let started = Instant::now();
                        log.append_blocking(records_of_batch)?;
                        latencies.push(started.elapsed());
                        records += batch as u64;
                    }
                    Ok((records, latencies))
                })
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (started.elapsed(), results)
    });
    let mut records = 0;
    let mut latencies = Latencies::default();
    for result in results {
        let (count, samples) = result.map_err(|_| anyhow!("a writer thread panicked"))??;
        records += count;
        latencies.extend(samples);
    }
    log.close().context("closing the benchmarked stream")?;
    drop(log);
    std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;

    let seconds = elapsed.as_secs_f64();
    let percentiles = latencies.finish();
    Ok(Cell {
        batch,
        writers,
        records,
        appends: percentiles.count(),
        seconds: round(seconds, 3),
        records_per_s: round(records as f64 / seconds, 1),
        mb_per_s: round(records as f64 * value.len() as f64 / seconds / 1e6, 2),
        p50_us: percentiles.get(50.0),
        p99_us: percentiles.get(99.0),
        max_us: percentiles.max(),
    })
}

/// The raw bound for `batch`: one thread, one file, write then `fdatasync`, for `duration`.
fn run_raw(
    path: &std::path::Path,
    batch: usize,
    record_bytes: usize,
    duration: Duration,
) -> Result<Raw> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let buffer = sample_value(batch * record_bytes);
    let mut latencies = Latencies::default();
    let started = Instant::now();
    let deadline = started + duration;
    while Instant::now() < deadline {
        let call = Instant::now();
        file.write_all(&buffer)
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("syncing {}", path.display()))?;
        latencies.push(call.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path).with_context(|| format!("deleting {}", path.display()))?;
    let percentiles = latencies.finish();
    let syncs = percentiles.count();
    let records = syncs * batch as u64;
    Ok(Raw {
        batch,
        records,
        syncs,
        seconds: round(seconds, 3),
        records_per_s: round(records as f64 / seconds, 1),
        mb_per_s: round(records as f64 * record_bytes as f64 / seconds / 1e6, 2),
        p50_us: percentiles.get(50.0),
        p99_us: percentiles.get(99.0),
    })
}

/// For each batch size with a raw figure: the best cell over the raw loop.
fn ratios(cells: &[Cell], raws: &[Raw]) -> Vec<Ratio> {
    raws.iter()
        .filter_map(|raw| {
            let best = cells
                .iter()
                .filter(|cell| cell.batch == raw.batch)
                .max_by(|a, b| a.records_per_s.total_cmp(&b.records_per_s))?;
            let ratio = if raw.records_per_s > 0.0 {
                best.records_per_s / raw.records_per_s
            } else {
                0.0
            };
            Some(Ratio {
                batch: raw.batch,
                best_writers: best.writers,
                best_records_per_s: best.records_per_s,
                raw_records_per_s: raw.records_per_s,
                ratio: round(ratio, 2),
            })
        })
        .collect()
}

/// The tables for people.
fn render(
    machine: &Machine,
    args: &StreamBenchArgs,
    seconds: f64,
    parent: &std::path::Path,
    cells: &[Cell],
    raws: &[Raw],
    ratios: &[Ratio],
) -> String {
    let rate = |value: f64| output::thousands(value.round() as u64);
    let mut text = format!(
        "stream bench: durability {}, {} shards, {}-byte values, keys from {KEY_POOL} sessions, \
         {seconds} s per cell, in {}\nmachine: {}\n\n",
        args.log.durability,
        args.log.shards.unwrap_or(STREAM_BENCH_SHARDS),
        args.record_bytes,
        parent.display(),
        machine.summary(),
    );

    text.push_str("group commit: W threads calling append_blocking with batches of B records\n");
    let mut table = Table::new(&["batch", "writers", "records/s", "MB/s", "p50 µs", "p99 µs"]);
    for cell in cells {
        table.row(vec![
            cell.batch.to_string(),
            cell.writers.to_string(),
            rate(cell.records_per_s),
            format!("{:.1}", cell.mb_per_s),
            output::thousands(u64::from(cell.p50_us)),
            output::thousands(u64::from(cell.p99_us)),
        ]);
    }
    text.push_str(&table.render());

    text.push_str("\nraw disk bound: one thread, write B records then fdatasync, repeat\n");
    let mut table = Table::new(&["batch", "records/s", "MB/s", "syncs/s", "p50 µs", "p99 µs"]);
    for raw in raws {
        table.row(vec![
            raw.batch.to_string(),
            rate(raw.records_per_s),
            format!("{:.1}", raw.mb_per_s),
            rate(raw.syncs as f64 / raw.seconds.max(f64::MIN_POSITIVE)),
            output::thousands(u64::from(raw.p50_us)),
            output::thousands(u64::from(raw.p99_us)),
        ]);
    }
    text.push_str(&table.render());

    text.push_str("\nbest group commit ÷ raw disk, per batch size\n");
    let mut table = Table::new(&[
        "batch",
        "best writers",
        "records/s",
        "raw records/s",
        "ratio",
    ]);
    for ratio in ratios {
        table.row(vec![
            ratio.batch.to_string(),
            ratio.best_writers.to_string(),
            rate(ratio.best_records_per_s),
            rate(ratio.raw_records_per_s),
            format!("{:.2}x", ratio.ratio),
        ]);
    }
    text.push_str(&table.render());
    if args.log.durability != Durability::Fsync {
        text.push_str(&format!(
            "note: the log ran with durability {}, the raw loop always syncs; ratios above 1 \
             are expected\n",
            args.log.durability
        ));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(batch: usize, writers: usize, records_per_s: f64) -> Cell {
        Cell {
            batch,
            writers,
            records: 0,
            appends: 0,
            seconds: 1.0,
            records_per_s,
            mb_per_s: 0.0,
            p50_us: 0,
            p99_us: 0,
            max_us: 0,
        }
    }

    fn raw(batch: usize, records_per_s: f64) -> Raw {
        Raw {
            batch,
            records: 0,
            syncs: 0,
            seconds: 1.0,
            records_per_s,
            mb_per_s: 0.0,
            p50_us: 0,
            p99_us: 0,
        }
    }

    #[test]
    fn ratio_takes_the_best_writer_count_per_batch() {
        let cells = [cell(1, 1, 100.0), cell(1, 16, 900.0), cell(10, 1, 5000.0)];
        let raws = [raw(1, 300.0), raw(10, 2500.0), raw(100, 1.0)];
        let ratios = ratios(&cells, &raws);
        assert_eq!(ratios.len(), 2, "no cell for batch 100, so no ratio");
        assert_eq!(ratios[0].best_writers, 16);
        assert_eq!(ratios[0].ratio, 3.0);
        assert_eq!(ratios[1].ratio, 2.0);
    }

    #[test]
    fn full_plan_has_twelve_cells() {
        assert_eq!(BATCH_SIZES.len() * WRITER_COUNTS.len(), 12);
    }

    #[test]
    fn sample_values_have_the_asked_size() {
        assert_eq!(sample_value(400).len(), 400);
        assert!(sample_value(400).iter().all(u8::is_ascii_lowercase));
    }
}
