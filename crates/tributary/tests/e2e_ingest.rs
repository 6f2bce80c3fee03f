//! End-to-end ingest: the real `tributary serve` on a temporary data directory and a free port,
//! events sent over HTTP through every API (native, Segment, Kinesis), and read back from the
//! stream with the real `tributary stream read --json` — what was acknowledged must be there,
//! with the tenant from the key, and what was refused must not.
//!
//! Each test starts its own server (they start in a fraction of a second), so no test depends on
//! another's traffic. The harness is `common/mod.rs`.
// Helpers outside #[test] functions panic too: a panic is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use serde_json::{Value, json};

use common::{
    AMZ_JSON, Server, Setup, Stored, TENANT, basic_auth, kinesis_request, one_with_id, send,
    tributary_signature, unix_now, wait_for, with_id,
};

/// A minimal valid native event.
fn event(event_id: &str, session: &str) -> Value {
    json!({
        "event_id": event_id,
        "event_type": "page",
        "anonymous_id": "anon-1",
        "session_id": session,
        "properties": {"n": 1},
    })
}

/// Starts a server with one write key, returning both.
fn server_with_key() -> (Server, String) {
    let setup = Setup::new();
    let key = setup.key(&[]);
    (setup.start(), key)
}

/// The rejection list of an ingest answer, as (index, reason) pairs.
fn rejections(body: &Value) -> Vec<(u64, String)> {
    body["rejected"]
        .as_array()
        .unwrap_or_else(|| panic!("no rejected list: {body}"))
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The event ids of the stored records, sorted.
fn stored_ids(stored: &[Stored]) -> Vec<String> {
    let mut ids: Vec<String> = stored
        .iter()
        .map(|s| s.event["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// Every API: sent, acknowledged, read back.
// ---------------------------------------------------------------------------------------------

#[test]
fn native_json_array_is_durable_with_tenant_from_key_session_partition_and_stable_ids() {
    let (server, key) = server_with_key();
    let body = json!([
        {
            "event_id": "e-native-1",
            "event_type": "page",
            "anonymous_id": "anon-1",
            "session_id": "s-1",
            "tenant_id": "someone-else",
            "ts": "2026-01-01T00:00:00Z",
            "context": {"page": {"url": "https://shop.example/p/1", "title": "Product 1"}},
            "properties": {"item_id": "sku-1", "price": 9.5},
        },
        {
            "event_type": "track:Add To Cart",
            "anonymous_id": "anon-1",
            "user_id": "user-1",
            "session_id": "s-1",
            "properties": {"item_id": "sku-1", "quantity": 2},
        },
    ]);
    let send_once = || {
        send(
            server
                .post("/v1/events")
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .header("user-agent", "e2e-test/1.0")
                .body(serde_json::to_vec(&body).unwrap()),
        )
        .expect(200)
    };
    assert_eq!(send_once().json(), json!({"accepted": 2, "rejected": []}));
    // A producer's retry of the same bytes.
    send_once();

    let stored = server.stored();
    assert_eq!(stored.len(), 4, "{stored:#?}");
    for s in &stored {
        assert_eq!(
            s.event["tenant_id"], TENANT,
            "tenant from the key, not the body"
        );
        assert_eq!(s.key, "acme:s-1", "partition key is tenant:session");
        assert_eq!(s.event["session_id"], "s-1");
        assert_eq!(s.event["anonymous_id"], "anon-1");
        assert_eq!(s.event["context"]["ip"], "127.0.0.1");
        assert_eq!(s.event["context"]["user_agent"], "e2e-test/1.0");
        assert!(s.event["received_at"].as_i64().unwrap() > 1_700_000_000_000_000);
    }
    // One session stays on one shard, in order.
    assert!(stored.iter().all(|s| s.shard == stored[0].shard));

    let pages = with_id(&stored, "e-native-1");
    assert_eq!(pages.len(), 2);
    let page = &pages[0].event;
    assert_eq!(page["event_type"], "page");
    assert_eq!(page["event_family"], "page");
    assert_eq!(page["ts"], 1_767_225_600_000_000_i64);
    assert_eq!(page["context"]["page"]["url"], "https://shop.example/p/1");
    assert_eq!(page["context"]["page"]["title"], "Product 1");
    assert_eq!(
        page["properties"],
        json!({"item_id": "sku-1", "price": 9.5})
    );

    let tracks: Vec<&Stored> = stored
        .iter()
        .filter(|s| s.event["event_type"] == "track:Add To Cart")
        .collect();
    assert_eq!(tracks.len(), 2);
    let id = tracks[0].event["event_id"].as_str().unwrap();
    assert!(id.starts_with("evt_"), "assigned id: {id}");
    assert_eq!(
        tracks[1].event["event_id"], id,
        "a retried event gets the same id"
    );
    assert_eq!(tracks[0].event["user_id"], "user-1");
    assert_eq!(tracks[0].event["event_family"], "track");
    assert_eq!(tracks[0].event["properties"]["quantity"], 2);
    server.stop();
}

#[test]
fn native_ndjson_lines_are_each_an_event() {
    let (server, key) = server_with_key();
    let lines: Vec<String> = (0..3)
        .map(|i| event(&format!("e-nd-{i}"), &format!("s-{i}")).to_string())
        .collect();
    let body = format!("{}\n\n{}\n{}\n", lines[0], lines[1], lines[2]);
    let reply = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/x-ndjson")
            .body(body),
    )
    .expect(200);
    assert_eq!(reply.json()["accepted"], 3);
    let stored = server.stored();
    assert_eq!(stored_ids(&stored), ["e-nd-0", "e-nd-1", "e-nd-2"]);
    for i in 0..3 {
        let s = one_with_id(&stored, &format!("e-nd-{i}"));
        assert_eq!(s.key, format!("acme:s-{i}"));
        assert_eq!(s.event["tenant_id"], TENANT);
    }
    server.stop();
}

#[test]
fn native_single_object_even_pretty_printed_is_one_event() {
    // What `curl -d @event.json` sends from a hand-written file.
    let (server, key) = server_with_key();
    let body = serde_json::to_string_pretty(&event("e-pretty", "s-p")).unwrap();
    assert!(body.lines().count() > 3);
    let reply = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body),
    )
    .expect(200);
    assert_eq!(reply.json(), json!({"accepted": 1, "rejected": []}));
    let stored = server.stored();
    assert_eq!(stored_ids(&stored), ["e-pretty"]);
    assert_eq!(stored[0].key, "acme:s-p");
    server.stop();
}

#[test]
fn native_gzip_and_zstd_bodies_are_decompressed() {
    let (server, key) = server_with_key();
    let gz_body = serde_json::to_vec(&json!([event("e-gzip", "s-gz")])).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&gz_body).unwrap();
    let gzipped = encoder.finish().unwrap();
    send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzipped),
    )
    .expect(200);

    let zstd_body = serde_json::to_vec(&json!([event("e-zstd", "s-zs")])).unwrap();
    send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("content-encoding", "zstd")
            .body(zstd::encode_all(&zstd_body[..], 3).unwrap()),
    )
    .expect(200);

    let stored = server.stored();
    assert_eq!(stored_ids(&stored), ["e-gzip", "e-zstd"]);
    assert_eq!(one_with_id(&stored, "e-gzip").key, "acme:s-gz");
    assert_eq!(one_with_id(&stored, "e-zstd").event["properties"]["n"], 1);
    server.stop();
}

