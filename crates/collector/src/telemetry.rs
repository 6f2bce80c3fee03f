//! The collector's metrics: every name in one place, emitted per request (never per event),
//! rendered in Prometheus text format at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `api` and `status`.
pub const REQUESTS: &str = "tributary_collector_requests_total";
/// Events made durable, by `api`.
pub const EVENTS_ACCEPTED: &str = "tributary_collector_events_accepted_total";
/// Events refused, by `api` and `reason`.
pub const EVENTS_REJECTED: &str = "tributary_collector_events_rejected_total";
/// Request body bytes received (as sent, before decompression), by `api`.
pub const REQUEST_BYTES: &str = "tributary_collector_request_bytes_total";
/// From receiving a request to acknowledging it, by `api`.
pub const ACK_LATENCY: &str = "tributary_collector_ack_latency_seconds";
/// Time `Stream::append` took.
pub const STREAM_APPEND_LATENCY: &str = "tributary_stream_append_latency_seconds";
/// Events accepted but not yet durable.
pub const BACKLOG: &str = "tributary_collector_backlog_events";

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}
