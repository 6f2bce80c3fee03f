//! `tributary bench lake`: how fast the lake writer turns the stream into Parquet, how small the
//! result is, and how little of a month a one-hour query opens.
//!
//! ```text
//!  1. write      SampleTraffic ─JSON─▶ EmbeddedLog (durability none, not timed)
//!                                         │ timed: from LakeWriter::new to the catalog checkpoint
//!                                         ▼ covering every shard's end
//!                LakeWriter ─▶ raw archive + curated Parquet, committed with the checkpoint
//!  2. size       curated and raw bytes per event, then again after one compaction pass, and
//!                the CPU that pass spent per table (the lake's other steady-state cost)
//!  3. pruning    30 days of events, one curated file per hour and family (what hourly flushes
//!                leave), written with the lake's own buffer/encoder/commit code; a one-hour
//!                COUNT(*) through QueryEngine: files scanned of files total, and the count
//!                against the generator's
//! ```
//!
//! The writer runs with the default flush sizes (64 MiB per partition, 256 MiB in all) and a
//! 1 s flush interval instead of 5 s: the last partial buffer is flushed by the interval, so the
//! interval bounds the idle tail of the measured phase (≤ 1 s) without changing the size-driven
//! flushes of the steady state. The per-core figure does not depend on that tail at all: it is
//! events ÷ CPU seconds the whole process used during the phase (getrusage: user + system, every
//! thread), which is the same as events/s ÷ (CPU seconds ÷ wall seconds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use arrow::datatypes::SchemaRef;
use clap::Args;
use indicatif::ProgressBar;
use object_store::ObjectStore;
use serde::Serialize;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tributary_catalog::{Catalog, CommitKind, DataFile, EmbeddedCatalog, TableInfo};
use tributary_lake::buffer::CuratedBuffer;
use tributary_lake::commit::{NewFile, new_file, publish};
use tributary_lake::family::FamilyRules;
use tributary_lake::layout::{curated_partition, day_of};
use tributary_lake::parquet_io::{ParquetOptions, encode, writer_properties};
use tributary_lake::schema::{EVENTS, RAW_EVENTS, curated_file_schema};
use tributary_lake::{
    LakeConfig, LakeTables, LakeWriter, WriterRole, archive_consumer, compaction, local_store,
};
use tributary_model::{Event, now_micros};
use tributary_pipeline::Pipeline;
use tributary_pipeline::dedup::DedupStore;
use tributary_query::{QueryConfig, QueryEngine, Scope};
use tributary_stream::{Durability, EmbeddedLog, Record, Stream, StreamConfig};

use super::{Machine, Scratch, progress_bar, round};
use crate::config::Config;
use crate::exit::{FAILURE, OK};
use crate::output::{self, Table};
use crate::runtime;
use crate::sample_traffic::SampleTraffic;

/// Events of a full run.
const FULL_EVENTS: u64 = 2_000_000;
/// Events of a `--quick` run.
const QUICK_EVENTS: u64 = 300_000;
/// The generator's seed: every run writes the same events (their times aside).
pub(super) const SEED: u64 = 0x7472_6962_7574;
/// The issue's goal for curated Parquet, bytes per event.
const GOAL_CURATED_BYTES_PER_EVENT: f64 = 40.0;
/// The writer's flush interval in this benchmark (see the module documentation).
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Records per append while the stream is filled.
const APPEND_BATCH: usize = 500;
/// How often the catalog checkpoint is polled while the writer runs.
const POLL: Duration = Duration::from_millis(10);
/// Days of data of the pruning phase (`--days` changes it for smoke tests).
const MONTH_DAYS: i64 = 30;

/// µs per hour.
pub(super) const HOUR: i64 = 3_600_000_000;
/// µs per day.
pub(super) const DAY: i64 = 24 * HOUR;

/// Arguments of `tributary bench lake`.
#[derive(Debug, Args)]
pub struct LakeBenchArgs {
    /// 300,000 events instead of 2,000,000 (~20 s in all instead of ~2 min).
    #[arg(long)]
    pub quick: bool,
    /// Events to generate [default: 2,000,000; 300,000 with --quick].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub events: Option<u64>,
    /// Events are trimmed toward this many bytes of JSON (the issue's "about 400 bytes", as
    /// `bench ingest` sends them) by dropping optional context; 0 keeps a browser's full
    /// context (~600 bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 400)]
    pub event_bytes: usize,
    /// Shards of the stream the writer reads.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub shards: u32,
    /// Scratch directory [default: <data_dir>/bench]; deleted afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Days of the pruning phase's data instead of 30; for quick smoke tests.
    #[arg(long, hide = true, value_name = "DAYS", default_value_t = MONTH_DAYS,
          value_parser = clap::value_parser!(i64).range(1..=366))]
    pub days: i64,
}

/// The JSON line.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    version: &'static str,
    machine: Machine,
    params: Params,
    write: WriteFigures,
    size: SizeFigures,
    pruning: PruningFigures,
    goal: Goal,
}

