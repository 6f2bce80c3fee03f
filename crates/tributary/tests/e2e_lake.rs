//! The lake's commit protocol against a real process killed at each step of a flush and of a
//! compaction (`TRIB_CRASH_AT`, which aborts the process there): after a restart every
//! acknowledged event is in the raw archive and in curated events exactly once, and no file
//! of an interrupted commit is left in the lake's directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use serde_json::{Value, json};
use tributary_catalog::{Catalog, EmbeddedCatalog};
use tributary_lake::{local_store, parquet_io};

use common::{Server, Setup, wait_for};

const CRASH_AT: &str = "TRIB_CRASH_AT";

fn lake_setup() -> Setup {
    Setup::new()
        .env("TRIBUTARY_LAKE__FLUSH_INTERVAL", "200ms")
        .env("TRIBUTARY_STREAM__DURABILITY", "none")
}

fn events(from: usize, count: usize) -> Value {
    let events: Vec<Value> = (from..from + count)
        .map(|i| {
            json!({
                "event_id": format!("evt-{i:06}"),
                "anonymous_id": format!("anon-{}", i % 7),
                "session_id": format!("s-{}", i % 5),
                "event_type": if i % 2 == 0 { "page" } else { "track:Product Viewed" },
                "context": {"page": {"path": format!("/p/{}", i % 3)}},
                "properties": {"item_id": format!("sku-{}", i % 4)},
            })
        })
        .collect();
    Value::Array(events)
}

fn send(server: &Server, key: &str, from: usize, count: usize) {
    server
        .post_json("/v1/events", key, &events(from, count))
        .expect(200);
}

/// Event ids in each lake table's live files, with their multiplicity, read from the catalog
/// and the Parquet files themselves.
fn lake_ids(data: &Path) -> BTreeMap<&'static str, BTreeMap<String, usize>> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let catalog = EmbeddedCatalog::open(data.join("catalog.db")).unwrap();
        let store = local_store(&data.join("lake")).unwrap();
        let mut all = BTreeMap::new();
        for table in ["events", "raw_events"] {
            let mut ids: BTreeMap<String, usize> = BTreeMap::new();
            for file in catalog.snapshot(table, None, None).await.unwrap().files {
                for batch in parquet_io::read_all(Arc::clone(&store), &file.path)
                    .await
                    .unwrap()
                {
                    let column = batch.column_by_name("event_id").unwrap().as_string::<i32>();
                    for id in column.iter().flatten() {
                        *ids.entry(id.to_string()).or_default() += 1;
                    }
                }
            }
            all.insert(table, ids);
        }
        all
    })
}

/// Every Parquet file under the lake directory, relative to it.
fn files_on_disk(lake: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![lake.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.insert(
                    path.strip_prefix(lake)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found
}

fn live_and_replaced_files(data: &Path) -> BTreeSet<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let catalog = EmbeddedCatalog::open(data.join("catalog.db")).unwrap();
        let mut paths = BTreeSet::new();
        for table in ["events", "raw_events"] {
            for file in catalog.snapshot(table, None, None).await.unwrap().files {
                paths.insert(file.path);
            }
        }
        // Files replaced by a compaction wait out the grace period before deletion.
        paths.extend(catalog.removed_before(i64::MAX).await.unwrap());
        paths
    })
}

fn assert_exactly(data: &Path, expected: usize) {
    for (table, ids) in lake_ids(data) {
        let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(twice.is_empty(), "{table}: duplicated {twice:?}");
        assert_eq!(ids.len(), expected, "{table}: distinct events");
    }
    let on_disk = files_on_disk(&data.join("lake"));
    let known = live_and_replaced_files(data);
    let strays: Vec<_> = on_disk.difference(&known).collect();
    assert!(
        strays.is_empty(),
        "files of interrupted commits left behind: {strays:?}"
    );
}

/// Waits until the lake holds `expected` distinct events in both tables.
fn wait_for_lake(data: &Path, expected: usize) {
    let caught_up = wait_for(Duration::from_secs(20), || {
        let ids = lake_ids(data);
        ids.values().all(|t| t.len() >= expected).then_some(())
    });
    assert!(
        caught_up.is_some(),
        "the lake did not reach {expected} events"
    );
}

#[test]
fn a_crash_at_any_step_of_a_flush_loses_and_duplicates_nothing() {
    for point in [
        "flush.after_stage",
        "flush.after_upload",
        "flush.after_commit",
    ] {
        let setup = lake_setup().env(CRASH_AT, point);
        let key = setup.key(&[]);
        let server = setup.start();
        send(&server, &key, 0, 100);
        let setup = server.wait_for_exit(Duration::from_secs(30));

        let server = setup.without_env(CRASH_AT).start();
        send(&server, &key, 100, 50);
        wait_for_lake(server.data(), 150);
        let data = server.data().to_path_buf();
        let setup = server.kill();
        assert_exactly(&data, 150);
        drop(setup);
    }
}

