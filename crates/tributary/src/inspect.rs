//! `tributary stream …`: look into the embedded stream from the command line.
//!
//! Each subcommand opens the stream directory read-only: it takes no lock and changes nothing
//! on disk, so it runs beside a live `tributary serve` and shows a snapshot as of the call
//! (the shard count comes from the directory). Recovery of torn tails is left to the writer.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use tokio::runtime::Runtime;
use tributary_stream::{
    EmbeddedLog, ReadLimits, RecoveryReport, ShardId, StartPosition, Stream, StreamError,
    TruncatedTail,
};

use crate::config::Config;
use crate::exit::{FAILURE, OK, UsageError};
use crate::output::{self, Table};
use crate::runtime;

/// `tributary stream` subcommands.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Per-shard extent and size: sequence numbers, segments, bytes, oldest and newest record.
    Stats(Output),
    /// Registered consumers with their checkpoints and total lag.
    Consumers(Output),
    /// How far consumers are behind, per shard: records and iterator age.
    Lag(LagArgs),
    /// Check every segment's checksums and structure; exit code 1 when damage is found.
    Verify(Output),
    /// Print records of one shard.
    Read(ReadArgs),
}

/// The output switch every subcommand has.
#[derive(Debug, Args)]
pub struct Output {
    /// Print one line of JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tributary stream lag`.
#[derive(Debug, Args)]
pub struct LagArgs {
    /// Only this consumer (default: every registered consumer).
    #[arg(long, value_name = "NAME")]
    pub consumer: Option<String>,
    #[command(flatten)]
    pub output: Output,
}

/// Arguments of `tributary stream read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The shard to read.
    #[arg(long, value_name = "N")]
    pub shard: ShardId,
    /// Where to start: `oldest`, `latest`, `seq:N` or `ts:RFC3339` (UTC, e.g.
    /// `ts:2025-01-31T12:00:00Z`).
    #[arg(long, value_name = "POSITION", default_value = "oldest", value_parser = parse_position)]
    pub from: StartPosition,
    /// Print at most this many records.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Cut values after this many characters in the table (JSON output is never cut).
    #[arg(long, value_name = "CHARS", default_value_t = 120)]
    pub width: usize,
    #[command(flatten)]
    pub output: Output,
}

/// Parses `--from`.
fn parse_position(text: &str) -> Result<StartPosition, String> {
    match text {
        "oldest" => Ok(StartPosition::Oldest),
        "latest" => Ok(StartPosition::Latest),
        _ => {
            if let Some(seq) = text.strip_prefix("seq:") {
                let seq = seq
                    .parse()
                    .map_err(|_| format!("{text:?}: seq:N needs a whole number"))?;
                Ok(StartPosition::AtSeq(seq))
            } else if let Some(time) = text.strip_prefix("ts:") {
                output::parse_timestamp(time).map(StartPosition::AtTimestamp)
            } else {
                Err(format!(
                    "{text:?} is not one of oldest, latest, seq:N, ts:RFC3339"
                ))
            }
        }
    }
}

/// Runs one `tributary stream` subcommand.
pub fn run(config: &Config, command: &StreamCommand) -> Result<ExitCode> {
    let log = open(config)?;
    let runtime = runtime::build(1)?;
    let result = match command {
        StreamCommand::Stats(out) => stats(&log, &runtime, out.json),
        StreamCommand::Consumers(out) => consumers(&log, &runtime, out.json),
        StreamCommand::Lag(args) => lag(&log, &runtime, args),
        StreamCommand::Verify(out) => verify(&log, out.json),
        StreamCommand::Read(args) => read(&log, &runtime, args),
    };
    // Close even after a failed command: it releases the lock and syncs what recovery wrote.
    let closed = log.close().context("closing the stream");
    let code = result?;
    closed?;
    Ok(code)
}

