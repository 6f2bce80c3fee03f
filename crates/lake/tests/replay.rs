//! Replays against a real embedded log, SQLite catalog and Parquet on disk: quarantined events
//! move to the curated lake after a schema fix, a raw range is rebuilt rather than doubled, and
//! running either replay twice gives the same counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use serde_json::{Value, json};
use tributary_catalog::{Catalog, EventSchema};
use tributary_lake::replay::{ReceivedRange, ReplaySummary, Replayer, RowFilter, Silent};
use tributary_lake::schema::{EVENTS, QUARANTINE, RAW_EVENTS};
use tributary_model::Event;
use tributary_pipeline::Pipeline;
use tributary_pipeline::registry::SchemaRegistry;

use common::{
    BASE, Lake, append, config, dedup, event, lake, pipeline, rows, run_with_pipeline, strings,
};

const HOUR: i64 = 3_600_000_000;

/// Chooses rows whose `event_type` is one value (the SQL predicate lives in the query crate;
/// this stands in for it here).
struct EventTypeIs(&'static str);

impl RowFilter for EventTypeIs {
    fn select(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        let types = common::strings(std::slice::from_ref(batch), "event_type");
        Ok(types.iter().map(|t| Some(t == self.0)).collect())
    }
}

fn received(mut event: Event, at: i64) -> Event {
    event.received_at = at;
    event
}

/// Eight records: three valid orders and a page; two orders with revenue as text, which
/// schema v1 rejects; a producer retry of one of those, and a retry of a valid order.
async fn write_mixed_traffic(lake: &Lake, pipeline: &Arc<Pipeline>) {
    let order = |id: &str, revenue: Value| {
        event(
            id,
            "track:Order Completed",
            json!({"order_id": format!("o-{id}"), "revenue": revenue}),
        )
    };
    let events = vec![
        order("ok-1", json!(10.0)),
        order("ok-2", json!(20.0)),
        order("ok-3", json!(30.0)),
        event("page-1", "page", json!({})),
        order("text-1", json!("12.50")),
        order("text-2", json!("7.25")),
    ];
    append(&lake.log, &events).await;
    let retries = vec![
        received(order("text-1", json!("12.50")), BASE + 60_000_000),
        received(order("ok-1", json!(10.0)), BASE + 60_000_000),
    ];
    append(&lake.log, &retries).await;
    run_with_pipeline(lake, pipeline).await;
}

/// Schema v2 also accepts revenue as decimal text (a loosening: backward compatible).
async fn fix_schema(lake: &Lake, pipeline: &Pipeline) {
    lake.catalog
        .add_event_schema(EventSchema {
            event_type: "track:Order Completed".into(),
            version: 2,
            schema: json!({
                "type": "object",
                "required": ["order_id", "revenue"],
                "properties": {
                    "order_id": {"type": "string", "minLength": 1},
                    "revenue": {"type": ["number", "string"], "pattern": "^[0-9]+(\\.[0-9]+)?$"}
                }
            }),
            forced: false,
            created_at: 0,
        })
        .await
        .unwrap();
    let registry = SchemaRegistry::load(lake.catalog.as_ref()).await.unwrap();
    pipeline.registry().publish(registry);
}

async fn replayer(lake: &Lake, pipeline: &Arc<Pipeline>) -> Replayer {
    Replayer::new(
        lake.catalog.clone(),
        lake.store.clone(),
        &config(),
        Arc::clone(pipeline),
        Some(dedup(lake)),
    )
    .await
    .unwrap()
}

async fn count(lake: &Lake, table: &str) -> usize {
    rows(lake, table)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum()
}

/// Curated event ids, sorted, checked to be unique.
async fn curated_ids(lake: &Lake) -> Vec<String> {
    let mut ids = strings(&rows(lake, EVENTS).await, "event_id");
    ids.sort();
    let all = ids.len();
    ids.dedup();
    assert_eq!(all, ids.len(), "an event curated twice: {ids:?}");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_replay_after_a_schema_fix_moves_what_passes_once() {
    let lake = lake();
    let pipeline = pipeline(&lake).await;
    write_mixed_traffic(&lake, &pipeline).await;
    assert_eq!(curated_ids(&lake).await, ["ok-1", "ok-2", "ok-3", "page-1"]);
    assert_eq!(count(&lake, QUARANTINE).await, 3, "text-1 twice, text-2");

    // Before the fix a replay re-validates, finds the same reasons, and changes nothing.
    let unchanged = replayer(&lake, &pipeline)
        .await
        .quarantine(&EventTypeIs("track:Order Completed"), &Silent)
        .await
        .unwrap();
    assert_eq!(unchanged.events, 3);
    assert_eq!(unchanged.quarantined, 3);
    assert_eq!(unchanged.commit_id, None);

    fix_schema(&lake, &pipeline).await;
    // A predicate that chooses nothing moves nothing.
    let none = replayer(&lake, &pipeline)
        .await
        .quarantine(&EventTypeIs("track:Nothing"), &Silent)
        .await
        .unwrap();
    assert_eq!(
        none,
        ReplaySummary {
            files_read: 1,
            ..ReplaySummary::default()
        }
    );

    let first = replayer(&lake, &pipeline)
        .await
        .quarantine(&EventTypeIs("track:Order Completed"), &Silent)
        .await
        .unwrap();
    assert_eq!(first.events, 3);
    assert_eq!(first.curated, 2, "text-1 and text-2 now pass");
    assert_eq!(first.duplicates, 1, "text-1's retry is the same event");
    assert_eq!(first.quarantined, 0);
    assert_eq!(first.quarantine_rows_replaced, 3);
    assert!(first.commit_id.is_some());
    assert_eq!(
        curated_ids(&lake).await,
        ["ok-1", "ok-2", "ok-3", "page-1", "text-1", "text-2"]
    );
    assert_eq!(count(&lake, QUARANTINE).await, 0);

    // Run twice: nothing left to move, same counts.
    let second = replayer(&lake, &pipeline)
        .await
        .quarantine(&EventTypeIs("track:Order Completed"), &Silent)
        .await
        .unwrap();
    assert_eq!(second.events, 0);
    assert_eq!(second.commit_id, None);
    assert_eq!(curated_ids(&lake).await.len(), 6);
    assert_eq!(
        count(&lake, RAW_EVENTS).await,
        8,
        "the raw archive is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_replay_rebuilds_a_range_and_running_it_twice_changes_nothing() {
    let lake = lake();
    let pipeline = pipeline(&lake).await;
    write_mixed_traffic(&lake, &pipeline).await;
    let range = ReceivedRange {
        since: BASE - HOUR,
        until: BASE + HOUR,
    };

    // With the pipeline unchanged, a rebuild gives back exactly what was there.
    let same = replayer(&lake, &pipeline)
        .await
        .raw(range, &Silent)
        .await
        .unwrap();
    assert_eq!(same.events, 8);
    assert_eq!((same.curated, same.quarantined, same.duplicates), (4, 3, 1));
    assert_eq!(same.curated_rows_replaced, 4);
    assert_eq!(same.quarantine_rows_replaced, 3);
    assert_eq!(curated_ids(&lake).await, ["ok-1", "ok-2", "ok-3", "page-1"]);
    assert_eq!(count(&lake, QUARANTINE).await, 3);

    // After the fix the rebuild curates the orders that now pass, each once.
    fix_schema(&lake, &pipeline).await;
    let fixed = replayer(&lake, &pipeline)
        .await
        .raw(range, &Silent)
        .await
        .unwrap();
    assert_eq!(
        (fixed.curated, fixed.quarantined, fixed.duplicates),
        (6, 0, 2)
    );
    let again = replayer(&lake, &pipeline)
        .await
        .raw(range, &Silent)
        .await
        .unwrap();
    assert_eq!(
        (
            again.events,
            again.curated,
            again.quarantined,
            again.duplicates
        ),
        (
            fixed.events,
            fixed.curated,
            fixed.quarantined,
            fixed.duplicates
        ),
        "a second run has the same counts"
    );
    assert_eq!(again.curated_rows_replaced, 6);
    assert_eq!(
        curated_ids(&lake).await,
        ["ok-1", "ok-2", "ok-3", "page-1", "text-1", "text-2"]
    );
    assert_eq!(count(&lake, QUARANTINE).await, 0);
    assert_eq!(count(&lake, RAW_EVENTS).await, 8);

    // A range that holds nothing changes nothing.
    let empty = replayer(&lake, &pipeline)
        .await
        .raw(
            ReceivedRange {
                since: BASE + 5 * HOUR,
                until: BASE + 6 * HOUR,
            },
            &Silent,
        )
        .await
        .unwrap();
    assert_eq!(empty.events, 0);
    assert_eq!(empty.commit_id, None);
}
