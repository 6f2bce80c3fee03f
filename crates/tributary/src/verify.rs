//! `tributary verify --since … --until …`: reconciliation of the lake against its raw archive.
//!
//! Per hour of arrival and tenant, every raw record must be accounted for exactly once:
//!
//! ```text
//! raw  =  curated  +  quarantined  +  deduplicated          (and no event curated twice)
//!
//! curated        curated rows received that hour (a curated row keeps its record's received_at)
//! quarantined    quarantine rows received that hour
//! deduplicated   raw records that are neither of those, whose event id is curated from an
//!                earlier copy (a producer retry the pipeline dropped)
//! ```
//!
//! A difference is a **gap**: events lost (raw > the sum) or counted twice (raw < the sum, or
//! an event id curated more than once). Raw records that are not events at all (something other
//! than the collector wrote the stream) are shown apart; by design they live in the raw archive
//! only. Everything is SQL over the lake through the query engine, read-only, so it runs beside
//! a running `serve`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use tributary_query::{QueryEngine, Scope};

use crate::config::Config;
use crate::existing_lake;
use crate::exit::{FAILURE, OK, UsageError};
use crate::output::{self, Table};
use crate::replay::parse_time;
use crate::runtime;

/// Arguments of `tributary verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// First arrival time to check (RFC 3339 UTC, or a date meaning its midnight UTC).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// First arrival time not to check (exclusive).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// Check only this tenant.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Print only the hours with a gap.
    #[arg(long)]
    gaps_only: bool,
    /// Print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

/// The counts of one hour and tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HourCounts {
    /// The hour (RFC 3339, UTC).
    pub hour: String,
    /// The tenant (empty for raw records that are not events).
    pub tenant: String,
    /// Records in the raw archive.
    pub raw: i64,
    /// Curated rows.
    pub curated: i64,
    /// Quarantined rows.
    pub quarantined: i64,
    /// Raw records dropped as repeats of a curated event.
    pub deduplicated: i64,
    /// Extra curated copies of an event id first received this hour.
    pub curated_twice: i64,
    /// raw − curated − quarantined − deduplicated (0 for records that are not events).
    pub gap: i64,
}

impl HourCounts {
    fn has_gap(&self) -> bool {
        self.gap != 0 || self.curated_twice != 0
    }
}

/// What `verify --json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    since: String,
    until: String,
    hours: usize,
    gaps: usize,
    rows: Vec<&'a HourCounts>,
}

/// Runs the check; exit 1 when any hour has a gap.
pub fn run(config: &Config, args: &VerifyArgs) -> Result<ExitCode> {
    let since = parse_time(&args.since, "--since")?;
    let until = parse_time(&args.until, "--until")?;
    if until <= since {
        return Err(UsageError("--until must be after --since".into()).into());
    }
    existing_lake::require(config, "verify")?;
    // Retries are dropped against a copy at most one dedup window older.
    let window = i64::try_from(config.pipeline.dedup.window.as_micros()).unwrap_or(i64::MAX);
    let runtime = runtime::build(runtime::server_workers())?;
    let counts = runtime.block_on(async {
        let (engine, scope) = existing_lake::query_engine(config, args.tenant.as_deref())?;
        reconcile(&engine, scope, since, until, since.saturating_sub(window)).await
    })?;
    let gaps = counts.iter().filter(|row| row.has_gap()).count();
    let shown: Vec<&HourCounts> = counts
        .iter()
        .filter(|row| !args.gaps_only || row.has_gap())
        .collect();
    if args.json {
        output::json_line(&Report {
            since: output::timestamp(since),
            until: output::timestamp(until),
            hours: counts.len(),
            gaps,
            rows: shown,
        })?;
    } else {
        print_table(&shown)?;
        output::print(&format!(
            "{} hour×tenant rows checked from {} to {}: {}\n",
            counts.len(),
            output::timestamp(since),
            output::timestamp(until),
            if gaps == 0 {
                "no gap".to_string()
            } else {
                format!("{gaps} with a gap")
            }
        ))?;
    }
    Ok(ExitCode::from(if gaps == 0 { OK } else { FAILURE }))
}

fn print_table(rows: &[&HourCounts]) -> Result<()> {
    let mut table = Table::new(&[
        "hour",
        "tenant",
        "raw",
        "curated",
        "quarantined",
        "deduplicated",
        "curated twice",
        "gap",
        "",
    ]);
    for row in rows {
        let status = if row.tenant.is_empty() {
            "not events (raw only)"
        } else if row.has_gap() {
            "GAP"
        } else {
            "ok"
        };
        table.row(vec![
            row.hour.clone(),
            row.tenant.clone(),
            row.raw.to_string(),
            row.curated.to_string(),
            row.quarantined.to_string(),
            row.deduplicated.to_string(),
            row.curated_twice.to_string(),
            row.gap.to_string(),
            status.into(),
        ]);
    }
    output::print(&table.render())
}

