//! Reading an ingest request: body within the limit, decompression, credentials, signature.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;

use crate::Collector;
use crate::auth;
use crate::body;
use crate::edge::{self, RequestMeta};
use crate::error::ApiError;
use crate::keys::KeyRecord;

/// An authenticated ingest request with its body decoded.
pub struct IngestRequest {
    /// The sending key.
    pub key: Arc<KeyRecord>,
    /// What every event of the request shares.
    pub meta: RequestMeta,
    /// The decompressed body.
    pub body: Bytes,
    /// The request headers.
    pub headers: axum::http::HeaderMap,
}

/// Finds a key inside a request body (Segment's `writeKey`).
pub type BodyKey = fn(&[u8]) -> Option<String>;

/// Reads and authenticates `request`. `body_key` finds a key inside the body for APIs that
/// allow it there (Segment's `writeKey`), used when no header or query parameter has one;
/// without it, a request with no key is refused before its body is read.
pub async fn read(
    collector: &Collector,
    api: &'static str,
    request: Request,
    body_key: Option<BodyKey>,
) -> Result<IngestRequest, ApiError> {
    let received_at = tributary_model::now_micros();
    let (parts, body) = request.into_parts();
    let config = &collector.config;
    // A key in a header or the URL is checked before the body is read, so an unauthenticated
    // client costs no body read or decompression; only a key inside the body waits for it.
    let early_key = match auth::presented_key(&parts.headers, parts.uri.query()) {
        Some(key) => Some(auth::authenticate(&collector.keys, Some(&key))?),
        None if body_key.is_none() => Some(auth::authenticate(&collector.keys, None)?),
        None => None,
    };
    check_user_agent(&parts.headers, config)?;
    body::check_json_content_type(&parts.headers)?;
    let raw = body::read_within(body, config.max_body_bytes, config.body_read_timeout)
        .await
        .map_err(ApiError::from)?;
    metrics::counter!(crate::telemetry::REQUEST_BYTES, "api" => api).increment(raw.len() as u64);
    let decoded = body::decode(&parts.headers, raw.clone(), config.max_body_bytes)?;
    let key = match early_key {
        Some(key) => key,
        None => auth::authenticate(
            &collector.keys,
            body_key.and_then(|find| find(&decoded)).as_deref(),
        )?,
    };
    auth::authorize_write(&key, &parts.headers, &raw, config.signature_tolerance)?;
    let meta = request_meta(collector, &parts, Arc::clone(&key), received_at);
    Ok(IngestRequest {
        key,
        meta,
        body: decoded,
        headers: parts.headers,
    })
}

/// What every event of a request shares: the key, the arrival time, the client's address (the
/// socket peer, or `X-Forwarded-For` from a trusted proxy) and its user agent.
pub fn request_meta(
    collector: &Collector,
    parts: &Parts,
    key: Arc<KeyRecord>,
    received_at: tributary_model::TimestampMicros,
) -> RequestMeta {
    let peer: Option<IpAddr> = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    RequestMeta {
        key,
        received_at,
        client_ip: edge::client_ip(peer, forwarded, &collector.config.trusted_proxies)
            .map(|ip| ip.to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Refuses a `User-Agent` header longer than `max_string_bytes`: the edge copies it into every
/// event of the request, where no per-event limit had measured it (a 400 KiB header on a batch
/// of 500 events was 200 MB of stream).
pub fn check_user_agent(
    headers: &axum::http::HeaderMap,
    config: &crate::CollectorConfig,
) -> Result<(), ApiError> {
    let length = headers
        .get(header::USER_AGENT)
        .map_or(0, |value| value.as_bytes().len());
    if length > config.max_string_bytes {
        return Err(ApiError::TooLarge {
            limit: "max_string_bytes",
            value: config.max_string_bytes,
            message: format!(
                "the User-Agent header is {length} bytes, over the limit of {} \
                 (max_string_bytes); it is copied into every event",
                config.max_string_bytes
            ),
        });
    }
    Ok(())
}
