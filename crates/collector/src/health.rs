//! Liveness, readiness and metrics endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Collector;
use crate::error::ApiError;

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the stream can persist appends right now (503 with the reason otherwise).
pub async fn readyz(State(collector): State<Arc<Collector>>) -> Result<&'static str, ApiError> {
    collector
        .stream
        .check_writable()
        .await
        .map(|()| "ready\n")
        .map_err(|e| ApiError::Unavailable(format!("stream not writable: {e}")))
}

/// `GET /metrics`: every component's metrics in Prometheus text format.
pub async fn metrics(State(collector): State<Arc<Collector>>) -> Response {
    match &collector.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::Unavailable("metrics recorder is not installed".into()).into_response(),
    }
}
