//! `tributary bench query`: Tributary's SQL against DuckDB on the same Parquet files, for the
//! questions web analytics asks every day.
//!
//! ```text
//!  SampleTraffic (N events over 30 days) ─▶ DirectWriter: CuratedBuffer → parquet_io → publish
//!      cached in <dir>/query-lake-v<format>-<N>/ (catalog.db, lake/, manifest.json)
//!                                             │
//!            query_suite.sql ─┬─▶ QueryEngine (admin scope, target_partitions = cores)
//!                             └─▶ duckdb_suite.py: DuckDB, threads = the same, over
//!                                 read_parquet('<lake>/curated/events/**/*.parquet', hive)
//!  per query: one warm-up, best of 3 runs, both engines; their answers compared row by row
//! ```
//!
//! The lake is written with the lake's own code from the buffer on (see
//! [`super::lake::DirectWriter`]) rather than through a stream and the writer: generating 10
//! million events is the slow part already, and the files are those a compacted lake holds —
//! one per day and event family, the most a partition is ever merged into at this volume
//! (~170,000 rows, a few MB). The cache key is the event count and [`FORMAT`]; a run that finds
//! a complete cache (its manifest is written last) reuses it and says so.
//!
//! DuckDB runs in a Python process (`$E2E_VENV`, `~/.cache/tributary-venv`, or `--duckdb`),
//! after every Tributary query ran, so the two never compete for the cores; its times are taken
//! inside that process, so the interpreter's start is not in them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::runtime::Runtime;
use tributary_catalog::{Catalog, EmbeddedCatalog};
use tributary_lake::{LakeConfig, local_store};
use tributary_query::{QueryConfig, QueryEngine, Scope};

use super::lake::{
    DAY, DirectWriter, HOUR, MONTH_START, Neighbours, spread, sql_timestamp, warn_debug_build,
};
use super::{Machine, Scratch, progress_bar, round};
use crate::config::Config;
use crate::exit::{FAILURE, OK, UsageError};
use crate::output::{self, Table};
use crate::runtime;
use crate::sample_traffic::SampleTraffic;

/// Version of the generated lake's contents; bump it when the generator, the lake's file
/// format or the layout changes, so old caches are not reused.
const FORMAT: u32 = 1;
/// Events of a full run.
const FULL_EVENTS: u64 = 10_000_000;
/// Events of a `--quick` run.
const QUICK_EVENTS: u64 = 1_000_000;
/// The generator's seed.
const SEED: u64 = 0x0071_7565_7279;
/// Days the events are spread over, from [`MONTH_START`].
const DAYS: i64 = 30;
/// Warm-up runs per query and engine.
const WARMUP: u32 = 1;
/// The issue's goal for the geometric mean of Tributary ÷ DuckDB.
const GOAL_RATIO: f64 = 1.0;
/// The suite, shared with DuckDB.
const SUITE: &str = include_str!("query_suite.sql");
/// DuckDB's side.
const DUCKDB_SCRIPT: &str = include_str!("duckdb_suite.py");
/// The suite's one-hour count, whose answer must also equal the generator's count.
const HOUR_COUNT_QUERY: &str = "q13_count_one_hour";

/// Arguments of `tributary bench query`.
#[derive(Debug, Args)]
pub struct QueryBenchArgs {
    /// 1,000,000 events instead of 10,000,000.
    #[arg(long)]
    pub quick: bool,
    /// Events to generate [default: 10,000,000; 1,000,000 with --quick].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub events: Option<u64>,
    /// The Python interpreter that has the `duckdb` package [default: $E2E_VENV/bin/python, else
    /// ~/.cache/tributary-venv/bin/python (tests/e2e/setup_python.sh creates it)].
    #[arg(long, value_name = "PYTHON")]
    pub duckdb: Option<PathBuf>,
    /// Run Tributary only.
    #[arg(long, conflicts_with = "duckdb")]
    pub no_duckdb: bool,
    /// Timed runs per query and engine (after one warm-up); the best counts.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Where the generated lake is cached and the scratch directory goes [default:
    /// <data_dir>/bench].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Generate the lake again even if a cached one exists.
    #[arg(long)]
    pub regenerate: bool,
    /// After the timed runs, print Tributary's warm `EXPLAIN ANALYZE` of this query (its name
    /// or number, e.g. q04 or 4; repeatable) on stderr: where a slow query spends its time.
    #[arg(long, value_name = "QUERY")]
    pub explain: Vec<String>,
}

