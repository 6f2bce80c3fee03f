//! `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`: the producer half of the Kinesis
//! Data Streams API, so that AWS SDK clients send to Tributary with only their endpoint changed:
//!
//! ```python
//! kinesis = boto3.client("kinesis", endpoint_url="http://127.0.0.1:8080", region_name="us-east-1",
//!                        aws_access_key_id="AKIA…", aws_secret_access_key="…")
//! kinesis.put_record(StreamName="events", Data=b'{"event_type":"page",…}', PartitionKey="s-1")
//! ```
//!
//! The wire format is AWS JSON 1.1 (`Content-Type: application/x-amz-json-1.1`, `Data` in
//! base64) and requests are signed with SigV4 ([`crate::sigv4`]) using the access key pair that
//! `tributary keys create --aws` issues; the key gives the tenant, as every other API's key does.
//!
//! ```text
//!  PutRecord  {StreamName, Data, PartitionKey}          ─┐  base64 → one native event
//!  PutRecords {StreamName, Records:[{Data, PartitionKey}]}├▶ (native::parse_event + edge rules)
//!                                                         │  stream key = <tenant>:<PartitionKey>
//!                                                         └▶ ingest::append ─▶ ShardId, SequenceNumber
//! ```
//!
//! What Kinesis would hold as opaque bytes is, for Tributary, one event in the native envelope
//! (the same object `POST /v1/events` takes). The producer's partition key decides the shard and
//! so the order, as in Kinesis; `ExplicitHashKey` and `SequenceNumberForOrdering` are checked for
//! syntax but change nothing, because records of one partition key already keep their order and
//! Tributary's shards are not Kinesis hash-key ranges. Every `StreamName` writes to the one
//! stream of the deployment, so producers keep their configured names.
//!
//! Limits are those of Kinesis: at most 500 records and 5 MiB of data and partition keys per
//! PutRecords, 1 MiB of data per record, partition keys of 1 to 256 characters; a request over
//! one is refused as a whole with a `ValidationException` naming it. Within a PutRecords, a
//! record whose `Data` is not a valid event gets its own `InvalidArgumentException` and the
//! others are still made durable, answered in input order.
//!
//! Errors use the AWS JSON 1.1 shape the SDKs parse (`{"__type":…,"message":…}`), see
//! [`AwsError`]. Only AWS JSON is spoken: SDKs that default to CBOR (the Java SDKs) must be
//! configured with `AWS_CBOR_DISABLE=true`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tributary_stream::Record;

use crate::Collector;
use crate::body;
use crate::edge::RequestMeta;
use crate::error::{ApiError, Rejection};
use crate::ingest;
use crate::keys::KeyRecord;
use crate::native;
use crate::sigv4::{self, SigV4Error};

/// The `X-Amz-Target` prefix of the Kinesis Data Streams API version the SDKs speak.
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The media type of AWS JSON 1.1 requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The service name requests must be signed for.
pub const SERVICE: &str = "kinesis";

/// Most records in one PutRecords (the Kinesis limit).
pub const MAX_RECORDS_PER_REQUEST: usize = 500;

/// Most bytes of `Data` plus `PartitionKey`, summed over one PutRecords (the Kinesis limit).
pub const MAX_REQUEST_DATA_BYTES: usize = 5 << 20;

/// Most bytes of decoded `Data` in one record (the Kinesis limit). Tributary's own
/// `max_event_bytes` is usually smaller and applies as well, per record.
pub const MAX_RECORD_DATA_BYTES: usize = 1 << 20;

/// Longest `PartitionKey`, in Unicode characters (the Kinesis limit).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Largest HTTP body read. The 5 MiB request limit is on decoded data, which base64 inflates by
/// a third (6.67 MiB), plus JSON framing and escaped partition keys; `max_body_bytes` (5 MiB by
/// default) would refuse valid PutRecords requests, so this API has its own bound.
pub const MAX_HTTP_BODY_BYTES: usize = 8 << 20;

