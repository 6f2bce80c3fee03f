//! `tributary query "SELECT …"`: SQL over the lake from the command line.
//!
//! It reads the catalog and the Parquet files directly (no server needed, and safe beside a
//! running one: it only reads), with admin scope unless `--tenant` narrows it. Results go to
//! stdout as a table (default), JSON, CSV or Parquet; a spinner on stderr shows a long query is
//! alive.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use tributary_query::{Format, QueryEngine, QueryError, Scope};

use crate::config::Config;
use crate::existing_lake;
use crate::exit::{FAILURE, OK};
use crate::runtime;

/// Arguments of `tributary query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// One SQL statement. Tables: `events` (curated), `raw_events` (the raw archive).
    #[arg(value_name = "SQL")]
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Write the result to FILE instead of stdout (required for parquet on a terminal).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// See only this tenant's rows, as its read key would.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Print the physical plan (with the files each scan reads) instead of running it.
    #[arg(long)]
    pub explain: bool,
}

/// How `tributary query` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
    /// A Parquet file (zstd).
    Parquet,
}

/// Runs the query; exit 1 when it fails (the message says why).
pub fn run(config: &Config, args: &QueryArgs) -> Result<ExitCode> {
    existing_lake::require(config, "query")?;
    if args.format == OutputFormat::Parquet
        && args.output.is_none()
        && std::io::stdout().is_terminal()
    {
        bail!("--format parquet writes binary: give --output FILE or redirect stdout");
    }
    let runtime = runtime::build(runtime::server_workers())?;
    runtime.block_on(async {
        let (engine, scope) = existing_lake::query_engine(config, args.tenant.as_deref())?;
        match execute(&engine, args, scope).await {
            Ok(()) => Ok(ExitCode::from(OK)),
            Err(error) => {
                eprintln!("error: {error:#}");
                Ok(ExitCode::from(FAILURE))
            }
        }
    })
}

async fn execute(engine: &QueryEngine, args: &QueryArgs, scope: Scope) -> Result<()> {
    let started = Instant::now();
    let planned = engine.plan(&args.sql, scope).await.map_err(describe)?;
    if args.explain {
        let plan = datafusion::physical_plan::displayable(planned.plan.as_ref()).indent(true);
        println!("{plan}");
        println!(
            "files: {} scanned of {} listed ({} bytes)",
            planned.scan.files_scanned, planned.scan.files_listed, planned.scan.bytes_scanned
        );
        return Ok(());
    }
    let spinner = spinner();
    let mut stream = planned.execute().map_err(describe)?;
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| describe(QueryError::from(e)))?;
        rows += batch.num_rows();
        if let Some(spinner) = &spinner {
            spinner.set_message(format!("{rows} rows"));
        }
        batches.push(batch);
    }
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let schema = planned.schema();
    let bytes = match args.format {
        OutputFormat::Table => {
            let mut text = arrow::util::pretty::pretty_format_batches(&batches)
                .context("formatting the table")?
                .to_string();
            text.push('\n');
            text.into_bytes()
        }
        OutputFormat::Json => {
            let mut json = Format::Json
                .encode(&schema, &batches)
                .context("encoding JSON")?;
            json.push(b'\n');
            json
        }
        OutputFormat::Csv => Format::Csv
            .encode(&schema, &batches)
            .context("encoding CSV")?,
        OutputFormat::Parquet => parquet_bytes(&schema, &batches)?,
    };
    match &args.output {
        // A result file for the user, not durable data: no sync needed.
        Some(path) => std::fs::File::create(path)
            .and_then(|mut file| file.write_all(&bytes))
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout()
            .write_all(&bytes)
            .context("writing the result")?,
    }
    if args.format == OutputFormat::Table || args.output.is_some() {
        eprintln!(
            "{rows} rows in {:.3} s; {} files scanned of {} listed",
            started.elapsed().as_secs_f64(),
            planned.scan.files_scanned,
            planned.scan.files_listed
        );
    }
    Ok(())
}

fn describe(error: QueryError) -> anyhow::Error {
    anyhow::anyhow!(error)
}

fn parquet_bytes(schema: &arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::default(),
        ))
        .build();
    let mut buffer = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut buffer, Arc::clone(schema), Some(properties))
            .context("starting the Parquet writer")?;
    for batch in batches {
        writer.write(batch).context("writing Parquet")?;
    }
    writer.close().context("finishing the Parquet file")?;
    Ok(buffer)
}

/// A spinner on stderr that appears only when the query takes a while and stderr is a
/// terminal (scripts see nothing).
fn spinner() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("running");
    spinner.enable_steady_tick(Duration::from_millis(120));
    Some(spinner)
}
