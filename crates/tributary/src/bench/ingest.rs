//! `tributary bench ingest`: events/s and acknowledgement latency of the HTTP ingest path, next
//! to what the stream alone can append on the same disk.
//!
//! ```text
//!  client runtime ("loadgen", 1–2 threads)      server runtime ("collector", 2 threads)
//!  loadgen::drive: C keep-alive loops ──HTTP──▶ tributary_collector::serve ──append──▶ EmbeddedLog
//!  (pre-encoded bodies, as fast as the          (auth, parse, edge rules,    (stream-shard-N
//!   answers come back)                           serialize, backlog)          writer threads,
//!                                                                             group commit + fsync)
//!  then, same disk, same record size:  C threads ── append_blocking ──▶ a fresh EmbeddedLog
//! ```
//!
//! Both ends run in this process on purpose: the figure is what one machine does when it both
//! produces and ingests, with the two tokio runtimes kept apart so that neither starves the
//! other's scheduler. For every concurrency C, a fresh log and collector take batches of
//! `--batch` generated events for a fixed time; the stream bound then runs `bench stream`'s cell
//! (C threads calling `append_blocking` with batches of the same number of records, of the mean
//! size the collector stored) on a fresh log. The ratio of the two says how much of the disk's
//! bound the HTTP edge leaves on the table. CPU time per thread group (server, client, stream
//! threads), read from `/proc/self/task`, says where the time went.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tributary_collector::keys::{self, KeyStore, NewKey, Role};
use tributary_collector::{Collector, CollectorConfig};
use tributary_model::now_micros;
use tributary_stream::{EmbeddedLog, ReadLimits, Stream, StreamConfig};

use super::stream::{Cell, run_cell, sample_value, session_keys};
use super::{Machine, progress_bar, round};
use crate::config::Config;
use crate::exit::{OK, UsageError};
use crate::loadgen::{self, Api, Load, Summary, Target};
use crate::output::{self, Table};
use crate::runtime;

/// Concurrencies of a full run.
const FULL_SWEEP: [usize; 4] = [8, 16, 32, 64];
/// Concurrency of a `--quick` run.
const QUICK_CONCURRENCY: usize = 16;
/// Seconds per measurement in a full run.
const FULL_SECONDS: f64 = 10.0;
/// Seconds per measurement with `--quick`: one HTTP point and one stream bound, ~15 s in all.
const QUICK_SECONDS: f64 = 5.0;
/// The issue's goal: events/s acknowledged…
const GOAL_EVENTS_PER_S: f64 = 300_000.0;
/// …with this p99 acknowledgement latency, in ms.
const GOAL_P99_MS: f64 = 20.0;
/// The tenant of the benchmark's key.
pub(super) const TENANT: &str = "bench";
/// The server's graceful shutdown may wait this long for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `tributary bench ingest`.
#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// 5 s per measurement and one concurrency (16) instead of 10 s and 8/16/32/64 (~15 s in
    /// all instead of ~90 s).
    #[arg(long)]
    pub quick: bool,
    /// The ingest API the load generator sends to.
    #[arg(long, value_enum, default_value_t = Api::Native)]
    pub api: Api,
    /// Concurrent request loops (and append threads for the stream bound) [default: 8, 16, 32
    /// and 64; 16 with --quick].
    #[arg(long, value_name = "C",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: Option<u32>,
    /// Events per request (and records per append for the stream bound).
    #[arg(long, value_name = "B", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub batch: u32,
    /// Events are trimmed toward this many bytes of JSON (the issue's "about 400 bytes") by
    /// dropping optional context fields; 0 keeps a browser's full context (~600 bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 400)]
    pub event_bytes: usize,
    /// Events per second offered; 0 sends as fast as the answers come back.
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub rate: f64,
    #[command(flatten)]
    pub log: super::LogArgs,
    /// Worker threads of the collector's runtime.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub server_threads: u32,
    /// Worker threads of the load generator's runtime.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub client_threads: u32,
    /// Seconds per measurement, overriding --quick; for tests.
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub seconds: Option<f64>,
    /// Skip the stream bound; for tests.
    #[arg(long, hide = true)]
    pub no_bound: bool,
}

