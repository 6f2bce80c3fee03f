//! `POST /v1/query` through the router, with a real key file, without a socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tributary_collector::keys::{KeyStore, NewKey, Role, create_key};
use tributary_query::QueryConfig;

struct Api {
    router: axum::Router,
    read: String,
    admin: String,
    write: String,
    _lake: common::Lake,
}

async fn api_with(config: QueryConfig) -> Api {
    let lake = common::lake_with(config).await;
    let keys_path = lake.dir.path().join("keys.json");
    let read = create_key(&keys_path, "acme", Role::Read, &NewKey::default()).unwrap();
    let admin = create_key(&keys_path, "ops", Role::Admin, &NewKey::default()).unwrap();
    let write = create_key(&keys_path, "acme", Role::Write, &NewKey::default()).unwrap();
    let keys = Arc::new(KeyStore::open(&keys_path).unwrap());
    let router = tributary_query::router(Arc::new(lake.engine.clone()), keys);
    Api {
        router,
        read: read.key,
        admin: admin.key,
        write: write.key,
        _lake: lake,
    }
}

async fn api() -> Api {
    api_with(QueryConfig::default()).await
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

async fn send(api: &Api, request: Request<Body>) -> Answer {
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn post(key: Option<&str>, accept: Option<&str>, body: serde_json::Value) -> Request<Body> {
    let mut request = Request::post("/v1/query").header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

fn sql(text: &str) -> serde_json::Value {
    serde_json::json!({ "sql": text })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_key_gets_its_tenants_rows_as_json_objects() {
    let api = api().await;
    let answer = send(
        &api,
        post(
            Some(&api.read),
            None,
            sql("SELECT event_id, tenant_id, ts, user_id, revenue, properties, context['page'] AS page \
                 FROM events WHERE event_family = 'track' ORDER BY event_id"),
        ),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("x-tributary-rows"), "3");
    assert_eq!(answer.header("x-tributary-truncated"), "false");
    assert_eq!(answer.header("x-tributary-files-scanned"), "2");
    let rows = answer.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|row| row["tenant_id"] == "acme"));
    let first = &rows[0];
    assert_eq!(first["event_id"], "a4");
    assert_eq!(first["ts"], "2026-11-23T10:20:00Z");
    assert_eq!(
        first["user_id"],
        serde_json::Value::Null,
        "nulls are explicit"
    );
    assert_eq!(first["revenue"], serde_json::Value::Null);
    assert_eq!(first["properties"]["item_id"], "sku-1");
    assert_eq!(first["page"]["path"], "/shoes/red");
    assert_eq!(rows[1]["revenue"], 59.9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_sees_every_tenant() {
    let api = api().await;
    let answer = send(
        &api,
        post(
            Some(&api.admin),
            None,
            sql("SELECT tenant_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        serde_json::json!([
            {"tenant_id": "acme", "n": 8},
            {"tenant_id": "globex", "n": 4},
            {"tenant_id": "initech", "n": 3}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_ndjson_and_arrow_are_chosen_by_accept() {
    let api = api().await;
    let query = sql(
        "SELECT event_id, ts, properties FROM events WHERE event_family = 'track' ORDER BY event_id",
    );

    let csv = send(&api, post(Some(&api.read), Some("text/csv"), query.clone())).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.header("content-type").starts_with("text/csv"));
    let text = String::from_utf8(csv.body.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "event_id,ts,properties");
    assert_eq!(
        lines[1],
        r#"a4,2026-11-23T10:20:00Z,"{""item_id"":""sku-1"",""color"":""red""}""#
    );
    assert_eq!(lines.len(), 4);

    let ndjson = send(
        &api,
        post(Some(&api.read), Some("application/x-ndjson"), query.clone()),
    )
    .await;
    assert_eq!(ndjson.status, StatusCode::OK);
    let text = String::from_utf8(ndjson.body.clone()).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["event_id"], "a8");

    let arrow = send(
        &api,
        post(
            Some(&api.read),
            Some("application/vnd.apache.arrow.stream"),
            query.clone(),
        ),
    )
    .await;
    assert_eq!(arrow.status, StatusCode::OK);
    assert_eq!(
        arrow.header("content-type"),
        "application/vnd.apache.arrow.stream"
    );
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body.clone()), None)
            .unwrap();
    let schema = reader.schema();
    let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
    assert_eq!(schema.field(0).name(), "event_id");

    let empty_csv = send(
        &api,
        post(
            Some(&api.read),
            Some("text/csv"),
            sql("SELECT event_id FROM events WHERE false"),
        ),
    )
    .await;
    assert_eq!(String::from_utf8(empty_csv.body).unwrap(), "event_id\n");
    let empty_json = send(
        &api,
        post(
            Some(&api.read),
            None,
            sql("SELECT event_id FROM events WHERE false"),
        ),
    )
    .await;
    assert_eq!(empty_json.json(), serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_decide_who_may_query() {
    let api = api().await;
    let query = sql("SELECT count(*) FROM events");
    let missing = send(&api, post(None, None, query.clone())).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.error_code(), "unauthorized");
    assert!(missing.headers.contains_key(header::WWW_AUTHENTICATE));
    let unknown = send(&api, post(Some("trb_nope"), None, query.clone())).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let write = send(&api, post(Some(&api.write), None, query.clone())).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.error_code(), "forbidden");
}

/// The deepest statement the limit lets through runs on a thread with the server's worker stack
/// (8 MiB, `tributary/src/runtime.rs`), even in a debug build, whose frames are several times
/// larger than a release build's.
#[test]
fn a_chain_at_the_operator_limit_runs_on_a_server_sized_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let api = api().await;
                let at_limit = format!("SELECT 1{} AS n", " + 1".repeat(500));
                let answer = send(&api, post(Some(&api.read), None, sql(&at_limit))).await;
                assert_eq!(answer.status, StatusCode::OK);
                assert_eq!(answer.json()[0]["n"], 501);
            });
        })
        .unwrap();
    worker.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_answered_precisely() {
    let api = api().await;
    let bad_sql = send(
        &api,
        post(Some(&api.read), None, sql("SELECT nope FROM events")),
    )
    .await;
    assert_eq!(bad_sql.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_sql.error_code(), "invalid_sql");
    assert!(bad_sql.json()["message"].as_str().unwrap().contains("nope"));

    let unknown_table = send(&api, post(Some(&api.read), None, sql("SELECT * FROM nope"))).await;
    assert_eq!(unknown_table.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown_table.json()["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );

    let ddl = send(
        &api,
        post(
            Some(&api.admin),
            None,
            sql("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/'"),
        ),
    )
    .await;
    assert_eq!(ddl.status, StatusCode::BAD_REQUEST);
    assert_eq!(ddl.error_code(), "not_allowed");

    // A chain this long used to reach the planner and overflow its stack, aborting the server.
    let deep = format!("SELECT 1{} FROM events", " + 1".repeat(20_000));
    let deep = send(&api, post(Some(&api.read), None, sql(&deep))).await;
    assert_eq!(deep.status, StatusCode::BAD_REQUEST);
    assert_eq!(deep.error_code(), "too_complex");
    assert!(
        deep.json()["message"]
            .as_str()
            .unwrap()
            .contains("20000 operators")
    );

    let failing = send(
        &api,
        post(Some(&api.read), None, sql("SELECT CAST('x' AS INT)")),
    )
    .await;
    assert_eq!(failing.status, StatusCode::BAD_REQUEST);
    assert_eq!(failing.error_code(), "query_failed");

    let html = send(
        &api,
        post(Some(&api.read), Some("text/html"), sql("SELECT 1")),
    )
    .await;
    assert_eq!(html.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(html.error_code(), "not_acceptable");

    let form = Request::post("/v1/query")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.read))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("sql=SELECT+1"))
        .unwrap();
    let form = send(&api, form).await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let not_json = Request::post("/v1/query")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.read))
        .body(Body::from("SELECT 1"))
        .unwrap();
    let not_json = send(&api, not_json).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.error_code(), "invalid_json");

    let unknown_field = send(
        &api,
        post(
            Some(&api.read),
            None,
            serde_json::json!({"query": "SELECT 1"}),
        ),
    )
    .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);

    let huge = format!(
        "SELECT '{}'",
        "x".repeat(tributary_query::http::MAX_BODY_BYTES)
    );
    let huge = send(&api, post(Some(&api.read), None, sql(&huge))).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.error_code(), "too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_limit_are_dropped_and_flagged() {
    let api = api_with(QueryConfig {
        max_rows: 5,
        ..QueryConfig::default()
    })
    .await;
    let all = send(
        &api,
        post(
            Some(&api.admin),
            None,
            sql("SELECT event_id FROM events ORDER BY event_id"),
        ),
    )
    .await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.header("x-tributary-rows"), "5");
    assert_eq!(all.header("x-tributary-truncated"), "true");
    assert_eq!(all.json().as_array().unwrap().len(), 5);

    let fewer = send(
        &api,
        post(
            Some(&api.admin),
            None,
            serde_json::json!({"sql": "SELECT event_id FROM events", "max_rows": 2}),
        ),
    )
    .await;
    assert_eq!(fewer.header("x-tributary-rows"), "2");
    assert_eq!(fewer.header("x-tributary-truncated"), "true");

    let more = send(
        &api,
        post(
            Some(&api.admin),
            None,
            serde_json::json!({"sql": "SELECT event_id FROM events", "max_rows": 100}),
        ),
    )
    .await;
    assert_eq!(
        more.header("x-tributary-rows"),
        "5",
        "a request cannot raise the server's limit"
    );

    let exact = send(
        &api,
        post(Some(&api.read), None, serde_json::json!({"sql": "SELECT event_id FROM events WHERE dt = '2026-11-24'", "max_rows": 3})),
    )
    .await;
    assert_eq!(exact.header("x-tributary-rows"), "3");
    assert_eq!(exact.header("x-tributary-truncated"), "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_timeout_is_cancelled_with_504() {
    let api = api_with(QueryConfig {
        timeout: Duration::from_millis(200),
        ..QueryConfig::default()
    })
    .await;
    let slow = send(
        &api,
        post(
            Some(&api.read),
            None,
            sql("SELECT count(*) FROM generate_series(1, 100000000000)"),
        ),
    )
    .await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.error_code(), "timeout");
}

/// With one turn, a second query waits until the running one ends (here: is cancelled at its
/// timeout) and then runs; nothing is refused while turns come within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_concurrency_limit_waits_for_a_turn() {
    let timeout = Duration::from_millis(400);
    let api = Arc::new(
        api_with(QueryConfig {
            timeout,
            max_concurrent_queries: 1,
            ..QueryConfig::default()
        })
        .await,
    );
    let slow_api = Arc::clone(&api);
    let started = std::time::Instant::now();
    let slow = tokio::spawn(async move {
        let api = &slow_api;
        send(
            api,
            post(
                Some(&api.read),
                None,
                sql("SELECT count(*) FROM generate_series(1, 100000000000)"),
            ),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiting = send(&api, post(Some(&api.read), None, sql("SELECT 1 AS n"))).await;
    assert_eq!(waiting.status, StatusCode::OK);
    assert!(
        started.elapsed() >= timeout,
        "answered after {:?}, before the running query gave up its turn",
        started.elapsed()
    );
    assert_eq!(slow.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
}
