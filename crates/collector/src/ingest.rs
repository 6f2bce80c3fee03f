//! The common end of every ingest API: rate limit, backpressure, one durable append, metrics.
//!
//! Handlers turn their wire format into stream [`Record`]s; this module makes them durable and
//! is the only place the collector talks to the stream. A request is acknowledged only after
//! `Stream::append` returned, so an acknowledged event is on disk (or in the broker).

use std::time::Instant;

use tokio::sync::Semaphore;
use tributary_stream::{Appended, Record, StreamErrorKind};

use crate::Collector;
use crate::error::{ApiError, Rejection};
use crate::keys::KeyRecord;
use crate::stored::StoredEvent;
use crate::telemetry;

/// Serializes an edge-finished event into its stream record (key: `tenant:session`).
pub fn event_record(event: &StoredEvent<'_>) -> Result<Record, ApiError> {
    let value = event
        .to_json()
        .map_err(|e| ApiError::Internal(format!("serializing an event: {e}")))?;
    Ok(Record::new(event.partition_key(), value))
}

/// Makes `records` durable for `key`, or fails the whole request without acknowledging any.
pub async fn append(
    collector: &Collector,
    api: &'static str,
    key: &KeyRecord,
    records: Vec<Record>,
) -> Result<Vec<Appended>, ApiError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let count = records.len();
    let permits = acquire_backlog(
        &collector.backlog,
        count,
        collector.config.max_backlog_events,
    )?;
    // After the backlog check, so a request refused for backpressure does not spend the key's
    // rate budget.
    collector.limiter.check(key, count)?;
    metrics::gauge!(telemetry::BACKLOG).increment(count as f64);
    let started = Instant::now();
    let result = collector.stream.append(records).await;
    metrics::histogram!(telemetry::STREAM_APPEND_LATENCY).record(started.elapsed().as_secs_f64());
    metrics::gauge!(telemetry::BACKLOG).decrement(count as f64);
    drop(permits);
    match result {
        Ok(appended) => {
            metrics::counter!(telemetry::EVENTS_ACCEPTED, "api" => api).increment(count as u64);
            Ok(appended)
        }
        Err(e) => match e.kind() {
            StreamErrorKind::InvalidInput => Err(ApiError::BadRequest(e.to_string())),
            _ => Err(ApiError::Unavailable(format!(
                "events could not be persisted and were not accepted: {e}"
            ))),
        },
    }
}

/// Counts refused events by reason.
pub fn count_rejections(api: &'static str, rejected: &[Rejection]) {
    for rejection in rejected {
        metrics::counter!(telemetry::EVENTS_REJECTED, "api" => api, "reason" => rejection.reason)
            .increment(1);
    }
}

fn acquire_backlog(
    backlog: &std::sync::Arc<Semaphore>,
    count: usize,
    bound: usize,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let permits = u32::try_from(count.min(bound)).unwrap_or(u32::MAX);
    std::sync::Arc::clone(backlog)
        .try_acquire_many_owned(permits)
        .map_err(|_| ApiError::TooManyRequests {
            retry_after_secs: 1,
            message: format!(
                "the server is at its backlog bound of {bound} events not yet durable \
                 (max_backlog_events); retry after 1 s"
            ),
        })
}
