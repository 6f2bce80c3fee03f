//! Retention deletes whole sealed segments by size or age, never the active one, and never
//! hides what it deleted: consumers that had not read it see `expired_unread`, readers from
//! below the oldest record see `expired_skipped`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use tributary_stream::{
    EmbeddedLog, ReadLimits, Record, RetentionConfig, StartPosition, Stream, StreamConfig,
};

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("{i}:").into_bytes();
    v.extend(common::payload(i, 500));
    v
}

fn retention_config(retention: RetentionConfig) -> StreamConfig {
    StreamConfig {
        retention,
        ..common::config(1, 4096)
    }
}

/// Retention that deletes nothing (and checks hourly): for writing a stream before a limit
/// applies, or for showing that nothing goes.
fn keep_everything() -> StreamConfig {
    retention_config(RetentionConfig {
        max_age: Duration::ZERO,
        max_bytes_per_shard: None,
        check_interval: Duration::from_secs(3600),
    })
}

async fn fill(log: &EmbeddedLog, from: u64, count: u64) {
    for i in from..from + count {
        let appended = log.append(vec![Record::new("k", value(i))]).await.unwrap();
        assert_eq!(appended[0].seq, i);
    }
}

/// Sum of the sizes of the shard's `.log` and `.idx` files.
fn shard_bytes_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(common::shard_dir(dir, 0))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn base_seq(segment: &Path) -> u64 {
    segment
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_deletes_oldest_sealed_segments_and_counts_what_consumers_missed() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 16 << 10;
    let keep_all = keep_everything();
    // Written without a limit (the writer also applies size retention at every roll-over),
    // then reopened with one.
    let log = common::open(dir.path(), &keep_all);
    log.register_consumer("slow", StartPosition::Oldest)
        .await
        .unwrap();
    log.register_consumer("middle", StartPosition::Oldest)
        .await
        .unwrap();
    log.register_consumer("fast", StartPosition::Oldest)
        .await
        .unwrap();
    fill(&log, 0, 120).await;
    log.commit("middle", &[(0, 5)]).await.unwrap();
    log.commit("fast", &[(0, 120)]).await.unwrap();
    log.close().unwrap();
    drop(log);
    let config = retention_config(RetentionConfig {
        max_bytes_per_shard: Some(max_bytes),
        ..keep_all.retention.clone()
    });
    let log = common::open(dir.path(), &config);

    let before = common::segments(dir.path(), 0);
    let sizes_before: Vec<(u64, u64)> = before
        .iter()
        .map(|p| (base_seq(p), common::file_len(p)))
        .collect();
    assert!(before.len() >= 10, "{} segments", before.len());
    let deleted = log.enforce_retention().unwrap();
    let after = common::segments(dir.path(), 0);
    assert!(deleted > 0, "nothing deleted over max_bytes_per_shard");
    assert_eq!(after.len() as u64, before.len() as u64 - deleted);
    assert_eq!(
        after.last(),
        before.last(),
        "the active segment was deleted"
    );
    assert_eq!(
        after[..],
        before[deleted as usize..],
        "deleted segments must be the oldest ones"
    );
    for segment in &before[..deleted as usize] {
        let idx = segment.with_extension("idx");
        assert!(!idx.exists(), "{} left behind", idx.display());
    }

    let stats = log.shard_stats().await.unwrap()[0].clone();
    let first = base_seq(&after[0]);
    assert_eq!(stats.first_seq, first);
    assert_eq!(stats.next_seq, 120);
    assert_eq!(stats.segments as usize, after.len());
    assert!(stats.bytes <= max_bytes, "{stats:?} still over {max_bytes}");
    // Not more than needed: with the youngest deleted segment back it would be over the limit.
    let youngest_deleted = sizes_before[deleted as usize - 1].1;
    assert!(
        shard_bytes_on_disk(dir.path()) + youngest_deleted > max_bytes,
        "deleted more than needed"
    );
    assert!(stats.oldest_timestamp <= stats.newest_timestamp);

    // What the consumers missed.
    let lag = |name: &'static str| {
        let log = log.clone();
        async move { log.consumer_lag(name).await.unwrap().shards[0].clone() }
    };
    let slow = lag("slow").await;
    assert_eq!(slow.expired_unread, first, "{slow:?}");
    assert_eq!(
        slow.lag_records,
        120 - first,
        "lag counts retained records only: {slow:?}"
    );
    assert!(slow.iterator_age_ms < 60_000);
    let middle = lag("middle").await;
    assert_eq!(middle.expired_unread, first - 5, "{middle:?}");
    let fast = lag("fast").await;
    assert_eq!((fast.expired_unread, fast.lag_records), (0, 0), "{fast:?}");
    log.register_consumer("late", StartPosition::Oldest)
        .await
        .unwrap();
    let late = lag("late").await;
    assert_eq!(late.checkpoint, first);
    assert_eq!(
        late.expired_unread, 0,
        "registered after the deletion: {late:?}"
    );

    // Readers from below the oldest record are told how much they missed.
    let batch = log.read_blocking(0, 0, ReadLimits::default()).unwrap();
    assert_eq!(batch.expired_skipped, first);
    assert_eq!(batch.records[0].seq, first);
    assert_eq!(batch.records[0].value, value(first));
    let batch = log.read(0, 3, ReadLimits::default()).await.unwrap();
    assert_eq!(batch.expired_skipped, first - 3);
    assert_eq!(batch.records[0].seq, first);
    assert_eq!(log.resolve(0, StartPosition::Oldest).await.unwrap(), first);
    let retained = common::read_from(&log, 0, first, ReadLimits::default());
    assert_eq!(retained.len() as u64, 120 - first);
    for record in &retained {
        assert_eq!(record.value, value(record.seq));
    }
    assert!(log.verify().unwrap().damage.is_empty());
    assert_eq!(
        log.enforce_retention().unwrap(),
        0,
        "a second pass has nothing to delete"
    );
    log.close().unwrap();
    drop(log);

    // All of it holds after a reopen.
    let log = common::open(dir.path(), &config);
    assert_eq!(log.shard_stats().await.unwrap()[0].first_seq, first);
    assert_eq!(
        log.consumer_lag("slow").await.unwrap().shards[0].expired_unread,
        first
    );
    let batch = log.read_blocking(0, 0, ReadLimits::default()).unwrap();
    assert_eq!(
        (batch.expired_skipped, batch.records[0].seq),
        (first, first)
    );
    fill(&log, 120, 1).await;
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_deletes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let keep_all = keep_everything();
    let log = common::open(dir.path(), &keep_all);
    fill(&log, 0, 50).await;
    log.close().unwrap();
    drop(log);
    let config = retention_config(RetentionConfig {
        max_bytes_per_shard: Some(1),
        ..keep_all.retention.clone()
    });
    let log = common::open(dir.path(), &config);
    let before = common::segments(dir.path(), 0);
    let deleted = log.enforce_retention().unwrap();
    assert_eq!(deleted as usize, before.len() - 1);
    let after = common::segments(dir.path(), 0);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0], *before.last().unwrap());
    let first = base_seq(&after[0]);
    let stats = log.shard_stats().await.unwrap()[0].clone();
    assert_eq!(
        (stats.first_seq, stats.next_seq, stats.segments),
        (first, 50, 1)
    );
    let retained = common::read_from(&log, 0, first, ReadLimits::default());
    assert_eq!(retained.len() as u64, 50 - first);
    // Appending on (rolling over, with retention at every roll-over) keeps only the active one.
    fill(&log, 50, 30).await;
    log.enforce_retention().unwrap();
    let stats = log.shard_stats().await.unwrap()[0].clone();
    assert_eq!((stats.next_seq, stats.segments), (80, 1));
    let retained = common::read_from(&log, 0, stats.first_seq, ReadLimits::default());
    assert_eq!(retained.len() as u64, 80 - stats.first_seq);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_retention_deletes_sealed_segments_past_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = retention_config(RetentionConfig {
        max_age: Duration::from_secs(1),
        max_bytes_per_shard: None,
        check_interval: Duration::from_secs(3600),
    });
    let log = common::open(dir.path(), &config);
    log.register_consumer("reader", StartPosition::Oldest)
        .await
        .unwrap();
    fill(&log, 0, 40).await;
    let before = common::segments(dir.path(), 0);
    assert!(before.len() >= 4);
    assert_eq!(
        log.enforce_retention().unwrap(),
        0,
        "records younger than max_age were deleted"
    );

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let deleted = log.enforce_retention().unwrap();
    let after = common::segments(dir.path(), 0);
    assert_eq!(
        deleted as usize,
        before.len() - 1,
        "every sealed segment is past max_age"
    );
    assert_eq!(
        after,
        [before.last().unwrap().clone()],
        "only the active segment is left"
    );
    let first = base_seq(&after[0]);
    assert!(first > 0 && first < 40);
    assert_eq!(
        log.consumer_lag("reader").await.unwrap().shards[0].expired_unread,
        first
    );
    let batch = log.read_blocking(0, 0, ReadLimits::default()).unwrap();
    assert_eq!(batch.expired_skipped, first);
    assert_eq!(batch.records[0].seq, first);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_max_age_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = keep_everything();
    let log = common::open(dir.path(), &config);
    fill(&log, 0, 30).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(log.enforce_retention().unwrap(), 0);
    assert_eq!(log.shard_stats().await.unwrap()[0].first_seq, 0);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_writer_enforces_retention_every_check_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = retention_config(RetentionConfig {
        max_age: Duration::from_millis(500),
        max_bytes_per_shard: None,
        check_interval: Duration::from_millis(100),
    });
    let log = common::open(dir.path(), &config);
    fill(&log, 0, 40).await;
    let before = common::segments(dir.path(), 0).len();
    assert!(before >= 4);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::segments(dir.path(), 0).len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background retention after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = log.shard_stats().await.unwrap()[0].clone();
    assert_eq!(stats.segments, 1);
    assert!(stats.first_seq > 0);
    log.close().unwrap();
}