/// What the cache holds; written last, so its presence means the lake is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    events: u64,
    seed: u64,
    /// First and last µs of the span the events were spread over (`[start, end)`).
    start: i64,
    end: i64,
    files: u64,
    bytes: u64,
    rows: u64,
    generate_seconds: f64,
    /// The middle hour q13 counts, and how many events the generator put in it.
    hour_from: i64,
    hour_count: u64,
}

/// The JSON line.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    version: &'static str,
    machine: Machine,
    params: Params,
    duckdb: DuckDbInfo,
    queries: Vec<QueryFigures>,
    /// Geometric mean of the per-query ratios (queries both engines answered).
    geomean_ratio: Option<f64>,
    goal: Goal,
    /// Queries whose answers differ between the engines, or that failed on either.
    problems: usize,
}

/// What the run was asked to do and the lake it ran on.
#[derive(Debug, Serialize)]
struct Params {
    events: u64,
    days: i64,
    files: u64,
    bytes: u64,
    threads: usize,
    warmup: u32,
    runs: u32,
    lake: PathBuf,
    /// Whether the lake came from the cache.
    reused: bool,
    generate_seconds: f64,
    /// Cores other processes of the machine kept busy while each engine ran its suite.
    other_processes_cores: OtherCores,
}

/// Cores the rest of the machine used while each engine ran (see [`Neighbours`]).
#[derive(Debug, Serialize)]
struct OtherCores {
    tributary: Option<f64>,
    duckdb: Option<f64>,
}

/// Which DuckDB ran, or why none did.
#[derive(Debug, Default, Serialize)]
struct DuckDbInfo {
    python: Option<PathBuf>,
    version: Option<String>,
    skipped: Option<String>,
}

/// One query's figures.
#[derive(Debug, Serialize)]
struct QueryFigures {
    name: String,
    description: String,
    tributary_ms: Option<f64>,
    tributary_runs_ms: Vec<f64>,
    tributary_rows: Option<usize>,
    tributary_error: Option<String>,
    files_scanned: u64,
    bytes_scanned: u64,
    duckdb_ms: Option<f64>,
    duckdb_runs_ms: Vec<f64>,
    duckdb_rows: Option<usize>,
    duckdb_error: Option<String>,
    /// `tributary_ms ÷ duckdb_ms`.
    ratio: Option<f64>,
    /// Whether the answers are the same (`None` when one engine did not answer).
    same_answer: Option<bool>,
    /// The first difference, when they are not.
    difference: Option<String>,
    /// For the one-hour count: the generator's count, and whether Tributary's answer is it.
    expected: Option<u64>,
    expected_met: Option<bool>,
}

/// The issue's goal and whether the run met it.
#[derive(Debug, Serialize)]
struct Goal {
    geomean_ratio: f64,
    met: Option<bool>,
}

/// One query of the suite.
#[derive(Debug, Clone, PartialEq)]
struct SuiteQuery {
    name: String,
    description: String,
    sql: String,
    /// DuckDB's variant, where the dialects differ.
    duckdb_sql: Option<String>,
}

impl SuiteQuery {
    fn duckdb(&self) -> &str {
        self.duckdb_sql.as_deref().unwrap_or(&self.sql)
    }
}

/// One engine's answer to one query.
#[derive(Debug, Default)]
struct Answer {
    runs_ms: Vec<f64>,
    rows: Vec<Vec<Value>>,
    error: Option<String>,
    files_scanned: u64,
    bytes_scanned: u64,
}

impl Answer {
    fn best_ms(&self) -> Option<f64> {
        self.runs_ms.iter().copied().reduce(f64::min)
    }
}