/// `Data` is standard base64; padding is accepted either way because some hand-written
/// producers drop it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An error answered in the AWS JSON 1.1 shape: `{"__type":"<code>","message":"…"}` with the
/// code also in `X-Amzn-ErrorType`, which is what the AWS SDKs read to raise the right
/// exception and decide on retries (`ProvisionedThroughputExceededException`, 5xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The AWS error code, e.g. `ValidationException`.
    pub code: &'static str,
    /// The sentence for people.
    pub message: String,
    /// Seconds to wait before retrying, sent as `Retry-After`, for throttling.
    pub retry_after_secs: Option<u64>,
}

impl AwsError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 400 `ValidationException`: a parameter breaks a constraint (a limit, a pattern).
    pub fn validation(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// 400 `SerializationException`: the body is not a request this API can read.
    pub fn serialization(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    /// 400 `UnknownOperationException`: an `X-Amz-Target` this endpoint does not implement.
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            message,
        )
    }
}

impl From<ApiError> for AwsError {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::Unauthorized(_) => AwsError::new(
                StatusCode::BAD_REQUEST,
                "UnrecognizedClientException",
                message,
            ),
            ApiError::Forbidden(_) => {
                AwsError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
            }
            ApiError::InvalidJson { .. } | ApiError::UnsupportedMediaType(_) => {
                AwsError::serialization(message)
            }
            ApiError::BadRequest(_) | ApiError::TooLarge { .. } => AwsError::validation(message),
            ApiError::AllRejected(rejected) => AwsError::validation(
                rejected
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            // The SDKs retry this code with backoff, which is what backpressure asks for.
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => AwsError {
                retry_after_secs: Some(retry_after_secs),
                ..AwsError::new(
                    StatusCode::BAD_REQUEST,
                    "ProvisionedThroughputExceededException",
                    message,
                )
            },
            ApiError::Unavailable(_) => AwsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                message,
            ),
            ApiError::RequestTimeout(_) => {
                AwsError::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", message)
            }
            ApiError::Internal(_) => AwsError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                message,
            ),
        }
    }
}

impl From<SigV4Error> for AwsError {
    fn from(error: SigV4Error) -> Self {
        let code = match &error {
            SigV4Error::Missing(_) => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownAccessKey(_) => "UnrecognizedClientException",
            SigV4Error::Expired(_) | SigV4Error::Mismatch(_) => "InvalidSignatureException",
        };
        AwsError::new(StatusCode::BAD_REQUEST, code, error.to_string())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "__type")]
    kind: &'a str,
    message: &'a str,
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, error = %self.message, "kinesis request failed");
        } else {
            tracing::debug!(code = self.code, error = %self.message, "kinesis request refused");
        }
        let body = ErrorBody {
            kind: self.code,
            message: &self.message,
        };
        let mut response = (self.status, json_response(&body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A 200 answer with an AWS JSON 1.1 body.
fn json_response(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serializing a kinesis answer");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, CONTENT_TYPE)],
                r#"{"__type":"InternalFailure","message":"the answer could not be serialized"}"#,
            )
                .into_response()
        }
    }
}

/// The operations this endpoint implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    PutRecord,
    PutRecords,
}

/// `PutRecord`'s request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

/// `PutRecords`' request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    records: Option<Vec<PutRecordsEntry>>,
}

