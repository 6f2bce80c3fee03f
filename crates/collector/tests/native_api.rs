//! The native API's envelope handling through the real router into a real embedded log: what
//! is kept as sent, what the edge adds, and which malformed members are refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tributary_collector::keys::{self, KeyStore, NewKey, Role};
use tributary_collector::{Collector, CollectorConfig, router};
use tributary_model::Event;
use tributary_stream::{EmbeddedLog, ReadLimits, StreamConfig};

struct Harness {
    app: Router,
    log: EmbeddedLog,
    key: String,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    harness_with(CollectorConfig::default())
}

fn harness_with(config: CollectorConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.json");
    let created = keys::create_key(&keys_path, "acme", Role::Write, &NewKey::default()).unwrap();
    let store = Arc::new(KeyStore::open(&keys_path).unwrap());
    let log = EmbeddedLog::open(
        dir.path().join("stream"),
        StreamConfig {
            shards: Some(1),
            ..StreamConfig::default()
        },
    )
    .unwrap();
    let collector = Collector::new(Arc::new(log.clone()), store, config);
    Harness {
        app: router(Arc::new(collector)),
        log,
        key: created.key,
        _dir: dir,
    }
}

async fn post(h: &Harness, body: &Value) -> (StatusCode, Value) {
    post_text(h, body.to_string()).await
}

/// [`post`] of JSON text as written, for what a `Value` cannot hold.
async fn post_text(h: &Harness, body: String) -> (StatusCode, Value) {
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.key))
        .header(header::USER_AGENT, "test-agent/1")
        .body(Body::from(body))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn stored(log: &EmbeddedLog) -> Vec<Event> {
    log.read_blocking(0, 0, ReadLimits::default())
        .unwrap()
        .records
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect()
}

#[tokio::test]
async fn context_and_properties_are_kept_as_sent_with_the_edge_fields_added() {
    let h = harness();
    let event = json!({
        "event_type": "track:Product Viewed", "anonymous_id": "a1", "session_id": "s1",
        "ts": 1_795_000_000_000_000_i64,
        "context": {"locale": "de-DE", "page": {"url": "https://x/", "search": "?q=1"},
                    "app": {"build": 7}, "campaign": {"source": "news", "id": "c-1"}},
        "properties": {"item_id": "sku-1", "price": 9.5, "tags": ["a", "b"], "nested": {"x": null}}
    });
    let (status, body) = post(&h, &json!([event])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = stored(&h.log);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.tenant_id, "acme");
    assert_eq!(e.ts, 1_795_000_000_000_000);
    assert_eq!(Value::Object(e.properties.clone()), event["properties"]);
    assert_eq!(e.context.locale.as_deref(), Some("de-DE"));
    assert_eq!(
        e.context.user_agent.as_deref(),
        Some("test-agent/1"),
        "added by the edge"
    );
    let page = e.context.page.as_ref().unwrap();
    assert_eq!(page.url.as_deref(), Some("https://x/"));
    assert_eq!(page.extra["search"], "?q=1");
    assert_eq!(e.context.extra["app"]["build"], 7);
    assert_eq!(e.context.campaign.as_ref().unwrap().extra["id"], "c-1");
}

#[tokio::test]
async fn a_producer_user_agent_is_not_overwritten_or_duplicated() {
    let h = harness();
    let event = json!({"event_type": "page", "anonymous_id": "a1",
                       "context": {"user_agent": "browser/2", "ip": "198.51.100.1"}});
    let (status, _) = post(&h, &json!([event])).await;
    assert_eq!(status, StatusCode::OK);
    let raw = h
        .log
        .read_blocking(0, 0, ReadLimits::default())
        .unwrap()
        .records[0]
        .value
        .clone();
    let text = String::from_utf8(raw.to_vec()).unwrap();
    assert_eq!(text.matches("user_agent").count(), 1, "{text}");
    assert_eq!(text.matches("\"ip\"").count(), 1, "{text}");
    let e = &stored(&h.log)[0];
    assert_eq!(e.context.user_agent.as_deref(), Some("browser/2"));
    assert_eq!(e.context.ip.as_deref(), Some("198.51.100.1"));
}

