//! The lake writer, compaction and retention against a real embedded log, a real SQLite
//! catalog and Parquet files on local disk: every appended event lands exactly once in the
//! raw archive and in curated events, across restarts; compaction keeps every row and the sort
//! order; retention drops old partitions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    append, lake, new_writer, rows, run_until_consumer_caught_up, stream_ends, strings, write_all,
};

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use tributary_catalog::Catalog;
use tributary_lake::schema::{EVENTS, RAW_EVENTS};
use tributary_lake::{LakeConfig, WriterRole, archive_consumer, compaction, lifecycle, parquet_io};
use tributary_model::{Event, EventContext, PageContext};
use tributary_stream::{Record, Stream};

fn config() -> LakeConfig {
    LakeConfig {
        flush_interval: Duration::from_millis(200),
        ..LakeConfig::default()
    }
}

const DAY: i64 = 86_400_000_000;
/// 2026-11-23T00:00:00Z
const BASE: i64 = 1_795_392_000_000_000;

fn event(i: usize, ts: i64) -> Event {
    let tenant = ["acme", "globex", "initech"][i % 3];
    let event_type = match i % 4 {
        0 => "page".to_string(),
        1 => "track:Product Viewed".to_string(),
        2 => "identify".to_string(),
        _ => "track:Order Completed".to_string(),
    };
    let mut properties = serde_json::Map::new();
    if i % 4 == 3 {
        properties.insert("order_id".into(), format!("ord-{i}").into());
        properties.insert("revenue".into(), serde_json::json!(i as f64 / 10.0));
    }
    Event {
        event_id: format!("evt-{i:06}"),
        tenant_id: tenant.into(),
        anonymous_id: format!("anon-{}", i % 17),
        user_id: i.is_multiple_of(5).then(|| format!("user-{}", i % 7)),
        session_id: format!("s-{}", i % 23),
        event_type,
        event_family: String::new(),
        ts,
        received_at: ts + 1_000,
        context: EventContext {
            page: Some(PageContext {
                path: Some(format!("/p/{}", i % 9)),
                ..PageContext::default()
            }),
            ..EventContext::default()
        },
        properties,
        enriched: None,
    }
}

fn assert_each_once(ids: &[String], expected: usize) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(counts.len(), expected, "distinct ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_once_in_raw_and_curated_across_restarts() {
    let lake = lake();
    let first: Vec<Event> = (0..3000)
        .map(|i| event(i, BASE + i as i64 * 1_000_000))
        .collect();
    append(&lake.log, &first).await;
    write_all(&lake, config()).await;

    // A restart resumes from the catalog's checkpoint: nothing is written twice.
    let second: Vec<Event> = (3000..5000)
        .map(|i| event(i, BASE + DAY + i as i64 * 1_000_000))
        .collect();
    append(&lake.log, &second).await;
    write_all(&lake, config()).await;

    let curated = rows(&lake, EVENTS).await;
    assert_each_once(&strings(&curated, "event_id"), 5000);
    let raw = rows(&lake, RAW_EVENTS).await;
    assert_each_once(&strings(&raw, "event_id"), 5000);

    // The raw archive keeps each event exactly as the stream holds it.
    let payloads = strings(&raw, "payload");
    let original = serde_json::to_string(&first[0]).unwrap();
    assert!(payloads.contains(&original));

    // Partitions: two days × the families of the default rules.
    let partitions = lake.catalog.partitions(EVENTS).await.unwrap();
    let names: Vec<String> = partitions
        .iter()
        .map(|p| tributary_catalog::partition_path(&p.partition))
        .collect();
    assert!(
        names.contains(&"dt=2026-11-23/event_family=page".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"dt=2026-11-24/event_family=identity".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"dt=2026-11-24/event_family=track".to_string()),
        "{names:?}"
    );
    for partition in &partitions {
        let dir = lake
            .lake_dir
            .join("curated/events")
            .join(tributary_catalog::partition_path(&partition.partition));
        assert!(dir.is_dir(), "{} is a Hive directory", dir.display());
    }

    // Within a file rows are sorted by (tenant_id, ts).
    for batch in &curated {
        let tenants = batch
            .column_by_name("tenant_id")
            .unwrap()
            .as_string::<i32>();
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        for i in 1..batch.num_rows() {
            let before = (tenants.value(i - 1), ts.value(i - 1));
            let after = (tenants.value(i), ts.value(i));
            assert!(before <= after, "row {i}: {before:?} > {after:?}");
        }
        // Promoted: revenue is a typed column.
        assert!(batch.column_by_name("revenue").unwrap().len() == batch.num_rows());
    }
}

