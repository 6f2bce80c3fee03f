//! Consumers, positions and reads of the embedded log through the async [`Stream`] trait:
//! checkpoints that survive a reopen, lag and iterator age, start positions (also across sealed
//! segments and after a reopen), long polling, and the input errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use tributary_stream::{
    EmbeddedLog, ReadLimits, Record, StartPosition, Stream, StreamConfig, StreamError,
    StreamErrorKind,
};

fn open(dir: &std::path::Path, config: &StreamConfig) -> EmbeddedLog {
    common::open(dir, config)
}

/// A key of `prefix` that maps to `shard`.
fn key_on(log: &EmbeddedLog, shard: u32) -> String {
    (0..)
        .map(|i| format!("tenant:s{i}"))
        .find(|k| log.shard_for_key(k.as_bytes()) == shard)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_consumer_is_idempotent_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(4, 4096);
    let log = open(dir.path(), &config);
    for shard in 0..4 {
        let key = key_on(&log, shard);
        let records = (0..=shard)
            .map(|i| Record::new(key.clone(), format!("{i}")))
            .collect();
        log.append(records).await.unwrap();
    }
    log.register_consumer("lake", StartPosition::Oldest)
        .await
        .unwrap();
    log.register_consumer("index", StartPosition::Latest)
        .await
        .unwrap();
    log.register_consumer("lake", StartPosition::Latest)
        .await
        .unwrap();
    assert_eq!(
        log.consumers().await.unwrap(),
        vec!["index".to_string(), "lake".to_string()]
    );
    assert_eq!(log.checkpoints("lake").await.unwrap(), vec![0, 0, 0, 0]);
    assert_eq!(log.checkpoints("index").await.unwrap(), vec![1, 2, 3, 4]);

    log.commit("lake", &[(1, 2), (3, 1)]).await.unwrap();
    log.commit("lake", &[(3, 4)]).await.unwrap();
    assert_eq!(log.checkpoints("lake").await.unwrap(), vec![0, 2, 0, 4]);
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), &config);
    assert_eq!(
        log.consumers().await.unwrap(),
        vec!["index".to_string(), "lake".to_string()]
    );
    assert_eq!(
        log.checkpoints("lake").await.unwrap(),
        vec![0, 2, 0, 4],
        "checkpoints after reopen"
    );
    assert_eq!(log.checkpoints("index").await.unwrap(), vec![1, 2, 3, 4]);
    log.register_consumer("lake", StartPosition::Oldest)
        .await
        .unwrap();
    assert_eq!(
        log.checkpoints("lake").await.unwrap(),
        vec![0, 2, 0, 4],
        "re-register after reopen"
    );
    let lag = log.consumer_lag("lake").await.unwrap();
    let lags: Vec<u64> = lag.shards.iter().map(|s| s.lag_records).collect();
    assert_eq!(lags, vec![1, 0, 3, 0]);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_and_iterator_age_follow_commits() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &common::config(2, 4096));
    log.register_consumer("slow", StartPosition::Oldest)
        .await
        .unwrap();
    let lag = log.consumer_lag("slow").await.unwrap();
    assert_eq!(lag.total_lag_records(), 0);
    assert_eq!(
        lag.max_iterator_age_ms(),
        0,
        "an empty stream has no age: {lag:?}"
    );

    let key = key_on(&log, 1);
    let first = log
        .append(
            (0..5)
                .map(|i| Record::new(key.clone(), format!("a{i}")))
                .collect(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = log
        .append(
            (0..5)
                .map(|i| Record::new(key.clone(), format!("b{i}")))
                .collect(),
        )
        .await
        .unwrap();
    let lag = log.consumer_lag("slow").await.unwrap();
    let shard = &lag.shards[1];
    assert_eq!(
        (shard.checkpoint, shard.next_seq, shard.lag_records),
        (0, 10, 10),
        "{shard:?}"
    );
    assert!(
        shard.iterator_age_ms >= 200,
        "age of the oldest unconsumed record: {shard:?}"
    );
    assert_eq!(shard.expired_unread, 0);
    assert_eq!(lag.shards[0].lag_records, 0);
    assert_eq!(lag.shards[0].iterator_age_ms, 0);

    // Past the first group, the oldest unconsumed record is from the second (fresh) group.
    // Judged against the records' own times rather than a wall-clock bound, so a slow commit
    // on a busy machine cannot make it flaky.
    let records = log
        .read_blocking(1, 0, ReadLimits::default())
        .unwrap()
        .records;
    let (first_ts, second_ts) = (records[0].timestamp, records[5].timestamp);
    assert!(
        second_ts - first_ts >= 200_000,
        "the groups are 200 ms apart"
    );
    log.commit("slow", &[(1, second[0].seq)]).await.unwrap();
    let shard = log.consumer_lag("slow").await.unwrap().shards[1].clone();
    let now = tributary_model::now_micros();
    assert_eq!(shard.lag_records, 5);
    let age_of = |ts: i64| u64::try_from((now - ts) / 1000).unwrap();
    assert!(
        shard.iterator_age_ms <= age_of(second_ts)
            && shard.iterator_age_ms + 150 < age_of(first_ts),
        "age must follow the checkpoint to the second group: {shard:?}, first group {} ms old, \
         second {} ms old",
        age_of(first_ts),
        age_of(second_ts)
    );

    log.commit("slow", &[(1, second[4].seq + 1)]).await.unwrap();
    let lag = log.consumer_lag("slow").await.unwrap();
    assert_eq!(lag.total_lag_records(), 0);
    assert_eq!(lag.max_iterator_age_ms(), 0, "caught up: {lag:?}");
    assert_eq!(first[0].seq, 0);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_positions_resolve_across_segments_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(1, 4096);
    let log = open(dir.path(), &config);
    let mut groups = Vec::new();
    for g in 0..3 {
        if g > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut seqs = Vec::new();
        // Many appends of 300 bytes: each group spans several 4 KiB segments.
        for i in 0..30 {
            let appended = log
                .append(vec![Record::new(
                    "k",
                    format!("g{g} {i} {}", "v".repeat(300)),
                )])
                .await
                .unwrap();
            seqs.push(appended[0].seq);
        }
        groups.push(seqs);
    }
    assert!(common::segments(dir.path(), 0).len() >= 6);
    let records = common::read_all(&log, 0);
    let ts = |seq: u64| records[seq as usize].timestamp;
    let check = |log: EmbeddedLog| {
        let groups = groups.clone();
        let records = records.clone();
        async move {
            let r = |p| {
                let log = log.clone();
                async move { log.resolve(0, p).await.unwrap() }
            };
            assert_eq!(r(StartPosition::Oldest).await, 0);
            assert_eq!(r(StartPosition::Latest).await, 90);
            assert_eq!(r(StartPosition::AtSeq(17)).await, 17);
            assert_eq!(r(StartPosition::AfterSeq(17)).await, 18);
            for g in 0..3 {
                let first = groups[g][0];
                assert_eq!(
                    r(StartPosition::AtTimestamp(ts(first))).await,
                    first,
                    "group {g}"
                );
                if g > 0 {
                    let between = ts(groups[g - 1][29]) + 1;
                    assert_eq!(
                        r(StartPosition::AtTimestamp(between)).await,
                        first,
                        "between groups {g}"
                    );
                }
            }
            // Every record's own timestamp resolves to the first record carrying it.
            for record in &records {
                let expected = records
                    .iter()
                    .find(|x| x.timestamp == record.timestamp)
                    .unwrap()
                    .seq;
                assert_eq!(
                    r(StartPosition::AtTimestamp(record.timestamp)).await,
                    expected
                );
            }
            assert_eq!(r(StartPosition::AtTimestamp(0)).await, 0);
            assert_eq!(r(StartPosition::AtTimestamp(i64::MAX)).await, 90);
            log
        }
    };
    let log = check(log).await;
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), &config);
    let log = check(log).await;
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_long_polls_until_an_append_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &common::config(2, 4096));
    let key = key_on(&log, 1);
    let limits = ReadLimits {
        max_wait: Duration::from_secs(10),
        ..ReadLimits::default()
    };

    // Woken by an async append.
    let started = Instant::now();
    let reader = tokio::spawn({
        let log = log.clone();
        async move { log.read(1, 0, limits).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    log.append(vec![Record::new(key.clone(), "first")])
        .await
        .unwrap();
    let batch = reader.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "long poll woke after {:?}",
        started.elapsed()
    );
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.records[0].value, Bytes::from_static(b"first"));
    assert_eq!(batch.next_seq, 1);

    // Woken by a blocking append from a plain thread.
    let started = Instant::now();
    let writer = std::thread::spawn({
        let log = log.clone();
        let key = key.clone();
        move || {
            std::thread::sleep(Duration::from_millis(100));
            log.append_blocking(vec![Record::new(key, "second")])
                .unwrap()
        }
    });
    let batch = log.read(1, 1, limits).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(batch.records[0].value, Bytes::from_static(b"second"));
    writer.join().unwrap();

    // An append to another shard does not end the wait with a wrong answer.
    let other = key_on(&log, 0);
    let started = Instant::now();
    let reader = tokio::spawn({
        let log = log.clone();
        async move {
            log.read(
                1,
                2,
                ReadLimits {
                    max_wait: Duration::from_millis(600),
                    ..limits
                },
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    log.append(vec![Record::new(other, "elsewhere")])
        .await
        .unwrap();
    let batch = reader.await.unwrap().unwrap();
    assert!(batch.records.is_empty(), "{batch:?}");
    assert_eq!(batch.next_seq, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "returned after {:?}",
        started.elapsed()
    );

    // Without max_wait, an empty read returns at once.
    let started = Instant::now();
    let batch = log.read(1, 2, ReadLimits::default()).await.unwrap();
    assert!(batch.records.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_consumer_names_are_rejected_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &common::config(1, 4096));
    let long = "n".repeat(65);
    for bad in [
        "",
        " ",
        "a b",
        "x/y",
        "../../escape",
        "back\\slash",
        "nul\0",
        "ümlaut",
        "c:d",
        long.as_str(),
    ] {
        let err = log
            .register_consumer(bad, StartPosition::Oldest)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StreamError::InvalidConsumerName { ref name, .. } if name == bad),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.kind(), StreamErrorKind::InvalidInput);
    }
    assert!(log.consumers().await.unwrap().is_empty());
    let max = "m".repeat(64);
    for good in ["a", "lake.raw-archive_1", "A.B-c_9", max.as_str()] {
        log.register_consumer(good, StartPosition::Oldest)
            .await
            .unwrap();
    }
    assert_eq!(log.consumers().await.unwrap().len(), 4);
    assert!(!dir.path().join("escape.json").exists());
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_shard_is_rejected_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &common::config(3, 4096));
    let is_unknown = |err: StreamError| {
        assert!(
            matches!(
                err,
                StreamError::UnknownShard {
                    shard: 3,
                    shards: 3
                }
            ),
            "{err:?}"
        );
    };
    is_unknown(log.read(3, 0, ReadLimits::default()).await.unwrap_err());
    is_unknown(log.read_blocking(3, 0, ReadLimits::default()).unwrap_err());
    is_unknown(log.resolve(3, StartPosition::Latest).await.unwrap_err());
    log.register_consumer("c", StartPosition::Oldest)
        .await
        .unwrap();
    is_unknown(log.commit("c", &[(3, 0)]).await.unwrap_err());
    assert_eq!(log.checkpoints("c").await.unwrap(), vec![0, 0, 0]);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_over_max_value_bytes_rejects_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamConfig {
        max_value_bytes: 1000,
        max_key_bytes: 16,
        ..common::config(2, 4096)
    };
    let log = open(dir.path(), &config);
    let batch = vec![
        Record::new("a", vec![1u8; 10]),
        Record::new("b", vec![2u8; 1000]),
        Record::new("c", vec![3u8; 1001]),
        Record::new("d", vec![4u8; 10]),
    ];
    let err = log.append(batch).await.unwrap_err();
    assert!(
        matches!(
            err,
            StreamError::RecordTooLarge {
                index: 2,
                field: "value",
                size: 1001,
                limit: 1000
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("record 2") && text.contains("1000"), "{text}");
    assert_eq!(err.kind(), StreamErrorKind::InvalidInput);

    let err = log
        .append_blocking(vec![
            Record::new("a", "ok"),
            Record::new("k".repeat(17), "v"),
        ])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StreamError::RecordTooLarge {
                index: 1,
                field: "key",
                size: 17,
                limit: 16
            }
        ),
        "{err:?}"
    );

    for stats in log.shard_stats().await.unwrap() {
        assert_eq!(
            stats.next_seq, 0,
            "a refused batch stored records: {stats:?}"
        );
    }
    // Exactly at the limits is fine, and seqs start at 0: nothing was reserved by the refusals.
    let appended = log
        .append(vec![Record::new("k".repeat(16), vec![0u8; 1000])])
        .await
        .unwrap();
    assert_eq!(appended[0].seq, 0);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), &config);
    let total: u64 = log
        .shard_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.next_seq)
        .sum();
    assert_eq!(total, 1);
    log.close().unwrap();
}