/// Retention takes segments out of the shard at once and deletes their files on a thread of its
/// own, so a crash can come between the two. The files found again at the next open must be
/// harmless: nothing counted twice, nothing re-delivered, and taken out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_whose_deletion_was_cut_short_is_taken_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keep_all = keep_everything();
    let log = common::open(dir.path(), &keep_all);
    log.register_consumer("slow", StartPosition::Oldest)
        .await
        .unwrap();
    fill(&log, 0, 120).await;
    log.close().unwrap();
    drop(log);
    let config = retention_config(RetentionConfig {
        max_bytes_per_shard: Some(16 << 10),
        ..keep_all.retention.clone()
    });
    let log = common::open(dir.path(), &config);
    let before = common::segments(dir.path(), 0);
    let copies = tempfile::tempdir().unwrap();
    for segment in &before {
        std::fs::copy(segment, copies.path().join(segment.file_name().unwrap())).unwrap();
    }
    let deleted = log.enforce_retention().unwrap() as usize;
    assert!(deleted >= 2, "{deleted}");
    // The youngest segment taken out: a crash mid-removal leaves the youngest ones (they go
    // oldest first).
    let survivor = before[deleted - 1].clone();
    let kept = common::segments(dir.path(), 0);
    let first = base_seq(&kept[0]);
    let slow = log.consumer_lag("slow").await.unwrap().shards[0].clone();
    assert_eq!(slow.expired_unread, first);
    log.close().unwrap();
    drop(log);

    // As if its unlink never happened: the segment is back on disk.
    std::fs::copy(copies.path().join(survivor.file_name().unwrap()), &survivor).unwrap();

    let log = common::open(dir.path(), &config);
    let reopened = log.consumer_lag("slow").await.unwrap().shards[0].clone();
    assert_eq!(
        (reopened.checkpoint, reopened.expired_unread),
        (first, first),
        "the consumer neither goes back nor counts the segment twice"
    );
    let batch = log
        .read_blocking(0, reopened.checkpoint, ReadLimits::default())
        .unwrap();
    assert_eq!(batch.records[0].seq, first);
    assert_eq!(log.enforce_retention().unwrap(), 1, "taken out again");
    assert!(!survivor.exists(), "{} is still there", survivor.display());
    assert_eq!(
        log.consumer_lag("slow").await.unwrap().shards[0].expired_unread,
        first
    );
    assert_eq!(log.shard_stats().await.unwrap()[0].first_seq, first);
    log.close().unwrap();
}
