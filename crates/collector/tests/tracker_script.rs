//! `GET /t.js` through the real router, and the tracker's payload shape through the native
//! endpoint it posts to.
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
use tributary_stream::{EmbeddedLog, ReadLimits, Stream, StreamConfig};

fn setup() -> (Router, EmbeddedLog, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.json");
    let created = keys::create_key(&keys_path, "acme", Role::Write, &NewKey::default()).unwrap();
    let store = Arc::new(KeyStore::open(&keys_path).unwrap());
    let config = StreamConfig {
        shards: Some(1),
        ..StreamConfig::default()
    };
    let log = EmbeddedLog::open(dir.path().join("stream"), config).unwrap();
    let collector = Collector::new(Arc::new(log.clone()), store, CollectorConfig::default());
    (router(Arc::new(collector)), log, created.key, dir)
}

#[tokio::test]
async fn tracker_is_served() {
    let (app, _log, _key, _dir) = setup();
    let request = Request::get("/t.js").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=300"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let script = std::str::from_utf8(&body).unwrap();
    assert!(script.len() < 5120, "t.js is {} bytes", script.len());
    assert!(!script.contains("import") && !script.contains("require"));
}

/// A batch exactly as t.js builds it (a page view, then `track` after `identify`), sent the way
/// its `sendBeacon` flush sends it: `text/plain`, key in the query.
#[tokio::test]
async fn native_endpoint_accepts_the_trackers_payload() {
    let (app, log, key, _dir) = setup();
    let context = json!({
        "page": {"url": "https://shop.example/p?utm_source=news&utm_campaign=fall",
                 "path": "/p", "title": "Product"},
        "locale": "en-US",
        "campaign": {"source": "news", "name": "fall"},
        "library": {"name": "tributary.js", "version": "1"}
    });
    let batch = json!([
        {"event_id": "4f6c1b0e-0b6c-4b8e-9f39-6f3c1d2a0001", "event_type": "page",
         "anonymous_id": "89eede4e-b2d4-4877-b918-9f5ffbb4d2f3",
         "session_id": "71f56d76-15a6-40ca-8885-77e7979c77df",
         "ts": "2030-01-01T00:00:00.000Z", "context": context, "properties": {},
         "sent_at": "2030-01-01T00:00:02.000Z"},
        {"event_id": "4f6c1b0e-0b6c-4b8e-9f39-6f3c1d2a0002", "event_type": "track:Added",
         "anonymous_id": "89eede4e-b2d4-4877-b918-9f5ffbb4d2f3",
         "session_id": "71f56d76-15a6-40ca-8885-77e7979c77df",
         "ts": "2030-01-01T00:00:01.000Z", "context": context, "properties": {"sku": "x"},
         "user_id": "u-7", "sent_at": "2030-01-01T00:00:02.000Z"}
    ]);
    let request = Request::post(format!("/v1/events?key={key}"))
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Body::from(batch.to_string()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({"accepted": 2, "rejected": []}));

    let records = log
        .read_blocking(0, 0, ReadLimits::default())
        .unwrap()
        .records;
    assert_eq!(log.shard_count(), 1);
    let events: Vec<Event> = records
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    assert_eq!(events[0].event_type, "page");
    assert_eq!(events[0].ts, events[0].received_at - 2_000_000);
    assert_eq!(events[1].user_id.as_deref(), Some("u-7"));
    assert_eq!(
        events[1].context.campaign.as_ref().unwrap().name.as_deref(),
        Some("fall")
    );
    assert_eq!(events[1].context.extra["library"]["name"], "tributary.js");
}
