//! The Kinesis-compatible API end to end without a socket: SigV4-signed AWS JSON 1.1 requests
//! through the router into a real embedded log, and the records read back from it.
//!
//! The signer here is written separately from `sigv4.rs`, straight from the SigV4 steps, so a
//! mistake shared by signer and verifier cannot make these tests pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tributary_collector::keys::{self, KeyStore, NewKey, Role};
use tributary_collector::{Collector, CollectorConfig, router};
use tributary_stream::{EmbeddedLog, ReadLimits, Stream, StreamConfig};

const HOST: &str = "127.0.0.1:8080";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

struct Fixture {
    _dir: tempfile::TempDir,
    log: EmbeddedLog,
    app: Router,
    access_key_id: String,
    secret: String,
}

fn fixture(role: Role, rate_limit: Option<f64>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(
        dir.path().join("stream"),
        StreamConfig {
            shards: Some(4),
            ..StreamConfig::default()
        },
    )
    .unwrap();
    let key_path = dir.path().join("keys.json");
    let options = NewKey {
        aws: true,
        rate_limit,
        ..NewKey::default()
    };
    let created = keys::create_key(&key_path, "acme", role, &options).unwrap();
    let keys = Arc::new(KeyStore::open(&key_path).unwrap());
    let stream: Arc<dyn Stream> = Arc::new(log.clone());
    let collector = Collector::new(stream, keys, CollectorConfig::default());
    Fixture {
        _dir: dir,
        log,
        app: router(Arc::new(collector)),
        access_key_id: created.record.aws_access_key_id.unwrap(),
        secret: created.record.aws_secret_access_key.unwrap(),
    }
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A `POST /` signed the way botocore signs Kinesis calls: content-type, host, x-amz-date and
/// x-amz-target, with the body's SHA-256 as payload hash.
fn signed(
    (access_key_id, secret): (&str, &str),
    operation: &str,
    body: &[u8],
    at: DateTime<Utc>,
) -> Request<Body> {
    let amz_date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let target = format!("Kinesis_20131202.{operation}");
    let signed_headers = "content-type;host;x-amz-date;x-amz-target";
    let canonical = format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{HOST}\nx-amz-date:{amz_date}\n\
         x-amz-target:{target}\n\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{date}/us-east-1/kinesis/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = ["us-east-1", "kinesis", "aws4_request"].iter().fold(
        hmac(format!("AWS4{secret}").as_bytes(), date),
        |key, part| hmac(&key, part),
    );
    let signature = hex::encode(hmac(&key, &to_sign));
    Request::post("/")
        .header("host", HOST)
        .header("content-type", CONTENT_TYPE)
        .header("x-amz-target", target)
        .header("x-amz-date", amz_date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, \
                 SignedHeaders={signed_headers}, Signature={signature}"
            ),
        )
        .body(Body::from(body.to_vec()))
        .unwrap()
}

impl Fixture {
    fn credentials(&self) -> (&str, &str) {
        (&self.access_key_id, &self.secret)
    }

    async fn call(&self, operation: &str, body: &Value) -> (StatusCode, Value) {
        let body = serde_json::to_vec(body).unwrap();
        self.send(signed(self.credentials(), operation, &body, Utc::now()))
            .await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(headers["content-type"], CONTENT_TYPE);
        assert!(headers.contains_key("x-amzn-requestid"));
        if !status.is_success() {
            assert_eq!(
                headers["x-amzn-errortype"],
                body["__type"].as_str().unwrap()
            );
        }
        (status, body)
    }

    /// The record at `ShardId`/`SequenceNumber` of an answer: its key and its event.
    fn read_back(&self, answer: &Value) -> (String, Value) {
        let shard: u32 = answer["ShardId"]
            .as_str()
            .unwrap()
            .strip_prefix("shardId-")
            .unwrap()
            .parse()
            .unwrap();
        let seq: u64 = answer["SequenceNumber"].as_str().unwrap().parse().unwrap();
        let limits = ReadLimits {
            max_records: 1,
            ..ReadLimits::default()
        };
        let batch = self.log.read_blocking(shard, seq, limits).unwrap();
        let record = &batch.records[0];
        assert_eq!(record.seq, seq);
        (
            String::from_utf8(record.key.to_vec()).unwrap(),
            serde_json::from_slice(&record.value).unwrap(),
        )
    }

    async fn records_stored(&self) -> u64 {
        let stats = self.log.shard_stats().await.unwrap();
        stats.iter().map(|s| s.next_seq - s.first_seq).sum()
    }
}

fn data(event: &Value) -> String {
    BASE64.encode(serde_json::to_vec(event).unwrap())
}

fn page(anonymous_id: &str) -> Value {
    json!({"event_type": "page", "anonymous_id": anonymous_id,
           "context": {"page": {"url": "https://shop.example/"}}})
}