/// The raw archive and the curated lake written by one writer, by one writer each, and by
/// one again, in turns, each turn with new events (and the archive once ahead of the curated
/// lake, once behind it): every event lands exactly once in each table, and every turn resumes
/// each table where it stood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_between_one_writer_and_a_writer_per_table_loses_and_repeats_nothing() {
    let lake = lake();
    let raw_consumer = archive_consumer("lake");
    let batch = |from: usize| -> Vec<Event> {
        (from..from + 700)
            .map(|i| event(i, BASE + i as i64 * 1_000_000))
            .collect()
    };
    let count = |table: &'static str| {
        let lake = &lake;
        async move { strings(&rows(lake, table).await, "event_id") }
    };

    // 1. One writer for both (as before roles existed).
    append(&lake.log, &batch(0)).await;
    write_all(&lake, config()).await;
    // 2. The archive alone runs ahead: raw 1,400, curated 700.
    append(&lake.log, &batch(700)).await;
    let archiver = new_writer(&lake, config())
        .await
        .with_role(WriterRole::Archive);
    run_until_consumer_caught_up(&lake, archiver, &raw_consumer).await;
    assert_each_once(&count(RAW_EVENTS).await, 1400);
    assert_each_once(&count(EVENTS).await, 700);
    // 3. One writer for both again: curated catches up from 700, raw goes on from 1,400.
    append(&lake.log, &batch(1400)).await;
    write_all(&lake, config()).await;
    assert_each_once(&count(RAW_EVENTS).await, 2100);
    assert_each_once(&count(EVENTS).await, 2100);
    // 4. The curated lake alone runs ahead, then the archive alone catches up.
    append(&lake.log, &batch(2100)).await;
    let curator = new_writer(&lake, config())
        .await
        .with_role(WriterRole::Curate);
    run_until_consumer_caught_up(&lake, curator, "lake").await;
    assert_each_once(&count(RAW_EVENTS).await, 2100);
    assert_each_once(&count(EVENTS).await, 2800);
    // 5. One writer for both, with the archive behind: raw catches up, curated repeats nothing.
    append(&lake.log, &batch(2800)).await;
    write_all(&lake, config()).await;
    assert_each_once(&count(RAW_EVENTS).await, 3500);
    assert_each_once(&count(EVENTS).await, 3500);
    // Both checkpoints stand at the stream's end.
    let ends = stream_ends(&lake).await;
    for consumer in ["lake", raw_consumer.as_str()] {
        let checkpoint = lake.catalog.checkpoint(consumer).await.unwrap();
        for (shard, end) in ends.iter().enumerate() {
            assert_eq!(
                checkpoint.positions.get(&(shard as u32)),
                Some(end),
                "{consumer} on shard {shard}"
            );
        }
    }
}

/// A writer that only curates bounds its memory by `lake.max_buffer_bytes` too. The events
/// spread over ~200 days, so no curated partition reaches `flush_bytes` and fewer than
/// `max_open_partitions` are open; with a flush interval far beyond the test's deadline, only
/// the bound on all buffers together can flush in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curating_writer_flushes_at_max_buffer_bytes() {
    let lake = lake();
    let events: Vec<Event> = (0..2000)
        .map(|i| event(i, BASE - i as i64 * (DAY / 10)))
        .collect();
    append(&lake.log, &events).await;
    let config = LakeConfig {
        flush_interval: Duration::from_secs(3600),
        flush_bytes: 64 << 10,
        max_buffer_bytes: 64 << 10,
        ..LakeConfig::default()
    };
    let curator = new_writer(&lake, config)
        .await
        .with_role(WriterRole::Curate);
    run_until_consumer_caught_up(&lake, curator, "lake").await;
    assert_each_once(&strings(&rows(&lake, EVENTS).await, "event_id"), 2000);
}

