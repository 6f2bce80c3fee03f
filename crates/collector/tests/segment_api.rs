//! Segment's HTTP Tracking API end to end, without a socket: requests go through the real
//! router into a real embedded log, and the events are read back from every shard to check
//! the Segment → Tributary mapping as it is stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tributary_collector::keys::{self, KeyStore, NewKey, Role};
use tributary_collector::{Collector, CollectorConfig, router};
use tributary_model::Event;
use tributary_stream::{EmbeddedLog, ReadLimits, Stream, StreamConfig};

struct Harness {
    app: Router,
    log: EmbeddedLog,
    key: String,
    _dir: tempfile::TempDir,
}

fn harness_with(config: CollectorConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.json");
    let created = keys::create_key(&keys_path, "acme", Role::Write, &NewKey::default()).unwrap();
    let store = Arc::new(KeyStore::open(&keys_path).unwrap());
    let stream_config = StreamConfig {
        shards: Some(2),
        ..StreamConfig::default()
    };
    let log = EmbeddedLog::open(dir.path().join("stream"), stream_config).unwrap();
    let collector = Collector::new(Arc::new(log.clone()), store, config);
    Harness {
        app: router(Arc::new(collector)),
        log,
        key: created.key,
        _dir: dir,
    }
}

fn harness() -> Harness {
    harness_with(CollectorConfig::default())
}

/// `Authorization: Basic base64(<key>:)`, as Segment's libraries send the write key.
fn basic(key: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Basic {encoded}")
}

fn post(path: &str, auth: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    builder.body(body.into()).unwrap()
}