/// Runs the benchmark, prints the table and the JSON line.
pub fn run(config: &Config, args: &QueryBenchArgs) -> Result<ExitCode> {
    let events = args.events.unwrap_or(if args.quick {
        QUICK_EVENTS
    } else {
        FULL_EVENTS
    });
    let (scratch, parent) = Scratch::for_run(config, args.dir.as_deref(), "query")?;
    let machine = Machine::detect(scratch.path());
    warn_debug_build(&machine, "query");
    let threads = config.query.effective_target_partitions();
    let runtime = runtime::build(machine.cores)?;

    let cache = parent.join(format!("query-lake-v{FORMAT}-{events}"));
    let (manifest, reused) = lake(&runtime, &cache, events, args.regenerate)?;
    let suite = parse_suite(SUITE)?;
    let suite: Vec<SuiteQuery> = suite
        .into_iter()
        .map(|query| fill_placeholders(query, &manifest))
        .collect();

    let catalog: Arc<dyn Catalog> = Arc::new(
        EmbeddedCatalog::open(cache.join("catalog.db")).context("opening the cached catalog")?,
    );
    let store = local_store(&cache.join("lake")).context("opening the cached lake")?;
    let engine = QueryEngine::new(
        catalog,
        store,
        QueryConfig {
            target_partitions: threads,
            max_rows: 1_000_000,
            timeout: Duration::from_secs(3600),
            ..config.query.clone()
        },
    )
    .context("starting the query engine")?;

    let bar = progress_bar(suite.len() as u64);
    let neighbours = Neighbours::watch();
    let mut ours = Vec::with_capacity(suite.len());
    for query in &suite {
        bar.set_message(format!("Tributary: {}", query.name));
        ours.push(run_tributary(&runtime, &engine, query, args.runs));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tributary_others = neighbours.cores();
    for wanted in &args.explain {
        let query = suite.iter().find(|q| is_named(q, wanted)).ok_or_else(|| {
            UsageError(format!(
                "--explain {wanted}: no such query; the suite has {}",
                suite
                    .iter()
                    .map(|q| q.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        eprintln!("{}", explain_analyze(&runtime, &engine, query));
    }
    drop(engine);
    drop(runtime);
    let neighbours = Neighbours::watch();

    let (duckdb, theirs) = if args.no_duckdb {
        (
            DuckDbInfo {
                skipped: Some("--no-duckdb".into()),
                ..DuckDbInfo::default()
            },
            Vec::new(),
        )
    } else {
        eprintln!("running the suite on DuckDB…");
        run_duckdb(
            args.duckdb.clone(),
            scratch.path(),
            &cache.join("lake"),
            &suite,
            threads,
            args.runs,
        )
    };
    let duckdb_others = duckdb.version.as_ref().and_then(|_| neighbours.cores());

    let mut figures = Vec::with_capacity(suite.len());
    for (index, query) in suite.iter().enumerate() {
        let ours = &ours[index];
        let theirs = theirs.get(index);
        let mut figure = compare(query, ours, theirs);
        if query.name == HOUR_COUNT_QUERY {
            let answer = ours.rows.first().and_then(|row| row.first());
            figure.expected = Some(manifest.hour_count);
            figure.expected_met = Some(answer.and_then(Value::as_u64) == Some(manifest.hour_count));
        }
        figures.push(figure);
    }
    let ratios: Vec<f64> = figures.iter().filter_map(|q| q.ratio).collect();
    let geomean_ratio = (!ratios.is_empty()).then(|| {
        let mean_log = ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64;
        round(mean_log.exp(), 3)
    });
    let problems = figures
        .iter()
        .filter(|q| {
            q.same_answer == Some(false)
                || q.expected_met == Some(false)
                || q.tributary_error.is_some()
                || (duckdb.skipped.is_none() && q.duckdb_error.is_some())
        })
        .count();
    let params = Params {
        events,
        days: DAYS,
        files: manifest.files,
        bytes: manifest.bytes,
        threads,
        warmup: WARMUP,
        runs: args.runs,
        lake: cache.clone(),
        reused,
        generate_seconds: manifest.generate_seconds,
        other_processes_cores: OtherCores {
            tributary: tributary_others,
            duckdb: duckdb_others,
        },
    };
    let goal = Goal {
        geomean_ratio: GOAL_RATIO,
        met: geomean_ratio.map(|ratio| ratio <= GOAL_RATIO),
    };
    output::print(&render(
        &machine,
        &params,
        &duckdb,
        &figures,
        geomean_ratio,
        &goal,
        &manifest,
    ))?;
    output::json_line(&Report {
        bench: "query",
        version: env!("CARGO_PKG_VERSION"),
        machine,
        params,
        duckdb,
        queries: figures,
        geomean_ratio,
        goal,
        problems,
    })?;
    drop(scratch);
    if problems > 0 {
        eprintln!(
            "error: {problems} of {} queries failed or answered differently on the two \
             engines (see `!` above)",
            suite.len()
        );
        return Ok(ExitCode::from(FAILURE));
    }
    Ok(ExitCode::from(OK))
}

/// The cached lake of `events` events, generated first if there is none (or `regenerate`).
/// Returns its manifest and whether it was reused.
fn lake(runtime: &Runtime, dir: &Path, events: u64, regenerate: bool) -> Result<(Manifest, bool)> {
    let manifest_path = dir.join("manifest.json");
    if !regenerate
        && let Ok(text) = std::fs::read_to_string(&manifest_path)
        && let Ok(manifest) = serde_json::from_str::<Manifest>(&text)
        && manifest.format == FORMAT
        && manifest.events == events
    {
        eprintln!(
            "reusing the lake of {} events generated earlier in {} (--regenerate to write it \
             again)",
            output::thousands(events),
            dir.display()
        );
        return Ok((manifest, true));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("deleting the old cache {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "generating {} events over {DAYS} days into {} (cached for the next run)…",
        output::thousands(events),
        dir.display()
    );
    let started = Instant::now();
    let catalog: Arc<dyn Catalog> = Arc::new(
        EmbeddedCatalog::open(dir.join("catalog.db")).context("opening the cache's catalog")?,
    );
    let store = local_store(&dir.join("lake")).context("opening the cache's lake")?;
    // One file per day and family: what compaction leaves at this volume.
    let mut writer = DirectWriter::start(
        runtime.handle(),
        catalog,
        store,
        &LakeConfig::default(),
        DAY,
        1,
    )?;
    let start = MONTH_START;
    let end = start + DAYS * DAY;
    let hour_from = start + (DAYS / 2) * DAY + 14 * HOUR;
    let mut hour_count = 0;
    let mut traffic = SampleTraffic::new(SEED);
    let bar = progress_bar(events);
    bar.set_message("generating events");
    for index in 0..events {
        let ts = spread(start, end - start, index, events);
        if (hour_from..hour_from + HOUR).contains(&ts) {
            hour_count += 1;
        }
        writer.push(&traffic.next_event(ts))?;
        if index % 16_384 == 0 {
            bar.inc(16_384.min(events - index));
        }
    }
    bar.set_message("writing the last files");
    let written = writer.finish()?;
    bar.finish_and_clear();
    let manifest = Manifest {
        format: FORMAT,
        events,
        seed: SEED,
        start,
        end,
        files: written.files,
        bytes: written.bytes,
        rows: written.rows,
        generate_seconds: round(started.elapsed().as_secs_f64(), 1),
        hour_from,
        hour_count,
    };
    if manifest.rows != events {
        bail!(
            "the generated lake holds {} rows, not {events}",
            manifest.rows
        );
    }
    let text = serde_json::to_string_pretty(&manifest)?;
    // A cache of the bench's scratch data, rebuilt when unreadable: no sync needed.
    std::fs::File::create(&manifest_path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    Ok((manifest, false))
}

/// Splits the suite file into its queries (see the file's opening comment for the format).
fn parse_suite(text: &str) -> Result<Vec<SuiteQuery>> {
    let mut queries: Vec<SuiteQuery> = Vec::new();
    // The query whose body is being read, and whether it is a DuckDB variant.
    let mut current: Option<(String, String, bool, String)> = None;
    let finish = |current: Option<(String, String, bool, String)>,
                  queries: &mut Vec<SuiteQuery>|
     -> Result<()> {
        let Some((name, description, duckdb, body)) = current else {
            return Ok(());
        };
        let sql = body.trim().trim_end_matches(';').trim().to_string();
        if sql.is_empty() {
            bail!("query {name} of the suite has no SQL");
        }
        if duckdb {
            match queries.last_mut() {
                Some(last) if last.name == name => last.duckdb_sql = Some(sql),
                _ => bail!("the DuckDB variant of {name} must follow {name}"),
            }
        } else {
            queries.push(SuiteQuery {
                name,
                description,
                sql,
                duckdb_sql: None,
            });
        }
        Ok(())
    };
    for line in text.lines() {
        if let Some((name, description, duckdb)) = header(line) {
            finish(current.take(), &mut queries)?;
            current = Some((name, description, duckdb, String::new()));
        } else if let Some((_, _, _, body)) = &mut current {
            body.push_str(line);
            body.push('\n');
        }
    }
    finish(current.take(), &mut queries)?;
    Ok(queries)
}

/// `-- q01_name: description` or `-- q01_name [duckdb]: description`.
fn header(line: &str) -> Option<(String, String, bool)> {
    let rest = line.strip_prefix("-- q")?;
    let (name, description) = rest.split_once(':')?;
    let (name, duckdb) = match name.strip_suffix(" [duckdb]") {
        Some(name) => (name, true),
        None => (name, false),
    };
    let valid = name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then(|| (format!("q{name}"), description.trim().to_string(), duckdb))
}

fn fill_times(sql: &str, manifest: &Manifest) -> String {
    sql.replace("{last_hour_from}", &sql_timestamp(manifest.end - HOUR))
        .replace("{end}", &sql_timestamp(manifest.end))
        .replace("{hour_from}", &sql_timestamp(manifest.hour_from))
        .replace("{hour_until}", &sql_timestamp(manifest.hour_from + HOUR))
}

/// The query with its placeholders replaced by the times of the generated data.
fn fill_placeholders(mut query: SuiteQuery, manifest: &Manifest) -> SuiteQuery {
    let fill = |sql: &str| fill_times(sql, manifest);
    query.sql = fill_times(&query.sql, manifest);
    query.duckdb_sql = query.duckdb_sql.as_deref().map(fill);
    query
}

/// Whether `wanted` (`q04_top_referrers`, `q04`, `4`) names `query`.
fn is_named(query: &SuiteQuery, wanted: &str) -> bool {
    let number = query
        .name
        .trim_start_matches('q')
        .split('_')
        .next()
        .and_then(|n| n.parse::<u32>().ok());
    query.name == wanted
        || query.name.split('_').next() == Some(wanted)
        || (number.is_some() && wanted.trim_start_matches('q').parse::<u32>().ok() == number)
}

/// Tributary's `EXPLAIN ANALYZE` of `query`, as text (its metrics say where the time went).
fn explain_analyze(runtime: &Runtime, engine: &QueryEngine, query: &SuiteQuery) -> String {
    let sql = format!("EXPLAIN ANALYZE {}", query.sql);
    let mut text = format!("EXPLAIN ANALYZE of {} (warm):\n", query.name);
    match runtime.block_on(engine.execute(&sql, Scope::All)) {
        Ok(output) => {
            for batch in &output.batches {
                let plans = batch
                    .column_by_name("plan")
                    .and_then(|plan| cast(plan, &DataType::Utf8).ok());
                if let Some(plans) = plans {
                    for plan in plans.as_string::<i32>().iter().flatten() {
                        text.push_str(plan);
                        text.push('\n');
                    }
                }
            }
        }
        Err(error) => text.push_str(&format!("failed: {error}\n")),
    }
    text
}

/// One warm-up and `runs` timed runs of `query` on Tributary.
fn run_tributary(runtime: &Runtime, engine: &QueryEngine, query: &SuiteQuery, runs: u32) -> Answer {
    let mut answer = Answer::default();
    let mut last = None;
    for run in 0..WARMUP + runs {
        let started = Instant::now();
        match runtime.block_on(engine.execute(&query.sql, Scope::All)) {
            Ok(output) => {
                let elapsed = started.elapsed().as_secs_f64() * 1e3;
                if run >= WARMUP {
                    answer.runs_ms.push(round(elapsed, 2));
                }
                last = Some(output);
            }
            Err(error) => {
                answer.error = Some(error.to_string());
                return answer;
            }
        }
    }
    if let Some(output) = last {
        answer.files_scanned = output.scan.files_scanned;
        answer.bytes_scanned = output.scan.bytes_scanned;
        match rows_of(&output.batches) {
            Ok(rows) => answer.rows = rows,
            Err(error) => answer.error = Some(format!("reading the answer: {error:#}")),
        }
    }
    answer
}

/// The answer's rows as JSON values, normalised the way `duckdb_suite.py` normalises DuckDB's:
/// integers, floats, text, booleans, timestamps as µs since the epoch, dates as ISO text.
fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<Value>>> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(column_values)
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|column| column.get(row).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// One column's values (see [`rows_of`]).
fn column_values(array: &ArrayRef) -> Result<Vec<Value>> {
    let values = |array: &ArrayRef, value: &dyn Fn(usize) -> Value| {
        (0..array.len())
            .map(|row| {
                if array.is_null(row) {
                    Value::Null
                } else {
                    value(row)
                }
            })
            .collect::<Vec<_>>()
    };
    let data_type = array.data_type();
    if data_type.is_integer() {
        let ints = cast(array, &DataType::Int64)?;
        let ints = ints.as_primitive::<Int64Type>();
        return Ok(values(array, &|row| Value::from(ints.value(row))));
    }
    if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..)) {
        let floats = cast(array, &DataType::Float64)?;
        let floats = floats.as_primitive::<Float64Type>();
        return Ok(values(array, &|row| Value::from(floats.value(row))));
    }
    match data_type {
        DataType::Boolean => {
            let bools = array.as_boolean();
            Ok(values(array, &|row| Value::from(bools.value(row))))
        }
        DataType::Timestamp(_, zone) => {
            let micros = cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
            )?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            Ok(values(array, &|row| Value::from(micros.value(row))))
        }
        _ => {
            // Text of every other type (strings, dates as YYYY-MM-DD, …).
            let text = cast(array, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            Ok(values(array, &|row| Value::from(text.value(row))))
        }
    }
}

/// DuckDB's answers, in suite order, or why there are none.
fn run_duckdb(
    python: Option<PathBuf>,
    scratch: &Path,
    lake: &Path,
    suite: &[SuiteQuery],
    threads: usize,
    runs: u32,
) -> (DuckDbInfo, Vec<Answer>) {
    let python = python.or_else(default_python);
    let Some(python) = python else {
        let info = DuckDbInfo {
            skipped: Some(
                "no Python with duckdb found: pass --duckdb PYTHON, set E2E_VENV, or run \
                 tests/e2e/setup_python.sh"
                    .into(),
            ),
            ..DuckDbInfo::default()
        };
        return (info, Vec::new());
    };
    let mut info = DuckDbInfo {
        python: Some(python.clone()),
        ..DuckDbInfo::default()
    };
    match duckdb_answers(&python, scratch, lake, suite, threads, runs) {
        Ok((version, answers)) => {
            info.version = Some(version);
            (info, answers)
        }
        Err(error) => {
            info.skipped = Some(format!("{error:#}"));
            (info, Vec::new())
        }
    }
}

/// `$E2E_VENV/bin/python`, else `~/.cache/tributary-venv/bin/python`, if it exists.
fn default_python() -> Option<PathBuf> {
    let venv = std::env::var_os("E2E_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/tributary-venv"))
        })?;
    let python = venv.join("bin").join("python");
    python.exists().then_some(python)
}

/// What `duckdb_suite.py` answers.
#[derive(Debug, Deserialize)]
struct DuckDbOutput {
    version: Option<String>,
    error: Option<String>,
    #[serde(default)]
    queries: Vec<DuckDbQuery>,
}

/// One query's answer from `duckdb_suite.py`.
#[derive(Debug, Deserialize)]
struct DuckDbQuery {
    name: String,
    #[serde(default)]
    times_ms: Vec<f64>,
    #[serde(default)]
    result: Vec<Vec<Value>>,
    error: Option<String>,
}

/// Runs the suite in DuckDB; an error means DuckDB could not be used at all.
fn duckdb_answers(
    python: &Path,
    scratch: &Path,
    lake: &Path,
    suite: &[SuiteQuery],
    threads: usize,
    runs: u32,
) -> Result<(String, Vec<Answer>)> {
    let script = scratch.join("duckdb_suite.py");
    std::fs::File::create(&script)
        .and_then(|mut file| std::io::Write::write_all(&mut file, DUCKDB_SCRIPT.as_bytes()))
        .with_context(|| format!("writing {}", script.display()))?;
    let lake = std::fs::canonicalize(lake).unwrap_or_else(|_| lake.to_path_buf());
    let spec = serde_json::json!({
        "glob": format!("{}/curated/events/**/*.parquet", lake.display()),
        "threads": threads,
        "warmup": WARMUP,
        "runs": runs,
        "queries": suite
            .iter()
            .map(|q| serde_json::json!({"name": q.name, "sql": q.duckdb()}))
            .collect::<Vec<_>>(),
    });
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(spec.to_string().as_bytes())
            .context("sending the suite to DuckDB")?;
    }
    let finished = child
        .wait_with_output()
        .context("waiting for the DuckDB process")?;
    let stdout = String::from_utf8_lossy(&finished.stdout);
    if !finished.status.success() {
        let stderr = String::from_utf8_lossy(&finished.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        bail!(
            "{} {} exited with {}: {}",
            python.display(),
            script.display(),
            finished.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    let output: DuckDbOutput = serde_json::from_str(&stdout).context("reading DuckDB's answers")?;
    if let Some(error) = output.error {
        bail!("{error}");
    }
    let mut answers = Vec::with_capacity(suite.len());
    for query in suite {
        let found = output.queries.iter().find(|q| q.name == query.name);
        let answer = match found {
            Some(found) => Answer {
                runs_ms: found.times_ms.iter().map(|ms| round(*ms, 2)).collect(),
                rows: found.result.clone(),
                error: found.error.clone(),
                ..Answer::default()
            },
            None => Answer {
                error: Some("DuckDB did not answer it".into()),
                ..Answer::default()
            },
        };
        answers.push(answer);
    }
    Ok((output.version.unwrap_or_else(|| "unknown".into()), answers))
}

/// One query's figures from both engines' answers.
fn compare(query: &SuiteQuery, ours: &Answer, theirs: Option<&Answer>) -> QueryFigures {
    let ok = |answer: &Answer| answer.error.is_none();
    let tributary_ms = ours.best_ms().filter(|_| ok(ours));
    let duckdb_ms = theirs.filter(|a| ok(a)).and_then(Answer::best_ms);
    let ratio = tributary_ms
        .zip(duckdb_ms)
        .filter(|(_, theirs)| *theirs > 0.0)
        .map(|(ours, theirs)| round(ours / theirs, 3));
    let difference = match theirs {
        Some(theirs) if ok(ours) && ok(theirs) => Some(first_difference(&ours.rows, &theirs.rows)),
        _ => None,
    };
    QueryFigures {
        name: query.name.clone(),
        description: query.description.clone(),
        tributary_ms,
        tributary_runs_ms: ours.runs_ms.clone(),
        tributary_rows: ok(ours).then_some(ours.rows.len()),
        tributary_error: ours.error.clone(),
        files_scanned: ours.files_scanned,
        bytes_scanned: ours.bytes_scanned,
        duckdb_ms,
        duckdb_runs_ms: theirs.map(|a| a.runs_ms.clone()).unwrap_or_default(),
        duckdb_rows: theirs.filter(|a| ok(a)).map(|a| a.rows.len()),
        duckdb_error: theirs.and_then(|a| a.error.clone()),
        ratio,
        same_answer: difference.as_ref().map(Option::is_none),
        difference: difference.flatten(),
        expected: None,
        expected_met: None,
    }
}

/// The first difference between two answers, or `None` when they are the same.
fn first_difference(ours: &[Vec<Value>], theirs: &[Vec<Value>]) -> Option<String> {
    if ours.len() != theirs.len() {
        return Some(format!(
            "{} rows here, {} in DuckDB",
            ours.len(),
            theirs.len()
        ));
    }
    for (index, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y));
        if !same {
            return Some(format!(
                "row {index}: {} here, {} in DuckDB",
                Value::from(a.clone()),
                Value::from(b.clone())
            ));
        }
    }
    None
}

/// Equal, with numbers compared as numbers: integers exactly, floats to one part in a million
/// or one unit of a 2-decimal rounding (sums over millions of floats differ in their last bits
/// with the order of addition, which a `round(…, 2)` can turn into a cent).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                let scale = x.abs().max(y.abs());
                (x - y).abs() <= (scale * 1e-6).max(0.010_000_1)
            }
        },
        _ => a == b,
    }
}