/// Many flushes in a row, each encoding while the next read is buffered, with arrival times
/// out of order: every event lands once in both tables, and each raw file is sorted by
/// (tenant_id, received_at) however the rows arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_flushes_keep_every_event_once_and_raw_files_sorted() {
    let lake = lake();
    let count = 20_000;
    let events: Vec<Event> = (0..count)
        .map(|i| {
            // A permutation of the first hour's seconds: arrival order is not time order.
            let second = (i * 7_919) % count;
            event(i, BASE + second as i64 * 100_000)
        })
        .collect();
    for chunk in events.chunks(2_500) {
        append(&lake.log, chunk).await;
    }
    let config = LakeConfig {
        flush_bytes: 1024,
        max_buffer_bytes: 1024,
        ..config()
    };
    write_all(&lake, config).await;

    assert_each_once(&strings(&rows(&lake, EVENTS).await, "event_id"), count);
    assert_each_once(&strings(&rows(&lake, RAW_EVENTS).await, "event_id"), count);

    let raw_files = lake
        .catalog
        .snapshot(RAW_EVENTS, None, None)
        .await
        .unwrap()
        .files;
    assert!(raw_files.len() >= 3, "{} raw files", raw_files.len());
    for file in &raw_files {
        let batches = parquet_io::read_all(lake.store.clone(), &file.path)
            .await
            .unwrap();
        let mut previous: Option<(String, i64)> = None;
        for batch in &batches {
            let tenants = batch
                .column_by_name("tenant_id")
                .unwrap()
                .as_string::<i32>();
            let received = batch
                .column_by_name("received_at")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            for row in 0..batch.num_rows() {
                let key = (tenants.value(row).to_string(), received.value(row));
                if let Some(before) = &previous {
                    assert!(*before <= key, "{}: {before:?} > {key:?}", file.path);
                }
                previous = Some(key);
            }
        }
    }
}

