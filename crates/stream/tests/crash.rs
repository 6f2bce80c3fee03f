//! The crash test: a child process (this test binary, re-executed) appends from four threads
//! and prints every acknowledged record; the parent SIGKILLs it at a random moment, reopens the
//! log and checks that every acknowledged record is there, intact, at its (shard, seq), with
//! contiguous sequence numbers. Rounds continue on one directory, so recovery after recovery is
//! exercised, and small segments make the kill land during roll-overs too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng;
use tributary_stream::{Durability, EmbeddedLog, Record, StreamConfig};

const DIR_ENV: &str = "TRIBUTARY_CRASH_WRITER_DIR";
const ROUND_ENV: &str = "TRIBUTARY_CRASH_ROUND";
const ROUNDS: u64 = 24;
const WRITERS: u64 = 4;
const KEYS: u64 = 16;

fn crash_config() -> StreamConfig {
    StreamConfig {
        shards: Some(4),
        durability: Durability::Fsync,
        segment_bytes: 64 << 10,
        ..StreamConfig::default()
    }
}

/// `r<round> t<thread> c<counter> n<len>|` then `len` bytes regenerated from those numbers, so
/// every stored record (acknowledged or not) can be checked for integrity on its own.
fn crash_value(round: u64, thread: u64, counter: u64, len: usize) -> Vec<u8> {
    let mut value = format!("r{round} t{thread} c{counter} n{len}|").into_bytes();
    value.extend(common::payload(
        (round << 40) ^ (thread << 32) ^ counter,
        len,
    ));
    value
}

/// Parses and checks a value; returns (round, thread, counter).
fn check_value(value: &[u8]) -> Result<(u64, u64, u64), String> {
    let bar = value.iter().position(|&b| b == b'|').ok_or("no header")?;
    let header = std::str::from_utf8(&value[..bar]).map_err(|_| "header not UTF-8")?;
    let nums: Vec<u64> = header
        .split(' ')
        .map(|part| part[1..].parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad header {header:?}"))?;
    let [round, thread, counter, len] = nums[..] else {
        return Err(format!("bad header {header:?}"));
    };
    if crash_value(round, thread, counter, len as usize) != value {
        return Err(format!("payload of {header:?} is damaged"));
    }
    Ok((round, thread, counter))
}

/// The writer process. A no-op unless the parent set `TRIBUTARY_CRASH_WRITER_DIR`.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let log = EmbeddedLog::open(&dir, crash_config()).unwrap();
    {
        let mut out = std::io::stdout().lock();
        // libtest printed "test crash_writer_child ... " without a newline: end that line first.
        out.write_all(b"\nOPEN\n").unwrap();
        out.flush().unwrap();
    }
    // Never outlive a parent that failed to kill us.
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::scope(|scope| {
        for thread in 0..WRITERS {
            let log = log.clone();
            scope.spawn(move || {
                let mut rng = rand::rng();
                let mut counter = 0u64;
                while Instant::now() < deadline {
                    let count = rng.random_range(1..=20);
                    let records: Vec<Record> = (0..count)
                        .map(|_| {
                            counter += 1;
                            let key = format!("tenant:session-{}", rng.random_range(0..KEYS));
                            let len = rng.random_range(0..1200);
                            Record::new(key, crash_value(round, thread, counter, len))
                        })
                        .collect();
                    let lines = match log.append_blocking(records.clone()) {
                        Ok(appended) => {
                            let mut lines = String::new();
                            for (record, landed) in records.iter().zip(appended) {
                                let crc = crc32c::crc32c(&record.value);
                                lines.push_str(&format!(
                                    "ACK {} {} {crc:08x}\n",
                                    landed.shard, landed.seq
                                ));
                            }
                            lines
                        }
                        Err(err) => format!("ERR {err}\n"),
                    };
                    let mut out = std::io::stdout().lock();
                    out.write_all(lines.as_bytes()).unwrap();
                    out.flush().unwrap();
                    if lines.starts_with("ERR") {
                        std::process::exit(3);
                    }
                }
            });
        }
    });
    std::io::stdout().lock().write_all(b"DONE\n").unwrap();
}

