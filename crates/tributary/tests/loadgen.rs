//! The load generator end to end: its engine against an in-process collector (through
//! `bench ingest`, which starts one on its own runtime), for every API; and `tributary loadgen`
//! against a real `tributary serve`, as an operator runs it, including the exit code when
//! nothing is acknowledged.
// Helpers outside #[test] functions panic too: a panic is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;

use common::{Setup, assert_exit, text, tributary};

/// Events a 1 s run at 200 events/s sends: the open-loop schedule has exactly 20 requests of
/// 10 events due before the deadline.
const EXPECTED_EVENTS: u64 = 200;

/// The last line of stdout as JSON.
fn last_json(output: &std::process::Output) -> Value {
    let stdout = text(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `bench ingest` for one API at 200 events/s for 1 s, without the stream bound.
fn engine_against_in_process_collector(api: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = tributary(dir.path())
        .args([
            "bench",
            "ingest",
            "--api",
            api,
            "--rate",
            "200",
            "--seconds",
            "1",
        ])
        .args(["--concurrency", "4", "--batch", "10", "--no-bound", "--dir"])
        .arg(dir.path().join("bench"))
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let report = last_json(&output);
    assert_eq!(report["bench"], "ingest");
    assert_eq!(report["params"]["api"], api);
    let point = &report["points"][0];
    let http = &point["http"];
    assert_eq!(http["sent"], EXPECTED_EVENTS, "{point}");
    assert_eq!(http["acked"], EXPECTED_EVENTS, "{point}");
    assert_eq!(http["requests"], EXPECTED_EVENTS / 10, "{point}");
    assert_eq!(http["rejected"], serde_json::json!({}), "{point}");
    assert_eq!(point["stream_records"], EXPECTED_EVENTS, "{point}");
    assert!(point["stream_bound"].is_null());
    assert!(
        !dir.path().join("bench").exists(),
        "the scratch directory is removed"
    );
}

#[test]
fn native_events_are_all_acked_and_stored() {
    engine_against_in_process_collector("native");
}

#[test]
fn segment_batches_are_all_acked_and_stored() {
    engine_against_in_process_collector("segment");
}

#[test]
fn signed_kinesis_records_are_all_acked_and_stored() {
    engine_against_in_process_collector("kinesis");
}

#[test]
fn loadgen_against_serve_reports_json_and_fails_when_nothing_is_acked() {
    let setup = Setup::new();
    let key = setup.key(&[]);
    let aws = setup.key(&["--aws"]);
    let (access_key_id, secret) = aws.split_once(' ').unwrap();
    let server = setup.start();
    let url = format!("http://{}", server.addr());
    let loadgen = |args: &[&str]| {
        tributary(server.root())
            .args(["loadgen", "--url", &url, "--rate", "200", "--duration", "1"])
            .args(["--batch", "10", "--concurrency", "4", "--json"])
            .args(args)
            .output()
            .unwrap()
    };

    let output = loadgen(&["--key", &key]);
    assert_exit(&output, 0);
    let report = last_json(&output);
    assert_eq!(report["api"], "native");
    assert_eq!(report["sent"], EXPECTED_EVENTS, "{report}");
    assert_eq!(report["acked"], EXPECTED_EVENTS, "{report}");
    assert!(report["p99_us"].as_u64().unwrap() >= report["p50_us"].as_u64().unwrap());

    let output = loadgen(&[
        "--api",
        "kinesis",
        "--key",
        access_key_id,
        "--aws-secret",
        secret,
        "--unique",
    ]);
    assert_exit(&output, 0);
    assert_eq!(last_json(&output)["acked"], EXPECTED_EVENTS);
    assert_eq!(server.record_count(), 2 * EXPECTED_EVENTS);

    // A wrong key: every request is refused, the figures still print, and the exit code says so.
    let output = loadgen(&["--api", "segment", "--key", "trb_wrong"]);
    assert_exit(&output, 1);
    let report = last_json(&output);
    assert_eq!(report["acked"], 0);
    assert_eq!(report["rejected"]["401"], EXPECTED_EVENTS, "{report}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no event was acknowledged"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // A secret missing for kinesis is a usage error.
    let output = loadgen(&["--api", "kinesis", "--key", access_key_id]);
    assert_exit(&output, 2);
    assert!(text(&output.stderr).contains("--aws-secret"));

    server.stop();
}