/// The JSON line.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    version: &'static str,
    machine: Machine,
    params: Params,
    points: Vec<Point>,
    goal: Goal,
}

/// What the run was asked to do, and the sizes it found.
#[derive(Debug, Serialize)]
struct Params {
    api: Api,
    batch: usize,
    rate: f64,
    durability: String,
    shards: u32,
    seconds_per_point: f64,
    server_threads: u32,
    client_threads: u32,
    /// Mean request body bytes per event, as sent.
    request_bytes_per_event: f64,
    /// Mean size of a stored record's value (the event as the collector serialized it); the
    /// stream bound appends values of this size.
    record_bytes: usize,
    dir: PathBuf,
}

/// One concurrency: the HTTP figures, the stream bound, their ratio.
#[derive(Debug, Serialize)]
struct Point {
    concurrency: usize,
    http: Summary,
    /// Records the stream held after the HTTP run: must equal `http.acked`.
    stream_records: u64,
    /// CPU cores used during the HTTP run (CPU seconds ÷ wall seconds), by thread group of this
    /// process, and by every other process of the machine (`other_processes`).
    cpu_cores: BTreeMap<&'static str, f64>,
    /// CPU µs per acked event, by thread group of this process: the cost that stays put when
    /// a busy neighbour changes how many cores the run got.
    cpu_us_per_event: BTreeMap<&'static str, f64>,
    /// `append_blocking` from `concurrency` threads, batches of `batch` records.
    stream_bound: Option<Cell>,
    /// `http.events_per_s ÷ stream_bound.records_per_s`.
    ratio: Option<f64>,
}

/// The issue's goal and whether a point met it.
#[derive(Debug, Serialize)]
struct Goal {
    events_per_s: f64,
    p99_ms: f64,
    met: bool,
    best_concurrency: Option<usize>,
    best_events_per_s: f64,
    best_p99_ms: f64,
}

