//! `bench pipeline`'s live phase: the whole path at once, in this process — HTTP load →
//! collector → stream → lake writer with the pipeline → Parquet — for a fixed time, sampling
//! how far the lake's checkpoint is behind the stream. A lake that keeps up holds that lag
//! steady (it saws up and down with the flushes); one that does not sees it grow by the
//! difference between the two rates.
//!
//! ```text
//!  loadgen runtime ──HTTP──▶ collector runtime ──append──▶ EmbeddedLog ──read──▶ LakeWriter
//!  (fresh ids per request)   (InProcess, as bench ingest)                   (+ pipeline, dedup)
//!                                   every second: lag = stream end − lake checkpoint
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tributary_catalog::{Catalog, EmbeddedCatalog};
use tributary_collector::keys::{self, KeyStore, NewKey, Role};
use tributary_lake::{LakeConfig, LakeWriter};
use tributary_model::now_micros;
use tributary_stream::{Durability, EmbeddedLog, Stream, StreamConfig};

use super::ingest::{InProcess, TENANT};
use super::pipeline::{BenchLake, pipeline_stage};
use super::round;
use crate::loadgen::{self, Api, Load, Target};
use crate::runtime;

/// Events per request, as `bench ingest` sends them.
const BATCH: usize = 100;
/// Concurrent request loops: `bench ingest`'s fastest point on two cores.
const CONCURRENCY: usize = 32;
/// Threads of the collector's runtime.
const COLLECTOR_THREADS: usize = 2;
/// Threads of the load generator's runtime.
const LOADGEN_THREADS: usize = 1;
/// How often the lag is sampled.
const SAMPLE: Duration = Duration::from_millis(250);
/// The lag may grow by this share of the acknowledged rate and still count as keeping up, or
/// by one flush interval's worth of events over the measured span when that is more: the
/// checkpoint moves a flush at a time, so a smaller trend is below what the samples resolve.
const GROWTH_TOLERANCE: f64 = 0.02;

/// What the live phase measured.
#[derive(Debug, Serialize)]
pub(super) struct LiveFigures {
    /// Events/s offered by the load generator (0: as fast as the collector answers).
    pub offered_events_per_s: f64,
    /// Events/s the collector acknowledged.
    pub acked_events_per_s: f64,
    /// Events/s the lake committed (checkpoint progress) after the first quarter of the run.
    pub lake_events_per_s: f64,
    /// Events the lake was behind the stream halfway through.
    pub lag_halfway: u64,
    /// Events the lake was behind the stream at the end.
    pub lag_end: u64,
    /// How fast the lag grew after the first quarter of the run (events/s, least squares;
    /// negative: it shrank).
    pub lag_growth_events_per_s: f64,
    /// Whether the lag stayed steady: over the measured span it grew by less than one flush
    /// interval's worth of acknowledged events (or 2 % of them, when that is more).
    pub keeps_up: bool,
    /// How long the load ran.
    pub seconds: f64,
}

