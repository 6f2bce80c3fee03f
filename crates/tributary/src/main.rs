//! # tributary
//!
//! The one binary of Tributary: it parses the command line, loads the configuration, and wires
//! the components together in one process on local disk (DESIGN.md, principle 5).
//!
//! ```text
//! tributary serve ─────▶ serve.rs ──▶ tributary_collector (HTTP) ▶ tributary_stream::EmbeddedLog
//! tributary keys … ────▶ keys.rs ───▶ <data_dir>/keys.json
//! tributary stream … ──▶ inspect.rs ─▶ the same log, opened for inspection
//! tributary bench … ───▶ bench/ ─────▶ fresh logs in a scratch directory
//! tributary replay … ───▶ replay.rs ─▶ tributary_lake::replay (pipeline again, one commit)
//! tributary verify ─────▶ verify.rs ─▶ SQL: raw = curated + quarantined + deduplicated
//! tributary config show ─▶ config.rs (defaults ◀ file ◀ TRIBUTARY_* ◀ flags)
//! ```
//!
//! Library crates return typed errors; here they become `anyhow` errors with context, and
//! `exit.rs` maps them to exit codes a script can rely on (0 ok, 1 failure, 2 usage/config).

mod allocator;
mod bench;
mod config;
mod existing_lake;
mod exit;
mod inspect;
mod keys;
mod loadgen;
mod logging;
mod output;
mod pipeline_setup;
mod query;
mod replay;
mod runtime;
mod sample_traffic;
mod schemas;
mod serve;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigSources, Loaded};

const EXAMPLES: &str = "\
Examples:
  tributary serve --sample-traffic              run on ./data with demo traffic (Ctrl-C stops)
  tributary keys create --tenant acme --role write   prints a new write key
  tributary stream stats                        shards, records, bytes (works beside serve)
  tributary stream lag --consumer serve-demo    how far a consumer is behind
  tributary stream read --shard 0 --from latest --limit 5
  tributary stream verify                       check every checksum; exit 1 on damage
  tributary bench stream --quick                group commit vs the raw disk, in ~15 s
  TRIBUTARY_STREAM__SHARDS=8 tributary config show

Exit codes: 0 ok, 1 failure (I/O, damage), 2 usage or configuration error.
Configuration: built-in defaults < tributary.toml (or --config) < TRIBUTARY_* variables < flags;
see tributary.example.toml and docs/configuration.md.";

/// Tributary: self-hostable clickstream analytics in one binary.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, after_help = EXAMPLES)]
struct Cli {
    /// Configuration file (TOML). Default: ./tributary.toml when it exists.
    #[arg(long, global = true, value_name = "FILE", env = "TRIBUTARY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`); the stream lives in DIR/stream.
    #[arg(long = "data", global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Tributary on local disk: the collector's HTTP API (native, Segment-compatible and
    /// Kinesis-compatible) in front of the embedded stream, a demo consumer (`serve-demo`) and
    /// optional sample traffic.
    #[command(after_help = "\
Examples:
  tributary serve --sample-traffic              ~200 events/s into ./data/stream
  tributary serve --listen 0.0.0.0:8080 --data /var/lib/tributary
  KEY=$(tributary keys create --tenant acme --role write)
  curl -H \"Authorization: Bearer $KEY\" -d '[{\"event_type\":\"page\",\"anonymous_id\":\"a1\"}]' \\
       -H 'Content-Type: application/json' http://127.0.0.1:8080/v1/events
Every 5 s a log line reports appended, consumed, lag and shards. Ctrl-C or SIGTERM closes the
stream cleanly (exit 0).")]
    Serve(serve::ServeArgs),
    /// Producer and reader keys: create (prints the secret) and list.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Inspect the embedded stream: shard stats, consumers, lag, records, integrity. Opens it
    /// read-only, so it works beside a running `serve`.
    #[command(
        subcommand,
        after_help = "\
Examples:
  tributary stream stats --data /var/lib/tributary
  tributary stream lag --consumer serve-demo --json
  tributary stream read --shard 2 --from ts:2025-01-31T12:00:00Z --limit 50
  tributary stream verify || echo \"damage found\"
See docs/operations.md for what the figures mean and what to do about damage."
    )]
    Stream(inspect::StreamCommand),
    /// Send realistic clickstream to a running collector over HTTP (native, Segment or
    /// Kinesis API) at a given rate, and report acked events/s and ack latency.
    #[command(after_help = "\
