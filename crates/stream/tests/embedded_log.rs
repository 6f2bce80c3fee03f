//! The embedded log's lifecycle and its files: the lock, configuration checks, close, group
//! commit from many threads, and the on-disk format checked against the document in
//! `format.rs` by an independent parser (and a frame written by hand read back by the log).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{config, open, parse_segment, read_all, segments};
use tributary_stream::{EmbeddedLog, Record, Stream, StreamConfig, StreamError, shard_for_key};

#[test]
fn second_open_while_live_is_refused_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(2, 4096);
    let log = open(dir.path(), &config);
    assert_eq!(log.dir(), dir.path());
    assert_eq!(log.config(), &config);
    let err = EmbeddedLog::open(dir.path(), config.clone()).err().unwrap();
    match &err {
        StreamError::Config(text) => assert!(text.contains("in use"), "{text}"),
        other => panic!("expected Config(\"… in use …\"), got {other:?}"),
    }
    // A clone is the same log, not a second opener.
    let clone = log.clone();
    clone.append_blocking(vec![Record::new("k", "v")]).unwrap();
    common::close(log);
    drop(clone);
    let log = open(dir.path(), &config);
    assert_eq!(read_all(&log, shard_for_key(b"k", 2)).len(), 1);
    common::close(log);
}

#[test]
fn closed_log_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &config(1, 4096));
    let clone = log.clone();
    log.close().unwrap();
    let err = clone
        .append_blocking(vec![Record::new("k", "v")])
        .unwrap_err();
    assert!(matches!(err, StreamError::Closed), "{err:?}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(clone.check_writable()).unwrap_err();
    assert!(
        matches!(err, StreamError::Closed),
        "check_writable after close: {err:?}"
    );
    // Reads keep working after close.
    assert!(
        clone
            .read_blocking(0, 0, tributary_stream::ReadLimits::default())
            .unwrap()
            .records
            .is_empty()
    );
}

#[test]
fn reopening_with_another_shard_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::close(open(dir.path(), &config(4, 4096)));
    let err = EmbeddedLog::open(dir.path(), config(8, 4096))
        .err()
        .unwrap();
    assert!(
        matches!(&err, StreamError::Config(text) if text.contains('4') && text.contains('8')),
        "{err:?}"
    );
    common::close(open(dir.path(), &config(4, 4096)));
}

#[test]
fn invalid_config_is_refused_before_touching_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("stream");
    let err = EmbeddedLog::open(
        &target,
        StreamConfig {
            segment_bytes: 100,
            ..StreamConfig::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, StreamError::Config(text) if text.contains("segment_bytes")),
        "{err:?}"
    );
    assert!(!target.exists(), "an invalid config created the directory");
}

#[test]
fn empty_append_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &config(1, 4096));
    assert!(log.append_blocking(Vec::new()).unwrap().is_empty());
    assert_eq!(
        log.append_blocking(vec![Record::new("k", "v")]).unwrap()[0].seq,
        0
    );
    common::close(log);
}

#[test]
fn concurrent_blocking_appends_get_unique_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(3, 8192);
    let log = open(dir.path(), &config);
    let acked: Vec<(Record, tributary_stream::Appended)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for n in 0..40 {
                        let records: Vec<Record> = (0..1 + n % 4)
                            .map(|i| {
                                Record::new(
                                    format!("t{t}:{}", (n + i) % 5),
                                    format!("t{t} n{n:02} i{i}"),
                                )
                            })
                            .collect();
                        let appended = log.append_blocking(records.clone()).unwrap();
                        acked.extend(records.into_iter().zip(appended));
                    }
                    acked
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut by_position = BTreeMap::new();
    for (record, landed) in acked {
        assert!(
            by_position
                .insert((landed.shard, landed.seq), record)
                .is_none(),
            "seq given twice"
        );
    }
    common::close(log);
    let log = open(dir.path(), &config);
    for shard in 0..3 {
        let records = read_all(&log, shard);
        for record in &records {
            let want = by_position
                .remove(&(shard, record.seq))
                .unwrap_or_else(|| panic!("unacknowledged record at {shard}/{}", record.seq));
            assert_eq!((&record.key, &record.value), (&want.key, &want.value));
        }
    }
    assert!(
        by_position.is_empty(),
        "{} acknowledged records missing",
        by_position.len()
    );
    common::close(log);
}

