//! `/v1/schemas` through the real router: who may read and add, and every refusal as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tributary_catalog::EmbeddedCatalog;
use tributary_collector::keys::{self, KeyStore, NewKey, Role};
use tributary_pipeline::http::router;

struct Api {
    router: Router,
    admin: String,
    read: String,
    write: String,
    _dir: tempfile::TempDir,
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.json");
    let key = |role| {
        keys::create_key(&keys_path, "acme", role, &NewKey::default())
            .unwrap()
            .key
    };
    let (admin, read, write) = (key(Role::Admin), key(Role::Read), key(Role::Write));
    let keys = Arc::new(KeyStore::open(&keys_path).unwrap());
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path().join("catalog.db")).unwrap());
    Api {
        router: router(catalog, keys, None),
        admin,
        read,
        write,
        _dir: dir,
    }
}

async fn call(api: &Api, method: &str, key: Option<&str>, body: Body) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri("/v1/schemas");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = api
        .router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/json",
        "{method} answered {status} without JSON"
    );
    if status == StatusCode::UNAUTHORIZED {
        // A 401 says how to authenticate (RFC 9110 §11.6.1).
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"tributary\""
        );
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn order_request() -> Body {
    Body::from(
        json!({
            "event_type": "track:Order Completed",
            "schema": {"type": "object", "required": ["order_id"]}
        })
        .to_string(),
    )
}

#[tokio::test]
async fn an_admin_key_adds_and_a_read_key_lists() {
    let api = api();
    let (status, added) = call(&api, "POST", Some(&api.admin), order_request()).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["version"], 1);
    let (status, listed) = call(&api, "GET", Some(&api.read), Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["schemas"][0]["event_type"], "track:Order Completed");
}

#[tokio::test]
async fn keys_without_the_role_are_refused() {
    let api = api();
    let (status, body) = call(&api, "POST", None, order_request()).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    let (status, body) = call(&api, "POST", Some(&api.read), order_request()).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, body) = call(&api, "GET", Some(&api.write), Body::empty()).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, body) = call(&api, "GET", Some("trb_unknown"), Body::empty()).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let api = api();
    let (status, body) = call(&api, "POST", Some(&api.admin), Body::from("{")).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_json"))
    );
    let not_a_schema = json!({"event_type": "page", "schema": {"type": 12}}).to_string();
    let (status, body) = call(&api, "POST", Some(&api.admin), Body::from(not_a_schema)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_schema"))
    );
    // Over the 1 MiB limit: JSON like every other refusal, not the framework's plain text.
    let huge = json!({"event_type": "page", "schema": {"description": "x".repeat(1 << 20)}});
    let (status, body) = call(&api, "POST", Some(&api.admin), Body::from(huge.to_string())).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("too_large"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("1048576"),
        "{body}"
    );
}
