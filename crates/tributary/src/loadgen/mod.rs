//! `tributary loadgen`: realistic clickstream over HTTP, against a running collector, as fast as
//! asked and measured the way a producer sees it.
//!
//! ```text
//!  sample_traffic.rs ──▶ encoder (native.rs | segment.rs | kinesis.rs + sigv4.rs)
//!   (page views, item views,        │ a pool of encoded bodies, made before the clock starts
//!    carts, orders, logins)         ▼
//!            open-loop schedule ──▶ C request loops ──keep-alive HTTP──▶ collector
//!            (request i is due at    (one connection each)  ◀── answer: acked / rejected
//!             start + i × batch / rate)                       latency = send → answer
//! ```
//!
//! The schedule is open-loop: request `i` is due at `start + i × batch ÷ rate`, whatever
//! happened to the requests before it, and the C loops take the next due request as soon as
//! they are free. A slow server therefore shows up as latency and as a shortfall of the
//! achieved rate against the offered one, not as a quietly lower offered rate. With `--rate 0`
//! every loop sends as fast as its answers come back (the closed-loop maximum).
//!
//! Bodies are encoded before the clock starts (up to [`POOL_BODIES`], reused round-robin), so
//! the generator's cost does not limit the figures. Reused bodies repeat their event ids: the
//! collector makes every copy durable, and the pipeline's dedup will fold them into one.
//! `--unique` encodes every request afresh instead (ids never repeat, and the generator's cost
//! is then part of the measurement).
//!
//! `bench ingest` drives an in-process collector with the same engine ([`drive`]).

mod kinesis;
mod native;
mod segment;
mod sigv4;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{self, HeaderValue};
use serde::Serialize;
use tributary_model::{Event, TimestampMicros, now_micros};

use crate::bench::{Latencies, round};
use crate::exit::{OK, UsageError};
use crate::output::{self, Table};
use crate::runtime;
use crate::sample_traffic::SampleTraffic;

/// Most bodies encoded ahead of a run: enough variety of sessions and event types that the
/// server sees realistic traffic, few enough that encoding them takes well under a second.
pub const POOL_BODIES: usize = 256;

/// A request without an answer after this long counts as failed (`error`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Rejection examples keep this many characters of the answer.
const EXAMPLE_CHARS: usize = 300;

/// The ingest API requests are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `POST /v1/events`: a JSON array of native events, `Authorization: Bearer <key>`.
    Native,
    /// `POST /v1/batch`: Segment's batch format, Basic auth with the key as user name.
    Segment,
    /// `POST /` Kinesis `PutRecords`, SigV4-signed with an AWS access key pair.
    Kinesis,
}

impl Api {
    /// The name used in flags and output.
    pub fn name(self) -> &'static str {
        match self {
            Api::Native => "native",
            Api::Segment => "segment",
            Api::Kinesis => "kinesis",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Api::Native => native::PATH,
            Api::Segment => segment::PATH,
            Api::Kinesis => "/",
        }
    }

    /// `(acked, rejected)` events from a 2xx answer, `None` when the answer is not this API's.
    fn read_answer(self, body: &[u8]) -> Option<(u64, u64)> {
        match self {
            Api::Native => native::read_answer(body),
            Api::Segment => segment::read_answer(body),
            Api::Kinesis => kinesis::read_answer(body),
        }
    }
}

/// Arguments of `tributary loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// The collector's base URL (http only).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The producer key (native, segment); for kinesis, the AWS access key id.
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// For kinesis: the AWS secret access key that signs requests (SigV4).
    #[arg(long, value_name = "SECRET")]
    pub aws_secret: Option<String>,
    /// For kinesis: the region requests are signed for.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub aws_region: String,
    /// Events per second offered; 0 sends as fast as the answers come back.
    #[arg(long, value_name = "N", default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds to send for; requests under way at the end are waited for.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub duration: f64,
    /// Events per request.
    #[arg(long, value_name = "B", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub batch: u32,
    /// The API to send to.
    #[arg(long, value_enum, default_value_t = Api::Native)]
    pub api: Api,
    /// Concurrent request loops, each on its own keep-alive connection.
    #[arg(long, value_name = "C", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Encode every request afresh so event ids never repeat (costs generator time); by
    /// default a pool of bodies is encoded up front and reused.
    #[arg(long)]
    pub unique: bool,
    /// Trim each event toward this many bytes of JSON by dropping optional context fields
    /// (user agent, campaign, referrer, …); by default events keep a browser's full context
    /// (~600 bytes).
    #[arg(long, value_name = "BYTES")]
    pub event_bytes: Option<usize>,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Where requests go and how they authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    api: Api,
    url: reqwest::Url,
    auth: Auth,
}