#[test]
fn send_beacon_text_plain_with_key_in_query_is_accepted() {
    let (server, key) = server_with_key();
    // navigator.sendBeacon(url, string): text/plain, no custom headers, so the key is in the URL.
    let reply = send(
        server
            .post(&format!("/v1/events?key={key}"))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(json!([event("e-beacon", "s-b")]).to_string()),
    )
    .expect(200);
    assert_eq!(reply.json()["accepted"], 1);
    let stored = server.stored();
    let beacon = one_with_id(&stored, "e-beacon");
    assert_eq!(beacon.event["tenant_id"], TENANT);
    assert_eq!(beacon.key, "acme:s-b");
    server.stop();
}

#[test]
fn segment_track_identify_page_with_basic_auth_are_mapped_and_durable() {
    let (server, key) = server_with_key();
    let post = |path: &str, body: Value| {
        send(
            server
                .post(path)
                .header("authorization", basic_auth(&key))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .expect(200)
        .json()
    };
    let answer = post(
        "/v1/track",
        json!({
            "messageId": "m-track",
            "anonymousId": "anon-s",
            "userId": "user-s",
            "event": "Order Completed",
            "properties": {"order_id": "o-1", "revenue": 42.5},
            "context": {"sessionId": "s-seg", "locale": "de-DE",
                        "library": {"name": "analytics-python", "version": "2.3.4"}},
            "timestamp": "2026-01-01T10:00:00Z",
        }),
    );
    assert_eq!(
        answer,
        json!({"success": true, "accepted": 1, "rejected": []})
    );
    post(
        "/v1/identify",
        json!({
            "messageId": "m-identify",
            "userId": "user-s",
            "anonymousId": "anon-s",
            "traits": {"email": "a@example.com", "plan": "pro"},
        }),
    );
    post(
        "/v1/page",
        json!({
            "messageId": "m-page",
            "anonymousId": "anon-s",
            "name": "Home",
            "properties": {"path": "/"},
            "context": {"page": {"url": "https://shop.example/", "title": "Shop"}},
        }),
    );

    let stored = server.stored();
    assert_eq!(stored_ids(&stored), ["m-identify", "m-page", "m-track"]);
    let track = one_with_id(&stored, "m-track");
    assert_eq!(track.key, "acme:s-seg");
    assert_eq!(track.event["tenant_id"], TENANT);
    assert_eq!(track.event["event_type"], "track:Order Completed");
    assert_eq!(track.event["event_family"], "track");
    assert_eq!(track.event["anonymous_id"], "anon-s");
    assert_eq!(track.event["user_id"], "user-s");
    assert_eq!(track.event["session_id"], "s-seg");
    assert_eq!(track.event["ts"], 1_767_261_600_000_000_i64);
    assert_eq!(
        track.event["properties"],
        json!({"order_id": "o-1", "revenue": 42.5})
    );
    assert_eq!(track.event["context"]["locale"], "de-DE");
    assert_eq!(
        track.event["context"]["library"]["name"],
        "analytics-python"
    );

    let identify = one_with_id(&stored, "m-identify");
    assert_eq!(identify.event["event_type"], "identify");
    assert_eq!(identify.event["event_family"], "identity");
    assert_eq!(identify.event["properties"]["email"], "a@example.com");
    assert_eq!(identify.event["properties"]["plan"], "pro");
    assert_eq!(
        identify.key, "acme:anon-s",
        "no session: tenant:anonymous_id"
    );

    let page = one_with_id(&stored, "m-page");
    assert_eq!(page.event["event_type"], "page");
    assert_eq!(page.event["properties"]["name"], "Home");
    assert_eq!(page.event["properties"]["path"], "/");
    assert_eq!(
        page.event["context"]["page"]["url"],
        "https://shop.example/"
    );
    server.stop();
}

#[test]
fn segment_batch_with_write_key_in_body_is_durable() {
    let (server, key) = server_with_key();
    // analytics.js: text/plain (no CORS preflight), no Authorization, writeKey in the body.
    let body = json!({
        "writeKey": key,
        "sentAt": "2026-01-01T10:00:05Z",
        "context": {"library": {"name": "analytics.js"}},
        "batch": [
            {"type": "track", "messageId": "m-b-0", "anonymousId": "anon-b", "event": "Viewed",
             "properties": {"session_id": "s-batch"}, "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "page", "messageId": "m-b-1", "anonymousId": "anon-b", "name": "Cart",
             "writeKey": key},
            {"type": "alias", "messageId": "m-b-2", "userId": "user-b", "previousId": "anon-b"},
        ],
    });
    let reply = send(
        server
            .post("/v1/batch")
            .header("content-type", "text/plain")
            .body(body.to_string()),
    )
    .expect(200);
    assert_eq!(
        reply.json(),
        json!({"success": true, "accepted": 3, "rejected": []})
    );

    let stored = server.stored();
    assert_eq!(stored_ids(&stored), ["m-b-0", "m-b-1", "m-b-2"]);
    for s in &stored {
        assert_eq!(s.event["tenant_id"], TENANT);
        assert_eq!(s.event["context"]["library"]["name"], "analytics.js");
        assert!(
            !s.event.to_string().contains(&key),
            "the write key is a credential and must not be stored: {}",
            s.event
        );
    }
    let track = one_with_id(&stored, "m-b-0");
    assert_eq!(track.event["event_type"], "track:Viewed");
    assert_eq!(track.key, "acme:s-batch");
    assert_eq!(one_with_id(&stored, "m-b-1").event["event_type"], "page");
    let alias = one_with_id(&stored, "m-b-2");
    assert_eq!(alias.event["event_type"], "alias");
    assert_eq!(alias.event["properties"]["previous_id"], "anon-b");
    server.stop();
}

#[test]
fn kinesis_put_record_and_put_records_signed_with_sigv4_are_durable() {
    let setup = Setup::new();
    let credentials = setup.key(&["--aws"]);
    let (akid, secret) = credentials.split_once(' ').unwrap();
    let server = setup.start();
    let data = |value: Value| BASE64.encode(value.to_string());

    let reply = send(kinesis_request(
        &server,
        (akid, secret),
        "PutRecord",
        &json!({
            "StreamName": "events",
            "PartitionKey": "pk-single",
            "Data": data(json!({"event_id": "k-1", "event_type": "track:Signup",
                                "anonymous_id": "anon-k", "session_id": "s-k",
                                "properties": {"plan": "pro"}})),
        }),
        Utc::now(),
    ))
    .expect(200);
    assert_eq!(reply.header("content-type"), Some(AMZ_JSON));
    let put = reply.json();
    let shard_id = put["ShardId"].as_str().unwrap();
    let single_shard: u64 = shard_id
        .strip_prefix("shardId-")
        .unwrap_or_else(|| panic!("{put}"))
        .parse()
        .unwrap();
    let single_seq: u64 = put["SequenceNumber"].as_str().unwrap().parse().unwrap();

    let reply = send(kinesis_request(
        &server,
        (akid, secret),
        "PutRecords",
        &json!({
            "StreamName": "events",
            "Records": [
                {"PartitionKey": "pk-a", "Data": data(json!({"event_id": "k-2",
                    "event_type": "page", "anonymous_id": "anon-k"}))},
                {"PartitionKey": "pk-b", "Data": BASE64.encode("not json")},
                {"PartitionKey": "pk-b", "Data": data(json!({"event_id": "k-3",
                    "event_type": "page", "user_id": "user-k"}))},
            ],
        }),
        Utc::now(),
    ))
    .expect(200);
    let puts = reply.json();
    assert_eq!(puts["FailedRecordCount"], 1, "{puts}");
    let results = puts["Records"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0]["SequenceNumber"].is_string(), "{puts}");
    assert_eq!(
        results[1]["ErrorCode"], "InvalidArgumentException",
        "{puts}"
    );
    assert!(results[2]["SequenceNumber"].is_string(), "{puts}");

    // A signature made with the wrong secret is refused, and nothing of it is stored.
    let refused = send(kinesis_request(
        &server,
        (akid, "not-the-secret"),
        "PutRecord",
        &json!({"StreamName": "events", "PartitionKey": "pk-x",
                "Data": data(json!({"event_id": "k-bad", "event_type": "page",
                                    "anonymous_id": "a"}))}),
        Utc::now(),
    ))
    .expect(400);
    assert_eq!(
        refused.header("x-amzn-errortype"),
        Some("InvalidSignatureException")
    );
    assert_eq!(refused.json()["__type"], "InvalidSignatureException");

    let stored = server.stored();
    assert_eq!(stored_ids(&stored), ["k-1", "k-2", "k-3"]);
    let single = one_with_id(&stored, "k-1");
    assert_eq!((single.shard, single.seq), (single_shard, single_seq));
    assert_eq!(single.key, "acme:pk-single", "tenant:PartitionKey");
    assert_eq!(single.event["tenant_id"], TENANT);
    assert_eq!(single.event["event_type"], "track:Signup");
    assert_eq!(single.event["properties"]["plan"], "pro");
    assert_eq!(one_with_id(&stored, "k-2").key, "acme:pk-a");
    let third = one_with_id(&stored, "k-3");
    assert_eq!(third.key, "acme:pk-b");
    assert_eq!(third.event["user_id"], "user-k");
    assert_eq!(
        results[2]["SequenceNumber"].as_str().unwrap(),
        third.seq.to_string()
    );
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Every error class: the right status, a message naming what was wrong, nothing stored.
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_json_is_400_naming_line_and_column() {
    let (server, key) = server_with_key();
    let reply = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("[\n{\"event_type\":\"page\",\"anonymous_id\":\"a\"},\n{\"event_type\":}\n]"),
    )
    .expect(400);
    let body = reply.json();
    assert_eq!(body["error"], "invalid_json");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("line 3, column 15"), "{message}");
    assert_eq!(server.record_count(), 0);
    server.stop();
}

