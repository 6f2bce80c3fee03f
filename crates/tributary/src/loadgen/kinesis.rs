//! The Kinesis encoder: `PutRecords` in AWS JSON 1.1, signed with SigV4, as an AWS SDK's
//! Kinesis client sends it with its endpoint pointed at the collector.
//!
//! ```text
//! POST /
//! Content-Type: application/x-amz-json-1.1
//! X-Amz-Target: Kinesis_20131202.PutRecords
//! X-Amz-Date: 20261123T100000Z
//! Authorization: AWS4-HMAC-SHA256 Credential=AKIA…/20261123/us-east-1/kinesis/aws4_request, …
//!
//! {"StreamName":"tributary","Records":[{"Data":"<base64 of one native event>",
//!                                       "PartitionKey":"<session id>"}, …]}
//! ```
//!
//! Each record's `Data` is one event in the native envelope (`native.rs`); the partition key is
//! the session, so a session's events stay in order on one shard, as with real Kinesis. The
//! body is fixed, so its SHA-256 is computed once; the signature covers the time and is made
//! per request.

use base64::Engine;
use serde::{Deserialize, Serialize};
use tributary_model::Event;

use super::native::NativeEvent;
use super::sigv4::{self, Credentials};

/// The `X-Amz-Target` of PutRecords.
pub const TARGET: &str = "Kinesis_20131202.PutRecords";

/// AWS JSON 1.1.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The service requests are signed for.
pub const SERVICE: &str = "kinesis";

/// The stream named in requests; the collector writes every stream name to its one stream.
pub const STREAM_NAME: &str = "tributary";

/// A PutRecords request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecords {
    /// The stream.
    pub stream_name: String,
    /// The records.
    pub records: Vec<Entry>,
}

/// One record of a PutRecords request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// Base64 of the record's bytes: one native event as JSON.
    pub data: String,
    /// Decides the shard, and so the order.
    pub partition_key: String,
}

/// The body of one request: `events` as PutRecords, one record each.
pub fn encode(events: &[Event]) -> serde_json::Result<Vec<u8>> {
    let records = events
        .iter()
        .map(|event| {
            let data = serde_json::to_vec(&NativeEvent::of(event))?;
            Ok(Entry {
                data: base64::engine::general_purpose::STANDARD.encode(data),
                partition_key: event.session_id.clone(),
            })
        })
        .collect::<serde_json::Result<Vec<_>>>()?;
    serde_json::to_vec(&PutRecords {
        stream_name: STREAM_NAME.into(),
        records,
    })
}

/// The headers that make a request SigV4-signed at `now`: `x-amz-date` and `authorization`.
/// `host` is the `Host` header the client sends (with the port unless it is the scheme's
/// default) and is signed along with the content type and target.
pub fn signature_headers(
    credentials: &Credentials,
    host: &str,
    path: &str,
    payload_sha256: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> [(&'static str, String); 2] {
    let amz_date = now.format(sigv4::AMZ_DATE_FORMAT).to_string();
    let request = sigv4::Request {
        method: "POST",
        path,
        query: "",
        headers: &[
            ("content-type", CONTENT_TYPE),
            ("host", host),
            ("x-amz-date", &amz_date),
            ("x-amz-target", TARGET),
        ],
        payload_sha256,
    };
    let authorization = sigv4::authorization(credentials, &request, &amz_date);
    [("x-amz-date", amz_date), ("authorization", authorization)]
}

/// What PutRecords answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    failed_record_count: u64,
    records: Vec<serde::de::IgnoredAny>,
}

/// `(acked, rejected)` records from a 2xx answer's body, or `None` when it is not a
/// PutRecords answer.
pub fn read_answer(body: &[u8]) -> Option<(u64, u64)> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let total = answer.records.len() as u64;
    Some((
        total.saturating_sub(answer.failed_record_count),
        answer.failed_record_count,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::sample_traffic::SampleTraffic;

    #[test]
    fn records_carry_native_events_keyed_by_session() {
        let dir = tempfile::tempdir().unwrap();
        let (collector, meta) = super::super::testing::collector(dir.path());
        let events = SampleTraffic::new(14).batch(200, 1_735_732_800_000_000);
        let body = encode(&events).unwrap();
        let request: PutRecords = serde_json::from_slice(&body).unwrap();
        assert_eq!(request.stream_name, STREAM_NAME);
        assert_eq!(request.records.len(), events.len());
        for (index, (entry, sent)) in request.records.iter().zip(&events).enumerate() {
            assert_eq!(entry.partition_key, sent.session_id);
            let data = base64::engine::general_purpose::STANDARD
                .decode(&entry.data)
                .unwrap();
            let raw: &RawValue = serde_json::from_slice(&data).unwrap();
            let event = tributary_collector::native::parse_event(index, raw, &collector, &meta)
                .unwrap_or_else(|r| panic!("{}", r.message));
            assert_eq!(event.event_id, sent.event_id);
        }
    }

    #[test]
    fn signature_headers_name_the_scope_and_signed_headers() {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: "secret".into(),
            region: "us-east-1".into(),
            service: SERVICE.into(),
        };
        let now = chrono::DateTime::from_timestamp(1_440_938_160, 0).unwrap();
        let [(date_name, date), (auth_name, auth)] =
            signature_headers(&credentials, "127.0.0.1:8080", "/", "e3b0", now);
        assert_eq!(
            (date_name, date.as_str()),
            ("x-amz-date", "20150830T123600Z")
        );
        assert_eq!(auth_name, "authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
            ),
            "{auth}"
        );
    }

    #[test]
    fn answers_count_failed_records() {
        let body = br#"{"FailedRecordCount":1,"Records":[{"ShardId":"shardId-000000000000",
            "SequenceNumber":"1"},{"ErrorCode":"InvalidArgumentException","ErrorMessage":"x"},
            {"ShardId":"shardId-000000000001","SequenceNumber":"7"}],"EncryptionType":"NONE"}"#;
        assert_eq!(read_answer(body), Some((2, 1)));
        assert_eq!(read_answer(br#"{"__type":"ValidationException"}"#), None);
    }
}
