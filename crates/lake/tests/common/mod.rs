//! The harness the lake's integration tests share: a real embedded log, a real SQLite catalog
//! and Parquet on local disk, and a writer run until it has caught up.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use object_store::ObjectStore;
use serde_json::{Value, json};
use tokio::sync::watch;
use tributary_catalog::EventSchema;
use tributary_catalog::{Catalog, EmbeddedCatalog};
use tributary_lake::{LakeConfig, LakeWriter, local_store, parquet_io};
use tributary_model::Event;
use tributary_pipeline::dedup::DedupStore;
use tributary_pipeline::registry::{SchemaRegistry, SharedRegistry};
use tributary_pipeline::{Pipeline, PipelineConfig};
use tributary_stream::{Durability, EmbeddedLog, Record, Stream, StreamConfig};

pub struct Lake {
    pub _dir: tempfile::TempDir,
    pub log: Arc<EmbeddedLog>,
    pub catalog: Arc<EmbeddedCatalog>,
    pub store: Arc<dyn ObjectStore>,
    pub lake_dir: std::path::PathBuf,
}

pub fn lake() -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamConfig {
        durability: Durability::None,
        ..StreamConfig::default()
    };
    let log = Arc::new(EmbeddedLog::open(dir.path().join("stream"), config).unwrap());
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path().join("catalog.db")).unwrap());
    let lake_dir = dir.path().join("lake");
    let store = local_store(&lake_dir).unwrap();
    Lake {
        _dir: dir,
        log,
        catalog,
        store,
        lake_dir,
    }
}

pub async fn append(log: &EmbeddedLog, events: &[Event]) {
    let records = events
        .iter()
        .map(|e| Record::new(e.partition_key(), serde_json::to_vec(e).unwrap()))
        .collect();
    log.append(records).await.unwrap();
}

/// Runs a writer until its checkpoint covers every shard's end, then stops it gracefully.
pub async fn write_all(lake: &Lake, config: LakeConfig) {
    run_until_caught_up(lake, new_writer(lake, config).await).await;
}

/// A writer of `lake` with `config`.
pub async fn new_writer(lake: &Lake, config: LakeConfig) -> LakeWriter {
    LakeWriter::new(
        lake.log.clone(),
        lake.catalog.clone(),
        lake.store.clone(),
        config,
    )
    .await
    .unwrap()
}

/// Each shard's next sequence number: where a caught-up checkpoint stands.
pub async fn stream_ends(lake: &Lake) -> Vec<u64> {
    lake.log
        .shard_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.next_seq)
        .collect()
}

/// Runs `writer` until its checkpoint covers every shard's end, then stops it gracefully.
pub async fn run_until_caught_up(lake: &Lake, writer: LakeWriter) {
    run_until_consumer_caught_up(lake, writer, "lake").await;
}

/// Runs `writer` until the checkpoint of `consumer` covers every shard's end, then stops it
/// gracefully.
pub async fn run_until_consumer_caught_up(lake: &Lake, writer: LakeWriter, consumer: &str) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { writer.run(stopped).await });
    let ends = stream_ends(lake).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let checkpoint = lake.catalog.checkpoint(consumer).await.unwrap();
        let done = ends.iter().enumerate().all(|(shard, end)| {
            checkpoint
                .positions
                .get(&(shard as u32))
                .copied()
                .unwrap_or(0)
                >= *end
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer did not catch up: {checkpoint:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}

pub async fn rows(lake: &Lake, table: &str) -> Vec<RecordBatch> {
    let snapshot = lake.catalog.snapshot(table, None, None).await.unwrap();
    let mut batches = Vec::new();
    for file in &snapshot.files {
        batches.extend(
            parquet_io::read_all(lake.store.clone(), &file.path)
                .await
                .unwrap(),
        );
    }
    batches
}

pub fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(column).unwrap().as_string::<i32>();
            array
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub const KEY: &[u8] = b"a test key of more than sixteen bytes";
/// 2026-11-23T10:00:00Z
pub const BASE: i64 = 1_795_428_000_000_000;

pub fn config() -> LakeConfig {
    LakeConfig {
        flush_interval: Duration::from_millis(200),
        ..LakeConfig::default()
    }
}

pub fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["order_id", "revenue"],
        "properties": {
            "order_id": {"type": "string", "minLength": 1},
            "revenue": {"type": "number"}
        }
    })
}

pub async fn pipeline(lake: &Lake) -> Arc<Pipeline> {
    lake.catalog
        .add_event_schema(EventSchema {
            event_type: "track:Order Completed".into(),
            version: 1,
            schema: order_schema(),
            forced: false,
            created_at: 0,
        })
        .await
        .unwrap();
    let registry = SchemaRegistry::load(lake.catalog.as_ref()).await.unwrap();
    Arc::new(
        Pipeline::new(
            &PipelineConfig::default(),
            SharedRegistry::new(registry),
            KEY,
        )
        .unwrap(),
    )
}

pub fn dedup(lake: &Lake) -> DedupStore {
    DedupStore::open(
        lake.lake_dir.with_file_name("dedup.log"),
        Duration::from_secs(86_400),
    )
    .unwrap()
}

pub fn event(id: &str, event_type: &str, properties: Value) -> Event {
    serde_json::from_value(json!({
        "event_id": id, "tenant_id": "acme", "anonymous_id": "anon-1", "session_id": "s-1",
        "event_type": event_type, "ts": BASE, "received_at": BASE + 1000,
        "context": {
            "ip": "198.51.100.77",
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "page": {"url": "https://shop.example.com/p/1?utm_source=news&utm_medium=email",
                     "referrer": "https://www.google.com/search?q=shoes"},
            "traits": {"email": "ann.secret@example.org"}
        },
        "properties": properties,
    }))
    .unwrap()
}

pub async fn run_with_pipeline(lake: &Lake, pipeline: &Arc<Pipeline>) {
    let writer = new_writer(lake, config())
        .await
        .with_pipeline(Arc::clone(pipeline), Some(dedup(lake)));
    run_until_caught_up(lake, writer).await;
}