#[test]
fn unknown_content_type_is_415() {
    let (server, key) = server_with_key();
    let reply = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/xml")
            .body(json!([event("e-xml", "s")]).to_string()),
    )
    .expect(415);
    let body = reply.json();
    assert_eq!(body["error"], "unsupported_media_type");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application/xml"),
        "{body}"
    );
    assert_eq!(server.record_count(), 0);
    server.stop();
}

#[test]
fn unknown_and_missing_keys_are_401() {
    let (server, _key) = server_with_key();
    let body = json!([event("e-401", "s")]).to_string();
    let unknown = send(
        server
            .post("/v1/events")
            .bearer_auth("trb_00000000000000000000000000000000")
            .body(body.clone()),
    )
    .expect(401);
    assert_eq!(unknown.json()["error"], "unauthorized");
    assert!(unknown.text.contains("unknown key"), "{}", unknown.text);
    assert!(unknown.header("www-authenticate").is_some());

    let missing = send(server.post("/v1/events").body(body)).expect(401);
    assert!(missing.text.contains("missing key"), "{}", missing.text);

    let segment = send(
        server
            .post("/v1/track")
            .header("authorization", basic_auth("trb_wrong"))
            .body(json!({"event": "x", "anonymousId": "a"}).to_string()),
    )
    .expect(401);
    assert_eq!(segment.json()["error"], "unauthorized");
    assert_eq!(server.record_count(), 0);
    server.stop();
}

