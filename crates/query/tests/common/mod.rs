//! A small real lake for the query tests: an embedded catalog in a temporary directory, the
//! `events` and `raw_events` tables, and Parquet files written the way the lake writes them
//! (Hive partitions, sorted by tenant then time, zstd, page statistics and page index), committed
//! through the catalog's stage-then-commit protocol.
//!
//! | file | partition                               | tenants            | event time (UTC)       |
//! |------|-----------------------------------------|--------------------|------------------------|
//! | e1   | dt=2026-11-23/event_family=page         | acme, globex       | 23rd 10:00 – 12:00     |
//! | e2   | dt=2026-11-23/event_family=track        | acme, globex       | 23rd 10:20 – 11:30     |
//! | e3   | dt=2026-11-24/event_family=page         | acme, globex       | 24th 09:00 – 09:45     |
//! | e4   | dt=2026-11-24/event_family=page         | initech            | 24th 15:00 – 16:00     |
//! | e5   | dt=2026-11-24/event_family=track        | acme, initech      | 24th 09:50 – 15:30     |
//! | r1   | raw dt=2026-11-23/hour=10               | acme, globex       | received 23rd 10:xx    |
//! | r2   | raw dt=2026-11-24/hour=09               | acme, globex       | received 24th 09:xx    |
//!
//! Every tenant has a secret it must never see of another: globex's page titles contain
//! `GLOBEX-SECRET`, initech's `INITECH-SECRET`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, MapArray, StringArray, StructArray, TimestampMicrosecondArray,
    UInt32Array, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tributary_catalog::{Catalog, Commit, CommitKind, DataFile, EmbeddedCatalog};
use tributary_lake::schema::{
    PromotedProperty, PromotedType, campaign_fields, context_fields, curated_file_schema,
    events_table, page_fields, properties_type, raw_events_table, raw_file_schema,
};
use tributary_query::{QueryConfig, QueryEngine, QueryOutput, Scope};

/// 2026-11-23T00:00:00Z in µs.
pub const DAY_23: i64 = 1_795_392_000_000_000;
/// 2026-11-24T00:00:00Z in µs.
pub const DAY_24: i64 = DAY_23 + 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
const MINUTE: i64 = 60_000_000;

/// One curated event of the fixture.
#[derive(Debug, Clone)]
pub struct Ev {
    pub id: &'static str,
    pub tenant: &'static str,
    pub user: Option<&'static str>,
    pub event_type: &'static str,
    pub ts: i64,
    pub path: &'static str,
    pub title: &'static str,
    pub properties: Vec<(&'static str, &'static str)>,
    pub revenue: Option<f64>,
}

fn ev(
    id: &'static str,
    tenant: &'static str,
    event_type: &'static str,
    ts: i64,
    path: &'static str,
) -> Ev {
    let title = match tenant {
        "globex" => "GLOBEX-SECRET page",
        "initech" => "INITECH-SECRET page",
        _ => "Acme page",
    };
    Ev {
        id,
        tenant,
        user: None,
        event_type,
        ts,
        path,
        title,
        properties: Vec::new(),
        revenue: None,
    }
}