#[derive(Debug, Clone)]
enum Auth {
    /// A fixed `Authorization` header (Bearer or Basic).
    Header(HeaderValue),
    /// SigV4 per request; `host` is the `Host` header, which the signature covers.
    SigV4 {
        credentials: sigv4::Credentials,
        host: String,
    },
}

impl Target {
    /// The endpoint of `api` under `base`, authenticated with `key` (and `aws_secret` for
    /// Kinesis). Errors are usage errors: they name the flag to fix.
    pub fn new(
        api: Api,
        base: &str,
        key: &str,
        aws_secret: Option<&str>,
        aws_region: &str,
    ) -> Result<Target> {
        let usage = |message: String| anyhow::Error::new(UsageError(message));
        let base = reqwest::Url::parse(base)
            .map_err(|e| usage(format!("--url {base:?} is not a URL: {e}")))?;
        if base.scheme() != "http" {
            return Err(usage(format!(
                "--url {base} uses {}; only http:// is supported (this build has no TLS)",
                base.scheme()
            )));
        }
        let mut url = base.clone();
        // A base with a path prefix (a collector behind a proxy) keeps its prefix.
        url.set_path(&format!(
            "{}{}",
            base.path().trim_end_matches('/'),
            api.path()
        ));
        url.set_query(None);
        if key.is_empty() {
            return Err(usage("--key is empty".into()));
        }
        let auth = match api {
            Api::Native => Auth::Header(header_value(&format!("Bearer {key}"))?),
            Api::Segment => {
                let credentials =
                    base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
                Auth::Header(header_value(&format!("Basic {credentials}"))?)
            }
            Api::Kinesis => {
                let Some(secret) = aws_secret.filter(|s| !s.is_empty()) else {
                    return Err(usage(
                        "--api kinesis signs requests with SigV4: pass the access key id as \
                         --key and the secret access key as --aws-secret \
                         (from `tributary keys create --aws`)"
                            .into(),
                    ));
                };
                let host = match (url.host_str(), url.port()) {
                    (Some(host), Some(port)) => format!("{host}:{port}"),
                    (Some(host), None) => host.to_owned(),
                    (None, _) => return Err(usage(format!("--url {base} has no host"))),
                };
                Auth::SigV4 {
                    credentials: sigv4::Credentials {
                        access_key_id: key.to_owned(),
                        secret: secret.to_owned(),
                        region: aws_region.to_owned(),
                        service: kinesis::SERVICE.to_owned(),
                    },
                    host,
                }
            }
        };
        Ok(Target { api, url, auth })
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    fn request(&self, client: &reqwest::Client, body: &Body) -> reqwest::RequestBuilder {
        let request = client.post(self.url.clone()).body(body.bytes.clone());
        match &self.auth {
            Auth::Header(value) => request
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, value.clone()),
            Auth::SigV4 { credentials, host } => {
                let signed = kinesis::signature_headers(
                    credentials,
                    host,
                    self.url.path(),
                    body.sha256.as_deref().unwrap_or_default(),
                    chrono::Utc::now(),
                );
                signed.into_iter().fold(
                    request
                        .header(header::CONTENT_TYPE, kinesis::CONTENT_TYPE)
                        .header("x-amz-target", kinesis::TARGET)
                        .header(header::HOST, host.as_str()),
                    |request, (name, value)| request.header(name, value),
                )
            }
        }
    }
}

fn header_value(text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text).map_err(|_| {
        anyhow::Error::new(UsageError(
            "--key holds characters that cannot be sent in an HTTP header".into(),
        ))
    })
}

/// One encoded request body, sent as is (possibly many times).
#[derive(Debug, Clone)]
pub struct Body {
    bytes: Bytes,
    events: u64,
    /// Hex SHA-256 of the bytes, for SigV4 (Kinesis only).
    sha256: Option<String>,
}

