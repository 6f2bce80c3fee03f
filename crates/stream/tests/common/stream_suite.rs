//! The backend-neutral stream suite: behaviour every [`Stream`] implementation must show.
//!
//! Each check takes a `&dyn Stream` that it shares with nobody else while it runs, and assumes
//! nothing about what the stream already holds: it reads shard extents first and uses keys and
//! consumer names unique to the run, so a Kafka topic that earlier runs wrote to passes too.
//! A backend's test file instantiates every check with [`stream_suite!`], handing it an async
//! constructor that returns `(guard, stream)`; the guard (a temp dir, a container, …) is dropped
//! after the check.
// Test files that do not run the suite still compile it (it lives in `common`).
#![allow(unused_macros, unused_imports)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tributary_stream::{
    ReadLimits, Record, SeqNo, ShardId, StartPosition, StoredRecord, Stream, StreamError,
    StreamErrorKind,
};

/// Instantiates every suite check as a `#[tokio::test]` for one backend. `$make` is an async fn
/// `() -> (impl Drop-guard, impl Stream)`.
macro_rules! stream_suite {
    ($make:path) => {
        $crate::common::stream_suite::stream_suite!(@tests $make;
            append_then_read_back_in_order,
            one_key_keeps_its_order_under_concurrent_appends,
            read_limits_bound_a_batch,
            resolve_start_positions,
            long_poll_read_returns_a_later_append,
            long_poll_read_on_an_idle_shard_waits_then_returns_empty,
            consumer_registration_is_idempotent,
            commit_moves_only_the_named_shards,
            consumer_lag_counts_records_and_iterator_age,
            unknown_shards_and_consumers_are_rejected,
            invalid_consumer_names_are_rejected,
        );
    };
    (@tests $make:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_guard, stream) = $make().await;
                $crate::common::stream_suite::$check(&stream).await;
            }
        )*
    };
}
pub(crate) use stream_suite;

/// A prefix unique to this process and call, for keys and consumer names.
fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}-{}",
        std::process::id(),
        crate::common::now_micros(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Finds a key of this run that maps to `shard`.
fn key_on_shard(stream: &dyn Stream, prefix: &str, shard: ShardId) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}:k{i}"))
        .find(|key| stream.shard_for_key(key.as_bytes()) == shard)
        .expect("no key maps to the shard")
}

async fn next_seqs(stream: &dyn Stream) -> Vec<SeqNo> {
    let stats = stream.shard_stats().await.unwrap();
    assert_eq!(
        stats.len(),
        stream.shard_count() as usize,
        "one ShardStats per shard"
    );
    for (i, s) in stats.iter().enumerate() {
        assert_eq!(s.shard, i as ShardId, "shard_stats in shard order");
        assert!(s.first_seq <= s.next_seq, "{s:?}");
    }
    stats.iter().map(|s| s.next_seq).collect()
}

/// Reads `shard` from `from` up to `until` (exclusive) with the async API.
async fn read_range(
    stream: &dyn Stream,
    shard: ShardId,
    from: SeqNo,
    until: SeqNo,
) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut at = from;
    while at < until {
        let batch = stream.read(shard, at, ReadLimits::default()).await.unwrap();
        assert!(
            !batch.records.is_empty(),
            "shard {shard}: nothing at {at} below {until}"
        );
        assert_eq!(batch.records[0].seq, at);
        at = batch.next_seq;
        out.extend(batch.records);
    }
    out.retain(|r| r.seq < until);
    out
}

