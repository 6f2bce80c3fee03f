//! `tributary bench pipeline`: the pipeline's throughput per core, alone and end to end.
//!
//! Two phases on the sample generator's traffic (the loadgen's events):
//!
//! 1. **Stage**: the events as the stream stores them (JSON) are decoded and run through
//!    [`Pipeline::process`] — validation against schemas for the generator's track events,
//!    enrichment (user agent, referrer, UTM, IP), tokenization, dedup with a real store — on one
//!    thread. A decode-only pass over the same bytes separates the pipeline's own cost.
//! 2. **End to end**: the same events in an embedded stream, drained by the real lake writer
//!    into the raw archive and curated Parquet, once without the pipeline and once with it: the
//!    writer's events/s per core both ways, so the pipeline's share of the path is measured.
//!    Then the two writers of `lake.separate_raw_archive`, one after the other over the same
//!    events: the pipeline's own (curated and quarantine; the goal's figure) and the raw
//!    archive's own.
//! 3. **Live**: HTTP load → collector → stream → writer with the pipeline, all running at once
//!    for a fixed time ([`super::pipeline_live`]): does the lake's lag stay steady?

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use object_store::ObjectStore;
use serde::Serialize;
use serde_json::json;
use tokio::runtime::Runtime;
use tributary_catalog::{Catalog, EmbeddedCatalog, EventSchema};
use tributary_lake::schema::{EVENTS, QUARANTINE, RAW_EVENTS};
use tributary_lake::{LakeConfig, WriterRole, local_store};
use tributary_model::{Event, now_micros};
use tributary_pipeline::dedup::DedupStore;
use tributary_pipeline::registry::{SchemaRegistry, SharedRegistry};
use tributary_pipeline::{Outcome, Pipeline, PipelineConfig, StageCounts, StreamPosition};
use tributary_stream::{Durability, EmbeddedLog, StreamConfig};

use super::lake::{HOUR, SEED, compaction_pass, drain, fill_stream, process_cpu, warn_debug_build};
use super::pipeline_live::{LiveFigures, live_phase};
use super::{Machine, Scratch, progress_bar, round};
use crate::config::Config;
use crate::exit::{FAILURE, OK, UsageError};
use crate::output::{self, Table};
use crate::runtime;
use crate::sample_traffic::SampleTraffic;

/// Events of a full run.
const FULL_EVENTS: u64 = 1_000_000;
/// Events of a `--quick` run.
const QUICK_EVENTS: u64 = 200_000;
/// Seconds of the live phase in a full run and in a `--quick` one.
const FULL_LIVE_SECONDS: f64 = 30.0;
const QUICK_LIVE_SECONDS: f64 = 8.0;
/// The goal: validate + enrich + tokenize + dedup + write, per core.
const GOAL_EVENTS_PER_S_PER_CORE: f64 = 200_000.0;
/// A fixed privacy key: the figures must not depend on a random one.
const BENCH_KEY: &[u8] = b"tributary bench pipeline key 0001";

/// Arguments of `tributary bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineBenchArgs {
    /// 200,000 events instead of 1,000,000 and an 8 s live phase (under a minute in all).
    #[arg(long)]
    pub quick: bool,
    /// Events to generate [default: 1,000,000; 200,000 with --quick].
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// Events are trimmed toward this many bytes of JSON by dropping optional context; 0 (the
    /// default) keeps a browser's full context, user agent and referrer included, so that
    /// enrichment has its real work to do.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub event_bytes: usize,
    /// Shards of the stream the writer reads.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub shards: u32,
    /// Seconds of the live phase [default: 30; 8 with --quick]; 0 skips it.
    #[arg(long, value_name = "SECONDS")]
    pub live_seconds: Option<f64>,
    /// Events/s the live phase offers over HTTP; 0 (the default) sends as fast as the collector
    /// answers, `bench ingest`'s load.
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub live_rate: f64,
    /// Scratch directory [default: <data_dir>/bench]; deleted afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct StageFigures {
    events: u64,
    decode_seconds: f64,
    pipeline_seconds: f64,
    /// Decode + pipeline, one thread.
    events_per_s: f64,
    /// The pipeline alone (its seconds minus the decode pass's), one thread.
    pipeline_only_events_per_s: f64,
    curated: u64,
    quarantined: u64,
    duplicates: u64,
}