#[test]
fn body_over_max_body_bytes_is_413_naming_the_limit() {
    let (server, key) = server_with_key();
    // 5 MiB of valid events and then some: refused before it is parsed.
    let one = event("e-big", "s").to_string();
    let count = (5 << 20) / one.len() + 100;
    let body = format!("[{}]", vec![one; count].join(","));
    assert!(body.len() > 5 << 20);
    let reply = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body),
    )
    .expect(413);
    let answer = reply.json();
    assert_eq!(answer["limit"], "max_body_bytes", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes")
    );

    // A small gzip body that expands past the limit is refused too.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(b"[").unwrap();
    encoder.write_all(&vec![b' '; 6 << 20]).unwrap();
    encoder.write_all(b"]").unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 << 10);
    let reply = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-encoding", "gzip")
            .body(bomb),
    )
    .expect(413);
    assert_eq!(reply.json()["limit"], "max_body_bytes");
    assert_eq!(server.record_count(), 0);
    server.stop();
}

/// Sends `[good, bad]` and checks the bad one is refused at index 1 naming `limit`, while the
/// good one is durable.
fn assert_second_event_refused_naming(bad: Value, limit: &str) {
    let (server, key) = server_with_key();
    let reply = server
        .post_json("/v1/events", &key, &json!([event("e-good", "s-1"), bad]))
        .expect(200);
    let body = reply.json();
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(rejections(&body), [(1, "too_large".to_string())]);
    let message = body["rejected"][0]["message"].as_str().unwrap();
    assert!(message.contains("event 1"), "{message}");
    assert!(message.contains(limit), "{message}");
    assert_eq!(stored_ids(&server.stored()), ["e-good"]);
    server.stop();
}

