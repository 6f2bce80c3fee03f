//! End-to-end tests of the `tributary` binary: each runs the real executable against a
//! temporary data directory and checks exit codes, stdout JSON and stderr messages, as a
//! script or an operator would see them.
// Helpers outside #[test] functions panic too: a panic is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tributary_model::Event;

const BIN: &str = env!("CARGO_BIN_EXE_tributary");

/// The binary with a clean environment: no `TRIBUTARY_*` or `RUST_LOG` from the caller, and a
/// working directory without a `tributary.toml`.
fn tributary(cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TRIBUTARY_") || name == "RUST_LOG" {
            command.env_remove(name.as_ref());
        }
    }
    command.current_dir(cwd);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The last line of stdout as JSON.
fn json(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped); no memory involved.
    let result = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(result, 0, "kill failed");
}

fn wait_with_deadline(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "tributary did not exit within {deadline:?}; stderr:\n{}",
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_with_sample_traffic_stops_cleanly_and_leaves_a_verifiable_stream() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    let child = tributary(dir.path())
        .args([
            "serve",
            "--sample-traffic",
            "--rate",
            "400",
            "--data",
            data_arg,
        ])
        // Several shards, so that every per-shard listing below has more than one row; the
        // commands after it leave the count unset and must find 4 in the stream itself.
        .env("TRIBUTARY_STREAM__SHARDS", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // While serve holds the stream, inspection opens it read-only and sees what is there.
    let live = run(tributary(dir.path()).args(["stream", "stats", "--json", "--data", data_arg]));
    assert_exit(&live, 0);
    assert!(
        json(&live)["records"].as_u64().unwrap() > 0,
        "{}",
        text(&live.stdout)
    );

    sigterm(&child);
    let served = wait_with_deadline(child, Duration::from_secs(30));
    assert_exit(&served, 0);
    assert!(
        text(&served.stderr).contains("stream closed cleanly"),
        "{}",
        text(&served.stderr)
    );

    let stats = run(tributary(dir.path()).args(["stream", "stats", "--json", "--data", data_arg]));
    assert_exit(&stats, 0);
    let stats = json(&stats);
    assert_eq!(stats["shards"].as_array().unwrap().len(), 4);
    let records = stats["records"].as_u64().unwrap();
    assert!(
        records > 100,
        "3 s at 400/s appended only {records}: {stats}"
    );

    let verify = run(tributary(dir.path()).args(["stream", "verify", "--data", data_arg]));
    assert_exit(&verify, 0);
    assert!(text(&verify.stdout).contains("ok: no damage"));
    let verify =
        run(tributary(dir.path()).args(["stream", "verify", "--json", "--data", data_arg]));
    assert_exit(&verify, 0);
    let verify = json(&verify);
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["records"].as_u64(), Some(records));

    // A clean shutdown lets the demo consumer read and commit everything.
    let lag = run(tributary(dir.path()).args([
        "stream",
        "lag",
        "--consumer",
        "serve-demo",
        "--json",
        "--data",
        data_arg,
    ]));
    assert_exit(&lag, 0);
    let lag = json(&lag);
    let shards = lag[0]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4);
    for shard in shards {
        assert_eq!(shard["lag_records"], 0, "{lag}");
    }

    // Records are sample events, keyed by their partition key.
    let read = run(tributary(dir.path()).args([
        "stream", "read", "--shard", "0", "--limit", "5", "--json", "--data", data_arg,
    ]));
    assert_exit(&read, 0);
    let read = json(&read);
    let listed = read["records"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{read}");
    for record in listed {
        let event: Event = serde_json::from_str(record["value"].as_str().unwrap()).unwrap();
        assert_eq!(record["key"].as_str().unwrap(), event.partition_key());
    }
    let table = run(tributary(dir.path()).args([
        "stream", "read", "--shard", "0", "--from", "seq:2", "--limit", "2", "--data", data_arg,
    ]));
    assert_exit(&table, 0);
    assert!(
        text(&table.stdout).contains("next seq 4"),
        "{}",
        text(&table.stdout)
    );

    // A shard that does not exist is the caller's mistake.
    let unknown =
        run(tributary(dir.path()).args(["stream", "read", "--shard", "9", "--data", data_arg]));
    assert_exit(&unknown, 2);
    assert!(
        text(&unknown.stderr).contains("shard 9"),
        "{}",
        text(&unknown.stderr)
    );
}