/// What the run was asked to do.
#[derive(Debug, Serialize)]
struct Params {
    events: u64,
    event_bytes: usize,
    shards: u32,
    durability: &'static str,
    flush_bytes: u64,
    flush_interval_ms: u64,
    max_buffer_bytes: u64,
    zstd_level: i32,
    row_group_rows: usize,
    dir: PathBuf,
}

/// Phase 1: the real writer consuming the stream.
#[derive(Debug, Serialize)]
struct WriteFigures {
    /// Seconds spent generating the events and appending them (not part of the figure).
    fill_seconds: f64,
    /// From `LakeWriter::new` until the catalog checkpoint covered every shard's end.
    seconds: f64,
    events_per_s: f64,
    /// CPU seconds (user + system) of the whole process during the phase.
    cpu_seconds: f64,
    /// `cpu_seconds ÷ seconds`.
    cores_used: f64,
    /// `events ÷ cpu_seconds` = `events_per_s ÷ cores_used`.
    events_per_s_per_core: f64,
    /// Cores other processes of the machine kept busy meanwhile (a busy neighbour slows the
    /// wall-clock figures, not the per-core one).
    other_processes_cores: Option<f64>,
    /// Flush commits the writer made.
    flushes: u64,
    /// Curated rows in the catalog afterwards: must equal the events.
    curated_rows: u64,
    /// Raw archive rows afterwards: must equal the events.
    raw_rows: u64,
}

/// Phase 2: bytes on disk.
#[derive(Debug, Serialize)]
struct SizeFigures {
    /// Mean size of an event's JSON as the stream stores it.
    json_bytes_per_event: f64,
    after_writer: TableSizes,
    after_compaction: TableSizes,
    /// Seconds the compaction pass took (both tables).
    compaction_seconds: f64,
    /// Rows rewritten by it.
    compaction_rows: u64,
    /// What compaction cost per table: it rewrites nearly every file the writer flushes, so
    /// the lake's steady-state CPU per event is the writer's plus this.
    compaction: CompactionCost,
}

/// CPU the compaction pass spent, per table, next to the zstd level it wrote at.
#[derive(Debug, Serialize)]
struct CompactionCost {
    /// `lake.compaction.zstd_level`.
    curated_zstd_level: i32,
    /// CPU seconds compacting `events`.
    curated_cpu_seconds: f64,
    /// `lake.compaction.raw_zstd_level`.
    raw_zstd_level: i32,
    /// CPU seconds compacting `raw_events`.
    raw_cpu_seconds: f64,
    /// Both tables' compaction CPU per event, in microseconds.
    cpu_us_per_event: f64,
    /// Events per CPU second of writer and compaction together: what one core sustains.
    with_writer_events_per_s_per_core: f64,
}

/// Live files and bytes of both tables at one point.
#[derive(Debug, Serialize)]
struct TableSizes {
    curated_files: usize,
    curated_bytes: u64,
    curated_bytes_per_event: f64,
    raw_files: usize,
    raw_bytes: u64,
    raw_bytes_per_event: f64,
}

/// Phase 3: what a one-hour query over a month opens.
#[derive(Debug, Serialize)]
struct PruningFigures {
    days: i64,
    events: u64,
    /// Seconds it took to generate and write the month.
    build_seconds: f64,
    /// The hour queried, `[from, until)` in RFC 3339.
    from: String,
    until: String,
    sql: String,
    files_total: u64,
    /// Files the catalog listed for the hour (its time index).
    files_listed: u64,
    /// Files the scan opened after pruning.
    files_scanned: u64,
    bytes_total: u64,
    bytes_scanned: u64,
    /// `files_scanned ÷ files_total`.
    share: f64,
    count: u64,
    expected: u64,
    correct: bool,
    /// Best of three runs after a warm-up.
    query_ms: f64,
}

/// The issue's goal and whether the run met it.
#[derive(Debug, Serialize)]
struct Goal {
    curated_bytes_per_event: f64,
    /// After compaction, when files are their realistic size.
    met: bool,
}