/// The curated files: (name, dt, event_family, events).
pub fn curated_files() -> Vec<(&'static str, &'static str, &'static str, Vec<Ev>)> {
    let at = |day: i64, h: i64, m: i64| day + h * HOUR + m * MINUTE;
    vec![
        (
            "e1",
            "2026-11-23",
            "page",
            vec![
                Ev {
                    user: Some("u-1"),
                    ..ev("a1", "acme", "page", at(DAY_23, 10, 0), "/")
                },
                ev("a2", "acme", "page", at(DAY_23, 10, 15), "/shoes"),
                ev("a3", "acme", "page", at(DAY_23, 11, 0), "/shoes/red"),
                ev("g1", "globex", "page", at(DAY_23, 10, 30), "/"),
                ev("g2", "globex", "page", at(DAY_23, 12, 0), "/pricing"),
            ],
        ),
        (
            "e2",
            "2026-11-23",
            "track",
            vec![
                Ev {
                    properties: vec![("item_id", "sku-1"), ("color", "red")],
                    ..ev(
                        "a4",
                        "acme",
                        "track:add_to_cart",
                        at(DAY_23, 10, 20),
                        "/shoes/red",
                    )
                },
                Ev {
                    properties: vec![("order_id", "o-1"), ("item_id", "sku-1")],
                    revenue: Some(59.9),
                    user: Some("u-1"),
                    ..ev(
                        "a5",
                        "acme",
                        "track:order_completed",
                        at(DAY_23, 11, 30),
                        "/checkout",
                    )
                },
                Ev {
                    properties: vec![("item_id", "sku-GLOBEX")],
                    revenue: Some(1000.0),
                    ..ev(
                        "g3",
                        "globex",
                        "track:order_completed",
                        at(DAY_23, 11, 0),
                        "/checkout",
                    )
                },
            ],
        ),
        (
            "e3",
            "2026-11-24",
            "page",
            vec![
                ev("a6", "acme", "page", at(DAY_24, 9, 0), "/"),
                ev("a7", "acme", "page", at(DAY_24, 9, 30), "/shoes"),
                ev("g4", "globex", "page", at(DAY_24, 9, 45), "/"),
            ],
        ),
        (
            "e4",
            "2026-11-24",
            "page",
            vec![
                ev("i1", "initech", "page", at(DAY_24, 15, 0), "/"),
                ev("i2", "initech", "page", at(DAY_24, 16, 0), "/tps"),
            ],
        ),
        (
            "e5",
            "2026-11-24",
            "track",
            vec![
                Ev {
                    properties: vec![("order_id", "o-2"), ("item_id", "sku-2")],
                    revenue: Some(19.5),
                    ..ev(
                        "a8",
                        "acme",
                        "track:order_completed",
                        at(DAY_24, 9, 50),
                        "/checkout",
                    )
                },
                Ev {
                    properties: vec![("item_id", "sku-INITECH")],
                    ..ev(
                        "i3",
                        "initech",
                        "track:add_to_cart",
                        at(DAY_24, 15, 30),
                        "/tps",
                    )
                },
            ],
        ),
    ]
}

/// The raw files: (name, dt, hour, event ids of `curated_files` archived there).
fn raw_files() -> Vec<(&'static str, &'static str, &'static str, Vec<&'static str>)> {
    vec![
        ("r1", "2026-11-23", "10", vec!["a1", "a2", "a4", "g1"]),
        ("r2", "2026-11-24", "09", vec!["a6", "a7", "a8", "g4"]),
    ]
}

pub fn promoted() -> Vec<PromotedProperty> {
    vec![PromotedProperty {
        name: "revenue".into(),
        kind: PromotedType::Float64,
    }]
}

/// A lake with the fixture's files committed, and an engine over it.
pub struct Lake {
    pub dir: tempfile::TempDir,
    pub catalog: Arc<EmbeddedCatalog>,
    pub engine: QueryEngine,
}

impl Lake {
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub async fn query(&self, sql: &str, scope: Scope) -> QueryOutput {
        match self.engine.execute(sql, scope).await {
            Ok(output) => output,
            Err(error) => panic!("query failed: {sql}\n{error}"),
        }
    }

    /// The rows as pretty-printed text.
    pub async fn table(&self, sql: &str, scope: Scope) -> String {
        pretty(&self.query(sql, scope).await)
    }
}

pub fn pretty(output: &QueryOutput) -> String {
    arrow::util::pretty::pretty_format_batches(&output.batches)
        .unwrap()
        .to_string()
}

pub fn acme() -> Scope {
    Scope::Tenant("acme".into())
}

/// Builds the lake with the default engine configuration.
pub async fn lake() -> Lake {
    lake_with(QueryConfig {
        target_partitions: 2,
        ..QueryConfig::default()
    })
    .await
}