/// Opens an existing stream for inspection; refuses to create one where there was none.
pub fn open(config: &Config) -> Result<EmbeddedLog> {
    let dir = config.stream_dir();
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "there is no stream in {}: run `tributary serve` once, or point --data (or \
             data_dir) at an existing data directory",
            dir.display()
        ))
        .into());
    }
    let log = EmbeddedLog::open_read_only(&dir)
        .with_context(|| format!("opening the stream in {}", dir.display()))?;
    Ok(log)
}

/// Logs, as warnings, what opening the stream repaired: nothing is repaired silently.
pub fn log_recovery(report: &RecoveryReport) {
    for tail in &report.truncated {
        tracing::warn!(
            shard = tail.shard,
            segment = %tail.segment.display(),
            offset = tail.offset,
            bytes_removed = tail.bytes_removed,
            "recovery truncated a torn tail (an append that was never acknowledged)"
        );
    }
    for clamp in &report.clamped_checkpoints {
        tracing::warn!(
            consumer = %clamp.consumer,
            shard = clamp.shard,
            from = clamp.from,
            to = clamp.to,
            "a checkpoint pointed past its shard's end (records lost in an OS crash under \
             interval/none durability) and was moved back"
        );
    }
    for segment in &report.set_aside {
        tracing::warn!(
            segment = %segment.display(),
            "recovery set aside a segment torn while being created (renamed to .torn)"
        );
    }
}

fn stats(log: &EmbeddedLog, runtime: &Runtime, json: bool) -> Result<ExitCode> {
    let shards = runtime
        .block_on(log.shard_stats())
        .context("reading shard stats")?;
    let records: u64 = shards
        .iter()
        .map(|s| s.next_seq.saturating_sub(s.first_seq))
        .sum();
    let bytes: u64 = shards.iter().map(|s| s.bytes).sum();
    let segments: u64 = shards.iter().map(|s| u64::from(s.segments)).sum();
    if json {
        output::json_line(&json!({
            "dir": log.dir(),
            "shards": shards,
            "records": records,
            "bytes": bytes,
            "segments": segments,
        }))?;
        return Ok(ExitCode::from(OK));
    }
    let mut table = Table::new(&[
        "shard",
        "first_seq",
        "next_seq",
        "records",
        "segments",
        "size",
        "oldest",
        "newest",
    ]);
    for s in &shards {
        table.row(vec![
            s.shard.to_string(),
            output::thousands(s.first_seq),
            output::thousands(s.next_seq),
            output::thousands(s.next_seq.saturating_sub(s.first_seq)),
            s.segments.to_string(),
            output::bytes(s.bytes),
            output::maybe_timestamp(s.oldest_timestamp),
            output::maybe_timestamp(s.newest_timestamp),
        ]);
    }
    table.row(vec![
        "total".into(),
        String::new(),
        String::new(),
        output::thousands(records),
        segments.to_string(),
        output::bytes(bytes),
    ]);
    output::print(&format!(
        "stream {}\n{}",
        log.dir().display(),
        table.render()
    ))?;
    Ok(ExitCode::from(OK))
}

fn consumers(log: &EmbeddedLog, runtime: &Runtime, json: bool) -> Result<ExitCode> {
    let names = runtime
        .block_on(log.consumers())
        .context("listing consumers")?;
    let mut rows = Vec::new();
    for name in &names {
        let checkpoints = runtime
            .block_on(log.checkpoints(name))
            .with_context(|| format!("reading the checkpoints of {name:?}"))?;
        let lag = runtime
            .block_on(log.consumer_lag(name))
            .with_context(|| format!("computing the lag of {name:?}"))?;
        rows.push((name, checkpoints, lag));
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(name, checkpoints, lag)| {
                json!({
                    "name": name,
                    "checkpoints": checkpoints,
                    "lag_records": lag.total_lag_records(),
                    "max_iterator_age_ms": lag.max_iterator_age_ms(),
                })
            })
            .collect();
        output::json_line(&list)?;
        return Ok(ExitCode::from(OK));
    }
    if rows.is_empty() {
        output::print("no consumers registered\n")?;
        return Ok(ExitCode::from(OK));
    }
    let mut table = Table::new(&["consumer", "lag", "max_age", "checkpoints (per shard)"]);
    for (name, checkpoints, lag) in &rows {
        let list: Vec<String> = checkpoints.iter().map(|c| c.to_string()).collect();
        table.row(vec![
            name.to_string(),
            output::thousands(lag.total_lag_records()),
            output::millis(lag.max_iterator_age_ms()),
            list.join(" "),
        ]);
    }
    output::print(&table.render())?;
    Ok(ExitCode::from(OK))
}

