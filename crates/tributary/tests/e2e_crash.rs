//! What the collector acknowledged survives the process being killed: producers send batches
//! with unique event ids from several threads, the server gets SIGKILL at a random moment with
//! requests in flight, restarts on the same data directory (recovering the stream), and every
//! event whose request was answered 200 must be in the stream. Several rounds run on one
//! directory, so recovery of a recovered stream is exercised too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use serde_json::json;

use common::Setup;

const ROUNDS: usize = 5;
const SENDERS: usize = 4;
const BATCH: usize = 20;

#[test]
fn events_acknowledged_before_a_sigkill_are_in_the_stream_after_restart() {
    let setup = Setup::new();
    let key = setup.key(&[]);
    let mut setup = setup;
    let mut acked: HashSet<String> = HashSet::new();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let server = setup.start();
        let url = server.url("/v1/events");
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let (url, key, stop) = (url.clone(), key.clone(), Arc::clone(&stop));
                std::thread::spawn(move || send_until_stopped(&url, &key, round, sender, &stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(150..600)));
        setup = server.kill();
        stop.store(true, Ordering::SeqCst);
        for sender in senders {
            acked.extend(sender.join().unwrap());
        }
    }
    assert!(
        acked.len() > ROUNDS * BATCH,
        "too few acknowledged events to mean anything: {}",
        acked.len()
    );

    let server = setup.start();
    let stored: HashSet<String> = server
        .stored()
        .into_iter()
        .map(|s| s.event["event_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = acked.difference(&stored).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are missing after SIGKILL and restart, e.g. {missing:?}",
        acked.difference(&stored).count()
    );
    server.stop();
}

/// Sends batches of unique events until `stop`, or until the server is gone; returns the ids
/// of every event whose request was answered 200 with all events accepted.
fn send_until_stopped(
    url: &str,
    key: &str,
    round: usize,
    sender: usize,
    stop: &AtomicBool,
) -> Vec<String> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    let mut request = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let ids: Vec<String> = (0..BATCH)
            .map(|i| format!("r{round}-s{sender}-q{request}-e{i}"))
            .collect();
        let events: Vec<_> = ids
            .iter()
            .map(|id| {
                json!({"event_id": id, "event_type": "track:Crash Tested",
                       "anonymous_id": format!("a-{sender}"), "session_id": format!("s-{sender}-{request}"),
                       "properties": {"n": request}})
            })
            .collect();
        let Ok(response) = client.post(url).bearer_auth(key).json(&events).send() else {
            break;
        };
        let status = response.status().as_u16();
        let Ok(body) = response.json::<serde_json::Value>() else {
            break;
        };
        if status == 200 && body["accepted"].as_u64() == Some(BATCH as u64) {
            acked.extend(ids);
        }
        request += 1;
    }
    acked
}
