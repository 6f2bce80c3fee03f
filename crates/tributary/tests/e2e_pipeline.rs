//! The pipeline in a real `tributary serve`: a schema added over HTTP (admin key) applies to the
//! next events at once; an event it rejects lands in the `quarantine` table with its reasons, a
//! valid one in `events`, enriched and with its e-mail tokenized; an incompatible version is
//! refused with what breaks; a retried batch is counted once; the CLI sees the same registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::{Setup, wait_for};

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["order_id", "revenue"],
        "properties": {"order_id": {"type": "string"}, "revenue": {"type": "number"}}
    })
}

#[test]
fn schemas_over_http_quarantine_enrichment_privacy_and_dedup() {
    let setup = Setup::new()
        .env("TRIBUTARY_LAKE__FLUSH_INTERVAL", "200ms")
        .env("TRIBUTARY_STREAM__DURABILITY", "none");
    let key = setup.key(&[]);
    let admin = common::create_key_with(setup.root(), &setup.data(), common::TENANT, "admin", &[]);
    let server = setup.start();

    // A write key may not add schemas; an admin key may.
    let request = json!({"event_type": "track:Order Completed", "schema": order_schema()});
    server.post_json("/v1/schemas", &key, &request).expect(403);
    let added = server
        .post_json("/v1/schemas", &admin, &request)
        .expect(201)
        .json();
    assert_eq!(added["version"], 1);
    // The same schema again changes nothing.
    server
        .post_json("/v1/schemas", &admin, &request)
        .expect(200);
    // A tighter version is refused, naming what breaks.
    let mut tighter = order_schema();
    tighter["required"] = json!(["order_id", "revenue", "currency"]);
    let refused = server
        .post_json(
            "/v1/schemas",
            &admin,
            &json!({"event_type": "track:Order Completed", "schema": tighter}),
        )
        .expect(409)
        .json();
    assert_eq!(refused["error"], "incompatible");
    assert!(
        refused["breaks"][0].as_str().unwrap().contains("currency"),
        "{refused}"
    );

    let batch = json!([
        {"event_id": "good-1", "anonymous_id": "a-1", "event_type": "track:Order Completed",
         "properties": {"order_id": "o-1", "revenue": 10.0},
         "context": {"user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                     "page": {"url": "https://shop.example.com/cart", "referrer": "https://t.co/xyz"}}},
        {"event_id": "bad-1", "anonymous_id": "a-1", "event_type": "track:Order Completed",
         "properties": {"order_id": "o-2", "revenue": "ten"}},
        {"event_id": "who-1", "anonymous_id": "a-1", "event_type": "identify",
         "properties": {"email": "private.person@example.net"}}
    ]);
    server.post_json("/v1/events", &key, &batch).expect(200);
    // The producer retried the whole batch.
    server.post_json("/v1/events", &key, &batch).expect(200);

    let query = |sql: &str| {
        server
            .post_json("/v1/query", &admin, &json!({ "sql": sql }))
            .expect(200)
            .json()
    };
    let counted = wait_for(Duration::from_secs(15), || {
        let events = query("SELECT count(*) AS n FROM events")[0]["n"]
            .as_u64()
            .unwrap();
        let quarantined = query("SELECT count(*) AS n FROM quarantine")[0]["n"]
            .as_u64()
            .unwrap();
        let raw = query("SELECT count(*) AS n FROM raw_events")[0]["n"]
            .as_u64()
            .unwrap();
        (raw == 6 && events + quarantined >= 3).then_some((events, quarantined))
    });
    let (events, quarantined) =
        counted.unwrap_or_else(|| panic!("the lake did not fill:\n{}", server.log()));
    assert_eq!(events, 2, "good-1 and who-1, once each despite the retry");
    assert!(
        quarantined >= 1,
        "bad-1 is quarantined (its retry too: dedup follows validation)"
    );

    let reasons = query("SELECT event_id, reasons FROM quarantine LIMIT 1");
    assert_eq!(reasons[0]["event_id"], "bad-1");
    assert!(
        reasons[0]["reasons"]
            .to_string()
            .contains("/properties/revenue"),
        "{reasons}"
    );

    let enriched = query(
        "SELECT enriched.device_type AS device, enriched.referrer_class AS class, \
         enriched.page_host AS host FROM events WHERE event_id = 'good-1'",
    );
    assert_eq!(
        enriched,
        json!([{"device": "mobile", "class": "social", "host": "shop.example.com"}])
    );
    let email = query("SELECT properties['email'] AS email FROM events WHERE event_id = 'who-1'");
    let token = email[0]["email"].as_str().unwrap();
    assert!(token.starts_with("tok_k1_"), "{email}");

    // The CLI reads the same registry.
    let output = common::tributary(server.root())
        .args(["schemas", "list", "--json", "--data"])
        .arg(server.data())
        .output()
        .unwrap();
    common::assert_exit(&output, 0);
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["schemas"].as_array().unwrap().len(), 1);
    server.stop();
}