/// Runs the benchmark, prints the table and the JSON line.
pub fn run(config: &Config, args: &LakeBenchArgs) -> Result<ExitCode> {
    let events = args.events.unwrap_or(if args.quick {
        QUICK_EVENTS
    } else {
        FULL_EVENTS
    });
    let (scratch, parent) = Scratch::for_run(config, args.dir.as_deref(), "lake")?;
    let machine = Machine::detect(scratch.path());
    warn_debug_build(&machine, "lake");
    let runtime = runtime::build(machine.cores)?;

    // The configured writer (zstd level, sizes, promoted properties), flushing on the
    // benchmark's interval so a run of a few seconds writes several commits.
    let lake_config = LakeConfig {
        flush_interval: FLUSH_INTERVAL,
        ..config.lake.clone()
    };
    let params = Params {
        events,
        event_bytes: args.event_bytes,
        shards: args.shards,
        durability: "none",
        flush_bytes: lake_config.flush_bytes,
        flush_interval_ms: u64::try_from(lake_config.flush_interval.as_millis()).unwrap_or(0),
        max_buffer_bytes: lake_config.max_buffer_bytes,
        zstd_level: lake_config.zstd_level,
        row_group_rows: lake_config.row_group_rows,
        dir: parent,
    };

    let bar = progress_bar(events * 2);
    let (write, size) = write_phase(
        &runtime,
        &scratch.path().join("write"),
        args,
        events,
        &lake_config,
        &bar,
    )?;
    let pruning = pruning_phase(
        &runtime,
        &scratch.path().join("month"),
        config,
        events,
        args,
        &bar,
    )?;
    bar.finish_and_clear();

    let goal = Goal {
        curated_bytes_per_event: GOAL_CURATED_BYTES_PER_EVENT,
        met: size.after_compaction.curated_bytes_per_event <= GOAL_CURATED_BYTES_PER_EVENT,
    };
    output::print(&render(&machine, &params, &write, &size, &pruning, &goal))?;
    let lost = write.curated_rows != events || write.raw_rows != events;
    let wrong = !pruning.correct;
    output::json_line(&Report {
        bench: "lake",
        version: env!("CARGO_PKG_VERSION"),
        machine,
        params,
        write,
        size,
        pruning,
        goal,
    })?;
    drop(runtime);
    drop(scratch);
    if lost || wrong {
        eprintln!("error: the lake does not hold exactly the generated events (see above)");
        return Ok(ExitCode::from(FAILURE));
    }
    Ok(ExitCode::from(OK))
}

/// Warns that a debug build's figures are not comparable.
pub(super) fn warn_debug_build(machine: &Machine, bench: &str) {
    if machine.build == "debug" {
        eprintln!(
            "warning: this is a debug build; its figures are not comparable \
             (cargo run --release -p tributary -- bench {bench})"
        );
    }
}

/// Phases 1 and 2: fill a stream, time the real writer draining it, measure, compact, measure.
fn write_phase(
    runtime: &Runtime,
    dir: &Path,
    args: &LakeBenchArgs,
    events: u64,
    lake_config: &LakeConfig,
    bar: &ProgressBar,
) -> Result<(WriteFigures, SizeFigures)> {
    bar.set_message("filling the stream");
    let started = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = Arc::new(
        EmbeddedLog::open(
            dir.join("stream"),
            StreamConfig {
                shards: Some(args.shards),
                durability: Durability::None,
                ..StreamConfig::default()
            },
        )
        .context("opening the benchmark's stream")?,
    );
    // One hour of traffic ending at the last full hour: a backlog, as after an outage.
    let until = now_micros().div_euclid(HOUR) * HOUR;
    let json_bytes = fill_stream(&log, events, until - HOUR, args.event_bytes, bar)?;
    let fill_seconds = started.elapsed().as_secs_f64();

    let catalog =
        Arc::new(EmbeddedCatalog::open(dir.join("catalog.db")).context("opening the catalog")?);
    let store = local_store(&dir.join("lake")).context("opening the lake")?;
    bar.set_message("lake writer");
    let (seconds, cpu, other_cores) = runtime.block_on(drain(
        &log,
        &catalog,
        &store,
        lake_config,
        None,
        WriterRole::Both,
    ))?;

    let flushes = runtime
        .block_on(catalog.commits(1_000_000))?
        .iter()
        .filter(|commit| commit.kind == CommitKind::Flush)
        .count() as u64;
    let after_writer = runtime.block_on(table_sizes(catalog.as_ref(), events))?;
    let (curated_rows, raw_rows) = runtime.block_on(async {
        let rows = |files: Vec<DataFile>| files.iter().map(|f| f.rows).sum::<u64>();
        let curated = catalog.snapshot(EVENTS, None, None).await?;
        let raw = catalog.snapshot(RAW_EVENTS, None, None).await?;
        Ok::<_, anyhow::Error>((rows(curated.files), rows(raw.files)))
    })?;

    // One pass merging every partition's small files, whatever their number.
    bar.set_message("compaction");
    let compacting = Instant::now();
    let pass = compaction_pass(runtime, &catalog, &store, lake_config)?;
    let compaction_seconds = compacting.elapsed().as_secs_f64();
    let after_compaction = runtime.block_on(table_sizes(catalog.as_ref(), events))?;
    log.close().context("closing the benchmark's stream")?;

    let cpu_seconds = cpu.map_or(0.0, |cpu| cpu.as_secs_f64());
    let per_second = |n: f64, seconds: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
    let write = WriteFigures {
        fill_seconds: round(fill_seconds, 2),
        seconds: round(seconds, 3),
        events_per_s: per_second(events as f64, seconds).round(),
        cpu_seconds: round(cpu_seconds, 3),
        cores_used: round(per_second(cpu_seconds, seconds), 2),
        events_per_s_per_core: per_second(events as f64, cpu_seconds).round(),
        other_processes_cores: other_cores,
        flushes,
        curated_rows,
        raw_rows,
    };
    let size = SizeFigures {
        json_bytes_per_event: round(json_bytes as f64 / events as f64, 1),
        after_writer,
        after_compaction,
        compaction_seconds: round(compaction_seconds, 2),
        compaction_rows: pass.rows,
        compaction: CompactionCost {
            curated_zstd_level: lake_config.compaction.zstd_level,
            curated_cpu_seconds: round(pass.curated_cpu_seconds, 2),
            raw_zstd_level: lake_config.compaction.raw_zstd_level,
            raw_cpu_seconds: round(pass.raw_cpu_seconds, 2),
            cpu_us_per_event: round(pass.cpu_seconds() * 1e6 / events.max(1) as f64, 2),
            with_writer_events_per_s_per_core: per_second(
                events as f64,
                cpu_seconds + pass.cpu_seconds(),
            )
            .round(),
        },
    };
    Ok((write, size))
}