#[derive(Debug, Serialize)]
struct EndToEndFigures {
    events: u64,
    without_pipeline_events_per_s_per_core: f64,
    with_pipeline_events_per_s_per_core: f64,
    with_pipeline_events_per_s: f64,
    with_pipeline_cores_used: f64,
    /// Share of the writer's CPU the pipeline adds.
    pipeline_cpu_share: f64,
    curated_rows: u64,
    quarantined_rows: u64,
    /// Raw archive Parquet bytes per event (with the pipeline).
    raw_bytes_per_event: f64,
    /// Curated and quarantine Parquet bytes per event (with the pipeline).
    curated_bytes_per_event: f64,
    /// CPU microseconds per event of one compaction pass over what the writer (with the
    /// pipeline) flushed. Compaction rewrites nearly every flushed file, so in steady state
    /// this is spent on every event too, in the background.
    compaction_cpu_us_per_event: f64,
    /// Events per CPU second of the writer with the pipeline and that compaction together.
    with_compaction_events_per_s_per_core: f64,
    /// With `lake.separate_raw_archive`: the pipeline's own writer (validate, enrich,
    /// tokenize, dedup, write curated and quarantine), events per CPU second. The goal's figure.
    pipeline_writer_events_per_s_per_core: f64,
    pipeline_writer_events_per_s: f64,
    pipeline_writer_cores_used: f64,
    pipeline_writer_curated_rows: u64,
    /// With `lake.separate_raw_archive`: the raw archive's own writer, events per CPU second.
    raw_archive_writer_events_per_s_per_core: f64,
    /// With `lake.separate_raw_archive`: both writers together, events per CPU second.
    separate_writers_events_per_s_per_core: f64,
}

/// The goal, judged on the pipeline's own writer (validate + enrich + tokenize +
/// dedup + write); whether the writer that also archives raw reaches it is reported beside.
#[derive(Debug, Serialize)]
struct Goal {
    events_per_s_per_core: f64,
    met: bool,
    /// Whether the one writer that also keeps the raw archive (the default) reaches it too.
    met_with_raw_archive_in_the_writer: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    version: &'static str,
    machine: Machine,
    event_bytes: usize,
    shards: u32,
    stage: StageFigures,
    end_to_end: EndToEndFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<LiveFigures>,
    goal: Goal,
}