/// One record of a `PutRecords` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsEntry {
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordOutput {
    shard_id: String,
    sequence_number: String,
    encryption_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsOutput {
    failed_record_count: usize,
    records: Vec<PutRecordsResultEntry>,
    encryption_type: &'static str,
}

/// Where a record landed, or why it did not: exactly one pair is set, as in Kinesis.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

/// A record that passed the Kinesis constraints: its decoded data and partition key.
#[derive(Debug)]
struct CheckedRecord {
    data: Vec<u8>,
    partition_key: String,
}

/// Kinesis' name for a shard.
pub fn shard_id(shard: tributary_stream::ShardId) -> String {
    format!("shardId-{shard:012}")
}

/// `POST /`: dispatches on `X-Amz-Target` after verifying the SigV4 signature.
pub async fn handle(State(collector): State<Arc<Collector>>, request: Request) -> Response {
    let mut response = serve(&collector, request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    // The SDKs report this id with every answer and error; it ties a producer's report to a log.
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

async fn serve(collector: &Collector, request: Request) -> Result<Response, AwsError> {
    let received_at = tributary_model::now_micros();
    let (parts, body) = request.into_parts();
    check_content_type(&parts.headers)?;
    crate::request::check_user_agent(&parts.headers, &collector.config)?;
    let raw = body::read_within(
        body,
        MAX_HTTP_BODY_BYTES,
        collector.config.body_read_timeout,
    )
    .await
    .map_err(|error| match error {
        body::BodyReadError::TooLarge { .. } => AwsError::validation(format!(
            "the request body is over {MAX_HTTP_BODY_BYTES} bytes; PutRecords takes at most \
                 {MAX_REQUEST_DATA_BYTES} bytes (5 MiB) of data and partition keys"
        )),
        other => AwsError::from(ApiError::from(other)),
    })?;
    metrics::counter!(crate::telemetry::REQUEST_BYTES, "api" => "kinesis")
        .increment(raw.len() as u64);
    let key = authenticate(collector, &parts, &raw)?;
    let operation = operation(&parts.headers)?;
    let body = body::decode(&parts.headers, raw, MAX_HTTP_BODY_BYTES)?;
    let meta = crate::request::request_meta(collector, &parts, key, received_at);
    match operation {
        Operation::PutRecord => put_record(collector, &meta, &body).await,
        Operation::PutRecords => put_records(collector, &meta, &body).await,
    }
}

/// Only AWS JSON is read; CBOR gets a sentence saying how to turn it off in the SDK.
fn check_content_type(headers: &HeaderMap) -> Result<(), AwsError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
        .unwrap_or_default();
    let media = media.split(';').next().unwrap_or("").trim();
    match media {
        CONTENT_TYPE | "application/x-amz-json-1.0" | "application/json" | "" => Ok(()),
        "application/x-amz-cbor-1.1" => Err(AwsError::serialization(
            "CBOR (application/x-amz-cbor-1.1) is not supported; configure the SDK to send AWS \
             JSON 1.1, e.g. with the environment variable AWS_CBOR_DISABLE=true",
        )),
        other => Err(AwsError::serialization(format!(
            "content type {other:?} is not accepted; send {CONTENT_TYPE}"
        ))),
    }
}

/// Verifies the signature and that the key may write.
fn authenticate(
    collector: &Collector,
    parts: &Parts,
    raw: &[u8],
) -> Result<Arc<KeyRecord>, AwsError> {
    let request = sigv4::SignedRequest {
        method: parts.method.as_str(),
        uri: &parts.uri,
        headers: &parts.headers,
        body: raw,
    };
    let expect = sigv4::Expectation {
        service: SERVICE,
        now: chrono::Utc::now(),
        tolerance: collector.config.signature_tolerance,
    };
    let key = sigv4::verify(&request, &expect, |id| collector.keys.by_access_key_id(id))?;
    if !key.role.can_write() {
        return Err(AwsError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "key {} has role {:?}, which cannot put records",
                key.id, key.role
            ),
        ));
    }
    Ok(key)
}