/// Records land on their key's shard with contiguous sequence numbers in input order, and
/// read back identical, in order, with non-decreasing timestamps.
pub async fn append_then_read_back_in_order(stream: &dyn Stream) {
    stream.check_writable().await.unwrap();
    let prefix = unique("order");
    let before = next_seqs(stream).await;
    let keys: Vec<String> = (0..12).map(|i| format!("{prefix}:session-{i}")).collect();
    let mut expected: BTreeMap<ShardId, Vec<(Bytes, Bytes)>> = BTreeMap::new();
    for batch_no in 0..6u64 {
        let records: Vec<Record> = (0..25u64)
            .map(|i| {
                let key = &keys[((batch_no * 7 + i * 5) % keys.len() as u64) as usize];
                let value = format!(
                    "batch {batch_no} record {i} {}",
                    "x".repeat((i * 13) as usize)
                );
                Record::new(key.clone(), value)
            })
            .collect();
        let appended = stream.append(records.clone()).await.unwrap();
        assert_eq!(appended.len(), records.len(), "one Appended per record");
        for (record, landed) in records.iter().zip(&appended) {
            assert_eq!(
                landed.shard,
                stream.shard_for_key(&record.key),
                "record went to the wrong shard"
            );
            let list = expected.entry(landed.shard).or_default();
            let want = before[landed.shard as usize] + list.len() as u64;
            assert_eq!(
                landed.seq, want,
                "shard {}: seqs must be contiguous, in input order",
                landed.shard
            );
            list.push((record.key.clone(), record.value.clone()));
        }
    }
    let after = next_seqs(stream).await;
    for shard in 0..stream.shard_count() {
        let list = expected.remove(&shard).unwrap_or_default();
        let from = before[shard as usize];
        assert_eq!(
            after[shard as usize],
            from + list.len() as u64,
            "shard {shard}: high watermark"
        );
        let got = read_range(stream, shard, from, after[shard as usize]).await;
        assert_eq!(got.len(), list.len(), "shard {shard}: record count");
        for (i, (record, (key, value))) in got.iter().zip(&list).enumerate() {
            assert_eq!(record.seq, from + i as u64);
            assert_eq!(&record.key, key, "shard {shard} seq {}: key", record.seq);
            assert_eq!(
                &record.value, value,
                "shard {shard} seq {}: value",
                record.seq
            );
        }
        for pair in got.windows(2) {
            assert!(
                pair[0].timestamp <= pair[1].timestamp,
                "timestamps went backwards: {pair:?}"
            );
        }
    }
}

/// Concurrent appenders sharing keys: for every key, each appender's records appear in the
/// order it appended them, and the seqs `append` returned are where they are read.
pub async fn one_key_keeps_its_order_under_concurrent_appends(stream: &dyn Stream) {
    let prefix = unique("perkey");
    let before = next_seqs(stream).await;
    let keys: Vec<String> = (0..5).map(|i| format!("{prefix}:s{i}")).collect();
    let writer = |w: u64| {
        let keys = keys.clone();
        async move {
            let mut acked = Vec::new();
            for batch_no in 0..20u64 {
                let records: Vec<Record> = (0..1 + (batch_no % 7))
                    .map(|i| {
                        let key = &keys[((w + batch_no + i) % keys.len() as u64) as usize];
                        Record::new(key.clone(), format!("w{w} n{batch_no:03} i{i}"))
                    })
                    .collect();
                let appended = stream.append(records.clone()).await.unwrap();
                acked.extend(records.into_iter().zip(appended));
            }
            acked
        }
    };
    let (a, b, c, d) = tokio::join!(writer(0), writer(1), writer(2), writer(3));
    let acked: Vec<_> = [a, b, c, d].into_iter().flatten().collect();
    let after = next_seqs(stream).await;
    let mut by_position = BTreeMap::new();
    for (record, landed) in &acked {
        assert!(
            by_position
                .insert((landed.shard, landed.seq), record.clone())
                .is_none(),
            "two records acknowledged at shard {} seq {}",
            landed.shard,
            landed.seq
        );
    }
    let total: u64 = (0..stream.shard_count() as usize)
        .map(|s| after[s] - before[s])
        .sum();
    assert_eq!(
        total,
        acked.len() as u64,
        "exactly the acknowledged records were added"
    );
    for shard in 0..stream.shard_count() {
        let got = read_range(stream, shard, before[shard as usize], after[shard as usize]).await;
        let mut last_per_writer_key: BTreeMap<(String, String), String> = BTreeMap::new();
        for record in got {
            let want = &by_position[&(shard, record.seq)];
            assert_eq!(record.key, want.key, "shard {shard} seq {}", record.seq);
            assert_eq!(record.value, want.value, "shard {shard} seq {}", record.seq);
            let text = String::from_utf8(record.value.to_vec()).unwrap();
            let writer = text.split(' ').next().unwrap().to_string();
            let key = String::from_utf8(record.key.to_vec()).unwrap();
            let slot = last_per_writer_key
                .entry((key.clone(), writer))
                .or_default();
            assert!(
                *slot < text,
                "key {key}: {text} after {slot}: per-key order broken"
            );
            *slot = text;
        }
    }
}