/// Runs the benchmark, prints the table and the JSON line.
pub fn run(config: &Config, args: &IngestBenchArgs) -> Result<ExitCode> {
    let usage = |message: String| anyhow::Error::new(UsageError(message));
    let seconds = args.seconds.unwrap_or(if args.quick {
        QUICK_SECONDS
    } else {
        FULL_SECONDS
    });
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(usage(format!(
            "--seconds is {seconds}, must be in (0, 3600]"
        )));
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(usage(format!("--rate is {}, must be 0 or more", args.rate)));
    }
    let duration = Duration::from_secs_f64(seconds);
    let batch = args.batch as usize;
    let sweep: Vec<usize> = match (args.concurrency, args.quick) {
        (Some(c), _) => vec![c as usize],
        (None, true) => vec![QUICK_CONCURRENCY],
        (None, false) => FULL_SWEEP.to_vec(),
    };

    let (scratch, parent, machine) = args.log.prepare(config, "ingest")?;

    let keys_path = scratch.path().join("keys.json");
    let created = keys::create_key(
        &keys_path,
        TENANT,
        Role::Write,
        &NewKey {
            aws: true,
            ..NewKey::default()
        },
    )
    .context("creating the benchmark's key")?;
    // One store for every point: each open logs a line, and the file does not change.
    let key_store = Arc::new(KeyStore::open(&keys_path).context("opening the benchmark's keys")?);
    let (key, secret) = match args.api {
        Api::Kinesis => (
            created.record.aws_access_key_id.clone().unwrap_or_default(),
            created.record.aws_secret_access_key.clone(),
        ),
        Api::Native | Api::Segment => (created.key.clone(), None),
    };
    let seed = now_micros().unsigned_abs();
    // Encoded before any clock starts, shared by every point.
    let event_bytes = (args.event_bytes > 0).then_some(args.event_bytes);
    let pool = Arc::new(loadgen::body_pool(
        args.api,
        batch,
        loadgen::POOL_BODIES,
        seed,
        event_bytes,
    )?);
    let request_bytes_per_event = loadgen::bytes_per_event(&pool);
    let shards = args.log.shards.unwrap_or(tributary_stream::DEFAULT_SHARDS);
    let stream_config = StreamConfig {
        shards: Some(shards),
        durability: args.log.durability,
        ..StreamConfig::default()
    };
    let client = runtime::build_named(args.client_threads as usize, "loadgen")?;

    let steps = sweep.len() as u64 * if args.no_bound { 1 } else { 2 };
    let bar = progress_bar(steps);
    let session_keys = session_keys();
    let mut record_bytes = 0;
    let mut points = Vec::with_capacity(sweep.len());
    for &concurrency in &sweep {
        bar.set_message(format!(
            "HTTP {}: {concurrency} connections",
            args.api.name()
        ));
        let dir = scratch.path().join(format!("http-c{concurrency}"));
        let server = InProcess::start(
            &dir,
            stream_config.clone(),
            Arc::clone(&key_store),
            args.server_threads as usize,
        )?;
        let load = Load {
            target: Target::new(
                args.api,
                &server.url(),
                &key,
                secret.as_deref(),
                "us-east-1",
            )?,
            rate: args.rate,
            duration,
            batch,
            concurrency,
            unique: false,
            event_bytes,
            seed,
        };
        let (cpu_before, machine_before) = (thread_cpu(), machine_busy());
        let http = client.block_on(loadgen::drive(
            &load,
            Arc::clone(&pool),
            &ProgressBar::hidden(),
        ));
        let mut cpu = cpu_share(&cpu_before, &thread_cpu());
        // What the rest of the machine used meanwhile: a busy neighbour (a build, another
        // benchmark) takes cores this run did not get, and the figures must say so.
        if let (Some(before), Some(after)) = (machine_before, machine_busy()) {
            let ours: Duration = cpu.values().sum();
            cpu.insert(
                "other_processes",
                after.saturating_sub(before).saturating_sub(ours),
            );
        }
        let stored = server.stop()?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("deleting {}", dir.display()))?;
        let http = http.with_context(|| format!("HTTP load at concurrency {concurrency}"))?;
        if stored.mean_value_bytes > 0 {
            record_bytes = stored.mean_value_bytes;
        }
        let seconds = http.seconds.max(f64::MIN_POSITIVE);
        let cpu_us_per_event = cpu
            .iter()
            .filter(|(group, _)| **group != "other_processes" && http.acked > 0)
            .map(|(group, busy)| {
                (
                    *group,
                    round(busy.as_secs_f64() * 1e6 / http.acked as f64, 2),
                )
            })
            .collect();
        let cpu_cores = cpu
            .into_iter()
            .map(|(group, busy)| (group, round(busy.as_secs_f64() / seconds, 2)))
            .collect();
        bar.inc(1);

        let stream_bound = if args.no_bound {
            None
        } else {
            bar.set_message(format!("stream bound: {concurrency} writers"));
            let value = sample_value(record_bytes.max(1));
            let dir = scratch.path().join(format!("bound-c{concurrency}"));
            let cell = run_cell(
                &dir,
                stream_config.clone(),
                batch,
                concurrency,
                duration,
                &session_keys,
                &value,
            )
            .with_context(|| format!("stream bound with {concurrency} writers"))?;
            bar.inc(1);
            Some(cell)
        };
        let ratio = stream_bound
            .as_ref()
            .filter(|cell| cell.records_per_s > 0.0)
            .map(|cell| round(http.events_per_s / cell.records_per_s, 3));
        points.push(Point {
            concurrency,
            http,
            stream_records: stored.records,
            cpu_cores,
            cpu_us_per_event,
            stream_bound,
            ratio,
        });
    }
    bar.finish_and_clear();
    drop(client);

    let goal = goal(&points);
    let params = Params {
        api: args.api,
        batch,
        rate: args.rate,
        durability: args.log.durability.to_string(),
        shards,
        seconds_per_point: seconds,
        server_threads: args.server_threads,
        client_threads: args.client_threads,
        request_bytes_per_event: round(request_bytes_per_event, 1),
        record_bytes,
        dir: parent,
    };
    output::print(&render(&machine, &params, &points, &goal))?;
    let nothing_acked = points.iter().find(|p| p.http.acked == 0).map(|point| {
        let why = point
            .http
            .rejection_examples
            .iter()
            .next()
            .map(|(status, example)| format!(": {status}: {example}"))
            .unwrap_or_default();
        anyhow!(
            "no event was acknowledged at concurrency {}{why}",
            point.concurrency
        )
    });
    output::json_line(&Report {
        bench: "ingest",
        version: env!("CARGO_PKG_VERSION"),
        machine,
        params,
        points,
        goal,
    })?;
    drop(scratch);
    if let Some(error) = nothing_acked {
        return Err(error);
    }
    Ok(ExitCode::from(OK))
}

