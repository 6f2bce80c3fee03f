//! `tributary replay quarantine|raw`: run stored events through the pipeline again and swap
//! the result into the lake in one commit (see `tributary_lake::replay`).
//!
//! A replay uses the lake writer's dedup store, which one process at a time may hold: with
//! dedup on (the default), stop `tributary serve` first; the command says so when it finds the
//! store in use. It only reads the configuration, so the pipeline it runs (schemas, privacy
//! key, enrichment) is the one `serve` runs.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use tributary_lake::replay::{
    ReceivedRange, ReplayProgress, ReplaySummary, Replayer, quarantine_filter_schema,
};
use tributary_query::predicate::SqlRowFilter;

use crate::config::Config;
use crate::exit::{OK, UsageError};
use crate::output::{self, Table};
use crate::{existing_lake, pipeline_setup, runtime};

/// `tributary replay` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Validate quarantined events again (after a schema fix): those the predicate chooses
    /// and that now pass move to the curated lake; the rest stay, with current reasons.
    Quarantine(QuarantineArgs),
    /// Rebuild the curated lake and quarantine for the events received in [--since, --until)
    /// from the raw archive, through the pipeline as it is configured now.
    Raw(RawArgs),
}

/// Arguments of `replay quarantine`.
#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// A SQL predicate over the `quarantine` table's columns, e.g. "event_type = 'track:Order
    /// Completed' AND dt >= '2026-11-20'"; `true` chooses every row.
    #[arg(long = "where", value_name = "SQL")]
    predicate: String,
    /// Print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `replay raw`.
#[derive(Debug, Args)]
pub struct RawArgs {
    /// First arrival time to rebuild (RFC 3339 UTC, or a date meaning its midnight UTC).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// First arrival time not to rebuild (exclusive).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// Print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// Runs a `replay` subcommand; exit 0 on success (also when there was nothing to replay).
pub fn run(config: &Config, command: &ReplayCommand) -> Result<ExitCode> {
    existing_lake::require(config, "replay")?;
    // Check the arguments before any work: a typo should not cost a pipeline start.
    let range = match command {
        ReplayCommand::Raw(args) => Some(ReceivedRange {
            since: parse_time(&args.since, "--since")?,
            until: parse_time(&args.until, "--until")?,
        }),
        ReplayCommand::Quarantine(_) => None,
    };
    let filter = match command {
        ReplayCommand::Quarantine(args) => Some(
            SqlRowFilter::parse(&args.predicate, quarantine_filter_schema())
                .map_err(|error| UsageError(format!("--where: {error}")))?,
        ),
        ReplayCommand::Raw(_) => None,
    };
    let runtime = runtime::build(runtime::server_workers())?;
    let summary = runtime.block_on(async {
        let (catalog, store) = existing_lake::open(config)?;
        let (pipeline, dedup) = pipeline_setup::build(config, catalog.as_ref()).await?;
        let mut replayer = Replayer::new(catalog, store, &config.lake, pipeline, dedup)
            .await
            .context("preparing the replay")?;
        let bar = Bar::new();
        let summary = match (&filter, range) {
            (Some(filter), _) => replayer
                .quarantine(filter, &bar)
                .await
                .context("replaying quarantine")?,
            (None, Some(range)) => replayer
                .raw(range, &bar)
                .await
                .context("replaying the raw archive")?,
            (None, None) => bail!("nothing to replay"),
        };
        bar.finish();
        Ok::<_, anyhow::Error>(summary)
    })?;
    let json = match command {
        ReplayCommand::Quarantine(args) => args.json,
        ReplayCommand::Raw(args) => args.json,
    };
    report(&summary, json)?;
    Ok(ExitCode::from(OK))
}

/// An RFC 3339 UTC time, or `YYYY-MM-DD` for that day's midnight, in µs.
pub fn parse_time(text: &str, flag: &str) -> Result<i64> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    output::parse_timestamp(&full)
        .map_err(|message| UsageError(format!("{flag}: {message}")).into())
}

fn report(summary: &ReplaySummary, json: bool) -> Result<()> {
    if json {
        return output::json_line(summary);
    }
    let mut table = Table::new(&["", "count"]);
    for (label, value) in [
        ("events replayed", summary.events),
        ("  → curated", summary.curated),
        ("  → quarantined", summary.quarantined),
        ("  → duplicates dropped", summary.duplicates),
        ("curated rows replaced", summary.curated_rows_replaced),
        ("quarantine rows replaced", summary.quarantine_rows_replaced),
        ("unreadable payloads", summary.unreadable),
        ("files read", summary.files_read),
        ("files added", summary.files_added),
        ("files removed", summary.files_removed),
    ] {
        table.row(vec![label.into(), output::thousands(value)]);
    }
    output::print(&table.render())?;
    match summary.commit_id {
        Some(id) => output::print(&format!("committed as commit {id}\n")),
        None => output::print("nothing changed; no commit\n"),
    }
}

/// The replay's progress in bytes read, on stderr when it is a terminal.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Bar(Some(bar))
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl ReplayProgress for Bar {
    fn planned(&self, files: u64, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(bytes);
            bar.set_message(format!("{files} files"));
        }
    }

    fn file_done(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(
            parse_time("2026-11-23", "--since").unwrap(),
            parse_time("2026-11-23T00:00:00Z", "--since").unwrap()
        );
        let error = parse_time("yesterday", "--until").unwrap_err();
        assert!(error.to_string().contains("--until"), "{error}");
    }
}