fn operation(headers: &HeaderMap) -> Result<Operation, AwsError> {
    let supported = format!("{TARGET_PREFIX}PutRecord and {TARGET_PREFIX}PutRecords");
    let Some(target) = headers.get("x-amz-target") else {
        return Err(AwsError::unknown_operation(format!(
            "missing X-Amz-Target header; this endpoint implements {supported}"
        )));
    };
    let target = String::from_utf8_lossy(target.as_bytes());
    match target.trim().strip_prefix(TARGET_PREFIX) {
        Some("PutRecord") => Ok(Operation::PutRecord),
        Some("PutRecords") => Ok(Operation::PutRecords),
        _ => Err(AwsError::unknown_operation(format!(
            "operation {target:?} is not supported; this endpoint implements {supported}"
        ))),
    }
}

fn parse_input<'a, T: Deserialize<'a>>(body: &'a [u8], operation: &str) -> Result<T, AwsError> {
    serde_json::from_slice(body).map_err(|e| {
        AwsError::serialization(format!("the body is not a valid {operation} request: {e}"))
    })
}

async fn put_record(
    collector: &Collector,
    meta: &RequestMeta,
    body: &[u8],
) -> Result<Response, AwsError> {
    let input: PutRecordInput = parse_input(body, "PutRecord")?;
    check_stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    if let Some(ordering) = input.sequence_number_for_ordering.as_deref()
        && !is_decimal(ordering, 129)
    {
        return Err(AwsError::validation(format!(
            "SequenceNumberForOrdering {ordering:?} is not a sequence number (decimal digits)"
        )));
    }
    let checked = check_record(
        "",
        input.data,
        input.partition_key,
        input.explicit_hash_key.as_deref(),
    )?;
    let record = to_record(0, &checked, collector, meta).map_err(|rejection| {
        ingest::count_rejections("kinesis", std::slice::from_ref(&rejection));
        AwsError::validation(invalid_data_message("", &rejection))
    })?;
    let appended = ingest::append(collector, "kinesis", &meta.key, vec![record]).await?;
    let Some(landed) = appended.first() else {
        return Err(AwsError::from(ApiError::Internal(
            "the stream acknowledged no position for the record".into(),
        )));
    };
    Ok(json_response(&PutRecordOutput {
        shard_id: shard_id(landed.shard),
        sequence_number: landed.seq.to_string(),
        encryption_type: "NONE",
    }))
}

async fn put_records(
    collector: &Collector,
    meta: &RequestMeta,
    body: &[u8],
) -> Result<Response, AwsError> {
    let input: PutRecordsInput = parse_input(body, "PutRecords")?;
    check_stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let Some(entries) = input.records else {
        return Err(AwsError::validation("Records is required"));
    };
    if entries.is_empty() {
        return Err(AwsError::validation("Records must hold at least 1 record"));
    }
    if entries.len() > MAX_RECORDS_PER_REQUEST {
        return Err(AwsError::validation(format!(
            "Records holds {} records, over the Kinesis limit of {MAX_RECORDS_PER_REQUEST} \
             records per PutRecords request",
            entries.len()
        )));
    }
    // Every constraint is checked before anything is appended: Kinesis refuses the whole
    // request when one record breaks one.
    let mut checked = Vec::with_capacity(entries.len());
    let mut total = 0usize;
    for (index, entry) in entries.into_iter().enumerate() {
        let record = check_record(
            &format!("Records[{index}]."),
            entry.data,
            entry.partition_key,
            entry.explicit_hash_key.as_deref(),
        )?;
        total += record.data.len() + record.partition_key.len();
        if total > MAX_REQUEST_DATA_BYTES {
            return Err(AwsError::validation(format!(
                "the Data and PartitionKey of Records[0] to Records[{index}] add up to {total} \
                 bytes, over the Kinesis limit of {MAX_REQUEST_DATA_BYTES} bytes (5 MiB) per \
                 PutRecords request"
            )));
        }
        checked.push(record);
    }
    // Each record's result is either its position among the records appended or its error.
    let mut outcomes: Vec<Result<usize, PutRecordsResultEntry>> = Vec::with_capacity(checked.len());
    let mut records = Vec::with_capacity(checked.len());
    let mut rejected = Vec::new();
    for (index, record) in checked.iter().enumerate() {
        match to_record(index, record, collector, meta) {
            Ok(record) => {
                outcomes.push(Ok(records.len()));
                records.push(record);
            }
            Err(rejection) => {
                let code = if rejection.reason == "internal" {
                    "InternalFailure"
                } else {
                    "InvalidArgumentException"
                };
                outcomes.push(Err(PutRecordsResultEntry {
                    error_code: Some(code),
                    error_message: Some(invalid_data_message(
                        &format!("Records[{index}]."),
                        &rejection,
                    )),
                    ..PutRecordsResultEntry::default()
                }));
                rejected.push(rejection);
            }
        }
    }
    ingest::count_rejections("kinesis", &rejected);
    let appended = ingest::append(collector, "kinesis", &meta.key, records).await?;
    let mut failed = 0;
    let results = outcomes
        .into_iter()
        .map(|outcome| {
            let landed = outcome.and_then(|position| {
                appended.get(position).ok_or_else(|| PutRecordsResultEntry {
                    error_code: Some("InternalFailure"),
                    error_message: Some("the stream acknowledged no position".into()),
                    ..PutRecordsResultEntry::default()
                })
            });
            match landed {
                Ok(landed) => PutRecordsResultEntry {
                    shard_id: Some(shard_id(landed.shard)),
                    sequence_number: Some(landed.seq.to_string()),
                    ..PutRecordsResultEntry::default()
                },
                Err(error) => {
                    failed += 1;
                    error
                }
            }
        })
        .collect();
    Ok(json_response(&PutRecordsOutput {
        failed_record_count: failed,
        records: results,
        encryption_type: "NONE",
    }))
}

