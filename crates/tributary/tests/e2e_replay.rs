//! Replay and reconciliation through the real binary: events a schema rejected are quarantined
//! by `tributary serve`; after a schema fix, `tributary replay quarantine --where …` moves them
//! into the curated lake; `tributary verify` finds every raw record accounted for (and finds the
//! double count a replay without dedup makes); `tributary replay raw` rebuilds the range, with
//! the same counts when run twice. A replay refuses to run beside the server that holds the
//! dedup store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use common::{Setup, wait_for};

/// A range that holds every event the test sends.
const SINCE: &str = "2000-01-01";
const UNTIL: &str = "2100-01-01";

fn run(setup: &Setup, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = common::tributary(setup.root());
    command.args(args).arg("--data").arg(setup.data());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", common::text(&output.stdout)))
}

fn verify(setup: &Setup, code: i32) -> Value {
    let output = run(
        setup,
        &["verify", "--since", SINCE, "--until", UNTIL, "--json"],
        &[],
    );
    common::assert_exit(&output, code);
    let report = json_of(&output);
    assert_eq!(report["hours"], 1, "{report}");
    report["rows"][0].clone()
}

fn replay(setup: &Setup, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = run(setup, &all, env);
    common::assert_exit(&output, 0);
    json_of(&output)
}

fn write_schema(root: &Path, name: &str, revenue: Value) -> String {
    let path = root.join(name);
    let document = json!({
        "event_type": "track:Order Completed",
        "schema": {
            "type": "object",
            "required": ["order_id", "revenue"],
            "properties": {"order_id": {"type": "string"}, "revenue": revenue}
        }
    });
    #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
    std::fs::write(&path, document.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn replay_after_a_schema_fix_and_verify_reconcile_the_lake() {
    let setup = Setup::new()
        .env("TRIBUTARY_LAKE__FLUSH_INTERVAL", "200ms")
        .env("TRIBUTARY_STREAM__DURABILITY", "none");
    let key = setup.key(&[]);
    let admin = common::create_key_with(setup.root(), &setup.data(), common::TENANT, "admin", &[]);
    let strict = write_schema(setup.root(), "v1.json", json!({"type": "number"}));
    common::assert_exit(&run(&setup, &["schemas", "add", &strict], &[]), 0);
    let server = setup.start();

    let batch = json!([
        {"event_id": "good-1", "anonymous_id": "a-1", "event_type": "track:Order Completed",
         "properties": {"order_id": "o-1", "revenue": 10.0}},
        {"event_id": "text-1", "anonymous_id": "a-1", "event_type": "track:Order Completed",
         "properties": {"order_id": "o-2", "revenue": "12.50"}},
        {"event_id": "page-1", "anonymous_id": "a-1", "event_type": "page"}
    ]);
    server.post_json("/v1/events", &key, &batch).expect(200);
    // The producer retried the whole batch.
    server.post_json("/v1/events", &key, &batch).expect(200);
    let filled = wait_for(Duration::from_secs(15), || {
        let raw = server
            .post_json(
                "/v1/query",
                &admin,
                &json!({"sql": "SELECT count(*) AS n FROM raw_events"}),
            )
            .expect(200)
            .json();
        (raw[0]["n"] == 6).then_some(())
    });
    filled.unwrap_or_else(|| panic!("the lake did not fill:\n{}", server.log()));

    // The running server holds the dedup store: a replay says so and exits 2.
    let mut command = common::tributary(server.root());
    let refused = command
        .args([
            "replay", "raw", "--since", SINCE, "--until", UNTIL, "--data",
        ])
        .arg(server.data())
        .output()
        .unwrap();
    common::assert_exit(&refused, 2);
    assert!(
        common::text(&refused.stderr).contains("stop it"),
        "{}",
        common::text(&refused.stderr)
    );
    let setup = server.stop_keeping_data();

    // Every raw record is accounted for: the retries of curated events were deduplicated,
    // text-1 and its retry are quarantined (validation comes before dedup).
    let row = verify(&setup, 0);
    assert_eq!(
        (row["raw"].as_i64(), row["curated"].as_i64()),
        (Some(6), Some(2)),
        "{row}"
    );
    assert_eq!(row["quarantined"], 2, "{row}");
    assert_eq!(row["deduplicated"], 2, "{row}");

    // Schema v2 also takes revenue as decimal text (a compatible loosening).
    let loose = write_schema(
        setup.root(),
        "v2.json",
        json!({"type": ["number", "string"]}),
    );
    common::assert_exit(&run(&setup, &["schemas", "add", &loose], &[]), 0);

    // A bad predicate is a usage error that names the column.
    let typo = run(
        &setup,
        &["replay", "quarantine", "--where", "evnt_type = 'x'"],
        &[],
    );
    common::assert_exit(&typo, 2);
    assert!(common::text(&typo.stderr).contains("evnt_type"));

    // Replayed with dedup turned off, text-1 and its retry are both curated: verify finds it.
    let predicate = "event_type = 'track:Order Completed' AND dt >= '2000-01-01'";
    let no_dedup = [("TRIBUTARY_PIPELINE__DEDUP__ENABLED", "false")];
    let moved = replay(&setup, &["quarantine", "--where", predicate], &no_dedup);
    assert_eq!(moved["curated"], 2, "{moved}");
    let row = verify(&setup, 1);
    assert_eq!(row["curated_twice"], 1, "{row}");

    // A raw replay (dedup on) rebuilds the range: each event once.
    let rebuilt = replay(&setup, &["raw", "--since", SINCE, "--until", UNTIL], &[]);
    assert_eq!(rebuilt["events"], 6, "{rebuilt}");
    assert_eq!(rebuilt["curated"], 3, "{rebuilt}");
    assert_eq!(rebuilt["duplicates"], 3, "{rebuilt}");
    assert_eq!(rebuilt["quarantined"], 0, "{rebuilt}");
    let row = verify(&setup, 0);
    assert_eq!(
        (row["curated"].as_i64(), row["deduplicated"].as_i64()),
        (Some(3), Some(3)),
        "{row}"
    );

    // Twice: the same counts, and the lake as it was.
    let again = replay(&setup, &["raw", "--since", SINCE, "--until", UNTIL], &[]);
    for field in ["events", "curated", "quarantined", "duplicates"] {
        assert_eq!(
            again[field], rebuilt[field],
            "{field}: {again} vs {rebuilt}"
        );
    }
    let quarantine_again = replay(&setup, &["quarantine", "--where", predicate], &[]);
    assert_eq!(quarantine_again["events"], 0, "{quarantine_again}");
    verify(&setup, 0);
    let counted = run(
        &setup,
        &[
            "query",
            "--format",
            "json",
            "SELECT count(DISTINCT event_id) AS ids, count(*) AS n FROM events",
        ],
        &[],
    );
    common::assert_exit(&counted, 0);
    assert_eq!(json_of(&counted), json!([{"ids": 3, "n": 3}]));
}