pub async fn lake_with(config: QueryConfig) -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    std::fs::create_dir_all(&root).unwrap();
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path().join("catalog.db")).unwrap());
    let events = catalog
        .ensure_table(events_table(&promoted(), None))
        .await
        .unwrap();
    let raw = catalog.ensure_table(raw_events_table(None)).await.unwrap();

    let curated = curated_files();
    let mut added = Vec::new();
    for (name, dt, family, rows) in &curated {
        let path = format!(
            "{}/dt={dt}/event_family={family}/part-{name}.parquet",
            events.def.location
        );
        let batch = curated_batch(rows);
        added.push(write_file(
            &root,
            &path,
            "events",
            &batch,
            vec![("dt", dt), ("event_family", family)],
            rows.iter().map(|e| (e.tenant, e.ts)),
            events.schema_version,
        ));
    }
    let all: Vec<Ev> = curated
        .into_iter()
        .flat_map(|(_, _, _, rows)| rows)
        .collect();
    for (name, dt, hour, ids) in raw_files() {
        let path = format!(
            "{}/dt={dt}/hour={hour}/part-{name}.parquet",
            raw.def.location
        );
        let rows: Vec<&Ev> = ids
            .iter()
            .map(|id| all.iter().find(|e| e.id == *id).unwrap())
            .collect();
        let batch = raw_batch(&rows);
        added.push(write_file(
            &root,
            &path,
            "raw_events",
            &batch,
            vec![("dt", dt), ("hour", hour)],
            rows.iter().map(|e| (e.tenant, received_at(e))),
            raw.schema_version,
        ));
    }
    for table in ["events", "raw_events"] {
        let paths: Vec<String> = added
            .iter()
            .filter(|f: &&DataFile| f.table == table)
            .map(|f| f.path.clone())
            .collect();
        catalog.stage(table, &paths).await.unwrap();
    }
    catalog
        .commit(Commit {
            kind: CommitKind::Flush,
            added,
            removed: Vec::new(),
            checkpoints: Vec::new(),
        })
        .await
        .unwrap();

    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap());
    let engine = QueryEngine::new(catalog.clone(), store, config).unwrap();
    Lake {
        dir,
        catalog,
        engine,
    }
}

fn received_at(event: &Ev) -> i64 {
    event.ts + 2_000_000
}

/// Writes `batch` as the lake would and returns its catalog record.
pub fn write_file<'a>(
    root: &Path,
    path: &str,
    table: &str,
    batch: &RecordBatch,
    partition: Vec<(&str, &str)>,
    tenants_and_times: impl Iterator<Item = (&'a str, i64)>,
    schema_version: u32,
) -> DataFile {
    // Tiny row groups and pages so that pruning inside files has something to skip.
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(2))
        .set_data_page_row_count_limit(1)
        .build();
    write_file_with(
        root,
        path,
        table,
        batch,
        partition,
        tenants_and_times,
        schema_version,
        properties,
    )
}

/// [`write_file`] with the given writer properties.
#[allow(clippy::too_many_arguments)]
pub fn write_file_with<'a>(
    root: &Path,
    path: &str,
    table: &str,
    batch: &RecordBatch,
    partition: Vec<(&str, &str)>,
    tenants_and_times: impl Iterator<Item = (&'a str, i64)>,
    schema_version: u32,
    properties: WriterProperties,
) -> DataFile {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&full).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    let pairs: Vec<(&str, i64)> = tenants_and_times.collect();
    DataFile {
        table: table.into(),
        path: path.into(),
        partition: partition
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        rows: batch.num_rows() as u64,
        bytes: std::fs::metadata(&full).unwrap().len(),
        min_ts: pairs.iter().map(|p| p.1).min().unwrap(),
        max_ts: pairs.iter().map(|p| p.1).max().unwrap(),
        min_tenant: pairs.iter().map(|p| p.0).min().unwrap().into(),
        max_tenant: pairs.iter().map(|p| p.0).max().unwrap().into(),
        schema_version,
    }
}