/// What one compaction pass over every table did and cost.
pub(super) struct CompactionPass {
    /// Rows rewritten.
    pub rows: u64,
    /// CPU seconds compacting the curated tables (`events`, `quarantine`).
    pub curated_cpu_seconds: f64,
    /// CPU seconds compacting `raw_events`.
    pub raw_cpu_seconds: f64,
}

impl CompactionPass {
    /// Both kinds of table together.
    pub fn cpu_seconds(&self) -> f64 {
        self.curated_cpu_seconds + self.raw_cpu_seconds
    }
}

/// Compacts every partition with at least two small files, in every table, once, and measures
/// the process's CPU per table: nothing else runs on `runtime` meanwhile, so that CPU is the
/// pass's. Compaction rewrites nearly every file the writer flushes, so this is the other half
/// of what the lake costs per event in steady state.
pub(super) fn compaction_pass(
    runtime: &Runtime,
    catalog: &Arc<EmbeddedCatalog>,
    store: &Arc<dyn ObjectStore>,
    lake_config: &LakeConfig,
) -> Result<CompactionPass> {
    let mut config = lake_config.clone();
    config.compaction.min_small_files = 2;
    runtime.block_on(async {
        let tables = LakeTables::ensure(catalog.as_ref(), &config).await?;
        let mut pass = CompactionPass {
            rows: 0,
            curated_cpu_seconds: 0.0,
            raw_cpu_seconds: 0.0,
        };
        for table in [&tables.events, &tables.quarantine, &tables.raw] {
            let before = process_cpu();
            pass.rows += compaction::compact_table(catalog.as_ref(), store, table, &config)
                .await
                .with_context(|| format!("compacting {}", table.def.name))?
                .rows;
            let cpu = before.zip(process_cpu()).map_or(0.0, |(before, after)| {
                after.saturating_sub(before).as_secs_f64()
            });
            if table.def.name == RAW_EVENTS {
                pass.raw_cpu_seconds += cpu;
            } else {
                pass.curated_cpu_seconds += cpu;
            }
        }
        Ok(pass)
    })
}

/// Appends `count` generated events, stamped evenly over the hour from `from`, as the collector
/// stores them (JSON keyed by tenant and session). Returns the bytes of JSON appended.
pub(super) fn fill_stream(
    log: &EmbeddedLog,
    count: u64,
    from: i64,
    event_bytes: usize,
    bar: &ProgressBar,
) -> Result<u64> {
    let mut traffic = SampleTraffic::new(SEED);
    let mut json_bytes = 0u64;
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    for index in 0..count {
        let mut event = traffic.next_event(spread(from, HOUR, index, count));
        if event_bytes > 0 {
            crate::loadgen::compact(&mut event, event_bytes);
        }
        let json = serde_json::to_vec(&event).context("encoding an event")?;
        json_bytes += json.len() as u64;
        batch.push(Record::new(event.partition_key(), json));
        if batch.len() == APPEND_BATCH || index + 1 == count {
            let appended = batch.len() as u64;
            log.append_blocking(std::mem::replace(
                &mut batch,
                Vec::with_capacity(APPEND_BATCH),
            ))
            .context("appending to the benchmark's stream")?;
            bar.inc(appended);
        }
    }
    Ok(json_bytes)
}