impl Body {
    /// `events` encoded for `api`, as sent at `sent_at` (µs since the epoch).
    pub fn encode(api: Api, events: &[Event], sent_at: i64) -> Result<Body> {
        let bytes = match api {
            Api::Native => native::encode(events),
            Api::Segment => segment::encode(events, sent_at),
            Api::Kinesis => kinesis::encode(events),
        }
        .context("encoding a request body")?;
        let sha256 = (api == Api::Kinesis).then(|| sigv4::payload_hash(&bytes));
        Ok(Body {
            bytes: Bytes::from(bytes),
            events: events.len() as u64,
            sha256,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// `count` bodies of `batch` generated events each, from a generator seeded with `seed`,
/// trimmed toward `event_bytes` each when given (see [`compact`]).
pub fn body_pool(
    api: Api,
    batch: usize,
    count: usize,
    seed: u64,
    event_bytes: Option<usize>,
) -> Result<Vec<Body>> {
    let mut traffic = SampleTraffic::new(seed);
    let now = now_micros();
    (0..count.max(1))
        .map(|_| Body::encode(api, &generate(&mut traffic, batch, now, event_bytes), now))
        .collect()
}

/// `batch` events from `traffic`, trimmed toward `event_bytes` each when given.
fn generate(
    traffic: &mut SampleTraffic,
    batch: usize,
    now: TimestampMicros,
    event_bytes: Option<usize>,
) -> Vec<Event> {
    let mut events = traffic.batch(batch, now);
    if let Some(target) = event_bytes {
        for event in &mut events {
            compact(event, target);
        }
    }
    events
}

/// Drops optional context fields, least telling first (user agent, campaign, referrer, title,
/// locale, path), until the event's native JSON is at most `target` bytes or nothing optional is
/// left: the shape of a server-side producer's event rather than a browser's. Benchmarks use it
/// to send events of the size an issue names.
pub fn compact(event: &mut Event, target: usize) {
    let size = |event: &Event| {
        native::encode(std::slice::from_ref(event)).map_or(usize::MAX, |json| json.len() - 2)
    };
    let steps: [fn(&mut Event); 6] = [
        |e| e.context.user_agent = None,
        |e| e.context.campaign = None,
        |e| {
            if let Some(page) = &mut e.context.page {
                page.referrer = None;
            }
        },
        |e| {
            if let Some(page) = &mut e.context.page {
                page.title = None;
            }
        },
        |e| e.context.locale = None,
        |e| {
            if let Some(page) = &mut e.context.page {
                page.path = None;
            }
        },
    ];
    for step in steps {
        if size(event) <= target {
            return;
        }
        step(event);
    }
}

/// Mean request bytes per event over `bodies`.
pub fn bytes_per_event(bodies: &[Body]) -> f64 {
    let events: u64 = bodies.iter().map(|b| b.events).sum();
    let bytes: usize = bodies.iter().map(Body::size).sum();
    if events == 0 {
        0.0
    } else {
        bytes as f64 / events as f64
    }
}

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Load {
    /// Where to send.
    pub target: Target,
    /// Events per second offered; 0 = as fast as answers come back.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Events per request.
    pub batch: usize,
    /// Concurrent request loops.
    pub concurrency: usize,
    /// Encode every request afresh (ids never repeat) instead of reusing the pool.
    pub unique: bool,
    /// Trim each event toward this many bytes of JSON ([`compact`]); `None` sends them whole.
    pub event_bytes: Option<usize>,
    /// Seed of the generators.
    pub seed: u64,
}

impl Load {
    /// How many bodies to encode ahead: enough for the whole run when it is short.
    pub fn pool_size(&self) -> usize {
        if self.rate > 0.0 {
            let requests = self.rate * self.duration.as_secs_f64() / self.batch as f64;
            (requests.ceil() as usize).clamp(1, POOL_BODIES)
        } else {
            POOL_BODIES
        }
    }
}

/// What a run measured. Every event sent is either acked or counted in `rejected`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests that got an answer or failed.
    pub requests: u64,
    /// Events in those requests.
    pub sent: u64,
    /// Events the collector acknowledged as durable.
    pub acked: u64,
    /// Events not acknowledged, by HTTP status (`200` for events refused inside an accepted
    /// batch, `error` for requests that got no answer).
    pub rejected: BTreeMap<String, u64>,
    /// The first answer (or error) seen for each key of `rejected`, shortened.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rejection_examples: BTreeMap<String, String>,
    /// From the first request to the last answer, or the run's duration if that is longer.
    pub seconds: f64,
    /// Answered requests per second.
    pub requests_per_s: f64,
    /// Acked events per second.
    pub events_per_s: f64,
    /// Median time from sending a request to its complete answer, µs.
    pub p50_us: u32,
    /// 99th percentile of the same, µs.
    pub p99_us: u32,
    /// Slowest answer, µs.
    pub max_us: u32,
    /// How late the most delayed request started against its schedule, µs (0 without a rate):
    /// large values mean the loops could not keep up with the offered rate.
    pub max_schedule_lag_us: u64,
}

impl Summary {
    /// Events not acknowledged, over all statuses.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// One loop's counts, merged at the end.
#[derive(Default)]
struct Tally {
    requests: u64,
    sent: u64,
    acked: u64,
    rejected: BTreeMap<String, u64>,
    examples: BTreeMap<String, String>,
    latencies: Latencies,
    max_lag: Duration,
}

impl Tally {
    fn reject(&mut self, key: String, events: u64, example: impl FnOnce() -> String) {
        *self.rejected.entry(key.clone()).or_default() += events;
        self.examples.entry(key).or_insert_with(|| {
            let text = example();
            match text.char_indices().nth(EXAMPLE_CHARS) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        });
    }

    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.sent += other.sent;
        self.acked += other.acked;
        for (key, events) in other.rejected {
            *self.rejected.entry(key).or_default() += events;
        }
        for (key, example) in other.examples {
            self.examples.entry(key).or_insert(example);
        }
        self.latencies.extend(other.latencies);
        self.max_lag = self.max_lag.max(other.max_lag);
    }
}

/// The schedule the loops share: request `i` is due at `start + i × interval`.
struct Schedule {
    start: Instant,
    deadline: Instant,
    /// Seconds between requests; `None` sends as fast as possible.
    interval: Option<f64>,
    next: AtomicU64,
}

impl Schedule {
    /// The next request's ticket and due time, or `None` once the run is over.
    fn next(&self) -> Option<(u64, Option<Instant>)> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        match self.interval {
            Some(interval) => {
                let due = self.start + Duration::from_secs_f64(interval * ticket as f64);
                (due < self.deadline).then_some((ticket, Some(due)))
            }
            None => (Instant::now() < self.deadline).then_some((ticket, None)),
        }
    }
}

/// What the loops share.
struct Shared {
    load: Load,
    client: reqwest::Client,
    pool: Arc<Vec<Body>>,
    schedule: Schedule,
    live_requests: AtomicU64,
    live_acked: AtomicU64,
}

/// Runs `load` on the current tokio runtime with bodies from `pool` (ignored with
/// `load.unique`), drawing progress on `bar`, and returns what it measured.
pub async fn drive(load: &Load, pool: Arc<Vec<Body>>, bar: &ProgressBar) -> Result<Summary> {
    if pool.is_empty() && !load.unique {
        return Err(anyhow!("no request bodies to send"));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.concurrency)
        .tcp_nodelay(true)
        .no_gzip()
        // A proxy from the environment would measure the proxy, not the collector.
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("tributary-loadgen/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let start = Instant::now();
    let interval = (load.rate > 0.0).then(|| load.batch as f64 / load.rate);
    let shared = Arc::new(Shared {
        load: load.clone(),
        client,
        pool,
        schedule: Schedule {
            start,
            deadline: start + load.duration,
            interval,
            next: AtomicU64::new(0),
        },
        live_requests: AtomicU64::new(0),
        live_acked: AtomicU64::new(0),
    });
    let loops: Vec<_> = (0..load.concurrency)
        .map(|id| tokio::spawn(request_loop(Arc::clone(&shared), id)))
        .collect();
    let progress = tokio::spawn(show_progress(Arc::clone(&shared), bar.clone()));
    let mut total = Tally::default();
    let mut failure = None;
    for handle in loops {
        match handle.await {
            Ok(Ok(tally)) => total.merge(tally),
            Ok(Err(error)) => failure = Some(error),
            Err(join) => failure = Some(anyhow!("a request loop panicked: {join}")),
        }
    }
    // A run at a rate lasts its duration even when the last answer came early; without a rate
    // the loops stop at the deadline, so the elapsed time is never shorter.
    let seconds = start.elapsed().max(load.duration).as_secs_f64();
    progress.abort();
    if let Some(error) = failure {
        return Err(error);
    }
    let latencies = total.latencies.finish();
    let per_second = |n: u64| round(n as f64 / seconds.max(f64::MIN_POSITIVE), 1);
    Ok(Summary {
        requests: total.requests,
        sent: total.sent,
        acked: total.acked,
        rejected: total.rejected,
        rejection_examples: total.examples,
        seconds: round(seconds, 3),
        requests_per_s: per_second(total.requests),
        events_per_s: per_second(total.acked),
        p50_us: latencies.get(50.0),
        p99_us: latencies.get(99.0),
        max_us: latencies.max(),
        max_schedule_lag_us: u64::try_from(total.max_lag.as_micros()).unwrap_or(u64::MAX),
    })
}

/// One request loop: takes the next due request, sends it, waits for the whole answer.
async fn request_loop(shared: Arc<Shared>, id: usize) -> Result<Tally> {
    let load = &shared.load;
    let mut tally = Tally::default();
    // Each loop has its own generator, so `--unique` needs no lock and ids differ per loop.
    let mut fresh = load
        .unique
        .then(|| SampleTraffic::new(load.seed.wrapping_add(1 + id as u64)));
    while let Some((ticket, due)) = shared.schedule.next() {
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
            tally.max_lag = tally.max_lag.max(due.elapsed());
        }
        let body = match &mut fresh {
            Some(traffic) => {
                let now = now_micros();
                let events = generate(traffic, load.batch, now, load.event_bytes);
                Body::encode(load.target.api, &events, now)?
            }
            None => shared.pool[(ticket % shared.pool.len() as u64) as usize].clone(),
        };
        let sent = Instant::now();
        let answer = match load.target.request(&shared.client, &body).send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|bytes| (status, bytes))
            }
            Err(error) => Err(error),
        };
        tally.latencies.push(sent.elapsed());
        tally.requests += 1;
        tally.sent += body.events;
        let acked_before = tally.acked;
        match answer {
            Ok((status, bytes)) if status.is_success() => {
                match load.target.api.read_answer(&bytes) {
                    Some((acked, rejected)) => {
                        tally.acked += acked.min(body.events);
                        let refused = body.events - acked.min(body.events);
                        if refused > 0 {
                            tally.reject(status.as_u16().to_string(), refused, || {
                                format!("{rejected} refused in an accepted batch: {}", text(&bytes))
                            });
                        }
                    }
                    None => tally.reject(status.as_u16().to_string(), body.events, || {
                        format!("answer not understood: {}", text(&bytes))
                    }),
                }
            }
            Ok((status, bytes)) => {
                tally.reject(status.as_u16().to_string(), body.events, || text(&bytes))
            }
            Err(error) => tally.reject("error".into(), body.events, || error_chain(&error)),
        }
        shared.live_requests.fetch_add(1, Ordering::Relaxed);
        shared
            .live_acked
            .fetch_add(tally.acked - acked_before, Ordering::Relaxed);
    }
    Ok(tally)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