/// One append call's records (key, value) per shard: what one frame per shard must hold.
type FramesByShard = BTreeMap<u32, Vec<(Vec<u8>, Vec<u8>)>>;

#[test]
fn files_follow_the_documented_layout_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(3, 4096);
    let log = open(dir.path(), &config);
    let started = common::now_micros();
    let mut appended_frames: Vec<FramesByShard> = Vec::new();
    for n in 0..60u64 {
        let records: Vec<Record> = (0..1 + n % 5)
            .map(|i| {
                Record::new(
                    format!("tenant:s{}", (n * 3 + i) % 7),
                    common::payload(n * 10 + i, (n * 37 % 700) as usize),
                )
            })
            .collect();
        let appended = log.append_blocking(records.clone()).unwrap();
        let mut frames = FramesByShard::new();
        for (record, landed) in records.iter().zip(&appended) {
            frames
                .entry(landed.shard)
                .or_default()
                .push((record.key.to_vec(), record.value.to_vec()));
        }
        appended_frames.push(frames);
    }
    common::close(log);
    let finished = common::now_micros();

    assert!(dir.path().join("STREAM").is_file(), "STREAM metadata file");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("STREAM")).unwrap()).unwrap();
    assert!(
        meta.to_string().contains('3'),
        "STREAM names the shard count: {meta}"
    );
    assert!(dir.path().join("LOCK").exists(), "LOCK file");

    for shard in 0..3u32 {
        // Expected frames of this shard, in append order: one per append call that touched it.
        let mut expected = appended_frames
            .iter()
            .filter_map(|f| f.get(&shard))
            .peekable();
        let segs = segments(dir.path(), shard);
        assert!(
            segs.len() >= 2,
            "shard {shard}: no roll-over with 4 KiB segments"
        );
        let mut next_seq = 0u64;
        let mut last_ts = i64::MIN;
        for (i, path) in segs.iter().enumerate() {
            let parsed = parse_segment(path);
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(parsed.header.version, 1, "{name}");
            assert!(parsed.header.crc_ok, "{name}: header CRC");
            assert_eq!(parsed.header.shard, shard, "{name}: header shard");
            assert_eq!(
                name,
                common::segment_name(parsed.header.base_seq),
                "file named by base_seq"
            );
            assert_eq!(
                parsed.header.base_seq, next_seq,
                "{name}: base_seq continues the previous segment"
            );
            assert_eq!(
                parsed.valid_len, parsed.file_len,
                "{name}: bytes after the last valid frame"
            );
            let sealed = i + 1 < segs.len();
            if sealed {
                assert!(!parsed.frames.is_empty(), "{name}: an empty sealed segment");
                assert!(
                    path.with_extension("idx").is_file(),
                    "{name}: sealed segment without .idx"
                );
            }
            let mut previous_end = 32;
            for frame in &parsed.frames {
                assert_eq!(frame.offset, previous_end, "{name}: frames are contiguous");
                assert_eq!(
                    frame.first_seq, next_seq,
                    "{name}: first_seq at {}",
                    frame.offset
                );
                assert_eq!(frame.flags, 0);
                assert!(frame.record_count >= 1);
                assert!(
                    frame.timestamp >= last_ts,
                    "{name}: timestamp decreased at {}",
                    frame.offset
                );
                assert!(
                    (started..=finished).contains(&frame.timestamp),
                    "{name}: timestamp {} not from the run",
                    frame.timestamp
                );
                assert!(
                    frame.durable_offset <= frame.offset,
                    "{name}: durable_offset {} past the frame at {}",
                    frame.durable_offset,
                    frame.offset
                );
                // Appends were sequential under fsync: everything before the frame was synced
                // when it was written, and the frame must say so (recovery relies on it).
                if frame.offset > 32 {
                    assert_eq!(
                        frame.durable_offset, frame.offset,
                        "{name}: durable_offset of the frame at {}",
                        frame.offset
                    );
                }
                assert_eq!(
                    Some(&frame.records),
                    expected.next(),
                    "{name}: frame at {} holds one append's records for the shard",
                    frame.offset
                );
                previous_end = frame.end();
                next_seq = frame.next_seq();
                last_ts = frame.timestamp;
            }
        }
        assert!(
            expected.peek().is_none(),
            "shard {shard}: appended frames missing from the files"
        );
    }
}

