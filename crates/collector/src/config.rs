//! The `[collector]` section of `tributary.toml`. The doc comments are the configuration
//! reference.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the HTTP ingest edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Largest request body accepted, before and after decompression, in bytes. Default 5 MiB.
    pub max_body_bytes: usize,
    /// Largest single event, in bytes of JSON. Default 32 KiB.
    pub max_event_bytes: usize,
    /// Most events in one request. Default 500.
    pub max_events_per_batch: usize,
    /// Deepest JSON nesting accepted inside an event. Default 16.
    pub max_json_depth: usize,
    /// Longest JSON string (key or value) accepted inside an event, in bytes. Default 8 KiB.
    pub max_string_bytes: usize,
    /// Events accepted but not yet durable, across all requests; past it, requests get 429 with
    /// Retry-After (backpressure that keeps memory bounded). Default 200000.
    pub max_backlog_events: usize,
    /// Signed requests (`X-Tributary-Signature`) are refused when their timestamp is further
    /// than this from the server's clock. Default 5 minutes.
    #[serde(with = "humantime_serde")]
    pub signature_tolerance: Duration,
    /// Proxies whose `X-Forwarded-For` is believed. Default none: the socket address is the
    /// client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins browsers may send from (CORS). `["*"]` allows any. Default `["*"]`: write keys
    /// used in browsers are public by nature; tighten this per deployment.
    pub cors_origins: Vec<String>,
    /// How often the key file is checked for changes. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub keys_reload_interval: Duration,
    /// How long an ingest request's body may take to arrive, from when its headers were read.
    /// A client that sends slower (or stops) is answered 408 and its connection closed, so
    /// that trickling bodies cannot hold connections and memory indefinitely. Default 60 s:
    /// a 5 MiB body at 100 KB/s, a slow mobile uplink, takes about 50 s.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 5 << 20,
            max_event_bytes: 32 << 10,
            max_events_per_batch: 500,
            max_json_depth: 16,
            max_string_bytes: 8 << 10,
            max_backlog_events: 200_000,
            signature_tolerance: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
            cors_origins: vec!["*".into()],
            keys_reload_interval: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}
