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
