//! Request bodies: content types, decompression and splitting a batch into raw events.

use std::io::Read;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// Why a request body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// It is longer than the limit.
    #[error("request body is over the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection failed while it was being read.
    #[error("could not read the request body: {0}")]
    Unreadable(String),
    /// It did not arrive in time ([`read_within`]).
    #[error(
        "the request body did not arrive within {timeout:?} (body_read_timeout); the \
         connection is closed"
    )]
    TimedOut {
        /// The deadline it missed.
        timeout: std::time::Duration,
    },
}

impl From<BodyReadError> for ApiError {
    fn from(error: BodyReadError) -> ApiError {
        match error {
            BodyReadError::TooLarge { limit } => ApiError::TooLarge {
                limit: "max_body_bytes",
                value: limit,
                message: format!("{error} (max_body_bytes)"),
            },
            BodyReadError::Unreadable(_) => ApiError::BadRequest(error.to_string()),
            BodyReadError::TimedOut { .. } => ApiError::RequestTimeout(error.to_string()),
        }
    }
}

/// [`read_limited`], within `timeout` of being called. The ingest endpoints read with it: a
/// client trickling its body (or stalling) would otherwise hold its connection, and the part
/// of the body already buffered, for as long as it liked.
pub async fn read_within(
    body: axum::body::Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyReadError> {
    tokio::time::timeout(timeout, read_limited(body, limit))
        .await
        .unwrap_or(Err(BodyReadError::TimedOut { timeout }))
}

/// Reads a whole request body of at most `limit` bytes, telling a body over the limit (413)
/// from one that could not be read (400).
pub async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Bytes, BodyReadError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            BodyReadError::TooLarge { limit }
        } else {
            BodyReadError::Unreadable(error.to_string())
        }
    })
}

/// Checks the `Content-Type` is one the JSON endpoints read: `application/json`,
/// `application/x-ndjson`, `text/plain` (what `navigator.sendBeacon` sends for a string) or none.
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json"
        | "application/x-ndjson"
        | "application/jsonlines"
        | "application/x-amz-json-1.1"
        | "text/plain"
        | "" => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type {other:?} is not accepted; send application/json, \
             application/x-ndjson or text/plain"
        ))),
    }
}

/// Undoes `Content-Encoding` (`gzip`, `zstd` or none), refusing output past `max_bytes` so
/// that a small compressed body cannot expand without bound.
pub fn decode(headers: &HeaderMap, raw: Bytes, max_bytes: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let too_large = || ApiError::TooLarge {
        limit: "max_body_bytes",
        value: max_bytes,
        message: format!(
            "decompressed body is over the limit of {max_bytes} bytes (max_body_bytes)"
        ),
    };
    let mut out = Vec::new();
    let limit = max_bytes as u64 + 1;
    let result = match encoding.as_str() {
        "identity" | "" => return Ok(raw),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(&raw[..])
            .and_then(|decoder| decoder.take(limit).read_to_end(&mut out)),
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content encoding {other:?} is not accepted; use gzip, zstd or none"
            )));
        }
    };
    result.map_err(|e| ApiError::BadRequest(format!("body is not valid {encoding}: {e}")))?;
    if out.len() > max_bytes {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// One event of a batch, as raw JSON, or why it could not even be read.
pub type RawEvent<'a> = Result<&'a RawValue, ApiError>;

/// Splits a native body into raw events: a JSON array, a single object, or NDJSON (one object
/// per line). An array that does not parse is a 400 naming line and column; in NDJSON a bad
/// line only rejects that event.
pub fn split_events(body: &[u8]) -> Result<Vec<RawEvent<'_>>, ApiError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(ApiError::BadRequest(
            "the body is empty; send a JSON array of events".into(),
        ));
    };
    if body[start] == b'[' {
        let events: Vec<&RawValue> =
            serde_json::from_slice(body).map_err(|e| ApiError::from_json(&e))?;
        if events.is_empty() {
            return Err(ApiError::BadRequest(
                "the batch is an empty array; send at least one event".into(),
            ));
        }
        return Ok(events.into_iter().map(Ok).collect());
    }
    // One object, possibly pretty-printed over several lines; NDJSON otherwise.
    if let Ok(single) = serde_json::from_slice::<&RawValue>(body) {
        return Ok(vec![Ok(single)]);
    }
    let mut events = Vec::new();
    for (line_number, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        events.push(
            serde_json::from_slice::<&RawValue>(line).map_err(|e| ApiError::InvalidJson {
                line: line_number + 1,
                column: e.column(),
                message: crate::error::json_message(&e),
            }),
        );
    }
    if events.is_empty() {
        return Err(ApiError::BadRequest("the body holds no event".into()));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn arrays_objects_and_ndjson_split() {
        assert_eq!(split_events(br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert_eq!(split_events(br#" {"a":1}"#).unwrap().len(), 1);
        let ndjson = split_events(b"{\"a\":1}\n\n{\"b\":2}\n{oops\n").unwrap();
        assert_eq!(ndjson.len(), 3);
        assert!(matches!(
            ndjson[2],
            Err(ApiError::InvalidJson { line: 4, .. })
        ));
    }

    #[test]
    fn a_pretty_printed_object_is_one_event_and_an_empty_array_is_refused() {
        assert_eq!(split_events(b"{\n  \"a\": 1\n}\n").unwrap().len(), 1);
        assert!(matches!(split_events(b"[]"), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn broken_arrays_name_line_and_column() {
        let err = split_events(b"[\n{\"a\":1},\n{\"b\":}\n]").unwrap_err();
        match err {
            ApiError::InvalidJson { line, column, .. } => {
                assert_eq!(line, 3);
                assert_eq!(column, 6);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gzip_and_zstd_decode_with_a_bound() {
        let plain = b"[{\"a\":1}]".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(
            decode(&headers, gz.clone(), 1 << 20).unwrap(),
            Bytes::from(plain.clone())
        );
        assert!(matches!(
            decode(&headers, gz, 100),
            Err(ApiError::TooLarge { .. })
        ));

        let zst = Bytes::from(zstd::encode_all(&plain[..], 1).unwrap());
        headers.insert(header::CONTENT_ENCODING, "zstd".parse().unwrap());
        assert_eq!(decode(&headers, zst, 1 << 20).unwrap(), Bytes::from(plain));
        headers.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(matches!(
            decode(&headers, Bytes::from_static(b"x"), 10),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        check_json_content_type(&headers).unwrap();
        headers.insert(
            header::CONTENT_TYPE,
            "text/plain;charset=UTF-8".parse().unwrap(),
        );
        check_json_content_type(&headers).unwrap();
        headers.insert(header::CONTENT_TYPE, "application/xml".parse().unwrap());
        assert!(matches!(
            check_json_content_type(&headers),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