fn utc(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

/// Events sorted by (tenant, ts) as the lake sorts them, in the curated file schema.
pub fn curated_batch(rows: &[Ev]) -> RecordBatch {
    let mut rows: Vec<&Ev> = rows.iter().collect();
    rows.sort_by_key(|e| (e.tenant, e.ts));
    let schema: SchemaRef = curated_file_schema(&promoted());
    let n = rows.len();
    let urls: Vec<String> = rows
        .iter()
        .map(|e| format!("https://shop.example{}", e.path))
        .collect();
    let page = StructArray::new(
        page_fields(),
        vec![
            strings(urls.iter().map(|url| Some(url.as_str()))),
            strings(rows.iter().map(|e| Some(e.path))),
            strings(rows.iter().map(|e| Some(e.title))),
            strings(rows.iter().map(|_| None)),
        ],
        None,
    );
    let campaign = StructArray::new(
        campaign_fields(),
        (0..5).map(|_| strings((0..n).map(|_| None))).collect(),
        None,
    );
    let context = StructArray::new(
        context_fields(),
        vec![
            Arc::new(page) as ArrayRef,
            strings(rows.iter().map(|_| Some("Mozilla/5.0"))),
            strings(rows.iter().map(|_| Some("203.0.113.0"))),
            strings(rows.iter().map(|_| Some("en-US"))),
            Arc::new(campaign) as ArrayRef,
            strings(rows.iter().map(|_| None)),
        ],
        None,
    );
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|e| Some(e.id))),
        strings(rows.iter().map(|e| Some(e.tenant))),
        strings(rows.iter().map(|e| {
            Some(match e.user {
                Some(_) => "anon-1",
                None => "anon-2",
            })
        })),
        strings(rows.iter().map(|e| e.user)),
        strings(rows.iter().map(|e| {
            Some(if e.tenant == "acme" {
                "s-acme"
            } else {
                "s-other"
            })
        })),
        strings(rows.iter().map(|e| Some(e.event_type))),
        utc(rows.iter().map(|e| e.ts).collect()),
        utc(rows.iter().map(|e| received_at(e)).collect()),
        Arc::new(context),
        properties(&rows),
        // Not enriched: the pipeline is not part of these tests.
        arrow::array::new_null_array(
            &DataType::Struct(tributary_lake::schema::enriched_fields()),
            rows.len(),
        ),
        Arc::new(rows.iter().map(|e| e.revenue).collect::<Float64Array>()),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn properties(rows: &[&Ev]) -> ArrayRef {
    let DataType::Map(entry_field, sorted) = properties_type() else {
        unreachable!("properties is a map")
    };
    let DataType::Struct(entry_fields) = entry_field.data_type() else {
        unreachable!("map entries are structs")
    };
    let keys = strings(
        rows.iter()
            .flat_map(|e| e.properties.iter().map(|(k, _)| Some(*k))),
    );
    let values = strings(
        rows.iter()
            .flat_map(|e| e.properties.iter().map(|(_, v)| Some(*v))),
    );
    let entries = StructArray::new(entry_fields.clone(), vec![keys, values], None);
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|e| e.properties.len()));
    Arc::new(MapArray::new(
        entry_field.clone(),
        offsets,
        entries,
        None,
        sorted,
    ))
}

/// Raw archive rows of `rows`, sorted by (tenant, received_at).
fn raw_batch(rows: &[&Ev]) -> RecordBatch {
    let mut rows: Vec<&Ev> = rows.to_vec();
    rows.sort_by_key(|e| (e.tenant, received_at(e)));
    let payloads: Vec<String> = rows
        .iter()
        .map(|e| {
            serde_json::json!({"event_id": e.id, "type": e.event_type, "title": e.title})
                .to_string()
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|e| Some(e.tenant))),
        strings(rows.iter().map(|e| Some(e.id))),
        utc(rows.iter().map(|e| e.ts).collect()),
        utc(rows.iter().map(|e| received_at(e)).collect()),
        Arc::new(UInt32Array::from(vec![0; rows.len()])),
        Arc::new(UInt64Array::from_iter_values(0..rows.len() as u64)),
        strings(payloads.iter().map(|p| Some(p.as_str()))),
    ];
    RecordBatch::try_new(raw_file_schema(), columns).unwrap()
}