fn post_json(path: &str, auth: Option<&str>, body: &Value) -> Request<Body> {
    post(path, auth, body.to_string())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("response is not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

/// Every stored event as JSON, from every shard, ordered by event id.
fn stored_json(log: &EmbeddedLog) -> Vec<Value> {
    let mut events = Vec::new();
    for shard in 0..log.shard_count() {
        let batch = log.read_blocking(shard, 0, ReadLimits::default()).unwrap();
        for record in batch.records {
            events.push(serde_json::from_slice::<Value>(&record.value).unwrap());
        }
    }
    events.sort_by(|a, b| a["event_id"].as_str().cmp(&b["event_id"].as_str()));
    events
}

fn stored(log: &EmbeddedLog) -> Vec<Event> {
    stored_json(log)
        .into_iter()
        .map(|json| serde_json::from_value(json).unwrap())
        .collect()
}

fn only(log: &EmbeddedLog) -> Event {
    let mut events = stored(log);
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn accepted(n: usize) -> Value {
    json!({"success": true, "accepted": n, "rejected": []})
}

#[tokio::test]
async fn track_maps_every_segment_field() {
    let h = harness();
    let message = json!({
        "event": "Order Completed",
        "messageId": "m-track",
        "anonymousId": "anon-1",
        "userId": "user-1",
        // The producer's clock: the event happened 2 s before the message was sent.
        "timestamp": "2030-01-01T00:00:08Z",
        "sentAt": "2030-01-01T00:00:10Z",
        "properties": {"order_id": "o-1", "revenue": 42.5},
        "context": {
            "sessionId": "sess-1",
            "page": {"url": "https://shop.example/done?x=1", "path": "/done", "title": "Thanks",
                     "referrer": "https://shop.example/cart", "search": "?x=1"},
            "userAgent": "Mozilla/5.0 (X11)",
            "ip": "203.0.113.7",
            "locale": "en-US",
            "campaign": {"source": "newsletter", "medium": "email", "name": "winter",
                         "term": "boots", "content": "hero"},
            "library": {"name": "analytics-python", "version": "2.3.4"},
            "device": {"type": "desktop"},
            "timezone": "America/New_York"
        },
        "integrations": {"All": true, "Mixpanel": false}
    });
    let request = post_json("/v1/track", Some(&basic(&h.key)), &message);
    assert_eq!(send(&h.app, request).await, (StatusCode::OK, accepted(1)));

    let event = only(&h.log);
    assert_eq!(event.event_id, "m-track");
    assert_eq!(event.tenant_id, "acme");
    assert_eq!(event.event_type, "track:Order Completed");
    assert_eq!(event.event_family, "track");
    assert_eq!(event.anonymous_id, "anon-1");
    assert_eq!(event.user_id.as_deref(), Some("user-1"));
    assert_eq!(event.session_id, "sess-1");
    assert_eq!(
        event.ts,
        event.received_at - 2_000_000,
        "skew-corrected with sentAt"
    );
    assert_eq!(event.properties["order_id"], "o-1");
    assert_eq!(event.properties["revenue"], 42.5);
    let page = event.context.page.as_ref().unwrap();
    assert_eq!(page.url.as_deref(), Some("https://shop.example/done?x=1"));
    assert_eq!(page.path.as_deref(), Some("/done"));
    assert_eq!(page.title.as_deref(), Some("Thanks"));
    assert_eq!(page.referrer.as_deref(), Some("https://shop.example/cart"));
    assert_eq!(
        event.context.user_agent.as_deref(),
        Some("Mozilla/5.0 (X11)")
    );
    assert_eq!(event.context.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(event.context.locale.as_deref(), Some("en-US"));
    let campaign = event.context.campaign.as_ref().unwrap();
    assert_eq!(
        (
            campaign.source.as_deref(),
            campaign.medium.as_deref(),
            campaign.name.as_deref(),
            campaign.term.as_deref(),
            campaign.content.as_deref()
        ),
        (
            Some("newsletter"),
            Some("email"),
            Some("winter"),
            Some("boots"),
            Some("hero")
        )
    );
    let extra = &event.context.extra;
    assert_eq!(extra["library"]["name"], "analytics-python");
    assert_eq!(extra["device"], json!({"type": "desktop"}));
    assert_eq!(extra["timezone"], "America/New_York");
    assert_eq!(
        extra["integrations"],
        json!({"All": true, "Mixpanel": false})
    );
    assert!(!extra.contains_key("page_extra"));
    let page = event.context.page.as_ref().unwrap();
    assert_eq!(
        page.extra["search"], "?x=1",
        "unknown page fields stay on the page"
    );
}

#[tokio::test]
async fn identify_traits_become_properties() {
    let h = harness();
    let message = json!({
        "userId": "user-9", "anonymousId": "anon-9", "messageId": "m-identify",
        "traits": {"email": "ada@example.com", "plan": "pro"},
        "context": {"traits": {"from_context": true}}
    });
    let request = post_json("/v1/identify", Some(&basic(&h.key)), &message);
    assert_eq!(send(&h.app, request).await, (StatusCode::OK, accepted(1)));
    let event = only(&h.log);
    assert_eq!(event.event_type, "identify");
    assert_eq!(event.event_family, "identity");
    assert_eq!(event.user_id.as_deref(), Some("user-9"));
    assert_eq!(event.properties["email"], "ada@example.com");
    assert_eq!(event.properties["plan"], "pro");
    assert_eq!(event.context.extra["traits"], json!({"from_context": true}));
}

#[tokio::test]
async fn page_and_screen_names_become_properties() {
    let h = harness();
    let page = json!({
        "anonymousId": "anon-2", "messageId": "m-page", "name": "Pricing", "category": "Docs",
        "properties": {"path": "/pricing"},
        "context": {"page": {"url": "https://shop.example/pricing", "path": "/pricing"}}
    });
    let request = post_json("/v1/page", Some(&basic(&h.key)), &page);
    assert_eq!(send(&h.app, request).await.0, StatusCode::OK);
    let screen = json!({
        "userId": "user-2", "messageId": "m-screen", "name": "Settings",
        "context": {"app": {"name": "Shop", "version": "3.1"}, "os": {"name": "iOS"}}
    });
    let request = post_json("/v1/screen", Some(&basic(&h.key)), &screen);
    assert_eq!(send(&h.app, request).await.0, StatusCode::OK);

    let events = stored(&h.log);
    let [page, screen] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(page.event_type, "page");
    assert_eq!(page.event_family, "page");
    assert_eq!(page.properties["name"], "Pricing");
    assert_eq!(page.properties["category"], "Docs");
    assert_eq!(page.properties["path"], "/pricing");
    assert_eq!(
        page.context.page.as_ref().unwrap().url.as_deref(),
        Some("https://shop.example/pricing")
    );
    assert_eq!(screen.event_type, "screen");
    assert_eq!(screen.event_family, "page");
    assert_eq!(screen.properties["name"], "Settings");
    assert_eq!(screen.context.extra["app"]["version"], "3.1");
    assert_eq!(screen.context.extra["os"]["name"], "iOS");
}

#[tokio::test]
async fn group_and_alias_keep_their_ids() {
    let h = harness();
    let group = json!({
        "userId": "user-3", "groupId": "org-1", "messageId": "m-group",
        "traits": {"name": "Initech", "employees": 120}
    });
    let request = post_json("/v1/group", Some(&basic(&h.key)), &group);
    assert_eq!(send(&h.app, request).await.0, StatusCode::OK);
    let alias = json!({"userId": "user-3", "previousId": "anon-3", "messageId": "m-alias"});
    let request = post_json("/v1/alias", Some(&basic(&h.key)), &alias);
    assert_eq!(send(&h.app, request).await.0, StatusCode::OK);

    let events = stored(&h.log);
    let [alias, group] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(group.event_type, "group");
    assert_eq!(group.event_family, "identity");
    assert_eq!(group.properties["group_id"], "org-1");
    assert_eq!(group.properties["name"], "Initech");
    assert_eq!(group.properties["employees"], 120);
    assert_eq!(alias.event_type, "alias");
    assert_eq!(alias.properties["previous_id"], "anon-3");
    assert_eq!(alias.user_id.as_deref(), Some("user-3"));
}

/// What analytics-python posts: `/v1/batch`, `sentAt` and `writeKey` at the top level.
fn python_batch(key: &str) -> Value {
    json!({
        "batch": [
            {"type": "identify", "userId": "u-1", "traits": {"plan": "free"},
             "messageId": "b-0", "timestamp": "2030-01-01T00:00:00+00:00",
             "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
             "integrations": {}},
            {"type": "track", "userId": "u-1", "event": "Signed Up", "messageId": "b-1",
             "properties": {"source": "ad"}, "timestamp": "2030-01-01T00:00:01.500000+00:00",
             "context": {"locale": "fr-FR"}},
            {"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": "b-2"}
        ],
        "sentAt": "2030-01-01T00:00:02+00:00",
        "context": {"locale": "en-GB", "library": {"name": "batch-level"}},
        "writeKey": key
    })
}

#[tokio::test]
async fn batch_with_the_write_key_in_the_body() {
    let h = harness();
    let request = post_json("/v1/batch", None, &python_batch(&h.key));
    assert_eq!(send(&h.app, request).await, (StatusCode::OK, accepted(3)));

    let json = stored_json(&h.log);
    assert!(
        !json.iter().any(|e| e.to_string().contains(&h.key)),
        "the write key is never stored"
    );
    let events = stored(&h.log);
    let [identify, track, page] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(identify.event_type, "identify");
    assert_eq!(identify.properties["plan"], "free");
    assert_eq!(
        identify.context.extra["library"]["name"], "analytics-python",
        "the message's context wins over the batch's"
    );
    assert!(!identify.context.extra.contains_key("integrations"));
    assert_eq!(identify.context.locale.as_deref(), Some("en-GB"));
    assert_eq!(identify.ts, identify.received_at - 2_000_000);
    assert_eq!(track.event_type, "track:Signed Up");
    assert_eq!(track.context.locale.as_deref(), Some("fr-FR"));
    assert_eq!(track.ts, track.received_at - 500_000);
    assert_eq!(page.event_type, "page");
    assert_eq!(page.anonymous_id, "a-1");
    assert_eq!(page.context.extra["library"]["name"], "batch-level");
    assert_eq!(page.ts, page.received_at, "no timestamp: received time");
}

#[tokio::test]
async fn gzipped_batch() {
    let h = harness();
    let body = gzip(python_batch(&h.key).to_string().as_bytes());
    let mut request = post("/v1/batch", Some(&basic(&h.key)), body);
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    assert_eq!(send(&h.app, request).await, (StatusCode::OK, accepted(3)));
    assert_eq!(stored(&h.log).len(), 3);
}

/// analytics.js posts to `/v1/t`, `/v1/p`, … and `/v1/b` with a `text/plain` body and the
/// write key in it (and in every message).
#[tokio::test]
async fn analytics_js_paths_and_text_plain_bodies() {
    let h = harness();
    let track = json!({
        "type": "track", "event": "Clicked", "anonymousId": "a-js", "messageId": "js-0",
        "writeKey": h.key, "sentAt": "2030-01-01T00:00:00.000Z",
        "timestamp": "2030-01-01T00:00:00.000Z",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": []}
    });
    let mut request = post_json("/v1/t", None, &track);
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/plain;charset=UTF-8".parse().unwrap(),
    );
    assert_eq!(send(&h.app, request).await, (StatusCode::OK, accepted(1)));
    let batch = json!({
        "writeKey": h.key,
        "batch": [{"type": "page", "anonymousId": "a-js", "messageId": "js-1", "writeKey": h.key}],
        "sentAt": "2030-01-01T00:00:00.000Z"
    });
    let request = post_json("/v1/b", None, &batch);
    assert_eq!(send(&h.app, request).await, (StatusCode::OK, accepted(1)));

    let events = stored(&h.log);
    let [track, page] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(track.event_type, "track:Clicked");
    assert_eq!(
        track.context.extra["_metadata"]["bundled"],
        json!(["Segment.io"])
    );
    assert!(!track.context.extra.contains_key("writeKey"));
    assert_eq!(page.event_type, "page");
}

#[tokio::test]
async fn bad_or_missing_keys_are_401() {
    let h = harness();
    let message = json!({"event": "x", "userId": "u"});
    for request in [
        post_json("/v1/track", Some(&basic("trb_not_a_key")), &message),
        post_json("/v1/track", None, &message),
        post_json(
            "/v1/batch",
            None,
            &json!({"writeKey": "trb_not_a_key", "batch": [{"type": "track", "event": "x",
                                                           "userId": "u"}]}),
        ),
    ] {
        let response = h.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    assert!(stored(&h.log).is_empty());
}

#[tokio::test]
async fn partial_success_lists_rejected_messages() {
    let h = harness();
    let batch = json!({"batch": [
        {"type": "track", "event": "Good", "userId": "u", "messageId": "ok"},
        {"type": "track", "userId": "u"},
        {"type": "page", "name": "Nobody"},
        {"type": "purchase", "userId": "u"},
        {"event": "untyped", "userId": "u"},
        {"type": "track", "event": "x", "userId": "u", "writeKey": "trb_someone_else"},
        "not an object"
    ]});
    let request = post_json("/v1/batch", Some(&basic(&h.key)), &batch);
    let (status, body) = send(&h.app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["accepted"], 1);
    let rejected: Vec<(u64, &str, Option<&str>)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap(),
                r["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "missing_field", Some("event")),
            (2, "missing_field", Some("anonymousId")),
            (3, "invalid", Some("type")),
            (4, "missing_field", Some("type")),
            (5, "invalid", Some("writeKey")),
            (6, "invalid", None),
        ]
    );
    let event = only(&h.log);
    assert_eq!(event.event_id, "ok");
}

#[tokio::test]
async fn all_rejected_is_400_with_reasons() {
    let h = harness();
    let request = post_json(
        "/v1/track",
        Some(&basic(&h.key)),
        &json!({"anonymousId": "a"}),
    );
    let (status, body) = send(&h.app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "all_rejected");
    assert_eq!(body["rejected"][0]["field"], "event");
    assert!(stored(&h.log).is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let h = harness();
    let auth = basic(&h.key);
    let (status, body) = send(&h.app, post("/v1/batch", Some(&auth), "{\"batch\": [")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, body) = send(&h.app, post("/v1/batch", Some(&auth), "{\"batch\": 3}")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (status, _) = send(&h.app, post("/v1/batch", Some(&auth), "{\"batch\": []}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&h.app, post("/v1/track", Some(&auth), "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batch_over_the_message_limit_is_413() {
    let h = harness_with(CollectorConfig {
        max_events_per_batch: 2,
        ..CollectorConfig::default()
    });
    let item = json!({"type": "track", "event": "x", "userId": "u"});
    let batch = json!({"batch": [item, item, item]});
    let request = post_json("/v1/batch", Some(&basic(&h.key)), &batch);
    let (status, body) = send(&h.app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["limit"], "max_events_per_batch");
    assert!(stored(&h.log).is_empty());
}

#[tokio::test]
async fn oversized_message_is_rejected_by_the_shared_limits() {
    let h = harness_with(CollectorConfig {
        max_event_bytes: 200,
        ..CollectorConfig::default()
    });
    let batch = json!({"batch": [
        {"type": "track", "event": "x", "userId": "u"},
        {"type": "track", "event": "x", "userId": "u", "properties": {"blob": "y".repeat(300)}}
    ]});
    let request = post_json("/v1/batch", Some(&basic(&h.key)), &batch);
    let (status, body) = send(&h.app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["reason"], "too_large");

    // A batch-level context is copied into every message: it must fit the limits too.
    let batch = json!({
        "batch": [{"type": "track", "event": "x", "userId": "u"}],
        "context": {"blob": "y".repeat(300)}
    });
    let request = post_json("/v1/batch", Some(&basic(&h.key)), &batch);
    let (status, body) = send(&h.app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_event_bytes"),
        "{body}"
    );
    assert_eq!(stored(&h.log).len(), 1);
}

#[tokio::test]
async fn retried_messages_without_message_id_get_the_same_event_id() {
    let h = harness();
    let message = json!({"event": "x", "userId": "u", "timestamp": "2026-01-01T00:00:00Z"});
    for _ in 0..2 {
        let request = post_json("/v1/track", Some(&basic(&h.key)), &message);
        assert_eq!(send(&h.app, request).await.0, StatusCode::OK);
    }
    let events = stored(&h.log);
    assert_eq!(events.len(), 2);
    assert!(events[0].event_id.starts_with("evt_"));
    assert_eq!(
        events[0].event_id, events[1].event_id,
        "dedup can drop the retry"
    );
}