/// Runs the live phase in `dir` for `seconds` at `rate` events/s (0: as fast as answers come).
pub(super) fn live_phase(
    runtime: &Runtime,
    lake: &LakeConfig,
    dir: &Path,
    seconds: f64,
    rate: f64,
    event_bytes: usize,
    bar: &ProgressBar,
) -> Result<LiveFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let keys_path = dir.join("keys.json");
    let created = keys::create_key(&keys_path, TENANT, Role::Write, &NewKey::default())
        .context("creating the benchmark's key")?;
    let key_store = Arc::new(KeyStore::open(&keys_path).context("opening the benchmark's key")?);
    let stream = StreamConfig {
        shards: Some(tributary_stream::DEFAULT_SHARDS),
        durability: Durability::Fsync,
        ..StreamConfig::default()
    };
    let server = InProcess::start(&dir.join("stream"), stream, key_store, COLLECTOR_THREADS)?;
    let log: Arc<EmbeddedLog> = Arc::new(server.log());

    let BenchLake {
        catalog,
        store,
        config: lake_config,
    } = BenchLake::open(lake, dir)?;
    let (pipeline, dedup) = pipeline_stage(runtime, &catalog, dir)?;
    let writer = runtime
        .block_on(LakeWriter::new(
            Arc::clone(&log) as Arc<dyn Stream>,
            Arc::clone(&catalog) as Arc<dyn Catalog>,
            store,
            lake_config.clone(),
        ))
        .context("starting the lake writer")?
        .with_pipeline(pipeline, dedup);
    let (stop, stopped) = watch::channel(false);
    let task = runtime.spawn(async move { writer.run(stopped).await });

    let duration = Duration::from_secs_f64(seconds);
    let load = Load {
        target: Target::new(Api::Native, &server.url(), &created.key, None, "us-east-1")?,
        rate,
        duration,
        batch: BATCH,
        concurrency: CONCURRENCY,
        // Fresh ids per request: reused bodies would be folded by dedup, which is not the
        // work a live lake does.
        unique: true,
        event_bytes: (event_bytes > 0).then_some(event_bytes),
        seed: now_micros().unsigned_abs(),
    };
    let client = runtime::build_named(LOADGEN_THREADS, "loadgen")?;
    let sampler = Sampler {
        log: Arc::clone(&log),
        catalog: Arc::clone(&catalog),
        consumer: lake_config.consumer.clone(),
    };
    let started = Instant::now();
    let http = client.spawn(async move {
        loadgen::drive(&load, Arc::new(Vec::new()), &ProgressBar::hidden()).await
    });
    let (samples, http) = runtime.block_on(async {
        let mut samples = Vec::new();
        while !http.is_finished() {
            samples.push((started.elapsed().as_secs_f64(), sampler.lag().await?));
            bar.set_message(format!(
                "live: HTTP → stream → lake, {:.0} s",
                started.elapsed().as_secs_f64()
            ));
            tokio::time::sleep(SAMPLE).await;
        }
        samples.push((started.elapsed().as_secs_f64(), sampler.lag().await?));
        let http = http
            .await
            .map_err(|join| anyhow!("the load panicked: {join}"))?;
        Ok::<_, anyhow::Error>((samples, http))
    })?;
    let http = http.context("the live phase's HTTP load")?;
    let elapsed = started.elapsed().as_secs_f64();
    drop(client);

    let _ = stop.send(true);
    runtime
        .block_on(task)
        .map_err(|join| anyhow!("the lake writer panicked: {join}"))?
        .context("the lake writer failed")?;
    server.stop()?;
    log.close().context("closing the live phase's stream")?;

    // After the first quarter (the writer's first flushes): the lag's trend by least squares,
    // which sees through the saw of the flushes, and the lake's rate over the same span.
    let steady: Vec<(f64, Lag)> = samples
        .iter()
        .copied()
        .filter(|(at, _)| *at >= elapsed / 4.0)
        .collect();
    let growth = slope(&steady);
    let first = steady.first().copied().unwrap_or_default();
    let end = steady.last().copied().unwrap_or_default();
    let halfway = steady
        .iter()
        .find(|(at, _)| *at >= elapsed / 2.0)
        .copied()
        .unwrap_or(end);
    let span = (end.0 - first.0).max(f64::MIN_POSITIVE);
    let lake_per_s = end.1.committed.saturating_sub(first.1.committed) as f64 / span;
    let acked_per_s = http.events_per_s;
    let allowed =
        (GROWTH_TOLERANCE * span).max(lake_config.flush_interval.as_secs_f64()) * acked_per_s;
    Ok(LiveFigures {
        offered_events_per_s: rate,
        acked_events_per_s: acked_per_s.round(),
        lake_events_per_s: lake_per_s.round(),
        lag_halfway: halfway.1.behind,
        lag_end: end.1.behind,
        lag_growth_events_per_s: growth.round(),
        keeps_up: growth * span <= allowed,
        seconds: round(elapsed, 1),
    })
}

/// The least-squares slope of the lag over time (events/s); 0 for fewer than two samples.
fn slope(samples: &[(f64, Lag)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_lag = samples
        .iter()
        .map(|(_, lag)| lag.behind as f64)
        .sum::<f64>()
        / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (t, lag) in samples {
        covariance += (t - mean_t) * (lag.behind as f64 - mean_lag);
        variance += (t - mean_t) * (t - mean_t);
    }
    if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    }
}

/// Where the lake stands against the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Lag {
    /// Records appended but not yet committed to the lake.
    behind: u64,
    /// Records committed to the lake.
    committed: u64,
}

/// Reads the stream's end and the lake's checkpoint.
struct Sampler {
    log: Arc<EmbeddedLog>,
    catalog: Arc<EmbeddedCatalog>,
    consumer: String,
}

impl Sampler {
    async fn lag(&self) -> Result<Lag> {
        let shards = self
            .log
            .shard_stats()
            .await
            .context("reading the stream's extent")?;
        let checkpoint = self.catalog.checkpoint(&self.consumer).await?;
        let mut lag = Lag::default();
        for (shard, stats) in shards.iter().enumerate() {
            let shard = u32::try_from(shard).unwrap_or(u32::MAX);
            let committed = checkpoint.positions.get(&shard).copied().unwrap_or(0);
            lag.committed += committed;
            lag.behind += stats.next_seq.saturating_sub(committed);
        }
        Ok(lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, behind: u64) -> (f64, Lag) {
        (
            t,
            Lag {
                behind,
                committed: 0,
            },
        )
    }

    #[test]
    fn the_slope_follows_the_trend_through_a_saw() {
        // Growing 1,000 events/s with a saw of ±5,000 every other sample.
        let growing: Vec<_> = (0..40)
            .map(|i| {
                let t = f64::from(i) * 0.25;
                let saw = if i % 2 == 0 { 5_000 } else { 0 };
                at(t, 10_000 + (t * 1_000.0) as u64 + saw)
            })
            .collect();
        assert!(
            (slope(&growing) - 1_000.0).abs() < 150.0,
            "{}",
            slope(&growing)
        );
        let steady: Vec<_> = (0..40).map(|i| at(f64::from(i), 7_000)).collect();
        assert_eq!(slope(&steady), 0.0);
        assert_eq!(slope(&[at(1.0, 5)]), 0.0);
    }
}