fn lag(log: &EmbeddedLog, runtime: &Runtime, args: &LagArgs) -> Result<ExitCode> {
    let names = match &args.consumer {
        Some(name) => vec![name.clone()],
        None => runtime
            .block_on(log.consumers())
            .context("listing consumers")?,
    };
    let mut lags = Vec::new();
    for name in &names {
        lags.push(
            runtime
                .block_on(log.consumer_lag(name))
                .with_context(|| format!("computing the lag of consumer {name:?}"))?,
        );
    }
    if args.output.json {
        output::json_line(&lags)?;
        return Ok(ExitCode::from(OK));
    }
    if lags.is_empty() {
        output::print("no consumers registered\n")?;
        return Ok(ExitCode::from(OK));
    }
    let mut table = Table::new(&[
        "consumer",
        "shard",
        "checkpoint",
        "next_seq",
        "lag",
        "iterator_age",
        "expired_unread",
    ]);
    for lag in &lags {
        for shard in &lag.shards {
            table.row(vec![
                lag.consumer.clone(),
                shard.shard.to_string(),
                output::thousands(shard.checkpoint),
                output::thousands(shard.next_seq),
                output::thousands(shard.lag_records),
                output::millis(shard.iterator_age_ms),
                output::thousands(shard.expired_unread),
            ]);
        }
        table.row(vec![
            lag.consumer.clone(),
            "total".into(),
            String::new(),
            String::new(),
            output::thousands(lag.total_lag_records()),
            output::millis(lag.max_iterator_age_ms()),
            output::thousands(lag.shards.iter().map(|s| s.expired_unread).sum()),
        ]);
    }
    output::print(&table.render())?;
    Ok(ExitCode::from(OK))
}

fn verify(log: &EmbeddedLog, json: bool) -> Result<ExitCode> {
    let report = log.verify().context("verifying the stream")?;
    let recovered = &log.recovery_report().truncated;
    let set_aside = &log.recovery_report().set_aside;
    let code = if report.damage.is_empty() {
        OK
    } else {
        FAILURE
    };
    if json {
        let damage: Vec<_> = report.damage.iter().map(damage_json).collect();
        let recovered: Vec<_> = recovered.iter().map(truncation_json).collect();
        output::json_line(&json!({
            "dir": log.dir(),
            "ok": report.damage.is_empty(),
            "segments": report.segments,
            "records": report.records,
            "bytes": report.bytes,
            "damage": damage,
            "recovered": recovered,
            "set_aside": set_aside,
        }))?;
        return Ok(ExitCode::from(code));
    }
    let mut text = String::new();
    for tail in recovered {
        text.push_str(&format!(
            "recovered on open: shard {} {} truncated at offset {} ({} removed; never \
             acknowledged)\n",
            tail.shard,
            tail.segment.display(),
            tail.offset,
            output::bytes(tail.bytes_removed),
        ));
    }
    for segment in set_aside {
        text.push_str(&format!(
            "recovered on open: {} was torn while being created and set aside (renamed to \
             .torn)\n",
            segment.display()
        ));
    }
    text.push_str(&format!(
        "verified {} segments, {} records, {} in {}\n",
        output::thousands(report.segments),
        output::thousands(report.records),
        output::bytes(report.bytes),
        log.dir().display(),
    ));
    if report.damage.is_empty() {
        text.push_str("ok: no damage\n");
    } else {
        text.push_str(&format!(
            "DAMAGE: {} place(s); nothing was skipped or repaired, see docs/operations.md\n",
            report.damage.len()
        ));
        let mut table = Table::new(&["shard", "segment", "offset", "reason"]);
        for damage in &report.damage {
            match damage {
                StreamError::Corrupt {
                    shard,
                    segment,
                    offset,
                    reason,
                } => table.row(vec![
                    shard.to_string(),
                    segment.display().to_string(),
                    offset.to_string(),
                    reason.clone(),
                ]),
                other => table.row(vec!["-".into(), "-".into(), "-".into(), other.to_string()]),
            }
        }
        text.push_str(&table.render());
    }
    output::print(&text)?;
    Ok(ExitCode::from(code))
}