#[tokio::test]
async fn put_record_is_durable_under_tenant_and_partition_key() {
    let f = fixture(Role::Write, None);
    let (status, answer) = f
        .call(
            "PutRecord",
            &json!({"StreamName": "events", "Data": data(&page("a-1")), "PartitionKey": "s-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["EncryptionType"], "NONE");
    let shard = f.log.shard_for_key(b"acme:s-1");
    assert_eq!(answer["ShardId"], format!("shardId-{shard:012}"));
    let (key, event) = f.read_back(&answer);
    assert_eq!(key, "acme:s-1");
    assert_eq!(event["tenant_id"], "acme");
    assert_eq!(event["event_type"], "page");
    assert_eq!(event["anonymous_id"], "a-1");
    assert_eq!(event["event_family"], "page");
}

#[tokio::test]
async fn put_records_answers_bad_records_in_place_and_keeps_the_others() {
    let f = fixture(Role::Write, None);
    let records = json!([
        {"Data": data(&page("a-1")), "PartitionKey": "s-1"},
        {"Data": data(&json!({"anonymous_id": "a-2"})), "PartitionKey": "s-2"},
        {"Data": BASE64.encode(b"not json"), "PartitionKey": "s-3"},
        {"Data": data(&page("a-4")), "PartitionKey": "s-1", "ExplicitHashKey": "42"},
    ]);
    let (status, answer) = f
        .call(
            "PutRecords",
            &json!({"StreamName": "events", "Records": records}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["FailedRecordCount"], 2);
    assert_eq!(answer["EncryptionType"], "NONE");
    let results = answer["Records"].as_array().unwrap();
    assert_eq!(results.len(), 4);

    assert_eq!(results[1]["ErrorCode"], "InvalidArgumentException");
    let message = results[1]["ErrorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("Records[1].Data") && message.contains("event_type"),
        "{message}"
    );
    assert!(results[1].get("ShardId").is_none());
    assert_eq!(results[2]["ErrorCode"], "InvalidArgumentException");
    assert!(
        results[2]["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("Records[2].Data"),
        "{}",
        results[2]
    );

    let (key, first) = f.read_back(&results[0]);
    assert_eq!(
        (key.as_str(), first["anonymous_id"].as_str()),
        ("acme:s-1", Some("a-1"))
    );
    let (key, last) = f.read_back(&results[3]);
    assert_eq!(
        (key.as_str(), last["anonymous_id"].as_str()),
        ("acme:s-1", Some("a-4"))
    );
    // One partition key, one shard, in order — as in Kinesis.
    assert_eq!(results[0]["ShardId"], results[3]["ShardId"]);
    let seq = |r: &Value| {
        r["SequenceNumber"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(seq(&results[3]) > seq(&results[0]));
    assert_eq!(f.records_stored().await, 2);
}

#[tokio::test]
async fn put_records_with_only_bad_records_answers_200_with_every_failure() {
    let f = fixture(Role::Write, None);
    let records = json!([
        {"Data": BASE64.encode(b""), "PartitionKey": "p"},
        {"Data": data(&json!({"event_type": "page"})), "PartitionKey": "p"},
    ]);
    let (status, answer) = f
        .call(
            "PutRecords",
            &json!({"StreamName": "events", "Records": records}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["FailedRecordCount"], 2);
    let message = answer["Records"][1]["ErrorMessage"].as_str().unwrap();
    assert!(message.contains("anonymous_id"), "{message}");
    assert_eq!(f.records_stored().await, 0);
}

#[tokio::test]
async fn put_record_with_an_invalid_event_is_a_validation_error() {
    let f = fixture(Role::Write, None);
    let (status, answer) = f
        .call(
            "PutRecord",
            &json!({"StreamName": "events", "Data": data(&json!({"anonymous_id": "a",
                    "event_type": "page", "timestamp": "2026-01-01T00:00:00Z"})),
                    "PartitionKey": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "ValidationException");
    assert!(
        answer["message"].as_str().unwrap().contains("timestamp"),
        "{answer}"
    );
    assert_eq!(f.records_stored().await, 0);
}

#[tokio::test]
async fn bad_credentials_are_refused_with_aws_error_types() {
    let f = fixture(Role::Write, None);
    let body = serde_json::to_vec(
        &json!({"StreamName": "events", "Data": data(&page("a")), "PartitionKey": "p"}),
    )
    .unwrap();
    let now = Utc::now();

    let (status, answer) = f
        .send(signed((&f.access_key_id, "wrong"), "PutRecord", &body, now))
        .await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidSignatureException")),
        "{answer}"
    );

    let (status, answer) = f
        .send(signed(("AKIAUNKNOWN", &f.secret), "PutRecord", &body, now))
        .await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("UnrecognizedClientException"))
    );

    let stale = now - chrono::Duration::minutes(6);
    let (status, answer) = f
        .send(signed(f.credentials(), "PutRecord", &body, stale))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "InvalidSignatureException");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{answer}"
    );

    // A body changed after signing.
    let mut request = signed(f.credentials(), "PutRecord", &body, now);
    *request.body_mut() = Body::from(body.to_ascii_uppercase());
    let (_, answer) = f.send(request).await;
    assert_eq!(answer["__type"], "InvalidSignatureException");

    let mut request = signed(f.credentials(), "PutRecord", &body, now);
    request.headers_mut().remove("authorization");
    let (status, answer) = f.send(request).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("MissingAuthenticationTokenException")
        )
    );
    assert_eq!(f.records_stored().await, 0);
}

#[tokio::test]
async fn keys_that_cannot_write_are_denied() {
    let f = fixture(Role::Read, None);
    let (status, answer) = f
        .call(
            "PutRecord",
            &json!({"StreamName": "events", "Data": data(&page("a")), "PartitionKey": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["__type"], "AccessDeniedException");
}

#[tokio::test]
async fn kinesis_limits_are_validation_errors_naming_the_limit() {
    let f = fixture(Role::Write, None);
    let one = json!({"Data": data(&page("a")), "PartitionKey": "p"});

    let records: Vec<Value> = std::iter::repeat_n(one.clone(), 501).collect();
    let (status, answer) = f
        .call(
            "PutRecords",
            &json!({"StreamName": "events", "Records": records}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "ValidationException");
    assert!(
        answer["message"].as_str().unwrap().contains("500"),
        "{answer}"
    );

    // Five records of almost 1 MiB and one more: over 5 MiB in all, though each is within its
    // limit.
    let mib = BASE64.encode(vec![b' '; (1 << 20) - 1024]);
    let mut records: Vec<Value> = (0..5)
        .map(|_| json!({"Data": mib, "PartitionKey": "p"}))
        .collect();
    records.push(json!({"Data": BASE64.encode(vec![b' '; 100 << 10]), "PartitionKey": "p"}));
    let (status, answer) = f
        .call(
            "PutRecords",
            &json!({"StreamName": "events", "Records": records}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "ValidationException");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("5242880") && message.contains("Records[5]"),
        "{message}"
    );

    let too_big = BASE64.encode(vec![b' '; (1 << 20) + 1]);
    let (_, answer) = f
        .call(
            "PutRecord",
            &json!({"StreamName": "events", "Data": too_big, "PartitionKey": "p"}),
        )
        .await;
    assert_eq!(answer["__type"], "ValidationException");
    assert!(
        answer["message"].as_str().unwrap().contains("1048576"),
        "{answer}"
    );

    let (_, answer) = f
        .call(
            "PutRecords",
            &json!({"StreamName": "events", "Records": [one,
                   {"Data": data(&page("a")), "PartitionKey": "k".repeat(257)}]}),
        )
        .await;
    assert_eq!(answer["__type"], "ValidationException");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("Records[1].PartitionKey is 257 characters"),
        "{answer}"
    );
    // A request over a limit is refused whole: nothing of it was stored.
    assert_eq!(f.records_stored().await, 0);
}

#[tokio::test]
async fn bodies_over_the_http_bound_are_refused_before_reading_on() {
    let f = fixture(Role::Write, None);
    let body = vec![b' '; 9 << 20];
    let (status, answer) = f
        .send(signed(f.credentials(), "PutRecords", &body, Utc::now()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "ValidationException");
}

#[tokio::test]
async fn unknown_operations_and_malformed_bodies_are_named() {
    let f = fixture(Role::Write, None);
    let (status, answer) = f
        .call("DeleteStream", &json!({"StreamName": "events"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "UnknownOperationException");
    assert!(answer["message"].as_str().unwrap().contains("DeleteStream"));

    let (status, answer) = f
        .send(signed(
            f.credentials(),
            "PutRecord",
            b"{\"StreamName\":",
            Utc::now(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "SerializationException");

    let (_, answer) = f
        .call(
            "PutRecord",
            &json!({"Data": data(&page("a")), "PartitionKey": "p"}),
        )
        .await;
    assert_eq!(answer["__type"], "ValidationException");
    assert!(answer["message"].as_str().unwrap().contains("StreamName"));
}

#[tokio::test]
async fn rate_limits_are_throughput_exceeded_for_the_sdk_to_retry() {
    let f = fixture(Role::Write, Some(1.0));
    let one = json!({"Data": data(&page("a")), "PartitionKey": "p"});
    let request = json!({"StreamName": "events", "Records": [one, one, one]});
    let (status, _) = f.call("PutRecords", &request).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = f.call("PutRecords", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "ProvisionedThroughputExceededException");
}

#[tokio::test]
async fn a_stream_that_cannot_persist_is_service_unavailable() {
    let f = fixture(Role::Write, None);
    f.log.close().unwrap();
    let (status, answer) = f
        .call(
            "PutRecord",
            &json!({"StreamName": "events", "Data": data(&page("a")), "PartitionKey": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["__type"], "ServiceUnavailable");
}