/// Regression: a context with `"ip": null` got a second `ip` member added by the edge, and the
/// stored event no longer read back (duplicate field).
#[tokio::test]
async fn a_null_ip_or_user_agent_is_kept_and_not_duplicated() {
    let h = harness();
    let event = json!({"event_type": "page", "anonymous_id": "a1",
                       "context": {"ip": null, "user_agent": null, "locale": "en"}});
    let (status, body) = post(&h, &json!([event])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let e = &stored(&h.log)[0];
    assert_eq!(e.context.ip, None);
    assert_eq!(e.context.user_agent, None);
    assert_eq!(e.context.locale.as_deref(), Some("en"));
}

/// Regression: a lone surrogate escape passed the edge inside the raw `context`/`properties`,
/// was acknowledged, and then no consumer could decode the event (it reached only the raw
/// archive). It is refused by name now; a proper pair is kept.
#[tokio::test]
async fn lone_surrogate_escapes_are_refused_by_name_and_pairs_are_kept() {
    let h = harness();
    let good = r#"{"event_type":"page","anonymous_id":"a1","properties":{"face":"\ud83d\ude00"}}"#;
    let cases = [
        (
            r#"{"event_type":"page","anonymous_id":"a","properties":{"x":"\ud800"}}"#,
            "properties.x",
        ),
        (
            r#"{"event_type":"page","anonymous_id":"a","context":{"page":{"title":"a\udc00"}}}"#,
            "context.page.title",
        ),
    ];
    for (bad, field) in cases {
        let (status, body) = post_text(&h, format!("[{good},{bad}]")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rejected = &body["rejected"][0];
        assert_eq!(rejected["index"], 1, "{body}");
        assert_eq!(rejected["reason"], "invalid_json", "{body}");
        assert_eq!(rejected["field"], field, "{body}");
        let message = rejected["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("surrogate"),
            "{body}"
        );
    }
    // Every stored record decodes as an event, the pair as the character it stands for.
    let stored = stored(&h.log);
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].properties["face"], "\u{1F600}");
}

#[tokio::test]
async fn malformed_members_are_refused_by_name_and_index() {
    let h = harness();
    let good = json!({"event_type": "page", "anonymous_id": "a1"});
    let cases = [
        (
            json!({"event_type": "page", "anonymous_id": "a", "context": {"page": {"url": 5}}}),
            "context.page.url",
        ),
        (
            json!({"event_type": "page", "anonymous_id": "a", "context": "home"}),
            "context",
        ),
        (
            json!({"event_type": "page", "anonymous_id": "a", "properties": [1, 2]}),
            "properties",
        ),
        (
            json!({"event_type": "page", "anonymous_id": "a", "ts": "yesterday"}),
            "ts",
        ),
        (
            json!({"event_type": "page", "anonymous_id": "a", "sent_at": true}),
            "sent_at",
        ),
        (
            json!({"event_type": "page", "anonymous_id": "a", "timestamp": 1}),
            "timestamp",
        ),
    ];
    for (bad, field) in cases {
        let (status, body) = post(&h, &json!([good, bad])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rejected = &body["rejected"][0];
        assert_eq!(rejected["index"], 1, "{body}");
        assert_eq!(rejected["field"], field, "{body}");
        assert!(
            rejected["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
    assert_eq!(
        stored(&h.log).len(),
        6,
        "every good event was stored once per request"
    );
}

/// A request without any key is refused before its body is read (a huge body gets 401, not a
/// read and a 413), and an oversize User-Agent — copied into every event — is refused by name.
#[tokio::test]
async fn no_key_is_refused_unread_and_an_oversize_user_agent_by_name() {
    let h = harness();
    let huge = vec![b' '; CollectorConfig::default().max_body_bytes + 1];
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(huge))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let limit = CollectorConfig::default().max_string_bytes;
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.key))
        .header(header::USER_AGENT, "u".repeat(limit + 1))
        .body(Body::from(
            json!([{"event_type": "page", "anonymous_id": "a1"}]).to_string(),
        ))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["limit"], "max_string_bytes", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("User-Agent"),
        "{body}"
    );
    assert!(stored(&h.log).is_empty(), "nothing was stored");
}

/// Posts a body that arrives as `chunks`, each either bytes or a failure of the connection,
/// and then (when `stall`) never ends.
async fn post_stream(
    h: &Harness,
    chunks: Vec<Result<&'static str, std::io::Error>>,
    stall: bool,
) -> (StatusCode, Value) {
    use futures::StreamExt;
    let chunks = futures::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| chunk.map(|text| bytes::Bytes::from_static(text.as_bytes()))),
    );
    let body = if stall {
        Body::from_stream(chunks.chain(futures::stream::pending()))
    } else {
        Body::from_stream(chunks)
    };
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.key))
        .header(header::USER_AGENT, "test-agent/1")
        .body(body)
        .unwrap();
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        h.app.clone().oneshot(request),
    )
    .await
    .expect("the collector waited on the body past its deadline")
    .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_at_the_deadline() {
    let h = harness_with(CollectorConfig {
        body_read_timeout: std::time::Duration::from_millis(200),
        ..CollectorConfig::default()
    });
    let started = std::time::Instant::now();
    let (status, body) = post_stream(&h, vec![Ok(r#"[{"event_type":"page","#)], true).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(body["error"], "request_timeout", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("200ms (body_read_timeout)"), "{message}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert!(stored(&h.log).is_empty());

    // A whole body sent in pieces is read as before.
    let (status, body) = post_stream(
        &h,
        vec![
            Ok(r#"[{"event_type":"page","#),
            Ok(r#""anonymous_id":"a1"}]"#),
        ],
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored(&h.log).len(), 1);
}

#[tokio::test]
async fn a_connection_that_fails_mid_body_is_a_bad_request_not_too_large() {
    let h = harness();
    let (status, body) = post_stream(
        &h,
        vec![
            Ok(r#"[{"event_type":"page","#),
            Err(std::io::Error::other("connection reset")),
        ],
        false,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_request", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("could not read the request body"),
        "{message}"
    );
}
