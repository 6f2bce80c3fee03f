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

/// Reads and authenticates `request`. `body_key` finds a key inside the body for APIs that
/// allow it there (Segment's `writeKey`), used when no header or query parameter has one.
pub async fn read(
    collector: &Collector,
    api: &'static str,
    request: Request,
    body_key: fn(&[u8]) -> Option<String>,
) -> Result<IngestRequest, ApiError> {
    let received_at = tributary_model::now_micros();
    let (parts, body) = request.into_parts();
    let config = &collector.config;
    // A key in a header or the URL is checked before the body is read, so an unauthenticated
    // client costs no body read or decompression; only a key inside the body waits for it.
    let early_key = match auth::presented_key(&parts.headers, parts.uri.query()) {
        Some(key) => Some(auth::authenticate(&collector.keys, Some(&key))?),
        None => None,
    };
    body::check_json_content_type(&parts.headers)?;
    let raw = axum::body::to_bytes(body, config.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: "max_body_bytes",
            value: config.max_body_bytes,
            message: format!(
                "request body is over the limit of {} bytes (max_body_bytes)",
                config.max_body_bytes
            ),
        })?;
    metrics::counter!(crate::telemetry::REQUEST_BYTES, "api" => api).increment(raw.len() as u64);
    let decoded = body::decode(&parts.headers, raw.clone(), config.max_body_bytes)?;
    let key = match early_key {
        Some(key) => key,
        None => auth::authenticate(&collector.keys, body_key(&decoded).as_deref())?,
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

/// No key in the body.
pub fn no_body_key(_: &[u8]) -> Option<String> {
    None
}