/// Events spread over many days open a curated partition each: past
/// `lake.max_open_partitions` the writer flushes instead of buffering more of them. Each read
/// here is one 5-event frame (its ~4.5 MB is over a read's 4 MiB), all received in one hour,
/// so the raw archive holds one file per flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_open_partitions_force_a_flush() {
    async fn raw_files_after_writing(max_open_partitions: usize) -> usize {
        let lake = lake();
        let padding = "x".repeat(900_000);
        let events: Vec<Event> = (0..30)
            .map(|i| {
                let mut event = event(i, BASE - i as i64 * DAY);
                event.received_at = BASE + 1_000;
                event
                    .properties
                    .insert("padding".into(), padding.clone().into());
                event
            })
            .collect();
        for frame in events.chunks(5) {
            append(&lake.log, frame).await;
        }
        let config = LakeConfig {
            flush_interval: Duration::from_secs(1),
            max_open_partitions,
            ..LakeConfig::default()
        };
        write_all(&lake, config).await;
        assert_each_once(&strings(&rows(&lake, EVENTS).await, "event_id"), 30);
        assert_each_once(&strings(&rows(&lake, RAW_EVENTS).await, "event_id"), 30);
        lake.catalog
            .snapshot(RAW_EVENTS, None, None)
            .await
            .unwrap()
            .files
            .len()
    }
    assert_eq!(
        raw_files_after_writing(1024).await,
        1,
        "one flush, at shutdown"
    );
    let flushes = raw_files_after_writing(4).await;
    assert!(flushes >= 4, "{flushes} flushes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_row_sorted_and_swaps_atomically() {
    let lake = lake();
    let mut config = config();
    config.compaction.min_small_files = 2;
    // Several flushes of the same partitions: many small files.
    for round in 0..4 {
        let events: Vec<Event> = (round * 500..(round + 1) * 500)
            .map(|i| event(i, BASE + i as i64 * 1_000_000))
            .collect();
        append(&lake.log, &events).await;
        write_all(&lake, config.clone()).await;
    }
    let before = lake.catalog.snapshot(EVENTS, None, None).await.unwrap();
    let events_table = before.table.clone();
    let summary =
        compaction::compact_table(lake.catalog.as_ref(), &lake.store, &events_table, &config)
            .await
            .unwrap();
    assert!(summary.files_written > 0, "{summary:?}");
    let after = lake.catalog.snapshot(EVENTS, None, None).await.unwrap();
    assert!(after.files.len() < before.files.len());
    assert_eq!(
        after.files.iter().map(|f| f.rows).sum::<u64>(),
        before.files.iter().map(|f| f.rows).sum::<u64>()
    );
    let curated = rows(&lake, EVENTS).await;
    assert_each_once(&strings(&curated, "event_id"), 2000);
    for file in &after.files {
        let batches = parquet_io::read_all(lake.store.clone(), &file.path)
            .await
            .unwrap();
        let keys: Vec<(String, i64)> = batches
            .iter()
            .flat_map(|b| {
                let tenants = b.column_by_name("tenant_id").unwrap().as_string::<i32>();
                let ts = b
                    .column_by_name("ts")
                    .unwrap()
                    .as_primitive::<TimestampMicrosecondType>();
                (0..b.num_rows())
                    .map(|i| (tenants.value(i).to_string(), ts.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] <= w[1]),
            "{} is sorted",
            file.path
        );
        assert_eq!(keys.len() as u64, file.rows);
    }

    // The replaced files stay on disk through the grace period, then go.
    let replaced: Vec<String> = before
        .files
        .iter()
        .filter(|f| !after.files.contains(f))
        .map(|f| f.path.clone())
        .collect();
    assert!(lake.lake_dir.join(&replaced[0]).exists());
    let deleted = lifecycle::delete_replaced(lake.catalog.as_ref(), &lake.store, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(deleted, replaced.len());
    assert!(!lake.lake_dir.join(&replaced[0]).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_partitions_older_than_the_table_keeps() {
    let lake = lake();
    let now = tributary_model::now_micros();
    let events: Vec<Event> = (0..300)
        .map(|i| event(i, now - (i as i64 % 3) * 10 * DAY))
        .collect();
    append(&lake.log, &events).await;
    let mut config = config();
    config.retention.events_days = Some(5);
    write_all(&lake, config).await;
    let table = lake.catalog.table(EVENTS).await.unwrap().unwrap();
    assert_eq!(table.def.retention_days, Some(5));
    let summary = lifecycle::apply_retention(lake.catalog.as_ref(), &table, now)
        .await
        .unwrap();
    assert!(summary.partitions >= 2, "{summary:?}");
    let left = lake.catalog.snapshot(EVENTS, None, None).await.unwrap();
    assert_eq!(left.files.iter().map(|f| f.rows).sum::<u64>(), 100);
    // The raw archive has no retention configured: untouched.
    let raw = lake.catalog.table(RAW_EVENTS).await.unwrap().unwrap();
    let untouched = lifecycle::apply_retention(lake.catalog.as_ref(), &raw, now)
        .await
        .unwrap();
    assert_eq!(untouched.files, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_an_event_is_archived_raw_and_counted() {
    let lake = lake();
    lake.log
        .append(vec![Record::new("acme:s", "not json at all")])
        .await
        .unwrap();
    append(&lake.log, &[event(1, BASE)]).await;
    write_all(&lake, config()).await;
    let raw = rows(&lake, RAW_EVENTS).await;
    assert!(strings(&raw, "payload").contains(&"not json at all".to_string()));
    assert_eq!(
        strings(&rows(&lake, EVENTS).await, "event_id"),
        vec!["evt-000001"]
    );
}