/// Runs the benchmark.
pub fn run(config: &Config, args: &PipelineBenchArgs) -> Result<ExitCode> {
    let events = args.events.unwrap_or(if args.quick {
        QUICK_EVENTS
    } else {
        FULL_EVENTS
    });
    let (scratch, _) = Scratch::for_run(config, args.dir.as_deref(), "pipeline")?;
    let machine = Machine::detect(scratch.path());
    warn_debug_build(&machine, "pipeline");
    let runtime = runtime::build(machine.cores)?;
    let bar = progress_bar(events * 5);

    let stage = stage_phase(&runtime, scratch.path(), events, args, &bar)?;
    let end_to_end = end_to_end_phase(&runtime, &config.lake, scratch.path(), events, args, &bar)?;
    let live_seconds = args.live_seconds.unwrap_or(if args.quick {
        QUICK_LIVE_SECONDS
    } else {
        FULL_LIVE_SECONDS
    });
    if !(live_seconds.is_finite() && (0.0..=3600.0).contains(&live_seconds)) {
        return Err(anyhow::Error::new(UsageError(format!(
            "--live-seconds is {live_seconds}, must be in [0, 3600]"
        ))));
    }
    if !(args.live_rate.is_finite() && args.live_rate >= 0.0) {
        return Err(anyhow::Error::new(UsageError(format!(
            "--live-rate is {}, must be 0 or more",
            args.live_rate
        ))));
    }
    let live = if live_seconds > 0.0 {
        Some(live_phase(
            &runtime,
            &config.lake,
            &scratch.path().join("live"),
            live_seconds,
            args.live_rate,
            args.event_bytes,
            &bar,
        )?)
    } else {
        None
    };
    bar.finish_and_clear();

    let goal = Goal {
        events_per_s_per_core: GOAL_EVENTS_PER_S_PER_CORE,
        met: end_to_end.pipeline_writer_events_per_s_per_core >= GOAL_EVENTS_PER_S_PER_CORE,
        met_with_raw_archive_in_the_writer: end_to_end.with_pipeline_events_per_s_per_core
            >= GOAL_EVENTS_PER_S_PER_CORE,
    };
    output::print(&render(
        &machine,
        args,
        &stage,
        &end_to_end,
        live.as_ref(),
        &goal,
    ))?;
    let lost = end_to_end.curated_rows + end_to_end.quarantined_rows != events
        || end_to_end.pipeline_writer_curated_rows != end_to_end.curated_rows;
    output::json_line(&Report {
        bench: "pipeline",
        version: env!("CARGO_PKG_VERSION"),
        machine,
        event_bytes: args.event_bytes,
        shards: args.shards,
        stage,
        end_to_end,
        live,
        goal,
    })?;
    drop(runtime);
    drop(scratch);
    if lost {
        eprintln!("error: curated + quarantined rows do not add up to the events (see above)");
        return Ok(ExitCode::from(FAILURE));
    }
    Ok(ExitCode::from(OK))
}

/// Schemas for the generator's track events, as a shop would register them.
fn bench_schemas() -> Vec<EventSchema> {
    let schema = |event_type: &str, value: serde_json::Value| EventSchema {
        event_type: event_type.into(),
        version: 1,
        schema: value,
        forced: false,
        created_at: 0,
    };
    vec![
        schema(
            "track:Product Viewed",
            json!({"type": "object", "required": ["item_id"],
                   "properties": {"item_id": {"type": "string", "minLength": 1},
                                  "price": {"type": "number", "minimum": 0}}}),
        ),
        schema(
            "track:Product Added",
            json!({"type": "object", "required": ["item_id", "quantity"],
                   "properties": {"item_id": {"type": "string"},
                                  "quantity": {"type": "integer", "minimum": 1}}}),
        ),
        schema(
            "track:Order Completed",
            json!({"type": "object", "required": ["order_id", "revenue"],
                   "properties": {"order_id": {"type": "string", "minLength": 1},
                                  "revenue": {"type": "number"},
                                  "currency": {"type": "string", "maxLength": 3}}}),
        ),
    ]
}

fn pipeline(schemas: &[EventSchema]) -> Result<Arc<Pipeline>> {
    let registry = SchemaRegistry::from_versions(schemas)?;
    Ok(Arc::new(Pipeline::new(
        &PipelineConfig::default(),
        SharedRegistry::new(registry),
        BENCH_KEY,
    )?))
}

/// The generator's events as the stream stores them.
fn generate(count: u64, event_bytes: usize) -> Result<Vec<Vec<u8>>> {
    let mut traffic = SampleTraffic::new(SEED);
    let start = now_micros() - HOUR;
    (0..count)
        .map(|index| {
            let mut event = traffic.next_event(start + i64::try_from(index).unwrap_or(0));
            if event_bytes > 0 {
                crate::loadgen::compact(&mut event, event_bytes);
            }
            serde_json::to_vec(&event).context("encoding an event")
        })
        .collect()
}