/// The raw archive as its own consumer (`lake.separate_raw_archive`): a crash in the middle of
/// a flush with two writers, a restart with one, then two again — every acknowledged event is
/// in both tables exactly once after each.
#[test]
fn switching_to_a_separate_raw_archive_and_back_across_a_crash_loses_and_duplicates_nothing() {
    const SEPARATE: &str = "TRIBUTARY_LAKE__SEPARATE_RAW_ARCHIVE";
    let setup = lake_setup()
        .env(SEPARATE, "true")
        .env(CRASH_AT, "flush.after_upload");
    let key = setup.key(&[]);
    let server = setup.start();
    send(&server, &key, 0, 100);
    let setup = server.wait_for_exit(Duration::from_secs(30));

    // One writer for both tables, from the two checkpoints the crash left.
    let server = setup
        .without_env(CRASH_AT)
        .without_env(SEPARATE)
        .env(SEPARATE, "false")
        .start();
    send(&server, &key, 100, 50);
    wait_for_lake(server.data(), 150);
    let data = server.data().to_path_buf();
    let setup = server.kill();
    assert_exactly(&data, 150);

    // Two writers again.
    let server = setup.without_env(SEPARATE).env(SEPARATE, "true").start();
    send(&server, &key, 150, 50);
    wait_for_lake(server.data(), 200);
    let data = server.data().to_path_buf();
    let setup = server.kill();
    assert_exactly(&data, 200);
    drop(setup);
}

#[test]
fn a_crash_at_any_step_of_a_compaction_loses_and_duplicates_nothing() {
    let compaction = [
        // The first pass runs 2 s after start, once the rounds below made several small files.
        ("TRIBUTARY_LAKE__COMPACTION__INTERVAL", "2s"),
        ("TRIBUTARY_LAKE__COMPACTION__MIN_SMALL_FILES", "2"),
    ];
    for point in [
        "compaction.after_stage",
        "compaction.after_upload",
        "compaction.after_commit",
    ] {
        let mut setup = lake_setup().env(CRASH_AT, point);
        for (name, value) in compaction {
            setup = setup.env(name, value);
        }
        let key = setup.key(&[]);
        let server = setup.start();
        for round in 0..4 {
            send(&server, &key, round * 30, 30);
            std::thread::sleep(Duration::from_millis(250));
        }
        let setup = server.wait_for_exit(Duration::from_secs(30));

        let server = setup.without_env(CRASH_AT).start();
        send(&server, &key, 120, 30);
        wait_for_lake(server.data(), 150);
        // Let the restarted server compact for real once.
        std::thread::sleep(Duration::from_millis(2500));
        let data = server.data().to_path_buf();
        let setup = server.kill();
        assert_exactly(&data, 150);
        drop(setup);
    }
}

/// An acknowledged event is visible to `SELECT … FROM events` within 10 s on default settings
/// (a 5 s flush interval), through the HTTP SQL API, and to `tributary query`.
#[test]
fn an_acknowledged_event_is_queryable_within_ten_seconds() {
    let setup = Setup::new();
    let key = setup.key(&[]);
    let admin = common::create_key_with(setup.root(), &setup.data(), common::TENANT, "admin", &[]);
    let server = setup.start();
    let body = json!([{
        "event_id": "fresh-1",
        "anonymous_id": "a-1",
        "event_type": "track:Order Completed",
        "properties": {"order_id": "o-1", "revenue": 12.5},
    }]);
    let sent = std::time::Instant::now();
    server.post_json("/v1/events", &key, &body).expect(200);
    let sql = json!({"sql": "SELECT event_id, order_id, revenue, event_family FROM events"});
    let rows = wait_for(Duration::from_secs(10), || {
        let reply = server.post_json("/v1/query", &admin, &sql).expect(200);
        let rows = reply.json();
        (rows.as_array().is_some_and(|r| !r.is_empty())).then_some(rows)
    });
    let elapsed = sent.elapsed();
    let rows = rows.unwrap_or_else(|| panic!("not visible after {elapsed:?}:\n{}", server.log()));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(
        rows,
        json!([{"event_id": "fresh-1", "order_id": "o-1", "revenue": 12.5, "event_family": "track"}])
    );

    let output = common::tributary(server.root())
        .args(["query", "--format", "json", "--data"])
        .arg(server.data())
        .arg("SELECT count(*) AS n FROM raw_events")
        .output()
        .unwrap();
    common::assert_exit(&output, 0);
    let counted: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(counted, json!([{"n": 1}]));

    // Deeply nested SQL is refused before planning: a chain like this one overflowed a worker's
    // stack and aborted the whole server. The deepest allowed chain runs on the server's stacks.
    let deep = json!({"sql": format!("SELECT 1{} AS n", " + 1".repeat(20_000))});
    let refused = server.post_json("/v1/query", &admin, &deep).expect(400);
    assert_eq!(refused.json()["error"], "too_complex");
    let at_limit = json!({"sql": format!("SELECT 1{} AS n", " + 1".repeat(500))});
    let answered = server.post_json("/v1/query", &admin, &at_limit).expect(200);
    assert_eq!(answered.json(), json!([{"n": 501}]));
    server.stop();
}