#[test]
fn event_over_max_event_bytes_is_rejected_by_index() {
    // 35 KB in five strings, each under max_string_bytes (8 KiB).
    let properties: serde_json::Map<String, Value> = (0..5)
        .map(|i| (format!("p{i}"), Value::String("x".repeat(7000))))
        .collect();
    let mut bad = event("e-large", "s-2");
    bad["properties"] = Value::Object(properties);
    assert!(bad.to_string().len() > 32 << 10);
    assert_second_event_refused_naming(bad, "max_event_bytes");
}

#[test]
fn event_nested_deeper_than_max_json_depth_is_rejected_by_index() {
    let mut nested = json!(1);
    for _ in 0..20 {
        nested = json!([nested]);
    }
    let mut bad = event("e-deep", "s-2");
    bad["properties"] = json!({ "deep": nested });
    assert_second_event_refused_naming(bad, "max_json_depth");
}

#[test]
fn string_over_max_string_bytes_is_rejected_by_index() {
    let mut bad = event("e-long", "s-2");
    bad["properties"] = json!({ "text": "y".repeat(9000) });
    assert_second_event_refused_naming(bad, "max_string_bytes");
}

#[test]
fn more_than_max_events_per_batch_is_413_naming_the_limit() {
    let (server, key) = server_with_key();
    let batch: Vec<Value> = (0..501).map(|i| event(&format!("e-{i}"), "s")).collect();
    let reply = server
        .post_json("/v1/events", &key, &Value::Array(batch))
        .expect(413);
    let body = reply.json();
    assert_eq!(body["limit"], "max_events_per_batch", "{body}");
    assert!(body["message"].as_str().unwrap().contains("501"), "{body}");
    assert_eq!(server.record_count(), 0);
    server.stop();
}