/// Runs the real writer, playing `role`, until its checkpoint in the catalog covers every
/// shard's end, then stops it.
/// Returns the wall seconds until then, the CPU time the process used meanwhile, and the cores
/// other processes kept busy.
pub(super) async fn drain(
    log: &Arc<EmbeddedLog>,
    catalog: &Arc<EmbeddedCatalog>,
    store: &Arc<dyn ObjectStore>,
    config: &LakeConfig,
    pipeline: Option<(Arc<Pipeline>, Option<DedupStore>)>,
    role: WriterRole,
) -> Result<(f64, Option<Duration>, Option<f64>)> {
    // The checkpoint that says the writer is done: the curated one when it curates.
    let consumer = if role.curates() {
        config.consumer.clone()
    } else {
        archive_consumer(&config.consumer)
    };
    let ends: Vec<u64> = log
        .shard_stats()
        .await
        .context("reading the stream's extent")?
        .iter()
        .map(|shard| shard.next_seq)
        .collect();
    let neighbours = Neighbours::watch();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let writer = LakeWriter::new(
        Arc::clone(log) as Arc<dyn Stream>,
        Arc::clone(catalog) as Arc<dyn Catalog>,
        Arc::clone(store),
        config.clone(),
    )
    .await
    .context("starting the lake writer")?;
    let writer = match pipeline {
        Some((pipeline, dedup)) => writer.with_pipeline(pipeline, dedup),
        None => writer,
    }
    .with_role(role);
    let (stop, stopped) = watch::channel(false);
    let mut task = tokio::spawn(async move { writer.run(stopped).await });
    loop {
        let checkpoint = catalog.checkpoint(&consumer).await?;
        let caught_up = ends.iter().enumerate().all(|(shard, end)| {
            let shard = u32::try_from(shard).unwrap_or(u32::MAX);
            checkpoint.positions.get(&shard).copied().unwrap_or(0) >= *end
        });
        if caught_up {
            break;
        }
        if task.is_finished() {
            return match (&mut task).await {
                Ok(Ok(())) => Err(anyhow!("the lake writer stopped before it caught up")),
                Ok(Err(error)) => Err(anyhow::Error::new(error).context("the lake writer failed")),
                Err(join) => Err(anyhow!("the lake writer panicked: {join}")),
            };
        }
        tokio::time::sleep(POLL).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let other_cores = neighbours.cores();
    let _ = stop.send(true);
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(anyhow::Error::new(error).context("stopping the writer")),
        Err(join) => return Err(anyhow!("the lake writer panicked: {join}")),
    }
    Ok((seconds, cpu, other_cores))
}

/// Live files and bytes of `events` and `raw_events`, per event.
async fn table_sizes(catalog: &dyn Catalog, events: u64) -> Result<TableSizes> {
    let curated = catalog.snapshot(EVENTS, None, None).await?.files;
    let raw = catalog.snapshot(RAW_EVENTS, None, None).await?.files;
    let bytes = |files: &[DataFile]| files.iter().map(|f| f.bytes).sum::<u64>();
    let per_event = |bytes: u64| round(bytes as f64 / events.max(1) as f64, 1);
    Ok(TableSizes {
        curated_files: curated.len(),
        curated_bytes: bytes(&curated),
        curated_bytes_per_event: per_event(bytes(&curated)),
        raw_files: raw.len(),
        raw_bytes: bytes(&raw),
        raw_bytes_per_event: per_event(bytes(&raw)),
    })
}

/// 2026-10-02T00:00:00Z: the pruning phase's month starts here, so its queries name fixed hours.
pub(super) const MONTH_START: i64 = 1_790_899_200_000_000;

/// Phase 3: a month of hourly files, then a one-hour count through the query engine.
fn pruning_phase(
    runtime: &Runtime,
    dir: &Path,
    config: &Config,
    events: u64,
    args: &LakeBenchArgs,
    bar: &ProgressBar,
) -> Result<PruningFigures> {
    let days = args.days;
    bar.set_message(format!("{days} days of hourly files"));
    let started = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let catalog: Arc<dyn Catalog> = Arc::new(
        EmbeddedCatalog::open(dir.join("catalog.db")).context("opening the month's catalog")?,
    );
    let store = local_store(&dir.join("lake")).context("opening the month's lake")?;
    let lake_config = LakeConfig::default();
    // A mid-month afternoon hour.
    let from = MONTH_START + (days / 2) * DAY + 14 * HOUR;
    let until = from + HOUR;
    let mut writer = DirectWriter::start(
        runtime.handle(),
        Arc::clone(&catalog),
        Arc::clone(&store),
        &lake_config,
        HOUR,
        24,
    )?;
    let mut traffic = SampleTraffic::new(SEED);
    let mut expected = 0u64;
    let span = days * DAY;
    for index in 0..events {
        let ts = spread(MONTH_START, span, index, events);
        let mut event = traffic.next_event(ts);
        if args.event_bytes > 0 {
            crate::loadgen::compact(&mut event, args.event_bytes);
        }
        if (from..until).contains(&ts) {
            expected += 1;
        }
        writer.push(&event)?;
        if index % 8192 == 0 {
            bar.inc(8192.min(events - index));
        }
    }
    let written = writer.finish()?;
    let build_seconds = started.elapsed().as_secs_f64();

    bar.set_message("one-hour query");
    let engine = QueryEngine::new(
        Arc::clone(&catalog),
        store,
        QueryConfig {
            target_partitions: config.query.effective_target_partitions(),
            ..config.query.clone()
        },
    )
    .context("starting the query engine")?;
    let sql = format!(
        "SELECT count(*) AS n FROM events WHERE ts >= TIMESTAMP '{}' AND ts < TIMESTAMP '{}'",
        sql_timestamp(from),
        sql_timestamp(until)
    );
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..4 {
        let started = Instant::now();
        let output = runtime
            .block_on(engine.execute(&sql, Scope::All))
            .with_context(|| format!("running {sql}"))?;
        best = best.min(started.elapsed().as_secs_f64() * 1e3);
        last = Some(output);
    }
    let output = last.ok_or_else(|| anyhow!("the hour query did not run"))?;
    let count = single_count(&output.batches)?;
    let scan = output.scan;
    Ok(PruningFigures {
        days,
        events,
        build_seconds: round(build_seconds, 2),
        from: output::timestamp(from),
        until: output::timestamp(until),
        sql,
        files_total: written.files,
        files_listed: scan.files_listed,
        files_scanned: scan.files_scanned,
        bytes_total: written.bytes,
        bytes_scanned: scan.bytes_scanned,
        share: if written.files > 0 {
            round(scan.files_scanned as f64 / written.files as f64, 5)
        } else {
            0.0
        },
        count,
        expected,
        correct: count == expected,
        query_ms: round(best, 2),
    })
}