/// Frames of one group commit share a timestamp; `AtTimestamp` must land on the first of them
/// even when the sparse index has an entry for a later one (in the active segment and, after a
/// roll-over, through the sealed segment's `.idx`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_timestamp_finds_the_first_of_frames_sharing_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamConfig {
        index_interval_bytes: 1,
        ..common::config(1, 1 << 20)
    };
    let log = open(dir.path(), &config);
    log.append(vec![Record::new("k", "first")]).await.unwrap();
    let t0 = common::read_all(&log, 0)[0].timestamp;
    log.close().unwrap();
    drop(log);

    // Four frames of one "group": seqs 1..=4, one timestamp, written by the spec.
    let segment = common::segments(dir.path(), 0).pop().unwrap();
    let shared = t0 + 10;
    for seq in 1..=4u64 {
        let offset = common::file_len(&segment);
        let frame = common::encode_frame(
            seq,
            shared,
            offset,
            &[(b"k".to_vec(), format!("group {seq}").into_bytes())],
        );
        common::append_bytes(&segment, &frame);
    }
    let check = |log: EmbeddedLog, next: u64| async move {
        assert_eq!(
            log.resolve(0, StartPosition::AtTimestamp(t0))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            log.resolve(0, StartPosition::AtTimestamp(t0 + 1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            log.resolve(0, StartPosition::AtTimestamp(shared))
                .await
                .unwrap(),
            1,
            "first frame at the shared time"
        );
        assert_eq!(
            log.resolve(0, StartPosition::AtTimestamp(shared + 1))
                .await
                .unwrap(),
            5
        );
        assert_eq!(log.resolve(0, StartPosition::Latest).await.unwrap(), next);
        log
    };
    let log = open(dir.path(), &config);
    assert!(log.recovery_report().truncated.is_empty());
    assert_eq!(common::read_all(&log, 0).len(), 5);
    let log = check(log, 5).await;
    // Roll the segment over so that it is sealed with a saved index, then look again.
    let small = StreamConfig {
        segment_bytes: 4096,
        ..config.clone()
    };
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), &small);
    let big = vec![0u8; 3000];
    log.append(vec![Record::new("k", big.clone())])
        .await
        .unwrap();
    log.append(vec![Record::new("k", big)]).await.unwrap();
    assert!(common::segments(dir.path(), 0).len() >= 2);
    let log = check(log, 7).await;
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), &small);
    let log = check(log, 7).await;
    log.close().unwrap();
}