/// reqwest's top-level message is generic ("error sending request"); the causes say why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

async fn show_progress(shared: Arc<Shared>, bar: ProgressBar) {
    let total_ms = shared.load.duration.as_millis() as u64;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tick.tick().await;
        let elapsed = shared.schedule.start.elapsed();
        let acked = shared.live_acked.load(Ordering::Relaxed);
        bar.set_position((elapsed.as_millis() as u64).min(total_ms));
        bar.set_message(format!(
            "{} requests, {} events acked, {} events/s",
            output::thousands(shared.live_requests.load(Ordering::Relaxed)),
            output::thousands(acked),
            output::thousands((acked as f64 / elapsed.as_secs_f64().max(1e-3)) as u64),
        ));
    }
}

/// A progress bar on stderr for a run of `duration` (drawn only when stderr is a terminal).
pub fn progress_bar(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// The JSON line of `tributary loadgen --json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    api: Api,
    url: &'a str,
    concurrency: usize,
    batch: usize,
    rate: f64,
    duration_s: f64,
    unique: bool,
    bytes_per_event: f64,
    #[serde(flatten)]
    summary: &'a Summary,
}

/// Runs `tributary loadgen`.
pub fn run(args: &LoadgenArgs) -> Result<ExitCode> {
    let usage = |message: String| anyhow::Error::new(UsageError(message));
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(usage(format!(
            "--rate is {}, must be 0 (as fast as possible) or more",
            args.rate
        )));
    }
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err(usage(format!(
            "--duration is {}, must be in (0, 86400] seconds",
            args.duration
        )));
    }
    let target = Target::new(
        args.api,
        &args.url,
        &args.key,
        args.aws_secret.as_deref(),
        &args.aws_region,
    )?;
    let load = Load {
        target,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        batch: args.batch as usize,
        concurrency: args.concurrency as usize,
        unique: args.unique,
        event_bytes: args.event_bytes,
        // Runs differ from each other; within a run, the pool repeats (see the module doc).
        seed: now_micros().unsigned_abs(),
    };
    let pool = if load.unique {
        Vec::new()
    } else {
        body_pool(
            load.target.api,
            load.batch,
            load.pool_size(),
            load.seed,
            load.event_bytes,
        )?
    };
    let bytes_per_event = if pool.is_empty() {
        let sample = body_pool(load.target.api, load.batch, 1, load.seed, load.event_bytes)?;
        bytes_per_event(&sample)
    } else {
        bytes_per_event(&pool)
    };
    let runtime = runtime::build_named(runtime::server_workers(), "loadgen")?;
    let bar = progress_bar(load.duration);
    let summary = runtime.block_on(drive(&load, Arc::new(pool), &bar))?;
    bar.finish_and_clear();
    if args.json {
        output::json_line(&Report {
            api: args.api,
            url: load.target.url().as_str(),
            concurrency: load.concurrency,
            batch: load.batch,
            rate: load.rate,
            duration_s: args.duration,
            unique: load.unique,
            bytes_per_event: round(bytes_per_event, 1),
            summary: &summary,
        })?;
    } else {
        output::print(&render(&load, bytes_per_event, &summary))?;
    }
    if summary.acked == 0 {
        let why = summary
            .rejection_examples
            .iter()
            .next()
            .map(|(status, example)| format!(" (first answer, {status}: {example})"))
            .unwrap_or_default();
        return Err(anyhow!(
            "no event was acknowledged by {}{why}",
            load.target.url()
        ));
    }
    Ok(ExitCode::from(OK))
}