/// The best point by events/s, and whether any point met the goal.
fn goal(points: &[Point]) -> Goal {
    let meets = |p: &&Point| {
        p.http.events_per_s >= GOAL_EVENTS_PER_S && f64::from(p.http.p99_us) / 1e3 <= GOAL_P99_MS
    };
    let met = points.iter().any(|p| meets(&p));
    // The fastest point that meets the goal, else the fastest point.
    let best = points
        .iter()
        .filter(|p| !met || meets(p))
        .max_by(|a, b| a.http.events_per_s.total_cmp(&b.http.events_per_s));
    Goal {
        events_per_s: GOAL_EVENTS_PER_S,
        p99_ms: GOAL_P99_MS,
        met,
        best_concurrency: best.map(|p| p.concurrency),
        best_events_per_s: best.map_or(0.0, |p| p.http.events_per_s),
        best_p99_ms: best.map_or(0.0, |p| round(f64::from(p.http.p99_us) / 1e3, 2)),
    }
}

/// A collector serving a fresh log on 127.0.0.1, on its own runtime.
pub(super) struct InProcess {
    runtime: Runtime,
    log: EmbeddedLog,
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// What the stream held when the server stopped.
pub(super) struct Stored {
    records: u64,
    /// Mean value size of a sample of the records, 0 when there were none.
    mean_value_bytes: usize,
}

impl InProcess {
    pub(super) fn start(
        dir: &Path,
        stream: StreamConfig,
        keys: Arc<KeyStore>,
        workers: usize,
    ) -> Result<InProcess> {
        let log = EmbeddedLog::open(dir, stream)
            .with_context(|| format!("opening a fresh stream in {}", dir.display()))?;
        let runtime = runtime::build_named(workers, "collector")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding 127.0.0.1:0 for the collector")?;
        let addr = listener.local_addr().context("the collector's address")?;
        let collector = Arc::new(Collector::new(
            Arc::new(log.clone()),
            keys,
            CollectorConfig::default(),
        ));
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = runtime.spawn(tributary_collector::serve(collector, listener, async {
            let _ = stop.await;
        }));
        Ok(InProcess {
            runtime,
            log,
            addr,
            shutdown,
            server,
        })
    }