#[test]
fn partly_bad_batch_is_200_with_each_rejection_and_only_good_events_durable() {
    let (server, key) = server_with_key();
    let body = json!([
        event("e-ok-0", "s-1"),
        {"event_id": "e-no-type", "anonymous_id": "a"},
        event("e-ok-2", "s-2"),
        {"event_id": "e-no-identity", "event_type": "page"},
        {"event_id": "e-typo", "event_type": "page", "anonymous_id": "a", "timestamp": 1},
        "not an object",
        event("e-ok-6", "s-1"),
    ]);
    let answer = server
        .post_json("/v1/events", &key, &body)
        .expect(200)
        .json();
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(
        rejections(&answer),
        [
            (1, "invalid".to_string()),
            (3, "missing_field".to_string()),
            (4, "invalid".to_string()),
            (5, "invalid".to_string()),
        ]
    );
    let fields: Vec<&Value> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["field"])
        .collect();
    assert_eq!(fields[0], "event_type");
    assert_eq!(fields[1], "anonymous_id");
    assert_eq!(fields[2], "timestamp");
    for rejection in answer["rejected"].as_array().unwrap() {
        let index = rejection["index"].as_u64().unwrap();
        let message = rejection["message"].as_str().unwrap();
        assert!(message.contains(&format!("event {index}")), "{message}");
    }
    // In NDJSON, a line that is not JSON rejects only itself.
    let ndjson = format!(
        "{}\n{{broken\n",
        event("e-ok-nd", "s-3").to_string().as_str()
    );
    let answer = send(
        server
            .post("/v1/events")
            .bearer_auth(&key)
            .header("content-type", "application/x-ndjson")
            .body(ndjson),
    )
    .expect(200)
    .json();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(rejections(&answer), [(1, "invalid_json".to_string())]);

    // All refused: 400 with the list.
    let answer = server
        .post_json("/v1/events", &key, &json!([{"event_type": "page"}]))
        .expect(400)
        .json();
    assert_eq!(answer["error"], "all_rejected");
    assert_eq!(rejections(&answer), [(0, "missing_field".to_string())]);

    let stored = server.stored();
    assert_eq!(
        stored_ids(&stored),
        ["e-ok-0", "e-ok-2", "e-ok-6", "e-ok-nd"]
    );
    server.stop();
}

#[test]
fn rate_limited_key_gets_429_with_retry_after_and_refused_events_are_not_stored() {
    let setup = Setup::new();
    let key = setup.key(&["--rate-limit", "5"]);
    let server = setup.start();
    let batch = |prefix: &str| -> Value {
        Value::Array(
            (0..5)
                .map(|i| event(&format!("{prefix}-{i}"), "s"))
                .collect(),
        )
    };
    server
        .post_json("/v1/events", &key, &batch("first"))
        .expect(200);
    let limited = server
        .post_json("/v1/events", &key, &batch("second"))
        .expect(429);
    assert_eq!(limited.json()["error"], "too_many_requests");
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("429 without Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(server.record_count(), 5);

    // Honouring Retry-After is enough.
    std::thread::sleep(Duration::from_secs(retry_after));
    server
        .post_json("/v1/events", &key, &batch("third"))
        .expect(200);
    let stored = server.stored();
    assert_eq!(stored.len(), 10);
    assert!(
        stored_ids(&stored)
            .iter()
            .all(|id| !id.starts_with("second"))
    );
    server.stop();
}

#[test]
fn backlog_bound_answers_429_with_retry_after_and_refused_events_are_not_stored() {
    // A bound of 10 events not yet durable: concurrent batches of 10 each fill it, so while one
    // waits for its fsync, the others must be turned away rather than queued without bound.
    let setup = Setup::new().env("TRIBUTARY_COLLECTOR__MAX_BACKLOG_EVENTS", "10");
    let key = setup.key(&[]);
    let server = Arc::new(setup.start());
    let saw_429 = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (server, key, saw_429) = (Arc::clone(&server), key.clone(), Arc::clone(&saw_429));
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                let mut refused = Vec::new();
                let mut request = 0;
                while !saw_429.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let ids: Vec<String> = (0..10)
                        .map(|i| format!("w{worker}-r{request}-{i}"))
                        .collect();
                    let batch: Vec<Value> = ids.iter().map(|id| event(id, id)).collect();
                    let reply = server.post_json("/v1/events", &key, &Value::Array(batch));
                    match reply.status {
                        200 => accepted.extend(ids),
                        429 => {
                            assert_eq!(reply.header("retry-after"), Some("1"));
                            let message = reply.json()["message"].as_str().unwrap().to_string();
                            assert!(message.contains("max_backlog_events"), "{message}");
                            saw_429.store(true, Ordering::Relaxed);
                            refused.extend(ids);
                        }
                        other => panic!("unexpected {other}: {}", reply.text),
                    }
                    request += 1;
                }
                (accepted, refused)
            })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for worker in workers {
        let (a, r) = worker.join().unwrap();
        accepted.extend(a);
        refused.extend(r);
    }
    assert!(
        saw_429.load(Ordering::Relaxed),
        "8 concurrent writers of 10-event batches never hit a backlog bound of 10 \
         ({} events accepted)",
        accepted.len()
    );
    accepted.sort();
    let stored = server.stored();
    assert_eq!(
        stored_ids(&stored),
        accepted,
        "exactly the acknowledged events are durable"
    );
    assert!(!refused.is_empty());
    let server = Arc::into_inner(server).unwrap();
    server.stop();
}

