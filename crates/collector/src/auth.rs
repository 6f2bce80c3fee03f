//! Who is sending: credentials from the request, request signatures, and per-key rate limits.
//!
//! Producers present their key in whichever way their client can:
//! `Authorization: Bearer <key>` (server side), `Authorization: Basic base64(<key>:)` (Segment's
//! write-key convention), or `?key=<key>` in the URL (browsers' `sendBeacon`, which cannot set
//! headers). Server-side producers may also sign: `X-Tributary-Timestamp: <unix seconds>` and
//! `X-Tributary-Signature: v1=<hex HMAC-SHA256(signing secret, "<timestamp>.<raw body>")>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::keys::{KeyRecord, KeyStore};

/// The secret key a request presents, if any.
pub fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Some(token.trim().to_string());
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some(text) = decoded {
                // Segment sends the write key as the user name with an empty password.
                let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
                return Some(user.to_string());
            }
        }
    }
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "key" || *name == "writeKey")
        .map(|(_, value)| value.to_string())
}

/// Finds the key for `presented`, or says precisely why there is none.
pub fn authenticate(keys: &KeyStore, presented: Option<&str>) -> Result<Arc<KeyRecord>, ApiError> {
    let Some(key) = presented.filter(|k| !k.is_empty()) else {
        return Err(ApiError::Unauthorized(
            "missing key: send Authorization: Bearer <key>, Basic auth with the key as user \
             name, or ?key=<key>"
                .into(),
        ));
    };
    keys.authenticate(key)
        .ok_or_else(|| ApiError::Unauthorized("unknown key".into()))
}

/// Checks the key may write and, when signed or required to be, the request signature.
pub fn authorize_write(
    record: &KeyRecord,
    headers: &HeaderMap,
    raw_body: &[u8],
    tolerance: Duration,
) -> Result<(), ApiError> {
    if !record.role.can_write() {
        return Err(ApiError::Forbidden(format!(
            "key {} has role {:?}, which cannot send events",
            record.id, record.role
        )));
    }
    let signature = headers
        .get("x-tributary-signature")
        .and_then(|v| v.to_str().ok());
    match (signature, record.require_signature) {
        (None, false) => Ok(()),
        (None, true) => Err(ApiError::Unauthorized(format!(
            "key {} requires signed requests: send X-Tributary-Timestamp and X-Tributary-Signature",
            record.id
        ))),
        (Some(signature), _) => verify_signature(record, headers, signature, raw_body, tolerance),
    }
}

fn verify_signature(
    record: &KeyRecord,
    headers: &HeaderMap,
    signature: &str,
    raw_body: &[u8],
    tolerance: Duration,
) -> Result<(), ApiError> {
    let Some(secret) = &record.signing_secret else {
        return Err(ApiError::Unauthorized(format!(
            "key {} has no signing secret; create one with --signed",
            record.id
        )));
    };
    let timestamp = headers
        .get("x-tributary-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized("signed request without X-Tributary-Timestamp".into())
        })?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::Unauthorized("X-Tributary-Timestamp must be unix seconds".into()))?;
    let now = tributary_model::now_micros() / 1_000_000;
    if now.abs_diff(seconds) > tolerance.as_secs() {
        return Err(ApiError::Unauthorized(format!(
            "signature timestamp {seconds} is more than {} s from the server's clock ({now})",
            tolerance.as_secs()
        )));
    }
    let expected = sign(secret, timestamp, raw_body);
    let given = signature.strip_prefix("v1=").unwrap_or(signature);
    if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "request signature does not match".into(),
        ))
    }
}

/// The signature of a body: hex HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Token buckets, one per rate-limited key: `rate_limit` events per second, bursts of one
/// second's worth.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Takes `events` tokens from the key's bucket, or answers 429 with the wait.
    pub fn check(&self, record: &KeyRecord, events: usize) -> Result<(), ApiError> {
        let Some(rate) = record.rate_limit.filter(|r| *r > 0.0) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(record.id.clone()).or_insert(Bucket {
            tokens: rate,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.updated = now;
        let wanted = events as f64;
        // A batch larger than the burst passes when the bucket is full, then owes the rest.
        if bucket.tokens >= wanted || bucket.tokens >= rate {
            bucket.tokens -= wanted;
            return Ok(());
        }
        let wait = ((wanted.min(rate) - bucket.tokens) / rate).ceil().max(1.0) as u64;
        Err(ApiError::TooManyRequests {
            retry_after_secs: wait,
            message: format!(
                "key {} is limited to {rate} events/s; retry after {wait} s",
                record.id
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Role;

    fn record(rate_limit: Option<f64>) -> KeyRecord {
        KeyRecord {
            id: "k_1".into(),
            hash: String::new(),
            tenant: "acme".into(),
            role: Role::Write,
            rate_limit,
            signing_secret: Some("s3cret".into()),
            require_signature: false,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            created_at: 0,
        }
    }

    #[test]
    fn keys_are_found_in_every_place_clients_put_them() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer trb_a".parse().unwrap());
        assert_eq!(presented_key(&headers, None).as_deref(), Some("trb_a"));
        // Segment: base64("trb_b:")
        headers.insert(header::AUTHORIZATION, "Basic dHJiX2I6".parse().unwrap());
        assert_eq!(presented_key(&headers, None).as_deref(), Some("trb_b"));
        let empty = HeaderMap::new();
        assert_eq!(
            presented_key(&empty, Some("x=1&key=trb_c")).as_deref(),
            Some("trb_c")
        );
        assert_eq!(presented_key(&empty, None), None);
    }

    #[test]
    fn rate_limit_answers_429_with_retry_after() {
        let limiter = RateLimiter::default();
        let record = record(Some(10.0));
        limiter.check(&record, 10).unwrap();
        let err = limiter.check(&record, 5).unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::TooManyRequests {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        limiter.check(&self::record(None), 1_000_000).unwrap();
    }

    #[test]
    fn signatures_are_checked_with_tolerance() {
        let record = record(None);
        let body = b"{\"a\":1}";
        let now = (tributary_model::now_micros() / 1_000_000).to_string();
        let mut headers = HeaderMap::new();
        headers.insert("x-tributary-timestamp", now.parse().unwrap());
        let good = format!("v1={}", sign("s3cret", &now, body));
        headers.insert("x-tributary-signature", good.parse().unwrap());
        authorize_write(&record, &headers, body, Duration::from_secs(300)).unwrap();
        assert!(
            authorize_write(&record, &headers, b"{\"a\":2}", Duration::from_secs(300)).is_err()
        );
        let old = "1000000000".to_string();
        headers.insert("x-tributary-timestamp", old.parse().unwrap());
        let stale = format!("v1={}", sign("s3cret", &old, body));
        headers.insert("x-tributary-signature", stale.parse().unwrap());
        let err = authorize_write(&record, &headers, body, Duration::from_secs(300)).unwrap_err();
        assert!(err.to_string().contains("more than 300 s"), "{err}");
    }
}