/// `max_records` and `max_bytes` bound a read; one record is returned even when it alone is
/// over `max_bytes`.
pub async fn read_limits_bound_a_batch(stream: &dyn Stream) {
    let key = format!("{}:limits", unique("limits"));
    let shard = stream.shard_for_key(key.as_bytes());
    let records: Vec<Record> = (0..20)
        .map(|i| Record::new(key.clone(), vec![i as u8; 100]))
        .collect();
    let appended = stream.append(records).await.unwrap();
    let first = appended[0].seq;
    let limits = |max_records, max_bytes| ReadLimits {
        max_records,
        max_bytes,
        max_wait: Duration::ZERO,
    };

    let batch = stream.read(shard, first, limits(5, 1 << 20)).await.unwrap();
    assert_eq!(batch.records.len(), 5, "max_records");
    assert_eq!(batch.next_seq, first + 5);

    let batch = stream.read(shard, first, limits(1000, 10)).await.unwrap();
    assert_eq!(
        batch.records.len(),
        1,
        "one record over max_bytes still comes back alone"
    );
    assert_eq!(batch.next_seq, first + 1);

    let batch = stream.read(shard, first, limits(1000, 250)).await.unwrap();
    assert!(
        (1..=3).contains(&batch.records.len()),
        "max_bytes 250 with 100-byte values returned {} records",
        batch.records.len()
    );
    assert_eq!(batch.next_seq, first + batch.records.len() as u64);
    for (i, record) in batch.records.iter().enumerate() {
        assert_eq!(record.value, Bytes::from(vec![i as u8; 100]));
    }
}

/// Every `StartPosition` resolves to the documented sequence number.
pub async fn resolve_start_positions(stream: &dyn Stream) {
    let key = format!("{}:resolve", unique("resolve"));
    let shard = stream.shard_for_key(key.as_bytes());
    let mut groups = Vec::new();
    for g in 0..3 {
        if g > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let records = (0..4)
            .map(|i| Record::new(key.clone(), format!("g{g} r{i}")))
            .collect();
        let appended = stream.append(records).await.unwrap();
        groups.push(appended.iter().map(|a| a.seq).collect::<Vec<_>>());
    }
    let first = groups[0][0];
    let next = groups[2][3] + 1;
    let got = read_range(stream, shard, first, next).await;
    let ts = |seq: SeqNo| got[(seq - first) as usize].timestamp;

    let oldest = stream.resolve(shard, StartPosition::Oldest).await.unwrap();
    assert!(
        oldest <= first,
        "Oldest {oldest} is after retained record {first}"
    );
    assert_eq!(
        stream.resolve(shard, StartPosition::Latest).await.unwrap(),
        next,
        "Latest"
    );
    assert_eq!(
        stream
            .resolve(shard, StartPosition::AtSeq(groups[1][2]))
            .await
            .unwrap(),
        groups[1][2]
    );
    assert_eq!(
        stream
            .resolve(shard, StartPosition::AfterSeq(groups[1][2]))
            .await
            .unwrap(),
        groups[1][3]
    );
    let g2 = groups[1][0];
    assert_eq!(
        stream
            .resolve(shard, StartPosition::AtTimestamp(ts(g2)))
            .await
            .unwrap(),
        g2,
        "AtTimestamp of the 2nd group's first record"
    );
    // A time between the groups (1 ms after the first group, which ended ≥ 30 ms earlier).
    let between = ts(groups[0][3]) + 1_000;
    assert!(between < ts(g2));
    assert_eq!(
        stream
            .resolve(shard, StartPosition::AtTimestamp(between))
            .await
            .unwrap(),
        g2
    );
    assert_eq!(
        stream
            .resolve(shard, StartPosition::AtTimestamp(ts(groups[2][0])))
            .await
            .unwrap(),
        groups[2][0]
    );
    let future = crate::common::now_micros() + 3_600_000_000;
    assert_eq!(
        stream
            .resolve(shard, StartPosition::AtTimestamp(future))
            .await
            .unwrap(),
        next,
        "AtTimestamp in the future is the end of the shard"
    );
}

/// A read waiting on an empty position returns a record appended during the wait, long before
/// `max_wait` runs out.
pub async fn long_poll_read_returns_a_later_append(stream: &dyn Stream) {
    let key = format!("{}:poll", unique("poll"));
    let shard = stream.shard_for_key(key.as_bytes());
    let at = stream.resolve(shard, StartPosition::Latest).await.unwrap();
    let limits = ReadLimits {
        max_wait: Duration::from_secs(10),
        ..ReadLimits::default()
    };
    let started = Instant::now();
    let reader = stream.read(shard, at, limits);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream
            .append(vec![Record::new(key.clone(), "late")])
            .await
            .unwrap()
    };
    let (batch, appended) = tokio::join!(reader, writer);
    let batch = batch.unwrap();
    let waited = started.elapsed();
    assert_eq!(appended[0].seq, at);
    assert_eq!(batch.records.len(), 1, "the long poll returned {batch:?}");
    assert_eq!(batch.records[0].value, Bytes::from_static(b"late"));
    assert_eq!(batch.next_seq, at + 1);
    assert!(
        waited >= Duration::from_millis(90),
        "returned before the append: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "woke up only after {waited:?}"
    );
}