fn damage_json(damage: &StreamError) -> serde_json::Value {
    match damage {
        StreamError::Corrupt {
            shard,
            segment,
            offset,
            reason,
        } => json!({
            "shard": shard,
            "segment": segment,
            "offset": offset,
            "reason": reason,
        }),
        other => json!({ "reason": other.to_string() }),
    }
}

fn truncation_json(tail: &TruncatedTail) -> serde_json::Value {
    json!({
        "shard": tail.shard,
        "segment": tail.segment,
        "offset": tail.offset,
        "bytes_removed": tail.bytes_removed,
    })
}

fn read(log: &EmbeddedLog, runtime: &Runtime, args: &ReadArgs) -> Result<ExitCode> {
    let start = runtime
        .block_on(log.resolve(args.shard, args.from))
        .with_context(|| format!("resolving --from on shard {}", args.shard))?;
    let mut next = start;
    let mut records = Vec::new();
    let mut expired_skipped = 0;
    while records.len() < args.limit {
        let limits = ReadLimits {
            max_records: args.limit - records.len(),
            ..ReadLimits::default()
        };
        let batch = log
            .read_blocking(args.shard, next, limits)
            .with_context(|| format!("reading shard {} at seq {next}", args.shard))?;
        expired_skipped += batch.expired_skipped;
        next = batch.next_seq;
        if batch.records.is_empty() {
            break;
        }
        records.extend(batch.records);
    }

    if args.output.json {
        let list: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "seq": r.seq,
                    "timestamp": r.timestamp,
                    "time": output::timestamp(r.timestamp),
                    "key": String::from_utf8_lossy(&r.key),
                    "value": String::from_utf8_lossy(&r.value),
                })
            })
            .collect();
        output::json_line(&json!({
            "shard": args.shard,
            "start_seq": start,
            "next_seq": next,
            "expired_skipped": expired_skipped,
            "records": list,
        }))?;
        return Ok(ExitCode::from(OK));
    }
    let mut table = Table::new(&["seq", "timestamp", "key", "value"]);
    for r in &records {
        table.row(vec![
            r.seq.to_string(),
            output::timestamp(r.timestamp),
            output::payload(&r.key, 60),
            output::payload(&r.value, args.width),
        ]);
    }
    let mut text = String::new();
    if expired_skipped > 0 {
        text.push_str(&format!(
            "note: {expired_skipped} records of the requested range were already deleted by \
             retention\n"
        ));
    }
    if records.is_empty() {
        text.push_str(&format!(
            "shard {}: no records from seq {start} (next seq {next})\n",
            args.shard
        ));
    } else {
        text.push_str(&table.render());
        text.push_str(&format!(
            "shard {}: {} records, next seq {next}\n",
            args.shard,
            records.len()
        ));
    }
    output::print(&text)?;
    Ok(ExitCode::from(OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(parse_position("oldest"), Ok(StartPosition::Oldest));
        assert_eq!(parse_position("latest"), Ok(StartPosition::Latest));
        assert_eq!(parse_position("seq:42"), Ok(StartPosition::AtSeq(42)));
        assert_eq!(
            parse_position("ts:2025-01-01T12:00:00Z"),
            Ok(StartPosition::AtTimestamp(1_735_732_800_000_000))
        );
        for bad in ["seq:x", "ts:soon", "middle"] {
            let err = parse_position(bad).unwrap_err();
            assert!(err.contains(bad.split(':').next_back().unwrap()), "{err}");
        }
    }
}