/// The summary for people.
pub fn render(load: &Load, bytes_per_event: f64, summary: &Summary) -> String {
    let rate = if load.rate > 0.0 {
        format!("{} events/s offered", output::thousands(load.rate as u64))
    } else {
        "as fast as possible".to_owned()
    };
    let mut text = format!(
        "loadgen: {} → {}, {} connections, batches of {} (~{bytes_per_event:.0} bytes/event), \
         {rate}, {} s{}\n\n",
        load.target.api.name(),
        load.target.url(),
        load.concurrency,
        load.batch,
        load.duration.as_secs_f64(),
        if load.unique { ", unique ids" } else { "" },
    );
    let mut table = Table::new(&["", "value"]);
    let count = |n: u64| output::thousands(n);
    table.row(vec!["requests".into(), count(summary.requests)]);
    table.row(vec!["events sent".into(), count(summary.sent)]);
    table.row(vec!["events acked".into(), count(summary.acked)]);
    table.row(vec![
        "events rejected".into(),
        count(summary.rejected_total()),
    ]);
    for (status, events) in &summary.rejected {
        table.row(vec![format!("  status {status}"), count(*events)]);
    }
    table.row(vec![
        "requests/s".into(),
        format!("{:.1}", summary.requests_per_s),
    ]);
    table.row(vec![
        "events/s".into(),
        count(summary.events_per_s.round() as u64),
    ]);
    for (name, micros) in [
        ("ack latency p50", summary.p50_us),
        ("ack latency p99", summary.p99_us),
        ("ack latency max", summary.max_us),
    ] {
        table.row(vec![
            name.into(),
            format!("{:.2} ms", f64::from(micros) / 1e3),
        ]);
    }
    if load.rate > 0.0 {
        table.row(vec![
            "max schedule lag".into(),
            format!("{:.2} ms", summary.max_schedule_lag_us as f64 / 1e3),
        ]);
    }
    text.push_str(&table.render());
    for (status, example) in &summary.rejection_examples {
        let _ = writeln!(text, "{status}: {example}");
    }
    text
}