/// With nothing appended, a long poll waits about `max_wait` and returns an empty batch.
pub async fn long_poll_read_on_an_idle_shard_waits_then_returns_empty(stream: &dyn Stream) {
    let key = format!("{}:idle", unique("idle"));
    let shard = stream.shard_for_key(key.as_bytes());
    let at = stream.resolve(shard, StartPosition::Latest).await.unwrap();
    let max_wait = Duration::from_millis(300);
    let started = Instant::now();
    let batch = stream
        .read(
            shard,
            at,
            ReadLimits {
                max_wait,
                ..ReadLimits::default()
            },
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(batch.records.is_empty(), "{batch:?}");
    assert_eq!(batch.next_seq, at);
    assert!(
        waited >= max_wait.mul_f32(0.8),
        "returned after {waited:?}, max_wait {max_wait:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

/// Registering twice keeps the first registration's checkpoints; names come back sorted; a
/// new consumer starts every shard at its start position.
pub async fn consumer_registration_is_idempotent(stream: &dyn Stream) {
    let name = unique("reg");
    let key = format!("{name}:k");
    let shard = stream.shard_for_key(key.as_bytes());
    stream
        .append(vec![
            Record::new(key.clone(), "a"),
            Record::new(key.clone(), "b"),
        ])
        .await
        .unwrap();

    stream
        .register_consumer(&name, StartPosition::Oldest)
        .await
        .unwrap();
    let mut oldest = Vec::new();
    for s in 0..stream.shard_count() {
        oldest.push(stream.resolve(s, StartPosition::Oldest).await.unwrap());
    }
    assert_eq!(
        stream.checkpoints(&name).await.unwrap(),
        oldest,
        "new consumer at Oldest"
    );

    let latest = next_seqs(stream).await;
    stream
        .commit(&name, &[(shard, latest[shard as usize] - 1)])
        .await
        .unwrap();
    let committed = stream.checkpoints(&name).await.unwrap();
    stream
        .register_consumer(&name, StartPosition::Latest)
        .await
        .unwrap();
    assert_eq!(
        stream.checkpoints(&name).await.unwrap(),
        committed,
        "re-registering moved checkpoints"
    );

    let late = format!("{name}-late");
    stream
        .register_consumer(&late, StartPosition::Latest)
        .await
        .unwrap();
    assert_eq!(
        stream.checkpoints(&late).await.unwrap(),
        latest,
        "new consumer at Latest"
    );

    let names = stream.consumers().await.unwrap();
    assert!(names.contains(&name) && names.contains(&late), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "consumers() must be sorted");
    assert_eq!(
        names.iter().filter(|n| **n == name).count(),
        1,
        "registered twice: {names:?}"
    );
}

/// A commit naming some shards leaves the others where they were.
pub async fn commit_moves_only_the_named_shards(stream: &dyn Stream) {
    let name = unique("commit");
    let prefix = name.clone();
    let shards = stream.shard_count();
    for s in 0..shards {
        let key = key_on_shard(stream, &prefix, s);
        let records = (0..3)
            .map(|i| Record::new(key.clone(), format!("{i}")))
            .collect();
        stream.append(records).await.unwrap();
    }
    stream
        .register_consumer(&name, StartPosition::Oldest)
        .await
        .unwrap();
    let start = stream.checkpoints(&name).await.unwrap();
    let next = next_seqs(stream).await;
    stream.commit(&name, &[(0, next[0] - 1)]).await.unwrap();
    let mut want = start.clone();
    want[0] = next[0] - 1;
    assert_eq!(stream.checkpoints(&name).await.unwrap(), want);
    let all: Vec<(ShardId, SeqNo)> = (0..shards).map(|s| (s, next[s as usize])).collect();
    stream.commit(&name, &all).await.unwrap();
    assert_eq!(stream.checkpoints(&name).await.unwrap(), next);
}

/// Lag counts unconsumed records per shard; iterator age grows while a consumer is behind and
/// is 0 once it caught up.
pub async fn consumer_lag_counts_records_and_iterator_age(stream: &dyn Stream) {
    let name = unique("lag");
    stream
        .register_consumer(&name, StartPosition::Latest)
        .await
        .unwrap();
    let key = format!("{name}:k");
    let shard = stream.shard_for_key(key.as_bytes());
    let records = (0..10)
        .map(|i| Record::new(key.clone(), format!("{i}")))
        .collect();
    stream.append(records).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;

    let lag = stream.consumer_lag(&name).await.unwrap();
    assert_eq!(lag.consumer, name);
    assert_eq!(lag.shards.len(), stream.shard_count() as usize);
    let behind = &lag.shards[shard as usize];
    assert_eq!(behind.shard, shard);
    assert_eq!(behind.lag_records, 10, "{behind:?}");
    assert_eq!(behind.next_seq - behind.checkpoint, 10, "{behind:?}");
    assert!(
        behind.iterator_age_ms >= 100,
        "iterator age after 120 ms: {behind:?}"
    );
    assert!(behind.iterator_age_ms < 60_000, "{behind:?}");
    for other in lag.shards.iter().filter(|s| s.shard != shard) {
        assert_eq!(other.lag_records, 0, "{other:?}");
        assert_eq!(other.iterator_age_ms, 0, "{other:?}");
    }
    assert_eq!(lag.total_lag_records(), 10);

    stream
        .commit(&name, &[(shard, behind.checkpoint + 4)])
        .await
        .unwrap();
    let lag = stream.consumer_lag(&name).await.unwrap();
    assert_eq!(lag.shards[shard as usize].lag_records, 6);
    assert!(lag.shards[shard as usize].iterator_age_ms >= 100);

    stream
        .commit(&name, &[(shard, behind.next_seq)])
        .await
        .unwrap();
    let lag = stream.consumer_lag(&name).await.unwrap();
    assert_eq!(lag.shards[shard as usize].lag_records, 0);
    assert_eq!(
        lag.shards[shard as usize].iterator_age_ms, 0,
        "caught up: {lag:?}"
    );
    assert_eq!(lag.max_iterator_age_ms(), 0);
}

fn assert_invalid_input(err: &StreamError) {
    assert_eq!(err.kind(), StreamErrorKind::InvalidInput, "{err:?}");
}

/// Unknown shards and unregistered consumers are errors of the caller's input.
pub async fn unknown_shards_and_consumers_are_rejected(stream: &dyn Stream) {
    let shards = stream.shard_count();
    let err = stream
        .read(shards, 0, ReadLimits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StreamError::UnknownShard { shard, shards: n } if shard == shards && n == shards),
        "{err:?}"
    );
    assert_invalid_input(&err);
    let err = stream
        .resolve(shards + 7, StartPosition::Oldest)
        .await
        .unwrap_err();
    assert!(matches!(err, StreamError::UnknownShard { .. }), "{err:?}");

    let name = unique("never");
    let err = stream.checkpoints(&name).await.unwrap_err();
    assert!(
        matches!(&err, StreamError::UnknownConsumer(n) if *n == name),
        "{err:?}"
    );
    assert_invalid_input(&err);
    let err = stream.commit(&name, &[(0, 0)]).await.unwrap_err();
    assert!(matches!(err, StreamError::UnknownConsumer(_)), "{err:?}");
    let err = stream.consumer_lag(&name).await.unwrap_err();
    assert!(matches!(err, StreamError::UnknownConsumer(_)), "{err:?}");

    stream
        .register_consumer(&name, StartPosition::Oldest)
        .await
        .unwrap();
    let before = stream.checkpoints(&name).await.unwrap();
    let err = stream
        .commit(&name, &[(0, 0), (shards, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, StreamError::UnknownShard { .. }), "{err:?}");
    assert_eq!(
        stream.checkpoints(&name).await.unwrap(),
        before,
        "a refused commit changed checkpoints"
    );
}

/// Consumer names outside `[A-Za-z0-9._-]{1,64}` are refused; names at the edges are accepted.
pub async fn invalid_consumer_names_are_rejected(stream: &dyn Stream) {
    let too_long = "x".repeat(65);
    for bad in [
        "",
        "has space",
        "a/b",
        "../etc",
        "tab\t",
        "é",
        "semi;colon",
        too_long.as_str(),
    ] {
        let err = stream
            .register_consumer(bad, StartPosition::Oldest)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StreamError::InvalidConsumerName { .. }),
            "{bad:?}: {err:?}"
        );
        assert_invalid_input(&err);
    }
    let names = stream.consumers().await.unwrap();
    assert!(
        !names.iter().any(|n| n.is_empty() || n.contains('/')),
        "{names:?}"
    );
    let edge = format!("{}.A_z-9", unique("ok"));
    let edge64 = format!("{edge}{}", "y".repeat(64 - edge.len()));
    for good in [edge.as_str(), edge64.as_str()] {
        stream
            .register_consumer(good, StartPosition::Oldest)
            .await
            .unwrap();
    }
}
