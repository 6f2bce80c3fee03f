//! `GET /openapi.json` through the real router: the collector's own document by default, and
//! the merged one a server gives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tributary_collector::keys::KeyStore;
use tributary_collector::{Collector, CollectorConfig, openapi, router};
use tributary_stream::{EmbeddedLog, StreamConfig};

fn collector(dir: &tempfile::TempDir) -> Collector {
    let store = Arc::new(KeyStore::open(dir.path().join("keys.json")).unwrap());
    let config = StreamConfig {
        shards: Some(1),
        ..StreamConfig::default()
    };
    let log = EmbeddedLog::open(dir.path().join("stream"), config).unwrap();
    Collector::new(Arc::new(log), store, CollectorConfig::default())
}

async fn served(collector: Collector) -> Value {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router(Arc::new(collector)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn the_collectors_own_document_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let document = served(collector(&dir)).await;
    let own: Value = serde_json::from_str(openapi::DOCUMENT).unwrap();
    assert_eq!(document, own);
}

#[tokio::test]
async fn the_merged_document_once_given() {
    let dir = tempfile::tempdir().unwrap();
    let part = json!({
        "openapi": "3.0.3",
        "info": {"title": "part", "version": "1"},
        "paths": {"/v1/extra": {"get": {
            "operationId": "getExtra",
            "responses": {"200": {"description": "ok"}}
        }}}
    })
    .to_string();
    let merged = openapi::merge(openapi::DOCUMENT, &[&part]).unwrap();
    let document = served(collector(&dir).with_api_document(merged)).await;
    assert!(
        document["paths"]["/v1/extra"]["get"].is_object(),
        "{document}"
    );
    assert!(document["paths"]["/v1/events"]["post"].is_object());
    assert!(openapi::problems(&document).is_empty());
}