#[cfg(test)]
mod testing {
    use std::sync::Arc;

    use tributary_collector::edge::RequestMeta;
    use tributary_collector::keys::{self, KeyStore, NewKey, Role};
    use tributary_collector::{Collector, CollectorConfig};
    use tributary_stream::{EmbeddedLog, StreamConfig};

    /// A collector over a fresh log and key file in `dir`, and the request metadata of its one
    /// key: what the encoders' tests parse events with.
    pub(crate) fn collector(dir: &std::path::Path) -> (Collector, RequestMeta) {
        let log = EmbeddedLog::open(dir.join("stream"), StreamConfig::default()).unwrap();
        let path = dir.join("keys.json");
        let created = keys::create_key(&path, "acme", Role::Write, &NewKey::default()).unwrap();
        let store = Arc::new(KeyStore::open(&path).unwrap());
        let collector = Collector::new(Arc::new(log), store, CollectorConfig::default());
        let meta = RequestMeta {
            key: Arc::new(created.record),
            received_at: tributary_model::now_micros(),
            client_ip: None,
            user_agent: None,
        };
        (collector, meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_check_their_flags() {
        let native = Target::new(Api::Native, "http://127.0.0.1:8080", "trb_x", None, "r").unwrap();
        assert_eq!(native.url().as_str(), "http://127.0.0.1:8080/v1/events");
        let segment = Target::new(Api::Segment, "http://h:1/prefix/", "trb_x", None, "r").unwrap();
        assert_eq!(segment.url().as_str(), "http://h:1/prefix/v1/batch");
        let kinesis = Target::new(Api::Kinesis, "http://h", "AKIA", Some("s"), "r").unwrap();
        assert_eq!(kinesis.url().as_str(), "http://h/");
        let Auth::SigV4 { host, .. } = &kinesis.auth else {
            panic!("kinesis signs")
        };
        assert_eq!(host, "h", "the default port is not part of Host");
        for (api, url, secret) in [
            (Api::Kinesis, "http://h", None),
            (Api::Native, "https://h", None),
            (Api::Native, "not a url", None),
        ] {
            let error = Target::new(api, url, "k", secret, "r").unwrap_err();
            assert_eq!(crate::exit::code_for(&error), crate::exit::USAGE, "{error}");
        }
    }

    #[test]
    fn the_schedule_is_open_loop_and_ends_at_the_deadline() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            deadline: start + Duration::from_secs(1),
            interval: Some(0.25),
            next: AtomicU64::new(0),
        };
        let dues: Vec<_> = std::iter::from_fn(|| schedule.next())
            .map(|(_, due)| due.unwrap() - start)
            .collect();
        assert_eq!(dues, [0, 250, 500, 750].map(Duration::from_millis).to_vec());
    }

