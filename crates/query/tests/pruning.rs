//! File pruning: a query reads only the files that can hold its rows, and still answers
//! exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use datafusion::physical_plan::displayable;
use tributary_catalog::{Catalog, Commit, CommitKind, TableDef};
use tributary_query::{QueryOutput, Scope};

use common::{acme, lake};

fn count(output: &QueryOutput) -> i64 {
    let batch = &output.batches[0];
    batch
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_time_range_lists_and_reads_only_overlapping_files() {
    let lake = lake().await;
    let output = lake
        .query(
            "SELECT count(*) FROM events \
             WHERE ts >= TIMESTAMP '2026-11-23T10:00:00Z' AND ts < TIMESTAMP '2026-11-23T11:00:00Z'",
            Scope::All,
        )
        .await;
    assert_eq!(count(&output), 4);
    // e1 (10:00–12:00) and e2 (10:20–11:30) of the five curated files; the catalog's time
    // index already left the other three out of the listing.
    assert_eq!(output.scan.files_scanned, 2);
    assert_eq!(output.scan.files_listed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_with_no_events_reads_nothing() {
    let lake = lake().await;
    let output = lake
        .query(
            "SELECT count(*) FROM events WHERE ts BETWEEN TIMESTAMP '2026-11-23T13:00:00Z' \
             AND TIMESTAMP '2026-11-23T14:00:00Z'",
            Scope::All,
        )
        .await;
    assert_eq!(count(&output), 0);
    assert_eq!(output.scan.files_scanned, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_filters_prune_files_exactly() {
    let lake = lake().await;
    let cases = [
        ("dt = '2026-11-24'", 7, 3),
        ("event_family = 'track'", 5, 2),
        ("dt = '2026-11-24' AND event_family = 'page'", 5, 2),
        ("event_family IN ('track')", 5, 2),
        ("dt > '2026-11-23' OR event_family = 'track'", 10, 4),
        ("dt = '2026-12-01'", 0, 0),
    ];
    for (filter, rows, files) in cases {
        let output = lake
            .query(
                &format!("SELECT count(*) FROM events WHERE {filter}"),
                Scope::All,
            )
            .await;
        assert_eq!(count(&output), rows, "{filter}");
        assert_eq!(output.scan.files_scanned, files, "{filter}");
        assert_eq!(output.scan.files_listed, 5, "{filter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scope_skips_files_of_other_tenants() {
    let lake = lake().await;
    // initech is only in e4 (initech) and e5 (acme..initech).
    let output = lake
        .query(
            "SELECT count(*) FROM events",
            Scope::Tenant("initech".into()),
        )
        .await;
    assert_eq!(count(&output), 3);
    assert_eq!(output.scan.files_scanned, 2);
    let output = lake.query("SELECT count(*) FROM events", acme()).await;
    assert_eq!(count(&output), 8);
    assert_eq!(output.scan.files_scanned, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfiltered_counts_come_from_the_catalog_without_reading_files() {
    let lake = lake().await;
    for sql in [
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM events WHERE dt = '2026-11-24'",
    ] {
        let planned = lake.engine.plan(sql, Scope::All).await.unwrap();
        let plan = displayable(planned.plan.as_ref()).indent(true).to_string();
        assert!(!plan.contains("DataSourceExec"), "{sql}\n{plan}");
    }
    let output = lake.query("SELECT count(*) FROM events", Scope::All).await;
    assert_eq!(count(&output), 15);
    // Under a tenant scope the count must come from the rows, never from the statistics.
    let planned = lake
        .engine
        .plan("SELECT count(*) FROM events", acme())
        .await
        .unwrap();
    let plan = displayable(planned.plan.as_ref()).indent(true).to_string();
    assert!(plan.contains("TenantFilterExec"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_reach_the_parquet_reader() {
    let lake = lake().await;
    let planned = lake
        .engine
        .plan(
            "SELECT event_id FROM events WHERE event_type = 'page' AND ts > TIMESTAMP '2026-11-24T09:10:00Z'",
            Scope::All,
        )
        .await
        .unwrap();
    let plan = displayable(planned.plan.as_ref()).indent(true).to_string();
    assert!(plan.contains("predicate="), "{plan}");
    assert!(
        !plan.contains("FilterExec"),
        "filters are applied while decoding:\n{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalog_table_is_queryable_even_without_files() {
    let lake = lake().await;
    let mut def: TableDef = tributary_lake::schema::raw_events_table(None);
    def.name = "quarantine".into();
    def.location = "quarantine/events".into();
    lake.catalog.ensure_table(def).await.unwrap();
    let output = lake
        .query("SELECT count(*) FROM quarantine", Scope::All)
        .await;
    assert_eq!(count(&output), 0);
    let output = lake.query("SELECT * FROM quarantine", acme()).await;
    assert_eq!(output.rows, 0);
    assert_eq!(output.schema.fields().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_a_compaction_before_or_after_never_both() {
    let lake = lake().await;
    let curated = common::curated_files();
    let merged: Vec<common::Ev> = curated
        .iter()
        .filter(|(name, ..)| *name == "e3" || *name == "e4")
        .flat_map(|(_, _, _, rows)| rows.clone())
        .collect();
    let path = "curated/events/dt=2026-11-24/event_family=page/part-e34.parquet";
    let file = common::write_file(
        &lake.root(),
        path,
        "events",
        &common::curated_batch(&merged),
        vec![("dt", "2026-11-24"), ("event_family", "page")],
        merged.iter().map(|e| (e.tenant, e.ts)),
        1,
    );
    lake.catalog
        .stage("events", &[path.to_string()])
        .await
        .unwrap();
    lake.catalog
        .commit(Commit {
            kind: CommitKind::Compaction,
            added: vec![file],
            removed: vec![
                "curated/events/dt=2026-11-24/event_family=page/part-e3.parquet".into(),
                "curated/events/dt=2026-11-24/event_family=page/part-e4.parquet".into(),
            ],
            checkpoints: Vec::new(),
        })
        .await
        .unwrap();
    let output = lake.query("SELECT count(*) FROM events", Scope::All).await;
    assert_eq!(count(&output), 15);
    let output = lake
        .query(
            "SELECT count(DISTINCT event_id) AS n FROM events WHERE dt = '2026-11-24'",
            Scope::All,
        )
        .await;
    assert_eq!(count(&output), 7);
    assert_eq!(output.scan.files_listed, 4);
    assert_eq!(output.scan.files_scanned, 2);
}