Examples:
  tributary loadgen --key $KEY --rate 5000 --duration 30
  tributary loadgen --key $KEY --api segment --rate 0 --concurrency 64 --json
  tributary loadgen --api kinesis --key $AWS_ACCESS_KEY_ID --aws-secret $AWS_SECRET_ACCESS_KEY
Bodies are encoded before the clock starts and reused, so event ids repeat (downstream dedup
folds them); --unique encodes every request afresh. Exit 1 when no event was acknowledged.")]
    Loadgen(loadgen::LoadgenArgs),
    /// SQL over the lake (tables `events` and `raw_events`), read straight from the catalog and
    /// the Parquet files; works beside a running `serve`.
    #[command(after_help = "\
Examples:
  tributary query \"SELECT event_family, count(*) FROM events GROUP BY 1\"
  tributary query --tenant acme \"SELECT context.page.path, count(*) FROM events GROUP BY 1\"
  tributary query --format csv \"SELECT * FROM events WHERE dt = '2026-11-23'\" > day.csv
  tributary query --format parquet -o orders.parquet \"SELECT * FROM events WHERE order_id IS NOT NULL\"
  tributary query --explain \"SELECT count(*) FROM events WHERE ts > now() - INTERVAL '1 hour'\"
Over HTTP: POST /v1/query with a read or admin key (docs/api.md). Exit 1 when the query fails.")]
    Query(query::QueryArgs),
    /// The pipeline's schema registry: JSON Schemas per event type, versioned, backward
    /// compatible unless forced. A running `serve` applies a new version within seconds.
    #[command(
        subcommand,
        after_help = "\
Examples:
  tributary schemas add order_completed.json        {\"event_type\": \"track:Order Completed\", \"schema\": {…}}
  tributary schemas add --event-type \"track:Product Viewed\" product_viewed.schema.json
  tributary schemas add --force looser.json         replace a version even if it breaks
  tributary schemas list --json
Exit 2 when the schema is invalid or not backward compatible (the message names what breaks)."
    )]
    Schemas(schemas::SchemasCommand),
    /// Run stored events through the pipeline again, swapping the result into the lake in one
    /// commit: quarantined events after a schema fix, or a range of the raw archive.
    #[command(
        subcommand,
        after_help = "\
Examples:
  tributary replay quarantine --where \"event_type = 'track:Order Completed'\"
  tributary replay quarantine --where \"dt >= '2026-11-20' AND tenant_id = 'acme'\" --json
  tributary replay raw --since 2026-11-23T10:00:00Z --until 2026-11-23T12:00:00Z
Replays are idempotent: run one twice and the second changes nothing (same counts). With dedup
on (the default) stop `tributary serve` first: they share its dedup store (exit 2 if it is held)."
    )]
    Replay(replay::ReplayCommand),
    /// Reconcile the lake with its raw archive: per hour and tenant, raw = curated + quarantined
    /// + deduplicated. Read-only (works beside `serve`); exit 1 when any hour has a gap.
    #[command(after_help = "\
Examples:
  tributary verify --since 2026-11-23 --until 2026-11-24
  tributary verify --since 2026-11-23T10:00:00Z --until 2026-11-23T11:00:00Z --tenant acme --json
  tributary verify --since 2026-11-01 --until 2026-12-01 --gaps-only || echo \"gap found\"")]
    Verify(verify::VerifyArgs),
    /// Benchmarks. Each prints a table for people, then one JSON line with every figure.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (defaults < file < environment < flags) as TOML.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Print JSON instead of TOML.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let loaded = config::load(&ConfigSources::from_process(cli.config, cli.data))?;
    logging::init(&loaded.config.log.level);
    match &cli.command {
        Command::Serve(args) => serve::run(&loaded.config, args),
        Command::Stream(command) => inspect::run(&loaded.config, command),
        Command::Keys(command) => keys::run(&loaded.config, command),
        Command::Loadgen(args) => loadgen::run(args),
        Command::Bench(command) => bench::run(&loaded.config, command),
        Command::Query(args) => query::run(&loaded.config, args),
        Command::Schemas(command) => schemas::run(&loaded.config, command),
        Command::Replay(command) => replay::run(&loaded.config, command),
        Command::Verify(args) => verify::run(&loaded.config, args),
        Command::Config(ConfigCommand::Show(args)) => show_config(&loaded, args.json),
    }
}

fn show_config(loaded: &Loaded, json: bool) -> Result<ExitCode> {
    if json {
        output::json_line(&config::redacted(&loaded.config))?;
    } else {
        output::print(&config::to_toml(loaded)?)?;
    }
    Ok(ExitCode::from(exit::OK))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
