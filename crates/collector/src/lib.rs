//! # tributary-collector
//!
//! The ingest edge of Tributary — the API Gateway of the cloud architecture. Browsers, apps and
//! back ends send events here over HTTP; what it acknowledges is durable in the stream.
//!
//! ```text
//!  POST /v1/events (native)     ─┐
//!  POST /v1/track|page|… (Segment)├─▶ auth ─▶ limits ─▶ edge rules ─▶ ingest::append ─▶ Stream
//!  POST / X-Amz-Target (Kinesis) ─┘   (key → tenant)   (ids, time,    (rate limit, backlog,
//!                                                        ip, family)   one durable append)
//! ```
//!
//! Each API is one module that turns its wire format into [`EdgeEvent`](edge::EdgeEvent)s or
//! stream records; [`edge`] applies the rules every event gets, [`ingest`] is the only place
//! that talks to the stream, and [`error`] is the only place errors become responses.
#![deny(missing_docs)]

pub mod auth;
pub mod body;
pub mod config;
pub mod edge;
pub mod error;
pub mod health;
pub mod ingest;
pub mod keys;
pub mod kinesis;
pub mod native;
pub mod openapi;
pub mod request;
pub mod segment;
pub mod server;
pub mod shape;
pub mod sigv4;
pub mod stored;
pub mod telemetry;
pub mod tracker;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tributary_stream::Stream;

pub use config::CollectorConfig;
pub use error::{ApiError, Rejection};

/// Everything the HTTP handlers share.
pub struct Collector {
    /// Where accepted events go.
    pub stream: Arc<dyn Stream>,
    /// Producer keys.
    pub keys: Arc<keys::KeyStore>,
    /// Limits and behaviour.
    pub config: Arc<CollectorConfig>,
    /// Per-key rate limits.
    pub limiter: auth::RateLimiter,
    /// Events accepted but not yet durable: the backpressure bound.
    pub backlog: Arc<Semaphore>,
    /// Renders `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// What `GET /openapi.json` answers: [`openapi::DOCUMENT`] unless
    /// [`Collector::with_api_document`] gave a merged one.
    pub api_document: Arc<str>,
}

impl Collector {
    /// A collector in front of `stream`, with keys from `keys`.
    pub fn new(
        stream: Arc<dyn Stream>,
        keys: Arc<keys::KeyStore>,
        config: CollectorConfig,
    ) -> Self {
        Collector {
            stream,
            keys,
            backlog: Arc::new(Semaphore::new(config.max_backlog_events)),
            config: Arc::new(config),
            limiter: auth::RateLimiter::default(),
            metrics: telemetry::prometheus(),
            api_document: Arc::from(openapi::DOCUMENT),
        }
    }

    /// Serves `document` at `GET /openapi.json` instead of the collector's own: the merged
    /// description ([`openapi::merge`]) of every route the server answers.
    pub fn with_api_document(mut self, document: impl Into<Arc<str>>) -> Self {
        self.api_document = document.into();
        self
    }

    /// Re-reads the key file whenever it changes, so new keys work without a restart.
    pub fn spawn_key_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let collector = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(collector.config.keys_reload_interval);
            loop {
                tick.tick().await;
                if let Err(e) = collector.keys.reload_if_changed() {
                    tracing::warn!(error = %e, "key file not reloaded; keeping the previous keys");
                }
            }
        })
    }
}

/// The HTTP API. Serve it with connect info (see [`serve`]) so client IPs are known.
pub fn router(collector: Arc<Collector>) -> Router {
    let cors = cors_layer(&collector.config.cors_origins);
    Router::new()
        .route("/v1/events", post(native::events))
        .route("/v1/track", post(segment::track))
        .route("/v1/identify", post(segment::identify))
        .route("/v1/page", post(segment::page))
        .route("/v1/screen", post(segment::screen))
        .route("/v1/group", post(segment::group))
        .route("/v1/alias", post(segment::alias))
        .route("/v1/batch", post(segment::batch))
        .route("/v1/t", post(segment::track))
        .route("/v1/i", post(segment::identify))
        .route("/v1/p", post(segment::page))
        .route("/v1/s", post(segment::screen))
        .route("/v1/g", post(segment::group))
        .route("/v1/a", post(segment::alias))
        .route("/v1/b", post(segment::batch))
        .route("/t.js", get(tracker::script))
        .route("/", post(kinesis::handle))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .layer(middleware::from_fn(track_requests))
        .layer(cors)
        .with_state(collector)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    collector: Arc<Collector>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(collector, Router::new(), listener, shutdown).await
}

/// Like [`serve`], with the routes of downstream components (the SQL API, …) served beside
/// the collector's on the same listener.
pub async fn serve_with(
    collector: Arc<Collector>,
    extra: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(router(collector).merge(extra), listener, shutdown).await
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(Any)
        .allow_headers(Any)
        .max_age(std::time::Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any);
    }
    let list: Vec<_> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}

/// Counts every request by API and status, and times it (the acknowledgement latency).
async fn track_requests(request: Request, next: Next) -> Response {
    let api = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| api_label(path.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(telemetry::REQUESTS, "api" => api, "status" => status).increment(1);
    metrics::histogram!(telemetry::ACK_LATENCY, "api" => api)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The metrics label of a route.
fn api_label(path: &str) -> &'static str {
    match path {
        "/v1/events" => "native",
        "/" => "kinesis",
        "/healthz" | "/readyz" | "/metrics" => "ops",
        p if p.starts_with("/v1/") => "segment",
        _ => "other",
    }
}