fn stage_phase(
    _runtime: &Runtime,
    dir: &Path,
    events: u64,
    args: &PipelineBenchArgs,
    bar: &ProgressBar,
) -> Result<StageFigures> {
    bar.set_message("generating");
    let records = generate(events, args.event_bytes)?;
    bar.set_message("decode only");
    let started = Instant::now();
    let mut decoded = 0u64;
    for record in &records {
        let event: Event = serde_json::from_slice(record).context("decoding an event")?;
        decoded += u64::from(!event.event_id.is_empty());
        bar.inc(1);
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(decoded);

    bar.set_message("decode + pipeline");
    let pipeline = pipeline(&bench_schemas())?;
    let registry = pipeline.registry().snapshot();
    let mut dedup = DedupStore::open(dir.join("stage-dedup.log"), Duration::from_secs(86_400))?;
    let (mut curated, mut quarantined, mut duplicates) = (0u64, 0u64, 0u64);
    let mut counts = StageCounts::default();
    let started = Instant::now();
    for (seq, record) in records.iter().enumerate() {
        let event: Event = serde_json::from_slice(record).context("decoding an event")?;
        let position = StreamPosition {
            shard: 0,
            seq: seq as u64,
        };
        match pipeline.process(&registry, event, position, Some(&mut dedup), &mut counts)? {
            Outcome::Curated(event) => {
                curated += 1;
                std::hint::black_box(event);
            }
            Outcome::Quarantined(..) => quarantined += 1,
            Outcome::Duplicate { .. } => duplicates += 1,
        }
        bar.inc(1);
    }
    counts.publish();
    dedup.sync()?;
    let pipeline_seconds = started.elapsed().as_secs_f64();
    let per_second = |seconds: f64| {
        if seconds > 0.0 {
            (events as f64 / seconds).round()
        } else {
            0.0
        }
    };
    Ok(StageFigures {
        events,
        decode_seconds: round(decode_seconds, 3),
        pipeline_seconds: round(pipeline_seconds, 3),
        events_per_s: per_second(pipeline_seconds),
        pipeline_only_events_per_s: per_second((pipeline_seconds - decode_seconds).max(1e-9)),
        curated,
        quarantined,
        duplicates,
    })
}

/// The lake a writer phase writes in `dir`: a fresh catalog and store, and the configured
/// writer flushing every second so that a run writes several commits.
pub(super) struct BenchLake {
    /// The catalog, `catalog.db` in the directory.
    pub catalog: Arc<EmbeddedCatalog>,
    /// The object store, `lake/` in the directory.
    pub store: Arc<dyn ObjectStore>,
    /// The writer's configuration.
    pub config: LakeConfig,
}

impl BenchLake {
    /// Opens a fresh one in `dir`, from the configured `lake`.
    pub(super) fn open(lake: &LakeConfig, dir: &Path) -> Result<BenchLake> {
        Ok(BenchLake {
            catalog: Arc::new(
                EmbeddedCatalog::open(dir.join("catalog.db")).context("opening the catalog")?,
            ),
            store: local_store(&dir.join("lake")).context("opening the lake")?,
            config: LakeConfig {
                flush_interval: Duration::from_secs(1),
                ..lake.clone()
            },
        })
    }
}

/// The pipeline a writer phase runs: the bench's schemas registered in `catalog`, and a fresh
/// dedup store in `dir`.
pub(super) fn pipeline_stage(
    runtime: &Runtime,
    catalog: &EmbeddedCatalog,
    dir: &Path,
) -> Result<(Arc<Pipeline>, Option<DedupStore>)> {
    let schemas = bench_schemas();
    runtime.block_on(async {
        for schema in &schemas {
            catalog.add_event_schema(schema.clone()).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let dedup = DedupStore::open(dir.join("dedup.log"), Duration::from_secs(86_400))?;
    Ok((pipeline(&schemas)?, Some(dedup)))
}

/// What one drain of a freshly filled stream measured.
struct Drained {
    events_per_s_per_core: f64,
    events_per_s: f64,
    cores_used: f64,
    curated_rows: u64,
    quarantined_rows: u64,
    /// Parquet bytes of the raw archive, per event.
    raw_bytes_per_event: f64,
    /// Parquet bytes of the curated events (and quarantine), per event.
    curated_bytes_per_event: f64,
    /// CPU seconds of one compaction pass over what the drain wrote.
    compaction_cpu_seconds: f64,
    /// Events per CPU second of the drain and the compaction pass together.
    with_compaction_events_per_s_per_core: f64,
    /// `Setup::Separate`: events per CPU second of the raw archive's own writer.
    archive_events_per_s_per_core: Option<f64>,
    /// `Setup::Separate`: events per CPU second of both writers together.
    separate_total_events_per_s_per_core: Option<f64>,
}

/// How a drain writes the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// One writer, raw archive and curated, no pipeline.
    Plain,
    /// One writer, raw archive and curated through the pipeline (what `serve` runs).
    Combined,
    /// The pipeline's writer (curated and quarantine only), then the raw archive's own writer
    /// over the same stream (`lake.separate_raw_archive`); `Drained` has each one's CPU.
    Separate,
}

/// One drain of a freshly filled stream.
fn drain_once(
    runtime: &Runtime,
    lake: &LakeConfig,
    dir: &Path,
    events: u64,
    args: &PipelineBenchArgs,
    setup: Setup,
    bar: &ProgressBar,
) -> Result<Drained> {
    let with_pipeline = setup != Setup::Plain;
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
    let until = now_micros().div_euclid(HOUR) * HOUR;
    fill_stream(&log, events, until - HOUR, args.event_bytes, bar)?;
    let BenchLake {
        catalog,
        store,
        config: lake_config,
    } = BenchLake::open(lake, dir)?;
    let stage = if with_pipeline {
        Some(pipeline_stage(runtime, &catalog, dir)?)
    } else {
        None
    };
    let first_role = match setup {
        Setup::Plain | Setup::Combined => WriterRole::Both,
        Setup::Separate => WriterRole::Curate,
    };
    let cpu_before = process_cpu();
    let (seconds, cpu, _) = runtime.block_on(drain(
        &log,
        &catalog,
        &store,
        &lake_config,
        stage,
        first_role,
    ))?;
    let cpu_seconds = cpu
        .or_else(|| {
            process_cpu()
                .zip(cpu_before)
                .map(|(a, b)| a.saturating_sub(b))
        })
        .map_or(0.0, |cpu| cpu.as_secs_f64());
    let archive_cpu_seconds = if setup == Setup::Separate {
        bar.set_message("raw archive writer on its own");
        let (_, cpu, _) = runtime.block_on(drain(
            &log,
            &catalog,
            &store,
            &lake_config,
            None,
            WriterRole::Archive,
        ))?;
        Some(cpu.map_or(0.0, |cpu| cpu.as_secs_f64()))
    } else {
        None
    };
    // (rows, bytes) of a table's files.
    let totals = |table: &'static str| {
        runtime.block_on(async {
            let files = catalog.snapshot(table, None, None).await?.files;
            Ok::<_, anyhow::Error>(files.iter().fold((0u64, 0u64), |(rows, bytes), f| {
                (rows + f.rows, bytes + f.bytes)
            }))
        })
    };
    let (curated_rows, curated_bytes) = totals(EVENTS)?;
    let (quarantined_rows, quarantined_bytes) = if with_pipeline {
        totals(QUARANTINE)?
    } else {
        (0, 0)
    };
    let (_, raw_bytes) = totals(RAW_EVENTS)?;
    log.close().context("closing the benchmark's stream")?;
    // Only the run whose figures are reported with compaction pays for a pass.
    let compaction_cpu_seconds = if setup == Setup::Combined {
        bar.set_message("compaction");
        compaction_pass(runtime, &catalog, &store, &lake_config)?.cpu_seconds()
    } else {
        0.0
    };
    let per = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
    Ok(Drained {
        events_per_s_per_core: per(events as f64, cpu_seconds).round(),
        events_per_s: per(events as f64, seconds).round(),
        cores_used: round(per(cpu_seconds, seconds), 2),
        curated_rows,
        quarantined_rows,
        raw_bytes_per_event: round(per(raw_bytes as f64, events as f64), 1),
        curated_bytes_per_event: round(
            per((curated_bytes + quarantined_bytes) as f64, events as f64),
            1,
        ),
        compaction_cpu_seconds,
        with_compaction_events_per_s_per_core: per(
            events as f64,
            cpu_seconds + compaction_cpu_seconds,
        )
        .round(),
        archive_events_per_s_per_core: archive_cpu_seconds
            .map(|archive| per(events as f64, archive).round()),
        separate_total_events_per_s_per_core: archive_cpu_seconds
            .map(|archive| per(events as f64, cpu_seconds + archive).round()),
    })
}

fn end_to_end_phase(
    runtime: &Runtime,
    lake: &LakeConfig,
    dir: &Path,
    events: u64,
    args: &PipelineBenchArgs,
    bar: &ProgressBar,
) -> Result<EndToEndFigures> {
    let run = |message: &'static str, subdir: &str, events: u64, setup: Setup| {
        bar.set_message(message);
        drain_once(runtime, lake, &dir.join(subdir), events, args, setup, bar)
    };
    let without = run(
        "lake writer without the pipeline",
        "plain",
        events / 2,
        Setup::Plain,
    )?;
    let with = run(
        "lake writer with the pipeline",
        "pipeline",
        events,
        Setup::Combined,
    )?;
    let separate = run(
        "the pipeline's writer and the raw archive's, separately",
        "separate",
        events,
        Setup::Separate,
    )?;
    let (with_rate, without_rate) = (with.events_per_s_per_core, without.events_per_s_per_core);
    let share = if with_rate > 0.0 && without_rate > 0.0 {
        // CPU per event with ÷ without, minus one: what the pipeline adds.
        round(
            (without_rate / with_rate - 1.0).max(0.0) / (without_rate / with_rate),
            3,
        )
    } else {
        0.0
    };
    Ok(EndToEndFigures {
        events,
        without_pipeline_events_per_s_per_core: without_rate,
        with_pipeline_events_per_s_per_core: with_rate,
        with_pipeline_events_per_s: with.events_per_s,
        with_pipeline_cores_used: with.cores_used,
        pipeline_cpu_share: share,
        curated_rows: with.curated_rows,
        quarantined_rows: with.quarantined_rows,
        raw_bytes_per_event: with.raw_bytes_per_event,
        curated_bytes_per_event: with.curated_bytes_per_event,
        compaction_cpu_us_per_event: round(
            with.compaction_cpu_seconds * 1e6 / events.max(1) as f64,
            2,
        ),
        with_compaction_events_per_s_per_core: with.with_compaction_events_per_s_per_core,
        pipeline_writer_events_per_s_per_core: separate.events_per_s_per_core,
        pipeline_writer_events_per_s: separate.events_per_s,
        pipeline_writer_cores_used: separate.cores_used,
        pipeline_writer_curated_rows: separate.curated_rows,
        raw_archive_writer_events_per_s_per_core: separate
            .archive_events_per_s_per_core
            .unwrap_or(0.0),
        separate_writers_events_per_s_per_core: separate
            .separate_total_events_per_s_per_core
            .unwrap_or(0.0),
    })
}

fn render(
    machine: &Machine,
    args: &PipelineBenchArgs,
    stage: &StageFigures,
    end: &EndToEndFigures,
    live: Option<&LiveFigures>,
    goal: &Goal,
) -> String {
    let count = |n: f64| output::thousands(n as u64);
    let mut text = format!(
        "pipeline bench: {} events of the sample traffic ({}), {} shards\nmachine: {}\n\n",
        output::thousands(stage.events),
        if args.event_bytes == 0 {
            "full browser context".to_string()
        } else {
            format!("trimmed toward {} bytes", args.event_bytes)
        },
        args.shards,
        machine.summary()
    );
    text.push_str("1. stage: decode + validate + dedup + enrich + tokenize, one thread\n");
    let mut table = Table::new(&[
        "events",
        "decode s",
        "decode+pipeline s",
        "events/s",
        "pipeline alone events/s",
        "curated",
        "quarantined",
        "duplicates",
    ]);
    table.row(vec![
        output::thousands(stage.events),
        format!("{:.2}", stage.decode_seconds),
        format!("{:.2}", stage.pipeline_seconds),
        count(stage.events_per_s),
        count(stage.pipeline_only_events_per_s),
        output::thousands(stage.curated),
        output::thousands(stage.quarantined),
        output::thousands(stage.duplicates),
    ]);
    text.push_str(&table.render());
    text.push_str("\n2. end to end: stream → lake writer (→ pipeline) → raw + curated Parquet\n");
    let mut table = Table::new(&[
        "writer",
        "events/s per core",
        "events/s",
        "cores used",
        "curated rows",
        "quarantined rows",
        "raw B/event",
        "curated B/event",
    ]);
    table.row(vec![
        "without pipeline".into(),
        count(end.without_pipeline_events_per_s_per_core),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    table.row(vec![
        "with pipeline (raw archive in the same writer, the default)".into(),
        count(end.with_pipeline_events_per_s_per_core),
        count(end.with_pipeline_events_per_s),
        format!("{:.2}", end.with_pipeline_cores_used),
        output::thousands(end.curated_rows),
        output::thousands(end.quarantined_rows),
        format!("{:.1}", end.raw_bytes_per_event),
        format!("{:.1}", end.curated_bytes_per_event),
    ]);
    table.row(vec![
        "pipeline's own writer (lake.separate_raw_archive)".into(),
        count(end.pipeline_writer_events_per_s_per_core),
        count(end.pipeline_writer_events_per_s),
        format!("{:.2}", end.pipeline_writer_cores_used),
        output::thousands(end.pipeline_writer_curated_rows),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    table.row(vec![
        "raw archive's own writer (lake.separate_raw_archive)".into(),
        count(end.raw_archive_writer_events_per_s_per_core),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    text.push_str(&table.render());
    text.push_str(&format!(
        "  separate writers together: {} events/s per core (one more read and decode of every \
         event than the one writer)\n",
        count(end.separate_writers_events_per_s_per_core),
    ));
    text.push_str(&format!(
        "  compaction afterwards (one pass, as `serve` runs it every minute): {:.2} µs of CPU \
         per event; writer with pipeline + compaction: {} events/s per core\n",
        end.compaction_cpu_us_per_event,
        count(end.with_compaction_events_per_s_per_core),
    ));
    text.push_str(&format!(
        "  the pipeline's share of the writer's CPU: {:.1} %\n  goal: ≥ {} events/s per core \
         (validate + enrich + tokenize + dedup + write), the pipeline's own writer: {}; with \
         the raw archive in the same writer: {}\n\n",
        end.pipeline_cpu_share * 100.0,
        count(goal.events_per_s_per_core),
        if goal.met { "met" } else { "NOT MET" },
        if goal.met_with_raw_archive_in_the_writer {
            "met"
        } else {
            "not met"
        },
    ));
    if let Some(live) = live {
        text.push_str(
            "3. live: HTTP → collector → stream → lake writer + pipeline, all at once (fsync acks)
",
        );
        let mut table = Table::new(&[
            "seconds",
            "offered events/s",
            "acked events/s",
            "lake events/s",
            "lag halfway",
            "lag at end",
            "lag growth /s",
            "keeps up",
        ]);
        table.row(vec![
            format!("{:.1}", live.seconds),
            if live.offered_events_per_s > 0.0 {
                count(live.offered_events_per_s)
            } else {
                "as answered".into()
            },
            count(live.acked_events_per_s),
            count(live.lake_events_per_s),
            output::thousands(live.lag_halfway),
            output::thousands(live.lag_end),
            format!("{:.0}", live.lag_growth_events_per_s),
            if live.keeps_up { "yes" } else { "NO" }.into(),
        ]);
        text.push_str(&table.render());
        text.push('\n');
    }
    text
}
