//! The lake writer with the pipeline in front of the curated lake, against a real embedded
//! log, SQLite catalog and Parquet on disk: invalid and adversarial events go to quarantine
//! with every reason and the shard moves on; producer retries and a killed consumer never
//! double count; no configured PII reaches a curated file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::pretty::pretty_format_batches;
use serde_json::json;
use tokio::sync::watch;
use tributary_lake::LakeConfig;
use tributary_lake::schema::{EVENTS, QUARANTINE, RAW_EVENTS};
use tributary_model::Event;
use tributary_stream::{Record, Stream};

use common::{append, dedup, event, lake, new_writer, pipeline, rows, run_with_pipeline, strings};

/// Every value of every non-time column as text: what a grep of the decoded files sees.
/// (Timestamps are left out: formatting a "UTC" zone needs chrono-tz, and they hold no PII.)
fn text_of(batches: &[RecordBatch]) -> String {
    let texts: Vec<RecordBatch> = batches
        .iter()
        .map(|batch| {
            let keep: Vec<usize> = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| !matches!(f.data_type(), DataType::Timestamp(_, _)))
                .map(|(i, _)| i)
                .collect();
            batch.project(&keep).unwrap()
        })
        .collect();
    pretty_format_batches(&texts).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_adversarial_events_are_quarantined_with_every_reason() {
    let lake = lake();
    let pipeline = pipeline(&lake).await;
    let mut deep = json!("bottom");
    for _ in 0..64 {
        deep = json!({ "nested": deep });
    }
    let events = vec![
        event(
            "ok-1",
            "track:Order Completed",
            json!({"order_id": "o-1", "revenue": 12.5}),
        ),
        // Wrong type and a missing field: both reasons are kept.
        event("bad-1", "track:Order Completed", json!({"revenue": "12"})),
        // A huge string where a number belongs.
        event(
            "bad-2",
            "track:Order Completed",
            json!({"order_id": "o-2", "revenue": "x".repeat(100_000)}),
        ),
        // Deep nesting in an event type without a schema: accepted (default), kept as JSON.
        event("ok-2", "track:Deep", json!({ "tree": deep })),
        event("ok-3", "page", json!({})),
    ];
    append(&lake.log, &events).await;
    // A stream record that is not an event at all (invalid UTF-8): archived raw, not curated.
    lake.log
        .append(vec![Record::new("acme:s-1", vec![0xff, 0xfe, b'{', 0x80])])
        .await
        .unwrap();
    run_with_pipeline(&lake, &pipeline).await;

    let curated = rows(&lake, EVENTS).await;
    let mut ids = strings(&curated, "event_id");
    ids.sort();
    assert_eq!(ids, vec!["ok-1", "ok-2", "ok-3"]);
    let quarantined = rows(&lake, QUARANTINE).await;
    let mut bad = strings(&quarantined, "event_id");
    bad.sort();
    assert_eq!(bad, vec!["bad-1", "bad-2"]);
    let text = text_of(&quarantined);
    for needle in ["/properties/revenue", "required", "type"] {
        assert!(
            text.contains(needle),
            "{needle} in quarantine reasons:\n{}",
            &text[..text.len().min(3000)]
        );
    }
    // The original payload is kept for replay.
    let payloads = strings(&quarantined, "payload");
    assert!(payloads.iter().any(|p| p.contains("\"bad-1\"")));
    assert_eq!(
        rows(&lake, RAW_EVENTS)
            .await
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curated_files_hold_no_configured_pii_and_carry_the_enrichment() {
    let lake = lake();
    let pipeline = pipeline(&lake).await;
    append(
        &lake.log,
        &[event(
            "pii-1",
            "identify",
            json!({"email": "ann.secret@example.org", "plan": "pro"}),
        )],
    )
    .await;
    run_with_pipeline(&lake, &pipeline).await;
    let curated = rows(&lake, EVENTS).await;
    let text = text_of(&curated);
    assert!(
        !text.contains("ann.secret@example.org"),
        "e-mail in curated:\n{text}"
    );
    assert!(
        !text.contains("198.51.100.77"),
        "full IP in curated:\n{text}"
    );
    assert!(text.contains("198.51.100.0"), "anonymized IP kept:\n{text}");
    assert!(text.contains("tok_k1_"), "tokens kept:\n{text}");
    let enriched = curated[0].column_by_name("enriched").unwrap().as_struct();
    let field = |name: &str| {
        enriched
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(field("browser"), "Chrome");
    assert_eq!(field("device_type"), "desktop");
    assert_eq!(
        field("referrer_class"),
        "email",
        "utm_medium=email wins over the referrer"
    );
    assert_eq!(field("page_host"), "shop.example.com");
    assert!(
        !enriched
            .column_by_name("is_bot")
            .unwrap()
            .as_boolean()
            .value(0)
    );
    // The raw archive keeps the truth.
    let raw = text_of(&rows(&lake, RAW_EVENTS).await);
    assert!(raw.contains("ann.secret@example.org"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_a_killed_consumer_never_double_count() {
    let lake = lake();
    let pipeline = pipeline(&lake).await;
    let batch: Vec<Event> = (0..500)
        .map(|i| event(&format!("e-{i}"), "page", json!({})))
        .collect();
    append(&lake.log, &batch).await;
    // The producer retried the whole batch: same ids at new positions.
    append(&lake.log, &batch).await;

    // A consumer killed mid-way (the task aborted, nothing flushed gracefully), then a new one
    // with the dedup store reopened from disk.
    let writer = new_writer(
        &lake,
        LakeConfig {
            flush_interval: Duration::from_millis(20),
            ..LakeConfig::default()
        },
    )
    .await
    .with_pipeline(Arc::clone(&pipeline), Some(dedup(&lake)));
    let (_stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { writer.run(stopped).await });
    tokio::time::sleep(Duration::from_millis(60)).await;
    task.abort();
    let _ = task.await;
    append(&lake.log, &batch[..100]).await;
    run_with_pipeline(&lake, &pipeline).await;

    let curated = rows(&lake, EVENTS).await;
    let mut ids = strings(&curated, "event_id");
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "no duplicates in curated");
    assert_eq!(ids.len(), 500, "no loss");
    let raw: usize = rows(&lake, RAW_EVENTS)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(
        raw, 1100,
        "the raw archive keeps every record, retries included"
    );
    assert!(lake.log.shard_count() > 0);
}