    /// The stream the collector appends to.
    pub(super) fn log(&self) -> EmbeddedLog {
        self.log.clone()
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (in-flight requests finish), counts what the stream holds, closes it.
    pub(super) fn stop(self) -> Result<Stored> {
        let _ = self.shutdown.send(());
        let served = self
            .runtime
            .block_on(async { tokio::time::timeout(SHUTDOWN_GRACE, self.server).await });
        match served {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(anyhow!("the collector failed: {e}")),
            Ok(Err(join)) => return Err(anyhow!("the collector panicked: {join}")),
            Err(_) => tracing::warn!("the collector did not stop within {SHUTDOWN_GRACE:?}"),
        }
        let stats = self
            .runtime
            .block_on(self.log.shard_stats())
            .context("reading the stream's extent")?;
        let records = stats.iter().map(|s| s.next_seq - s.first_seq).sum();
        let (mut bytes, mut count) = (0usize, 0usize);
        for shard in &stats {
            let limits = ReadLimits {
                max_records: 200,
                ..ReadLimits::default()
            };
            let batch = self
                .log
                .read_blocking(shard.shard, shard.first_seq, limits)
                .context("reading back stored records")?;
            bytes += batch.records.iter().map(|r| r.value.len()).sum::<usize>();
            count += batch.records.len();
        }
        self.log.close().context("closing the benchmarked stream")?;
        drop(self.runtime);
        Ok(Stored {
            records,
            mean_value_bytes: bytes.checked_div(count).unwrap_or(0),
        })
    }
}

/// CPU time of every thread of this process, by thread id, with its group.
fn thread_cpu() -> HashMap<u64, (&'static str, Duration)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // schedstat's first field is the time on CPU in ns, finer than stat's clock ticks.
        let busy = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok())
            .map(Duration::from_nanos);
        if let Some(busy) = busy {
            threads.insert(tid, (thread_group(name.trim()), busy));
        }
    }
    threads
}

/// CPU time the whole machine has been busy since boot (all CPUs, every process), from
/// `/proc/stat`; `None` where there is no such file.
pub(super) fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy. The
    // unit is USER_HZ, which Linux fixes at 100 per second for this file.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(Duration::from_millis(busy * 10))
}

/// The group a thread's CPU time is reported under.
fn thread_group(name: &str) -> &'static str {
    if name.starts_with("collector") {
        "server"
    } else if name.starts_with("loadgen") {
        "client"
    } else if name.starts_with("stream-") {
        // Shard writers and, where the log has them, their sync threads.
        "stream"
    } else {
        "other"
    }
}