/// The one integer of a `SELECT count(*)` answer.
fn single_count(batches: &[arrow::array::RecordBatch]) -> Result<u64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let batch = batches
        .iter()
        .find(|batch| batch.num_rows() > 0)
        .ok_or_else(|| anyhow!("the count query answered no row"))?;
    let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64)
        .context("reading the count")?;
    let counts = column.as_primitive::<Int64Type>();
    if counts.is_null(0) {
        return Err(anyhow!("the count query answered NULL"));
    }
    Ok(u64::try_from(counts.value(0)).unwrap_or(0))
}

/// The time of the `index`-th of `count` events spread evenly over `span` µs from `start`.
pub(super) fn spread(start: i64, span: i64, index: u64, count: u64) -> i64 {
    let offset = i128::from(index) * i128::from(span) / i128::from(count.max(1));
    start + i64::try_from(offset).unwrap_or(span)
}

/// A µs timestamp as an SQL literal both DataFusion and DuckDB read as UTC:
/// `2026-10-17T14:00:00Z`.
pub(super) fn sql_timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// CPU time (user + system) the process has used so far, every thread counted, terminated
/// ones included (getrusage(2) `RUSAGE_SELF`); `None` where the OS does not tell.
pub(super) fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        rusage(libc::RUSAGE_SELF)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time (user + system) of this process's children that have ended and been waited for
/// (getrusage(2) `RUSAGE_CHILDREN`): the DuckDB process of `bench query`.
pub(super) fn children_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        rusage(libc::RUSAGE_CHILDREN)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(unix)]
fn rusage(who: libc::c_int) -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the `rusage` it is pointed to and touches nothing else.
    let status = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: all-zero is a valid `rusage` (plain integers), and getrusage succeeded.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

/// Cores the rest of the machine kept busy during a phase: every CPU's busy time
/// ([`super::ingest::machine_busy`]) minus this process's (and its children's) own, over the
/// phase's wall time. A busy neighbour (a build, another benchmark) takes cores the phase did
/// not get, and the figures must say so.
#[derive(Debug, Clone, Copy)]
pub(super) struct Neighbours {
    machine: Option<Duration>,
    own: Option<Duration>,
    started: Instant,
}

impl Neighbours {
    /// Starts watching.
    pub(super) fn watch() -> Neighbours {
        Neighbours {
            machine: super::ingest::machine_busy(),
            own: own_cpu(),
            started: Instant::now(),
        }
    }

    /// Cores used by other processes since [`Self::watch`]; `None` where the OS does not tell.
    pub(super) fn cores(&self) -> Option<f64> {
        let machine = super::ingest::machine_busy()?.checked_sub(self.machine?)?;
        let own = own_cpu()?.saturating_sub(self.own?);
        let seconds = self.started.elapsed().as_secs_f64();
        (seconds > 0.0).then(|| round(machine.saturating_sub(own).as_secs_f64() / seconds, 2))
    }
}

/// This process's CPU time and its waited-for children's.
fn own_cpu() -> Option<Duration> {
    Some(process_cpu()? + children_cpu()?)
}

/// What a [`DirectWriter`] committed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Written {
    /// Files.
    pub(super) files: u64,
    /// Bytes of those files.
    pub(super) bytes: u64,
    /// Rows in them.
    pub(super) rows: u64,
}

/// One window's partitions, sealed and on their way to the encoder.
type Sealed = Vec<(tributary_catalog::Partition, CuratedBuffer)>;

/// Writes curated `events` files straight from events, without a stream or the raw archive:
/// the lake's own code path from the buffer on (`CuratedBuffer` → sort → `parquet_io::encode`
/// with the writer's properties → `commit::publish`), one file per partition (`dt`,
/// `event_family`) per time window. Benchmarks use it to lay out weeks of data in seconds with
/// the file sizes that hourly flushes (window = 1 h) or compaction (window = 1 day) leave.
///
/// Events must come in time order. Encoding and commits run on a thread of their own, so the
/// caller's generating and the encoding use two cores.
pub(super) struct DirectWriter {
    schema: SchemaRef,
    promoted: Vec<tributary_lake::schema::PromotedProperty>,
    families: FamilyRules,
    window: i64,
    current: Option<i64>,
    buffers: BTreeMap<String, CuratedBuffer>,
    sender: Option<mpsc::SyncSender<Sealed>>,
    encoder: Option<JoinHandle<Result<Written>>>,
}