/// Kinesis requires a stream; its name or ARN is checked for syntax only (see the module doc).
fn check_stream(name: Option<&str>, arn: Option<&str>) -> Result<(), AwsError> {
    match (name, arn) {
        (None, None) => Err(AwsError::validation(
            "either StreamName or StreamARN is required",
        )),
        (Some(name), _)
            if name.is_empty()
                || name.len() > 128
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) =>
        {
            Err(AwsError::validation(format!(
                "StreamName {name:?} must be 1 to 128 characters of a-z, A-Z, 0-9, '_', '.', '-'"
            )))
        }
        (_, Some(arn))
            if arn.len() > 2048 || !arn.starts_with("arn:") || !arn.contains(":stream/") =>
        {
            Err(AwsError::validation(format!(
                "StreamARN {arn:?} is not a Kinesis stream ARN \
                 (arn:aws:kinesis:<region>:<account>:stream/<name>)"
            )))
        }
        _ => Ok(()),
    }
}

/// Checks one record against the Kinesis constraints and decodes its data. `prefix` names the
/// record in messages (`Records[3].`, or nothing for PutRecord).
fn check_record(
    prefix: &str,
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<&str>,
) -> Result<CheckedRecord, AwsError> {
    let Some(data) = data else {
        return Err(AwsError::validation(format!("{prefix}Data is required")));
    };
    let Some(partition_key) = partition_key else {
        return Err(AwsError::validation(format!(
            "{prefix}PartitionKey is required"
        )));
    };
    let chars = partition_key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(AwsError::validation(format!(
            "{prefix}PartitionKey is {chars} characters; Kinesis takes 1 to \
             {MAX_PARTITION_KEY_CHARS}"
        )));
    }
    if let Some(hash_key) = explicit_hash_key
        && !(is_decimal(hash_key, 39) && hash_key.parse::<u128>().is_ok())
    {
        return Err(AwsError::validation(format!(
            "{prefix}ExplicitHashKey {hash_key:?} is not a decimal number from 0 to 2^128 - 1"
        )));
    }
    let data = BASE64
        .decode(data.as_bytes())
        .map_err(|e| AwsError::serialization(format!("{prefix}Data is not valid base64: {e}")))?;
    if data.len() > MAX_RECORD_DATA_BYTES {
        return Err(AwsError::validation(format!(
            "{prefix}Data is {} bytes, over the Kinesis limit of {MAX_RECORD_DATA_BYTES} bytes \
             (1 MiB) per record",
            data.len()
        )));
    }
    Ok(CheckedRecord {
        data,
        partition_key,
    })
}