/// Which count a query fills.
#[derive(Debug, Clone, Copy)]
enum Column {
    Raw,
    Curated,
    Quarantined,
    Deduplicated,
    CuratedTwice,
}

/// Runs the five counting queries and adds them up per hour and tenant.
async fn reconcile(
    engine: &QueryEngine,
    scope: Scope,
    since: i64,
    until: i64,
    lookback: i64,
) -> Result<Vec<HourCounts>> {
    let at = |micros: i64| format!("TIMESTAMP '{}'", output::timestamp(micros));
    let (s, u, l) = (at(since), at(until), at(lookback));
    let in_range =
        |alias: &str| format!("{alias}.received_at >= {s} AND {alias}.received_at < {u}");
    let per_hour = |table: &str| {
        format!(
            "SELECT date_trunc('hour', t.received_at) AS hour, t.tenant_id, count(*) AS n \
             FROM {table} t WHERE {} GROUP BY 1, 2",
            in_range("t")
        )
    };
    let deduplicated = format!(
        "SELECT date_trunc('hour', r.received_at) AS hour, r.tenant_id, count(*) AS n \
         FROM raw_events r \
         WHERE {} AND r.tenant_id <> '' \
           AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE {} \
                 AND q.shard = r.shard AND q.seq = r.seq) \
           AND NOT EXISTS (SELECT 1 FROM events c WHERE c.tenant_id = r.tenant_id \
                 AND c.event_id = r.event_id AND c.received_at = r.received_at) \
           AND EXISTS (SELECT 1 FROM events c WHERE c.received_at >= {l} AND c.received_at < {u} \
                 AND c.tenant_id = r.tenant_id AND c.event_id = r.event_id) \
         GROUP BY 1, 2",
        in_range("r"),
        in_range("q"),
    );
    let curated_twice = format!(
        "SELECT hour, tenant_id, sum(n - 1) AS n FROM ( \
           SELECT date_trunc('hour', min(c.received_at)) AS hour, c.tenant_id, count(*) AS n \
           FROM events c WHERE c.received_at >= {l} AND c.received_at < {u} \
           GROUP BY c.tenant_id, c.event_id HAVING count(*) > 1) \
         WHERE hour >= date_trunc('hour', {s}) GROUP BY 1, 2"
    );
    let queries = [
        (Column::Raw, per_hour("raw_events")),
        (Column::Curated, per_hour("events")),
        (Column::Quarantined, per_hour("quarantine")),
        (Column::Deduplicated, deduplicated),
        (Column::CuratedTwice, curated_twice),
    ];
    let mut rows: BTreeMap<(i64, String), HourCounts> = BTreeMap::new();
    for (column, sql) in queries {
        for batch in run_all(engine, &sql, scope.clone()).await? {
            add_counts(&mut rows, &batch, column)?;
        }
    }
    Ok(rows
        .into_iter()
        .map(|((hour, tenant), mut row)| {
            row.hour = output::timestamp(hour);
            row.tenant = tenant;
            row.gap = if row.tenant.is_empty() {
                0
            } else {
                row.raw - row.curated - row.quarantined - row.deduplicated
            };
            row
        })
        .collect())
}

async fn run_all(engine: &QueryEngine, sql: &str, scope: Scope) -> Result<Vec<RecordBatch>> {
    let planned = engine
        .plan(sql, scope)
        .await
        .with_context(|| format!("planning {sql}"))?;
    let mut stream = planned.execute()?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.with_context(|| format!("running {sql}"))?);
    }
    Ok(batches)
}

fn add_counts(
    rows: &mut BTreeMap<(i64, String), HourCounts>,
    batch: &RecordBatch,
    column: Column,
) -> Result<()> {
    let hours = batch
        .column(0)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .context("hour column is not a µs timestamp")?;
    let tenants = arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
    let tenants = tenants.as_string::<i32>();
    let counts = arrow::compute::cast(batch.column(2), &DataType::Int64)?;
    let counts = counts.as_primitive::<Int64Type>();
    for row in 0..batch.num_rows() {
        if hours.is_null(row) {
            continue;
        }
        let entry = rows
            .entry((hours.value(row), tenants.value(row).to_string()))
            .or_default();
        let n = counts.value(row);
        match column {
            Column::Raw => entry.raw += n,
            Column::Curated => entry.curated += n,
            Column::Quarantined => entry.quarantined += n,
            Column::Deduplicated => entry.deduplicated += n,
            Column::CuratedTwice => entry.curated_twice += n,
        }
    }
    Ok(())
}