impl DirectWriter {
    /// Creates the `events` table in `catalog` if needed and starts the encoder thread, which
    /// commits every `windows_per_commit` windows (and at the end). `runtime` runs the async
    /// catalog and store calls.
    pub(super) fn start(
        runtime: &Handle,
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        config: &LakeConfig,
        window: i64,
        windows_per_commit: usize,
    ) -> Result<DirectWriter> {
        let tables = runtime
            .block_on(LakeTables::ensure(catalog.as_ref(), config))
            .context("creating the lake's tables")?;
        let schema = curated_file_schema(&config.promoted_properties);
        let options = ParquetOptions {
            zstd_level: config.zstd_level,
            row_group_rows: config.row_group_rows,
        };
        let properties = writer_properties(options, &schema, &["tenant_id", "ts"])?;
        let (sender, receiver) = mpsc::sync_channel::<Sealed>(2);
        let runtime = runtime.clone();
        let table = tables.events;
        let encoder = std::thread::Builder::new()
            .name("bench-encoder".into())
            .spawn(move || {
                encode_and_commit(
                    &runtime,
                    catalog.as_ref(),
                    &store,
                    &table,
                    &properties,
                    &receiver,
                    windows_per_commit.max(1),
                )
            })
            .context("starting the encoder thread")?;
        Ok(DirectWriter {
            schema,
            promoted: config.promoted_properties.clone(),
            families: FamilyRules::new(config.event_families.clone()),
            window: window.max(1),
            current: None,
            buffers: BTreeMap::new(),
            sender: Some(sender),
            encoder: Some(encoder),
        })
    }

    /// Adds one event (no earlier than the previous one's window).
    pub(super) fn push(&mut self, event: &Event) -> Result<()> {
        let window = event.ts.div_euclid(self.window);
        if self.current != Some(window) {
            self.seal()?;
            self.current = Some(window);
        }
        let family = self.families.family_of(&event.event_type);
        if !self.buffers.contains_key(family) {
            self.buffers.insert(
                family.to_owned(),
                CuratedBuffer::new(self.schema.clone(), &self.promoted),
            );
        }
        if let Some(buffer) = self.buffers.get_mut(family) {
            buffer.push(event, 0)?;
        }
        Ok(())
    }

    /// Hands the current window's buffers to the encoder.
    fn seal(&mut self) -> Result<()> {
        let Some(window) = self.current else {
            return Ok(());
        };
        let day = day_of(window * self.window);
        let sealed: Sealed = std::mem::take(&mut self.buffers)
            .into_iter()
            .map(|(family, buffer)| (curated_partition(day, &family), buffer))
            .collect();
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.send(sealed).is_ok());
        if !sent {
            // The encoder stopped: its error says why.
            return self
                .join()
                .and_then(|_| Err(anyhow!("the encoder thread stopped")));
        }
        Ok(())
    }

    /// Writes what is buffered, commits, and says what was committed in all.
    pub(super) fn finish(mut self) -> Result<Written> {
        self.seal()?;
        self.join()
    }

    fn join(&mut self) -> Result<Written> {
        self.sender = None;
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| anyhow!("the encoder thread was already joined"))?;
        encoder
            .join()
            .map_err(|_| anyhow!("the encoder thread panicked"))?
    }
}

/// The encoder thread of a [`DirectWriter`].
fn encode_and_commit(
    runtime: &Handle,
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    table: &TableInfo,
    properties: &parquet::file::properties::WriterProperties,
    receiver: &mpsc::Receiver<Sealed>,
    windows_per_commit: usize,
) -> Result<Written> {
    let mut written = Written::default();
    let mut pending: Vec<NewFile> = Vec::new();
    let mut windows = 0;
    let commit = |files: Vec<NewFile>, written: &mut Written| -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        written.files += files.len() as u64;
        written.bytes += files.iter().map(|f| f.record.bytes).sum::<u64>();
        written.rows += files.iter().map(|f| f.record.rows).sum::<u64>();
        runtime
            .block_on(publish(
                catalog,
                store,
                CommitKind::Flush,
                "flush",
                files,
                Vec::new(),
                Vec::new(),
            ))
            .context("committing files")?;
        Ok(())
    };
    for sealed in receiver {
        for (partition, buffer) in sealed {
            if buffer.rows() == 0 {
                continue;
            }
            let (batch, stats) = buffer.finish()?;
            let contents = encode(
                &batch.schema(),
                std::slice::from_ref(&batch),
                properties.clone(),
            )?;
            pending.push(new_file(table, partition, stats, contents, now_micros()));
        }
        windows += 1;
        if windows % windows_per_commit == 0 {
            commit(std::mem::take(&mut pending), &mut written)?;
        }
    }
    commit(pending, &mut written)?;
    Ok(written)
}