#[test]
fn a_frame_written_by_the_spec_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(1, 1 << 20);
    let log = open(dir.path(), &config);
    log.append_blocking(vec![Record::new("k", "one"), Record::new("k", "two")])
        .unwrap();
    let last_ts = read_all(&log, 0)[1].timestamp;
    common::close(log);

    let segment = segments(dir.path(), 0).pop().unwrap();
    let len = common::file_len(&segment);
    let frame = common::encode_frame(
        2,
        last_ts + 1,
        len,
        &[
            (b"k".to_vec(), b"three".to_vec()),
            (b"other".to_vec(), b"four".to_vec()),
        ],
    );
    common::append_bytes(&segment, &frame);

    let log = open(dir.path(), &config);
    assert!(
        log.recovery_report().truncated.is_empty(),
        "{:?}",
        log.recovery_report()
    );
    let records = read_all(&log, 0);
    let values: Vec<&[u8]> = records.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, [&b"one"[..], b"two", b"three", b"four"]);
    assert_eq!(&records[3].key[..], b"other");
    assert_eq!(records[2].timestamp, last_ts + 1);
    assert_eq!(
        log.append_blocking(vec![Record::new("k", "five")]).unwrap()[0].seq,
        4
    );
    common::close(log);
}

/// A shard that cannot create its next segment (here: a directory is where the file would go,
/// as good as a full disk for `open(O_CREAT | O_EXCL)`) refuses appends with `NoSegment`,
/// loses nothing it acknowledged, stays writable, and goes on once the segment can be made —
/// without a restart.
#[test]
fn a_segment_that_cannot_be_created_refuses_appends_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(1, 4096);
    let log = open(dir.path(), &config);
    let shard_dir = common::shard_dir(dir.path(), 0);
    // Every name the next segment could take, up to far past where 4 KiB fills up.
    let mut blockers = Vec::new();
    for seq in 1..200u64 {
        let path = shard_dir.join(format!("{seq:020}.log"));
        std::fs::create_dir(&path).unwrap();
        blockers.push(path);
    }
    let record = |n: u64| Record::new("k", common::payload(n, 300));
    let mut acked = Vec::new();
    let refused = loop {
        let n = acked.len() as u64;
        assert!(n < 100, "4 KiB segments should have rolled over by now");
        match log.append_blocking(vec![record(n)]) {
            Ok(appended) => acked.push(appended[0].seq),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(&refused, StreamError::NoSegment { shard: 0, reason } if reason.contains("creating segment")),
        "{refused:?}"
    );
    assert_eq!(
        refused.kind(),
        tributary_stream::StreamErrorKind::Unavailable
    );
    // Still refused while the cause lasts, and the shard is not failed meanwhile.
    let again = log.append_blocking(vec![record(1000)]).unwrap_err();
    assert!(matches!(again, StreamError::NoSegment { .. }), "{again:?}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(log.check_writable()).unwrap();

    for path in &blockers {
        std::fs::remove_dir(path).unwrap();
    }
    let resumed = log
        .append_blocking(vec![record(acked.len() as u64)])
        .unwrap();
    acked.push(resumed[0].seq);
    let expected: Vec<u64> = (0..acked.len() as u64).collect();
    assert_eq!(acked, expected, "sequence numbers continue without a gap");
    let check = |log: &EmbeddedLog| {
        let stored = read_all(log, 0);
        assert_eq!(stored.len(), acked.len());
        for (n, stored) in stored.iter().enumerate() {
            assert_eq!(stored.seq, n as u64);
            assert_eq!(&stored.value[..], &record(n as u64).value[..]);
        }
    };
    check(&log);
    assert_eq!(segments(dir.path(), 0).len(), 2);
    common::close(log);
    let log = open(dir.path(), &config);
    check(&log);
    common::close(log);
}