#[test]
fn stream_that_cannot_persist_answers_503_and_acknowledges_nothing() {
    // One shard of tiny segments: the second request must roll the segment over, and creating
    // the next segment fails because the shard's directory is gone (moved away; a failing disk
    // looks the same to the writer, and this needs no privileges).
    let setup = Setup::new()
        .env("TRIBUTARY_STREAM__SHARDS", "1")
        .env("TRIBUTARY_STREAM__SEGMENT_BYTES", "4096");
    let key = setup.key(&[]);
    let server = setup.start();
    server
        .post_json("/v1/events", &key, &json!([event("e-before", "s")]))
        .expect(200);
    assert_eq!(server.get("/readyz").status, 200);

    let shard_dir = server.data().join("stream/shards/00000");
    let moved = server.data().join("stream/shards/00000.away");
    assert!(shard_dir.is_dir(), "stream layout changed: {shard_dir:?}");
    std::fs::rename(&shard_dir, &moved).unwrap();
    let batch: Vec<Value> = (0..10)
        .map(|i| {
            let mut e = event(&format!("e-lost-{i}"), "s");
            e["properties"] = json!({ "padding": "z".repeat(600) });
            e
        })
        .collect();
    let reply = server
        .post_json("/v1/events", &key, &Value::Array(batch))
        .expect(503);
    let body = reply.json();
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not accepted"),
        "{body}"
    );
    // A failed shard stays failed: nothing later is acknowledged either, and readiness says so.
    server
        .post_json("/v1/events", &key, &json!([event("e-after", "s")]))
        .expect(503);
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text);

    std::fs::rename(&moved, &shard_dir).unwrap();
    assert_eq!(stored_ids(&server.stored()), ["e-before"]);
    let log = server.stop();
    assert!(log.contains("can no longer persist"), "{log}");
}