/// The tables for people.
fn render(
    machine: &Machine,
    params: &Params,
    write: &WriteFigures,
    size: &SizeFigures,
    pruning: &PruningFigures,
    goal: &Goal,
) -> String {
    let count = output::thousands;
    let mut text = format!(
        "lake bench: {} events ({:.0} bytes of JSON each as stored), {} shards, durability {}, \
         flush at {} per partition or {} ms, zstd {}, in {}\nmachine: {}\n\n",
        count(params.events),
        size.json_bytes_per_event,
        params.shards,
        params.durability,
        output::bytes(params.flush_bytes),
        params.flush_interval_ms,
        params.zstd_level,
        params.dir.display(),
        machine.summary(),
    );
    text.push_str(
        "1. write: stream → LakeWriter → raw archive + curated Parquet, committed with the \
         checkpoint\n",
    );
    let mut table = Table::new(&[
        "events",
        "seconds",
        "events/s",
        "cpu s",
        "cores used",
        "events/s per core",
        "cpu others",
        "flushes",
        "curated rows",
        "raw rows",
    ]);
    table.row(vec![
        count(params.events),
        format!("{:.2}", write.seconds),
        count(write.events_per_s as u64),
        format!("{:.2}", write.cpu_seconds),
        format!("{:.2}", write.cores_used),
        count(write.events_per_s_per_core as u64),
        write
            .other_processes_cores
            .map_or("-".into(), |cores| format!("{cores:.2}")),
        write.flushes.to_string(),
        count(write.curated_rows),
        count(write.raw_rows),
    ]);
    text.push_str(&table.render());
    text.push_str(&format!(
        "  timed from LakeWriter::new until the catalog checkpoint covered every shard's end \
         (filling the stream took {:.1} s, not counted)\n  per core = events ÷ CPU seconds of \
         the whole process in that time (getrusage user + system) = events/s ÷ cores used\n  \
         cpu others: cores every other process of the machine used meanwhile\n\n",
        write.fill_seconds
    ));

    text.push_str("2. bytes per event on disk\n");
    let mut table = Table::new(&[
        "after",
        "curated files",
        "curated bytes",
        "curated B/event",
        "raw files",
        "raw bytes",
        "raw B/event",
    ]);
    for (stage, sizes) in [
        ("the writer", &size.after_writer),
        ("compaction", &size.after_compaction),
    ] {
        table.row(vec![
            stage.into(),
            sizes.curated_files.to_string(),
            output::bytes(sizes.curated_bytes),
            format!("{:.1}", sizes.curated_bytes_per_event),
            sizes.raw_files.to_string(),
            output::bytes(sizes.raw_bytes),
            format!("{:.1}", sizes.raw_bytes_per_event),
        ]);
    }
    text.push_str(&table.render());
    text.push_str(&format!(
        "  JSON as stored in the stream: {:.1} B/event; compaction (min 2 small files) took \
         {:.2} s for {} rows\n  compaction CPU: curated {:.2} s at zstd {}, raw {:.2} s at zstd \
         {} = {:.2} µs/event; writer + compaction: {} events/s per core\n  \
         goal: curated ≤ {} B/event after compaction: {}\n\n",
        size.json_bytes_per_event,
        size.compaction_seconds,
        count(size.compaction_rows),
        size.compaction.curated_cpu_seconds,
        size.compaction.curated_zstd_level,
        size.compaction.raw_cpu_seconds,
        size.compaction.raw_zstd_level,
        size.compaction.cpu_us_per_event,
        count(size.compaction.with_writer_events_per_s_per_core as u64),
        goal.curated_bytes_per_event,
        if goal.met { "met" } else { "NOT MET" },
    ));

    text.push_str(&format!(
        "3. a one-hour query over {} days ({} events, one curated file per hour and family, \
         built in {:.1} s)\n  {}\n",
        pruning.days,
        count(pruning.events),
        pruning.build_seconds,
        pruning.sql
    ));
    let mut table = Table::new(&[
        "files total",
        "listed",
        "scanned",
        "share",
        "bytes scanned",
        "count",
        "expected",
        "correct",
        "ms",
    ]);
    table.row(vec![
        count(pruning.files_total),
        count(pruning.files_listed),
        count(pruning.files_scanned),
        format!("{:.3}%", pruning.share * 100.0),
        output::bytes(pruning.bytes_scanned),
        count(pruning.count),
        count(pruning.expected),
        if pruning.correct { "yes" } else { "NO" }.into(),
        format!("{:.2}", pruning.query_ms),
    ]);
    text.push_str(&table.render());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_spread_evenly_and_stay_in_the_span() {
        assert_eq!(spread(100, 1000, 0, 10), 100);
        assert_eq!(spread(100, 1000, 5, 10), 600);
        assert_eq!(spread(100, 1000, 9, 10), 1000);
        // Ten million events over thirty days do not overflow.
        let last = spread(MONTH_START, 30 * DAY, 9_999_999, 10_000_000);
        assert!(last < MONTH_START + 30 * DAY && last > MONTH_START + 29 * DAY);
    }

    #[test]
    fn timestamps_are_utc_literals() {
        assert_eq!(sql_timestamp(MONTH_START), "2026-10-02T00:00:00Z");
        assert_eq!(
            sql_timestamp(MONTH_START + 14 * HOUR),
            "2026-10-02T14:00:00Z"
        );
    }

    #[test]
    fn cpu_time_grows_with_work() {
        if cfg!(unix) {
            let before = process_cpu().unwrap();
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            assert!(process_cpu().unwrap() >= before);
        }
    }
}