/// CPU time used between two snapshots, by group. Threads born in between count from zero.
fn cpu_share(
    before: &HashMap<u64, (&'static str, Duration)>,
    after: &HashMap<u64, (&'static str, Duration)>,
) -> BTreeMap<&'static str, Duration> {
    let mut groups = BTreeMap::new();
    for (tid, (group, busy)) in after {
        let earlier = before.get(tid).map_or(Duration::ZERO, |(_, b)| *b);
        *groups.entry(*group).or_insert(Duration::ZERO) += busy.saturating_sub(earlier);
    }
    groups
}

/// The tables for people.
fn render(machine: &Machine, params: &Params, points: &[Point], goal: &Goal) -> String {
    let rate = |value: f64| output::thousands(value.round() as u64);
    let ms = |micros: u32| format!("{:.2}", f64::from(micros) / 1e3);
    let offered = if params.rate > 0.0 {
        format!("{} events/s offered", rate(params.rate))
    } else {
        "as fast as possible".into()
    };
    let mut text = format!(
        "ingest bench: {} API, batches of {} events ({:.0} request bytes/event, {} bytes stored), \
         {offered}, durability {}, {} shards, {} s per point, in {}\n\
         server: {} worker threads; client: {} worker threads; machine: {}\n\n",
        params.api.name(),
        params.batch,
        params.request_bytes_per_event,
        params.record_bytes,
        params.durability,
        params.shards,
        params.seconds_per_point,
        params.dir.display(),
        params.server_threads,
        params.client_threads,
        machine.summary(),
    );
    text.push_str("HTTP: loadgen → collector → stream, acknowledged after durable\n");
    let mut table = Table::new(&[
        "conns",
        "events/s",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "acked",
        "rejected",
        "cpu server",
        "cpu client",
        "cpu stream",
        "cpu others",
        "server µs/event",
    ]);
    for point in points {
        let cores = |group| {
            point
                .cpu_cores
                .get(group)
                .map_or("-".to_owned(), |c: &f64| format!("{c:.2}"))
        };
        table.row(vec![
            point.concurrency.to_string(),
            rate(point.http.events_per_s),
            rate(point.http.requests_per_s),
            ms(point.http.p50_us),
            ms(point.http.p99_us),
            ms(point.http.max_us),
            output::thousands(point.http.acked),
            output::thousands(point.http.rejected_total()),
            cores("server"),
            cores("client"),
            cores("stream"),
            cores("other_processes"),
            point
                .cpu_us_per_event
                .get("server")
                .map_or("-".to_owned(), |us| format!("{us:.1}")),
        ]);
    }
    text.push_str(&table.render());
    text.push_str(
        "  cpu: cores used during the run, by this process's server, client and stream threads \
         and by every other process of the machine\n",
    );
    for point in points {
        for (status, example) in &point.http.rejection_examples {
            text.push_str(&format!(
                "  conns {}, status {status}: {example}\n",
                point.concurrency
            ));
        }
        if point.stream_records != point.http.acked {
            text.push_str(&format!(
                "  conns {}: the stream holds {} records but {} events were acked\n",
                point.concurrency, point.stream_records, point.http.acked
            ));
        }
    }

    if points.iter().any(|p| p.stream_bound.is_some()) {
        text.push_str(&format!(
            "\nstream bound: C threads append_blocking batches of {} records of {} bytes, one \
             session key per batch\n",
            params.batch, params.record_bytes
        ));
        let mut table = Table::new(&["writers", "records/s", "p50 ms", "p99 ms", "HTTP ÷ bound"]);
        for point in points {
            if let Some(cell) = &point.stream_bound {
                table.row(vec![
                    cell.writers.to_string(),
                    rate(cell.records_per_s),
                    ms(cell.p50_us),
                    ms(cell.p99_us),
                    point
                        .ratio
                        .map_or("-".into(), |ratio| format!("{ratio:.2}x")),
                ]);
            }
        }
        text.push_str(&table.render());
    }
    text.push_str(&format!(
        "\ngoal: ≥ {} events/s with p99 ≤ {} ms: {} (best: {} events/s at {} connections, p99 \
         {:.2} ms)\n\n",
        rate(goal.events_per_s),
        goal.p99_ms,
        if goal.met { "met" } else { "not met" },
        rate(goal.best_events_per_s),
        goal.best_concurrency.map_or("-".into(), |c| c.to_string()),
        goal.best_p99_ms,
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_grouped_by_name() {
        assert_eq!(thread_group("collector"), "server");
        assert_eq!(thread_group("loadgen"), "client");
        assert_eq!(thread_group("stream-shard-3"), "stream");
        assert_eq!(thread_group("stream-sync-0"), "stream");
        assert_eq!(thread_group("tributary"), "other");
    }

    #[test]
    fn cpu_share_counts_new_threads_from_zero() {
        let before = HashMap::from([(1, ("server", Duration::from_millis(100)))]);
        let after = HashMap::from([
            (1, ("server", Duration::from_millis(350))),
            (2, ("client", Duration::from_millis(40))),
        ]);
        let share = cpu_share(&before, &after);
        assert_eq!(share["server"], Duration::from_millis(250));
        assert_eq!(share["client"], Duration::from_millis(40));
    }

    #[test]
    fn this_process_reports_its_threads_and_the_machine() {
        if cfg!(target_os = "linux") {
            assert!(!thread_cpu().is_empty());
            assert!(machine_busy().is_some_and(|busy| busy > Duration::ZERO));
        }
    }
}