/// `0`, or 1 to `max_digits` decimal digits without a leading zero (Kinesis' pattern for hash
/// keys and sequence numbers).
fn is_decimal(text: &str, max_digits: usize) -> bool {
    let digits =
        !text.is_empty() && text.len() <= max_digits && text.bytes().all(|b| b.is_ascii_digit());
    digits && (text == "0" || !text.starts_with('0'))
}

/// Turns a record's data into the stream record of its event, keyed `<tenant>:<PartitionKey>`.
fn to_record(
    index: usize,
    record: &CheckedRecord,
    collector: &Collector,
    meta: &RequestMeta,
) -> Result<Record, Rejection> {
    let invalid_json = |message: String| Rejection {
        index,
        reason: "invalid_json",
        field: None,
        message,
    };
    if record.data.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_json(format!(
            "event {index}: Data is empty; it must be one JSON event in Tributary's envelope"
        )));
    }
    let raw: &RawValue = serde_json::from_slice(&record.data)
        .map_err(|e| invalid_json(format!("event {index}: not JSON: {e}")))?;
    let event = native::parse_event(index, raw, collector, meta)?;
    let mut stored = ingest::event_record(&event).map_err(|e| Rejection {
        index,
        reason: "internal",
        field: None,
        message: e.to_string(),
    })?;
    stored.key = Bytes::from(format!("{}:{}", meta.key.tenant, record.partition_key));
    Ok(stored)
}