#[test]
fn config_show_merges_file_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.toml");
    #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
    std::fs::write(
        &file,
        "data_dir = \"/from-file\"\n[stream]\nshards = 8\n[log]\nlevel = \"debug\"\n",
    )
    .unwrap();

    let output = run(tributary(dir.path())
        .args([
            "config",
            "show",
            "--json",
            "--config",
            file.to_str().unwrap(),
        ])
        .env("TRIBUTARY_STREAM__RETENTION__MAX_AGE", "36h")
        .env("TRIBUTARY_LOG__LEVEL", "warn"));
    assert_exit(&output, 0);
    let config = json(&output);
    assert_eq!(config["stream"]["shards"], 8, "from the file");
    assert_eq!(config["data_dir"], "/from-file", "from the file");
    assert_eq!(config["log"]["level"], "warn", "environment over file");
    let max_age = config["stream"]["retention"]["max_age"].as_str().unwrap();
    assert_eq!(
        humantime::parse_duration(max_age).unwrap().as_secs(),
        36 * 3600
    );

    let output = run(tributary(dir.path())
        .args(["config", "show", "--config", file.to_str().unwrap()])
        .args(["--data", "/from-flag"])
        .env("TRIBUTARY_DATA_DIR", "/from-env"));
    assert_exit(&output, 0);
    let toml = text(&output.stdout);
    assert!(
        toml.contains("data_dir = \"/from-flag\""),
        "flag over env:\n{toml}"
    );
    assert!(toml.contains("shards = 8"), "{toml}");

    // ./tributary.toml is read when present and no --config is given.
    #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
    std::fs::write(dir.path().join("tributary.toml"), "[stream]\nshards = 2\n").unwrap();
    let output = run(tributary(dir.path()).args(["config", "show", "--json"]));
    assert_exit(&output, 0);
    assert_eq!(json(&output)["stream"]["shards"], 2);
}

#[test]
fn bad_configuration_exits_2_and_names_field_and_source() {
    let dir = tempfile::tempdir().unwrap();

    let output = run(tributary(dir.path())
        .args(["config", "show"])
        .env("TRIBUTARY_STREAM__SHARDS", "lots"));
    assert_exit(&output, 2);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("stream.shards"), "{stderr}");
    assert!(stderr.contains("TRIBUTARY_STREAM__SHARDS"), "{stderr}");

    let file = dir.path().join("bad.toml");
    #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
    std::fs::write(&file, "[stream]\nshards = 0\n").unwrap();
    let output = run(tributary(dir.path()).args(["config", "show", "--config", "bad.toml"]));
    assert_exit(&output, 2);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("stream.shards is 0"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");

    #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
    std::fs::write(&file, "[stream]\nshard = 8\n").unwrap();
    let output = run(tributary(dir.path()).args(["config", "show", "--config", "bad.toml"]));
    assert_exit(&output, 2);
    assert!(
        text(&output.stderr).contains("stream.shard"),
        "{}",
        text(&output.stderr)
    );

    let output = run(tributary(dir.path()).args(["config", "show", "--config", "missing.toml"]));
    assert_exit(&output, 2);
    assert!(text(&output.stderr).contains("missing.toml"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // clap: a required flag is missing.
    let output = run(tributary(dir.path()).args(["stream", "read"]));
    assert_exit(&output, 2);
    // No stream where --data points: say so instead of creating an empty one.
    let output = run(tributary(dir.path()).args(["stream", "stats", "--data", "nowhere"]));
    assert_exit(&output, 2);
    assert!(
        text(&output.stderr).contains("no stream"),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn help_explains_serve_and_lists_examples() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tributary(dir.path()).arg("--help"));
    assert_exit(&output, 0);
    assert!(text(&output.stdout).contains("Examples:"));
    let output = run(tributary(dir.path()).args(["serve", "--help"]));
    assert_exit(&output, 0);
    assert!(text(&output.stdout).contains("the collector's HTTP API"));
    assert!(text(&output.stdout).contains("--listen"));
}

#[test]
fn bench_stream_runs_one_tiny_cell_and_prints_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let output = run(tributary(dir.path()).args([
        "bench",
        "stream",
        "--cells",
        "1",
        "--seconds",
        "0.2",
        "--dir",
        scratch.to_str().unwrap(),
    ]));
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("raw disk bound"), "{stdout}");
    let report = json(&output);
    assert_eq!(report["bench"], "stream");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0]["batch"], 1);
    assert_eq!(cells[0]["writers"], 1);
    assert!(cells[0]["records_per_s"].as_f64().unwrap() > 0.0);
    assert!(cells[0]["p99_us"].as_u64().unwrap() >= cells[0]["p50_us"].as_u64().unwrap());
    assert_eq!(report["raw"].as_array().unwrap().len(), 1);
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 1);
    assert!(ratios[0]["ratio"].as_f64().unwrap() > 0.0);
    // The scratch space is gone, including the directory the bench had to create.
    assert!(!scratch.exists(), "bench left {}", scratch.display());
}