/// Kills the child if the parent panics before it did.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one child until a random kill; returns the acknowledged (shard, seq, crc) triples.
fn run_child(dir: &Path, round: u64) -> Vec<(u32, u64, u32)> {
    let stderr_path = dir.with_extension(format!("child-{round}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                // A line cut by the kill has no newline: it was never complete, drop it.
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    let child_stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let started = Instant::now();
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30).saturating_sub(started.elapsed())) {
            Ok(line) if line.trim_end().ends_with("OPEN") => break,
            Ok(line) => lines.push(line),
            Err(_) => panic!(
                "round {round}: the child never opened the log; stderr:\n{}",
                child_stderr()
            ),
        }
    }
    let delay = rand::rng().random_range(50..=400);
    std::thread::sleep(Duration::from_millis(delay));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut acked = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let parts: Vec<&str> = rest.trim_end().split(' ').collect();
            acked.push((
                parts[0].parse().unwrap(),
                parts[1].parse().unwrap(),
                u32::from_str_radix(parts[2], 16).unwrap(),
            ));
        } else if line.starts_with("ERR") || line.starts_with("DONE") {
            panic!(
                "round {round}: child said {line:?}; stderr:\n{}",
                child_stderr()
            );
        }
    }
    let _ = std::fs::remove_file(&stderr_path);
    acked
}

#[test]
fn acknowledged_records_survive_sigkill_during_appends() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stream");
    let mut acked: BTreeMap<(u32, u64), u32> = BTreeMap::new();
    let mut rounds_with_acks = 0;
    let mut max_segments = 0;
    let mut torn_tails = 0;
    for round in 0..ROUNDS {
        let this_round = run_child(&dir, round);
        if !this_round.is_empty() {
            rounds_with_acks += 1;
        }
        for (shard, seq, crc) in this_round {
            if let Some(previous) = acked.insert((shard, seq), crc) {
                panic!(
                    "round {round}: shard {shard} seq {seq} acknowledged twice (crc {previous:08x}, \
                     then {crc:08x}): an acknowledged record was lost and its seq reused"
                );
            }
        }

        let log = EmbeddedLog::open(&dir, crash_config())
            .unwrap_or_else(|err| panic!("round {round}: reopen after SIGKILL failed: {err}"));
        torn_tails += log.recovery_report().truncated.len();
        let mut stored = 0u64;
        for shard in 0..4u32 {
            let records = common::read_all(&log, shard);
            stored += records.len() as u64;
            let mut last_counter: BTreeMap<(u64, u64), u64> = BTreeMap::new();
            for (i, record) in records.iter().enumerate() {
                assert_eq!(
                    record.seq, i as u64,
                    "round {round} shard {shard}: seqs not contiguous from 0"
                );
                let (r, t, c) = check_value(&record.value).unwrap_or_else(|e| {
                    panic!("round {round} shard {shard} seq {}: {e}", record.seq)
                });
                let last = last_counter.entry((r, t)).or_insert(0);
                assert!(
                    c > *last,
                    "round {round} shard {shard} seq {}: writer r{r} t{t} counter {c} after {last}",
                    record.seq
                );
                *last = c;
                if let Some(&crc) = acked.get(&(shard, record.seq)) {
                    assert_eq!(
                        crc32c::crc32c(&record.value),
                        crc,
                        "round {round} shard {shard} seq {}: value differs from the acknowledged one",
                        record.seq
                    );
                }
            }
            let missing: Vec<u64> = acked
                .range((shard, 0)..(shard + 1, 0))
                .map(|(&(_, seq), _)| seq)
                .filter(|&seq| seq >= records.len() as u64)
                .collect();
            assert!(
                missing.is_empty(),
                "round {round} shard {shard}: {} acknowledged records lost (first seqs {:?}); shard holds {}; recovery: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)],
                records.len(),
                log.recovery_report()
            );
            max_segments = max_segments.max(common::segments(&dir, shard).len());
        }
        let report = log.verify().unwrap();
        assert!(
            report.damage.is_empty(),
            "round {round}: verify found damage: {:?}",
            report.damage
        );
        assert_eq!(
            report.records, stored,
            "round {round}: verify counted records"
        );
        log.close().unwrap();
        drop(log);
    }
    eprintln!(
        "crash test: {ROUNDS} rounds, {} records acknowledged, {torn_tails} torn tails recovered, \
         up to {max_segments} segments per shard",
        acked.len()
    );
    assert!(
        rounds_with_acks >= ROUNDS / 2,
        "only {rounds_with_acks} of {ROUNDS} rounds acknowledged anything"
    );
    assert!(
        acked.len() >= 500,
        "only {} records acknowledged in all rounds",
        acked.len()
    );
    assert!(
        max_segments >= 2,
        "no shard ever rolled over a segment: the kill never hit a roll-over"
    );
}