#[test]
fn signed_key_accepts_valid_signatures_and_refuses_bad_stale_and_missing_ones() {
    let setup = Setup::new();
    let pair = setup.key(&["--signed"]);
    let (key, secret) = pair.split_once(' ').unwrap();
    let server = setup.start();
    let signed = |id: &str, timestamp: i64, signature_secret: &str| {
        let body = serde_json::to_vec(&json!([event(id, "s")])).unwrap();
        let timestamp = timestamp.to_string();
        let signature = tributary_signature(signature_secret, &timestamp, &body);
        send(
            server
                .post("/v1/events")
                .bearer_auth(key)
                .header("content-type", "application/json")
                .header("x-tributary-timestamp", timestamp)
                .header("x-tributary-signature", signature)
                .body(body),
        )
    };
    signed("e-signed", unix_now(), secret).expect(200);

    let bad = signed("e-bad-signature", unix_now(), "not-the-secret").expect(401);
    assert!(bad.text.contains("does not match"), "{}", bad.text);

    let stale = signed("e-stale", unix_now() - 400, secret).expect(401);
    assert!(stale.text.contains("more than 300 s"), "{}", stale.text);

    let unsigned = server
        .post_json("/v1/events", key, &json!([event("e-unsigned", "s")]))
        .expect(401);
    assert!(
        unsigned.text.contains("requires signed requests"),
        "{}",
        unsigned.text
    );

    assert_eq!(stored_ids(&server.stored()), ["e-signed"]);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Operations: health, metrics, tracker, API description, keys, client addresses.
// ---------------------------------------------------------------------------------------------

/// The value of the Prometheus sample whose line starts with `name{` and has every label.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[test]
fn health_readiness_metrics_tracker_and_openapi_are_served() {
    let (server, key) = server_with_key();
    let health = server.get("/healthz").expect(200);
    assert_eq!(health.text.trim(), "ok");
    let ready = server.get("/readyz").expect(200);
    assert_eq!(ready.text.trim(), "ready");

    server
        .post_json(
            "/v1/events",
            &key,
            &json!([event("e-m-0", "s"), event("e-m-1", "s")]),
        )
        .expect(200);
    let mut too_large = event("e-m-big", "s");
    too_large["properties"] = json!({ "text": "y".repeat(9000) });
    server
        .post_json(
            "/v1/events",
            &key,
            &json!([event("e-m-2", "s"), too_large, {"event_type": "page"}]),
        )
        .expect(200);

    let metrics = server.get("/metrics").expect(200).text;
    let accepted = "tributary_collector_events_accepted_total";
    let rejected = "tributary_collector_events_rejected_total";
    assert_eq!(
        sample(&metrics, accepted, &["api=\"native\""]),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            rejected,
            &["api=\"native\"", "reason=\"too_large\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            rejected,
            &["api=\"native\"", "reason=\"missing_field\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "tributary_collector_requests_total",
            &["api=\"native\"", "status=\"200\""]
        ),
        Some(2.0),
        "{metrics}"
    );

    let script = server.get("/t.js").expect(200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("application/javascript")
    );
    assert!(script.text.contains("sendBeacon"), "{}", script.text);

    let openapi = server.get("/openapi.json").expect(200).json();
    assert!(openapi["openapi"].is_string(), "{openapi}");
    // One document for every API the server answers, not only the collector's.
    for path in ["/v1/events", "/v1/query", "/v1/schemas"] {
        assert!(openapi["paths"][path].is_object(), "{path}: {openapi}");
    }
    server.stop();
}

#[test]
fn key_created_while_serving_works_without_a_restart() {
    let server = Setup::new().start();
    let body = json!([event("e-hot", "s")]);
    server
        .post_json("/v1/events", "trb_not_yet_created", &body)
        .expect(401);
    let key = server.create_key(&[]);
    let created = Instant::now();
    let accepted = wait_for(Duration::from_secs(5), || {
        let reply = server.post_json("/v1/events", &key, &body);
        (reply.status == 200).then_some(())
    });
    assert!(
        accepted.is_some(),
        "a key created while serving was not accepted within 5 s (reload interval 1 s); stderr:\n{}",
        server.log()
    );
    eprintln!("new key accepted after {:?}", created.elapsed());
    assert_eq!(stored_ids(&server.stored()), ["e-hot"]);
    server.stop();
}

/// Sends one event with `X-Forwarded-For` and returns the `context.ip` stored for it.
fn stored_ip_with_forwarded_for(server: &Server, key: &str, forwarded_for: &str) -> Value {
    let id = format!("e-xff-{}", forwarded_for.len());
    send(
        server
            .post("/v1/events")
            .bearer_auth(key)
            .header("content-type", "application/json")
            .header("x-forwarded-for", forwarded_for)
            .body(json!([event(&id, "s")]).to_string()),
    )
    .expect(200);
    one_with_id(&server.stored(), &id).event["context"]["ip"].clone()
}

#[test]
fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let (server, key) = server_with_key();
    assert_eq!(
        stored_ip_with_forwarded_for(&server, &key, "203.0.113.7"),
        "127.0.0.1"
    );
    server.stop();
}

#[test]
fn forwarded_for_is_honoured_from_a_trusted_proxy() {
    // A list in an environment variable is written like a TOML array.
    let setup = Setup::new().env("TRIBUTARY_COLLECTOR__TRUSTED_PROXIES", "[\"127.0.0.1\"]");
    let key = setup.key(&[]);
    let server = setup.start();
    assert_eq!(
        stored_ip_with_forwarded_for(&server, &key, "203.0.113.7"),
        "203.0.113.7"
    );
    // The right-most address that is not a trusted proxy is the client.
    assert_eq!(
        stored_ip_with_forwarded_for(&server, &key, "198.51.100.1, 203.0.113.9, 127.0.0.1"),
        "203.0.113.9"
    );
    server.stop();
}
