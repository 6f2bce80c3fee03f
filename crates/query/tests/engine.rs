//! The engine's entry points: limits, timeout, streaming, a dedicated runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures::StreamExt;
use tributary_query::{QueryConfig, QueryError, Scope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_limit_truncates_and_says_so() {
    let lake = common::lake().await;
    let output = lake
        .engine
        .execute_with_limit("SELECT * FROM events ORDER BY ts", Scope::All, 4)
        .await
        .unwrap();
    assert_eq!(output.rows, 4);
    assert!(output.truncated);
    assert_eq!(
        output.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        4
    );
    let output = lake
        .engine
        .execute_with_limit("SELECT * FROM events", Scope::All, 15)
        .await
        .unwrap();
    assert_eq!(output.rows, 15);
    assert!(!output.truncated, "exactly the limit is not truncated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_times_out() {
    let lake = common::lake_with(QueryConfig {
        timeout: Duration::from_millis(100),
        ..QueryConfig::default()
    })
    .await;
    let error = lake
        .engine
        .execute(
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            Scope::All,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::Timeout(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_query_streams_every_row_for_the_cli() {
    let lake = common::lake_with(QueryConfig {
        max_rows: 1,
        ..QueryConfig::default()
    })
    .await;
    let planned = lake
        .engine
        .plan("SELECT event_id FROM events", Scope::All)
        .await
        .unwrap();
    assert_eq!(planned.schema().field(0).name(), "event_id");
    assert_eq!(planned.scan.files_scanned, 5);
    let mut stream = planned.execute().unwrap();
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 15, "streaming is not limited by max_rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_can_run_on_a_runtime_of_their_own() {
    let lake = common::lake().await;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("query")
        .enable_all()
        .build()
        .unwrap();
    let engine = lake.engine.clone().with_runtime(runtime.handle().clone());
    let output = engine
        .execute("SELECT count(*) FROM events", common::acme())
        .await
        .unwrap();
    assert_eq!(output.rows, 1);
    runtime.shutdown_background();
}

/// A file whose table schema version the catalog does not know is read without the
/// dictionary hint: DataFusion casts its strings after reading, and the answers agree with the
/// same rows read the fast way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_an_unknown_schema_version_is_read_all_the_same() {
    use tributary_catalog::{Catalog, Commit, CommitKind};

    let lake = common::lake().await;
    let sql = "SELECT event_type, context['page']['path'] AS path, count(*) AS n FROM events \
               GROUP BY event_type, context['page']['path'] ORDER BY n DESC, event_type, path";
    let before = lake.table(sql, Scope::All).await;

    // The same rows again, in a file recorded under a version that was never declared.
    let (name, dt, family, rows) = common::curated_files().remove(0);
    let path = format!("curated/events/dt={dt}/event_family={family}/part-{name}-again.parquet");
    let file = common::write_file(
        &lake.root(),
        &path,
        "events",
        &common::curated_batch(&rows),
        vec![("dt", dt), ("event_family", family)],
        rows.iter().map(|e| (e.tenant, e.ts)),
        99,
    );
    lake.catalog
        .stage("events", std::slice::from_ref(&path))
        .await
        .unwrap();
    lake.catalog
        .commit(Commit {
            kind: CommitKind::Flush,
            added: vec![file],
            removed: Vec::new(),
            checkpoints: Vec::new(),
        })
        .await
        .unwrap();

    let after = lake.table(sql, Scope::All).await;
    assert_ne!(before, after, "the extra file's rows are counted");
    let doubled = lake
        .table(
            &format!(
                "SELECT event_type, count(*) AS n FROM events \
                 WHERE dt = '{dt}' AND event_family = '{family}' GROUP BY event_type"
            ),
            Scope::All,
        )
        .await;
    assert!(
        doubled.contains(&format!("| {} ", rows.len() * 2)),
        "every row of the partition twice:\n{doubled}"
    );
}