/// The tables for people.
fn render(
    machine: &Machine,
    params: &Params,
    duckdb: &DuckDbInfo,
    figures: &[QueryFigures],
    geomean_ratio: Option<f64>,
    goal: &Goal,
    manifest: &Manifest,
) -> String {
    let mut text = format!(
        "query bench: {} events over {} days ({} files, {}, {} {:.0} s), {} threads per \
         engine, best of {} runs after {} warm-up\nlake: {}\nmachine: {}\n",
        output::thousands(params.events),
        params.days,
        params.files,
        output::bytes(params.bytes),
        if params.reused {
            "cached, generated in"
        } else {
            "generated in"
        },
        params.generate_seconds,
        params.threads,
        params.runs,
        params.warmup,
        params.lake.display(),
        machine.summary(),
    );
    match (&duckdb.version, &duckdb.skipped) {
        (Some(version), _) => text.push_str(&format!(
            "DuckDB {version} ({})\n\n",
            duckdb
                .python
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        )),
        (None, Some(why)) => text.push_str(&format!("DuckDB skipped: {why}\n\n")),
        (None, None) => text.push('\n'),
    }
    let ms = |value: Option<f64>| value.map_or("-".into(), |ms| format!("{ms:.1}"));
    let mut table = Table::new(&[
        "query",
        "tributary ms",
        "duckdb ms",
        "ratio",
        "rows",
        "same answer",
        "files read",
    ]);
    for query in figures {
        table.row(vec![
            query.name.clone(),
            ms(query.tributary_ms),
            ms(query.duckdb_ms),
            query
                .ratio
                .map_or("-".into(), |ratio| format!("{ratio:.2}x")),
            query
                .tributary_rows
                .map_or("-".into(), |rows| rows.to_string()),
            match query.same_answer {
                Some(true) => "yes".into(),
                Some(false) => "! NO".into(),
                None => "-".into(),
            },
            query.files_scanned.to_string(),
        ]);
    }
    text.push_str(&table.render());
    for query in figures {
        if let Some(error) = &query.tributary_error {
            text.push_str(&format!(
                "  ! {} failed on Tributary: {error}\n",
                query.name
            ));
        }
        if let Some(error) = &query.duckdb_error {
            text.push_str(&format!("  ! {} failed on DuckDB: {error}\n", query.name));
        }
        if let Some(difference) = &query.difference {
            text.push_str(&format!(
                "  ! {} answers differ: {difference}\n",
                query.name
            ));
        }
    }
    if let Some(query) = figures.iter().find(|q| q.expected.is_some()) {
        text.push_str(&format!(
            "  {} counts the hour from {}: the generator put {} events in it: {}\n",
            query.name,
            sql_timestamp(manifest.hour_from),
            output::thousands(manifest.hour_count),
            match query.expected_met {
                Some(true) => "Tributary's count is right",
                _ => "! Tributary's count is WRONG",
            }
        ));
    }
    let others = &params.other_processes_cores;
    let cores = |value: Option<f64>| value.map_or("-".into(), |c| format!("{c:.2}"));
    text.push_str(&format!(
        "  other processes kept {} cores busy while Tributary ran, {} while DuckDB ran{}\n",
        cores(others.tributary),
        cores(others.duckdb),
        if [others.tributary, others.duckdb]
            .iter()
            .flatten()
            .any(|c| *c > 0.25)
        {
            ": the machine was shared, the times are disturbed"
        } else {
            ""
        }
    ));
    match geomean_ratio {
        Some(ratio) => text.push_str(&format!(
            "\ngeometric mean of Tributary ÷ DuckDB: {ratio:.3} (goal ≤ {}: {})\n\n",
            goal.geomean_ratio,
            if goal.met == Some(true) {
                "met"
            } else {
                "not met"
            }
        )),
        None => text.push_str("\nno ratio: DuckDB did not run\n\n"),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_parses_into_at_least_ten_queries() {
        let suite = parse_suite(SUITE).unwrap();
        assert!(suite.len() >= 10, "{suite:?}");
        let mut names: Vec<&str> = suite.iter().map(|q| q.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), suite.len(), "names are unique");
        assert!(names.contains(&HOUR_COUNT_QUERY));
        for query in &suite {
            assert!(!query.sql.ends_with(';'), "{}", query.name);
            assert!(!query.description.is_empty(), "{}", query.name);
        }
    }

    #[test]
    fn placeholders_are_all_filled() {
        let manifest = Manifest {
            format: FORMAT,
            events: 10,
            seed: SEED,
            start: MONTH_START,
            end: MONTH_START + DAYS * DAY,
            files: 0,
            bytes: 0,
            rows: 10,
            generate_seconds: 0.0,
            hour_from: MONTH_START + HOUR,
            hour_count: 0,
        };
        for query in parse_suite(SUITE).unwrap() {
            let query = fill_placeholders(query, &manifest);
            assert!(!query.sql.contains('{'), "{}", query.sql);
        }
    }

    #[test]
    fn duckdb_variants_attach_to_their_query() {
        let suite = parse_suite(
            "-- header\n-- q01_a: first\nSELECT 1;\n-- q01_a [duckdb]: first\nSELECT 2;\n\
             -- q02_b: second\nSELECT 3\n",
        )
        .unwrap();
        assert_eq!(suite.len(), 2);
        assert_eq!(suite[0].sql, "SELECT 1");
        assert_eq!(suite[0].duckdb(), "SELECT 2");
        assert_eq!(suite[1].duckdb(), "SELECT 3");
        assert!(parse_suite("-- q01_a [duckdb]: x\nSELECT 1").is_err());
    }

    #[test]
    fn queries_are_named_by_name_prefix_or_number() {
        let query = SuiteQuery {
            name: "q04_top_referrers".into(),
            description: String::new(),
            sql: String::new(),
            duckdb_sql: None,
        };
        for wanted in ["q04_top_referrers", "q04", "4", "q4"] {
            assert!(is_named(&query, wanted), "{wanted}");
        }
        for wanted in ["q05", "top", "40"] {
            assert!(!is_named(&query, wanted), "{wanted}");
        }
    }

    #[test]
    fn numbers_compare_with_a_tolerance_for_float_sums() {
        use serde_json::json;
        assert!(same_value(&json!(3), &json!(3)));
        assert!(!same_value(&json!(3), &json!(4)));
        assert!(same_value(&json!(1234.56), &json!(1234.57)));
        assert!(same_value(&json!(3.0), &json!(3)));
        assert!(!same_value(&json!(1234.56), &json!(1234.6)));
        assert!(same_value(&json!("a"), &json!("a")));
        assert!(!same_value(&json!(null), &json!("a")));
        assert_eq!(first_difference(&[vec![json!(1)]], &[vec![json!(1)]]), None);
        assert!(first_difference(&[vec![json!(1)]], &[]).is_some());
    }

    #[test]
    fn arrow_values_are_normalised_like_duckdbs() {
        use arrow::array::{Int32Array, StringArray, TimestampMicrosecondArray};
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None]));
        assert_eq!(
            column_values(&ints).unwrap(),
            vec![Value::from(7), Value::Null]
        );
        let times: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![5_000_000]).with_timezone("UTC"));
        assert_eq!(column_values(&times).unwrap(), vec![Value::from(5_000_000)]);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        assert_eq!(column_values(&text).unwrap(), vec![Value::from("x")]);
    }
}