    #[test]
    fn compact_events_are_near_the_asked_size_and_keep_their_identity() {
        let whole = bytes_per_event(&body_pool(Api::Native, 100, 4, 7, None).unwrap());
        let small = bytes_per_event(&body_pool(Api::Native, 100, 4, 7, Some(400)).unwrap());
        assert!(
            whole > 500.0,
            "the realistic events carry a browser context: {whole}"
        );
        assert!(
            (300.0..=430.0).contains(&small),
            "compact events are ~400 bytes: {small}"
        );
        let mut events = SampleTraffic::new(3).batch(50, 1_735_732_800_000_000);
        let before = events.clone();
        for event in &mut events {
            compact(event, 1);
        }
        for (after, before) in events.iter().zip(&before) {
            assert_eq!(
                (&after.event_id, &after.event_type, &after.properties),
                (&before.event_id, &before.event_type, &before.properties)
            );
            assert!(after.context.user_agent.is_none() && after.context.campaign.is_none());
        }
    }

    #[test]
    fn pools_are_sized_to_the_run() {
        let target = Target::new(Api::Native, "http://h", "k", None, "r").unwrap();
        let mut load = Load {
            target,
            rate: 200.0,
            duration: Duration::from_secs(1),
            batch: 10,
            concurrency: 4,
            unique: false,
            event_bytes: None,
            seed: 1,
        };
        assert_eq!(load.pool_size(), 20);
        load.rate = 0.0;
        assert_eq!(load.pool_size(), POOL_BODIES);
        let pool = body_pool(Api::Native, 10, 3, 1, None).unwrap();
        assert_eq!(pool.len(), 3);
        assert!(bytes_per_event(&pool) > 100.0);
    }

    #[test]
    fn rejection_examples_are_shortened() {
        let mut tally = Tally::default();
        tally.reject("429".into(), 10, || "x".repeat(1000));
        tally.reject("429".into(), 5, || "second".into());
        assert_eq!(tally.rejected["429"], 15);
        assert_eq!(tally.examples["429"].chars().count(), EXAMPLE_CHARS + 1);
    }
}