/// `<prefix>Data is not a valid event: <why>`, without repeating the event's index.
fn invalid_data_message(prefix: &str, rejection: &Rejection) -> String {
    let index_prefix = format!("event {}: ", rejection.index);
    let detail = rejection
        .message
        .strip_prefix(&index_prefix)
        .unwrap_or(&rejection.message);
    format!("{prefix}Data is not a valid Tributary event: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn errors_have_the_aws_json_shape() {
        let response = AwsError::validation("Records holds 501 records").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "ValidationException"
        );
        assert_eq!(
            body_of(response).await,
            serde_json::json!({"__type":"ValidationException","message":"Records holds 501 records"})
        );
    }

    #[tokio::test]
    async fn backpressure_is_a_retryable_throughput_error() {
        let error = AwsError::from(ApiError::TooManyRequests {
            retry_after_secs: 2,
            message: "backlog".into(),
        });
        assert_eq!(error.code, "ProvisionedThroughputExceededException");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["retry-after"], "2");
    }

    #[test]
    fn api_errors_map_to_aws_codes() {
        let cases = [
            (
                ApiError::Forbidden("f".into()),
                403,
                "AccessDeniedException",
            ),
            (ApiError::BadRequest("b".into()), 400, "ValidationException"),
            (ApiError::Unavailable("u".into()), 503, "ServiceUnavailable"),
            (ApiError::Internal("i".into()), 500, "InternalFailure"),
            (
                ApiError::UnsupportedMediaType("m".into()),
                400,
                "SerializationException",
            ),
        ];
        for (error, status, code) in cases {
            let aws = AwsError::from(error);
            assert_eq!((aws.status.as_u16(), aws.code), (status, code));
        }
        let aws = AwsError::from(SigV4Error::Mismatch("m".into()));
        assert_eq!(aws.code, "InvalidSignatureException");
        let aws = AwsError::from(SigV4Error::UnknownAccessKey("k".into()));
        assert_eq!(aws.code, "UnrecognizedClientException");
    }

    #[test]
    fn targets_are_dispatched_and_unknown_ones_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            operation(&headers).unwrap_err().code,
            "UnknownOperationException"
        );
        headers.insert(
            "x-amz-target",
            "Kinesis_20131202.PutRecords".parse().unwrap(),
        );
        assert_eq!(operation(&headers).unwrap(), Operation::PutRecords);
        headers.insert(
            "x-amz-target",
            "Kinesis_20131202.PutRecord".parse().unwrap(),
        );
        assert_eq!(operation(&headers).unwrap(), Operation::PutRecord);
        headers.insert(
            "x-amz-target",
            "Kinesis_20131202.GetRecords".parse().unwrap(),
        );
        let err = operation(&headers).unwrap_err();
        assert!(err.message.contains("GetRecords"), "{err}");
    }

    #[test]
    fn record_constraints_are_kinesis_limits() {
        let data = || Some(BASE64.encode(b"{}"));
        let pk = |n: usize| Some("é".repeat(n));
        assert!(check_record("", data(), pk(256), None).is_ok());
        let err = check_record("Records[2].", data(), pk(257), None).unwrap_err();
        assert_eq!(err.code, "ValidationException");
        assert!(
            err.message
                .contains("Records[2].PartitionKey is 257 characters"),
            "{err}"
        );
        assert!(check_record("", data(), pk(0), None).is_err());
        assert!(check_record("", None, pk(1), None).is_err());
        let big = Some(BASE64.encode(vec![b' '; MAX_RECORD_DATA_BYTES + 1]));
        let err = check_record("", big, pk(1), None).unwrap_err();
        assert!(err.message.contains("1048576"), "{err}");
        let err = check_record("", Some("***".into()), pk(1), None).unwrap_err();
        assert_eq!(err.code, "SerializationException");
        // Unpadded base64 is accepted.
        let unpadded = Some(BASE64.encode(b"{}").trim_end_matches('=').to_string());
        assert_eq!(check_record("", unpadded, pk(1), None).unwrap().data, b"{}");
        let max_hash = u128::MAX.to_string();
        assert!(check_record("", data(), pk(1), Some(&max_hash)).is_ok());
        assert!(check_record("", data(), pk(1), Some("0")).is_ok());
        for bad in [
            "340282366920938463463374607431768211456",
            "01",
            "-1",
            "",
            "x",
        ] {
            assert!(check_record("", data(), pk(1), Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_names_follow_the_kinesis_pattern() {
        assert!(check_stream(Some("events"), None).is_ok());
        assert!(
            check_stream(
                None,
                Some("arn:aws:kinesis:us-east-1:123456789012:stream/events")
            )
            .is_ok()
        );
        assert!(check_stream(None, None).is_err());
        assert!(check_stream(Some("a/b"), None).is_err());
        assert!(check_stream(Some(""), None).is_err());
        assert!(check_stream(None, Some("events")).is_err());
    }

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        assert!(check_content_type(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, CONTENT_TYPE.parse().unwrap());
        assert!(check_content_type(&headers).is_ok());
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-amz-cbor-1.1".parse().unwrap(),
        );
        let err = check_content_type(&headers).unwrap_err();
        assert!(err.message.contains("AWS_CBOR_DISABLE"), "{err}");
    }

    #[test]
    fn shard_ids_look_like_kinesis() {
        assert_eq!(shard_id(1), "shardId-000000000001");
        assert_eq!(shard_id(4095), "shardId-000000004095");
    }

    #[test]
    fn invalid_data_messages_name_the_record_once() {
        let rejection = Rejection {
            index: 3,
            reason: "missing_field",
            field: Some("event_type".into()),
            message: "event 3: missing field `event_type`".into(),
        };
        assert_eq!(
            invalid_data_message("Records[3].", &rejection),
            "Records[3].Data is not a valid Tributary event: missing field `event_type`"
        );
    }
}
