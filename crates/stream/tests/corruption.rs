//! Damage on disk: what recovery may truncate (a torn tail that was never acknowledged) and what
//! it must report instead (bytes that were proven synced, or anything in a sealed segment).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Frame, config, open, parse_segment, read_all, segments};
use tributary_stream::{
    EmbeddedLog, ReadLimits, Record, StartPosition, Stream, StreamConfig, StreamError,
};

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("record {i}:").into_bytes();
    v.extend(common::payload(i, 400));
    v
}

/// One shard, 4 KiB segments, 40 single-record appends: several sealed segments.
fn sealed_fixture() -> (tempfile::TempDir, StreamConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(1, 4096);
    let log = open(dir.path(), &config);
    for i in 0..40 {
        let appended = log
            .append_blocking(vec![Record::new("k", value(i))])
            .unwrap();
        assert_eq!(appended[0].seq, i);
    }
    let report = log.verify().unwrap();
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    common::close(log);
    assert!(
        segments(dir.path(), 0).len() >= 4,
        "fixture needs sealed segments"
    );
    (dir, config)
}

/// One shard, one big segment, 10 appends of 3 records each (one frame per append).
fn active_fixture() -> (tempfile::TempDir, StreamConfig, PathBuf, Vec<Frame>) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(1, 1 << 20);
    let log = open(dir.path(), &config);
    for batch in 0..10u64 {
        let records = (0..3)
            .map(|i| Record::new("k", value(batch * 3 + i)))
            .collect();
        log.append_blocking(records).unwrap();
    }
    common::close(log);
    let segs = segments(dir.path(), 0);
    assert_eq!(segs.len(), 1);
    let parsed = parse_segment(&segs[0]);
    assert_eq!(parsed.frames.len(), 10, "one frame per append");
    assert_eq!(parsed.valid_len, parsed.file_len);
    (dir, config, segs[0].clone(), parsed.frames)
}

/// Reads shard 0 from 0 until an error; returns the records read before it and the error.
fn read_until_error(log: &EmbeddedLog) -> (Vec<u64>, Option<StreamError>) {
    let mut seqs = Vec::new();
    let mut at = 0;
    loop {
        match log.read_blocking(
            0,
            at,
            ReadLimits {
                max_records: 3,
                ..ReadLimits::default()
            },
        ) {
            Ok(batch) if batch.records.is_empty() => return (seqs, None),
            Ok(batch) => {
                for record in &batch.records {
                    assert_eq!(
                        record.value,
                        value(record.seq),
                        "seq {} came back wrong",
                        record.seq
                    );
                    seqs.push(record.seq);
                }
                at = batch.next_seq;
            }
            Err(err) => return (seqs, Some(err)),
        }
    }
}

fn assert_damage_at(err: StreamError, segment: &Path, frame: &Frame, what: &str) {
    let (shard, reported, offset, reason) = common::expect_corrupt(err);
    assert_eq!(shard, 0, "{what}");
    common::assert_same_segment(&reported, segment);
    assert_eq!(
        offset, frame.offset,
        "{what}: damage reported at {offset} ({reason}), the frame starts at {}",
        frame.offset
    );
}

fn sealed_damage(mutate: impl FnOnce(&Path, &Frame)) {
    let (dir, config) = sealed_fixture();
    let segs = segments(dir.path(), 0);
    let target = segs[1].clone();
    let frames = parse_segment(&target).frames;
    assert!(frames.len() >= 3);
    let bad = frames[frames.len() / 2].clone();
    mutate(&target, &bad);

    let log = open(dir.path(), &config);
    let (seqs, err) = read_until_error(&log);
    let err = err.unwrap_or_else(|| {
        panic!(
            "read all {} records across damage without an error",
            seqs.len()
        )
    });
    assert_damage_at(err, &target, &bad, "read across the damage");
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "records before the damage skipped"
    );
    assert!(
        seqs.len() as u64 <= bad.first_seq,
        "records of the damaged frame were returned"
    );
    assert!(
        seqs.len() as u64 + 3 >= bad.first_seq,
        "stopped long before the damage"
    );

    let err = log
        .read_blocking(0, bad.first_seq, ReadLimits::default())
        .unwrap_err();
    assert_damage_at(err, &target, &bad, "read starting at the damaged frame");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(log.read(0, bad.first_seq, ReadLimits::default()))
        .unwrap_err();
    assert_damage_at(err, &target, &bad, "async read");

    // Reads that never touch the damaged segment still work.
    let next_base = parse_segment(&segs[2]).header.base_seq;
    let batch = log
        .read_blocking(0, next_base, ReadLimits::default())
        .unwrap();
    assert_eq!(batch.records[0].seq, next_base);
    assert_eq!(batch.records[0].value, value(next_base));

    let report = log.verify().unwrap();
    assert_eq!(report.segments, segs.len() as u64);
    assert_eq!(report.damage.len(), 1, "verify: {:?}", report.damage);
    let damage = report.damage.into_iter().next().unwrap();
    assert_damage_at(damage, &target, &bad, "verify");
    common::close(log);
}

#[test]
fn flipped_byte_in_sealed_segment_is_reported_by_read_and_verify() {
    sealed_damage(|segment, frame| common::flip_byte(segment, frame.offset + 40 + 20, 0x01));
}

#[test]
fn flipped_header_field_in_sealed_segment_is_reported() {
    // first_seq of the frame: covered by the CRC.
    sealed_damage(|segment, frame| common::flip_byte(segment, frame.offset + 8, 0x80));
}

#[test]
fn damaged_length_field_in_sealed_segment_is_reported() {
    // body_len is not under the CRC; a wrong length must still be caught.
    sealed_damage(|segment, frame| common::flip_byte(segment, frame.offset + 1, 0x04));
}

#[test]
fn zeroed_frame_in_sealed_segment_is_reported() {
    sealed_damage(|segment, frame| {
        common::overwrite(segment, frame.offset, &vec![0; frame.len as usize])
    });
}

#[test]
fn garbage_after_the_last_frame_of_a_sealed_segment_is_reported_by_verify() {
    let (dir, config) = sealed_fixture();
    let target = segments(dir.path(), 0)[0].clone();
    let len = common::file_len(&target);
    common::append_bytes(&target, &[0xAB; 100]);
    let log = open(dir.path(), &config);
    assert!(
        log.recovery_report().truncated.is_empty(),
        "a sealed segment was 'recovered'"
    );
    assert_eq!(
        common::file_len(&target),
        len + 100,
        "open modified a sealed segment"
    );
    let report = log.verify().unwrap();
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    let (_, reported, offset, _) =
        common::expect_corrupt(report.damage.into_iter().next().unwrap());
    common::assert_same_segment(&reported, &target);
    assert_eq!(offset, len);
    // Reading is allowed to fail on it, never to return something else.
    match common::read_all_or_error(&log, 0) {
        Ok(records) => assert_eq!(records.len(), 40),
        Err(err) => {
            common::expect_corrupt(err);
        }
    }
}

fn expect_open_fails_at(dir: &Path, config: &StreamConfig, segment: &Path, frame: &Frame) {
    for attempt in 0..2 {
        let err = match EmbeddedLog::open(dir, config.clone()) {
            Ok(log) => panic!(
                "attempt {attempt}: open succeeded over synced damage; recovery report {:?}, shard holds {} records",
                log.recovery_report(),
                read_all(&log, 0).len()
            ),
            Err(err) => err,
        };
        // The second attempt proves the failed open released the lock.
        assert_damage_at(err, segment, frame, "open");
    }
    let parsed = parse_segment(segment);
    assert!(
        parsed.file_len >= frame.end(),
        "a failed open truncated acknowledged data"
    );
}

#[test]
fn flipped_byte_in_synced_frame_of_active_segment_fails_open() {
    let (dir, config, segment, frames) = active_fixture();
    assert!(
        frames[9].durable_offset >= frames[8].end(),
        "premise: frames carry their durable offset: {frames:?}"
    );
    common::flip_byte(&segment, frames[4].offset + 40 + 30, 0x10);
    expect_open_fails_at(dir.path(), &config, &segment, &frames[4]);
}

#[test]
fn damaged_next_to_last_frame_of_active_segment_fails_open() {
    let (dir, config, segment, frames) = active_fixture();
    common::flip_byte(&segment, frames[8].offset + 60, 0x01);
    expect_open_fails_at(dir.path(), &config, &segment, &frames[8]);
}

#[test]
fn damaged_length_field_in_active_segment_does_not_truncate_acknowledged_frames() {
    // A grown body_len makes the frame seem to run past the end of the file, which looks like a
    // torn write; the synced frames after it prove it is not one.
    let (dir, config, segment, frames) = active_fixture();
    common::flip_byte(&segment, frames[4].offset + 2, 0x01);
    expect_open_fails_at(dir.path(), &config, &segment, &frames[4]);
}

#[test]
fn damaged_length_field_shrunk_in_active_segment_fails_open() {
    let (dir, config, segment, frames) = active_fixture();
    common::flip_byte(&segment, frames[4].offset, 0x08);
    expect_open_fails_at(dir.path(), &config, &segment, &frames[4]);
}

/// Checks a recovered torn tail: one truncation at `offset` removing `removed` bytes, the
/// records before intact, appends continuing at `next_seq`, and a second reopen clean.
fn expect_tail_recovered(
    dir: &Path,
    config: &StreamConfig,
    segment: &Path,
    offset: u64,
    removed: u64,
    next_seq: u64,
) {
    let log = open(dir, config);
    let truncated = log.recovery_report().truncated.clone();
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert_eq!(truncated[0].shard, 0);
    common::assert_same_segment(&truncated[0].segment, segment);
    assert_eq!(
        (truncated[0].offset, truncated[0].bytes_removed),
        (offset, removed),
        "{truncated:?}"
    );
    assert_eq!(
        common::file_len(segment),
        offset,
        "the torn tail is still on disk"
    );
    let records = read_all(&log, 0);
    assert_eq!(records.len() as u64, next_seq);
    for record in &records {
        assert_eq!(record.value, value(record.seq), "seq {}", record.seq);
    }
    let appended = log
        .append_blocking(vec![Record::new("k", "after recovery")])
        .unwrap();
    assert_eq!(
        appended[0].seq, next_seq,
        "appends continue after the recovered records"
    );
    common::close(log);

    let log = open(dir, config);
    assert!(
        log.recovery_report().truncated.is_empty(),
        "{:?}",
        log.recovery_report()
    );
    let records = read_all(&log, 0);
    assert_eq!(records.len() as u64, next_seq + 1);
    assert_eq!(&records[next_seq as usize].value[..], b"after recovery");
    assert!(log.verify().unwrap().damage.is_empty());
    common::close(log);
}

#[test]
fn flipped_byte_in_last_frame_is_a_torn_tail() {
    let (dir, config, segment, frames) = active_fixture();
    let last = &frames[9];
    common::flip_byte(&segment, last.offset + 40 + 100, 0x02);
    expect_tail_recovered(
        dir.path(),
        &config,
        &segment,
        last.offset,
        last.len,
        last.first_seq,
    );
}

#[test]
fn last_frame_cut_in_its_body_is_a_torn_tail() {
    let (dir, config, segment, frames) = active_fixture();
    let last = &frames[9];
    common::truncate(&segment, last.offset + last.len / 2);
    expect_tail_recovered(
        dir.path(),
        &config,
        &segment,
        last.offset,
        last.len / 2,
        last.first_seq,
    );
}

#[test]
fn last_frame_cut_in_its_header_is_a_torn_tail() {
    let (dir, config, segment, frames) = active_fixture();
    let last = &frames[9];
    common::truncate(&segment, last.offset + 17);
    expect_tail_recovered(
        dir.path(),
        &config,
        &segment,
        last.offset,
        17,
        last.first_seq,
    );
}

#[test]
fn zeros_after_the_last_frame_are_a_torn_tail() {
    let (dir, config, segment, frames) = active_fixture();
    let len = frames[9].end();
    common::append_bytes(&segment, &[0; 4096]);
    expect_tail_recovered(dir.path(), &config, &segment, len, 4096, 30);
}

#[test]
fn garbage_after_the_last_frame_is_a_torn_tail() {
    let (dir, config, segment, frames) = active_fixture();
    let len = frames[9].end();
    common::append_bytes(&segment, &common::payload(99, 777));
    expect_tail_recovered(dir.path(), &config, &segment, len, 777, 30);
}

#[test]
fn valid_frame_after_torn_frame_without_durable_proof_is_truncated_too() {
    // One group commit wrote two frames and crashed; the first is torn, the second reached the
    // disk but its durable_offset does not reach past the first: neither was acknowledged.
    let (dir, config, segment, frames) = active_fixture();
    let len = frames[9].end();
    let rec = |i: u64| (b"k".to_vec(), value(i));
    let mut torn = common::encode_frame(30, frames[9].timestamp + 1, len, &[rec(30), rec(31)]);
    let at = torn.len() - 5;
    torn[at] ^= 0xFF;
    let valid = common::encode_frame(32, frames[9].timestamp + 2, len, &[rec(32)]);
    let removed = (torn.len() + valid.len()) as u64;
    common::append_bytes(&segment, &torn);
    common::append_bytes(&segment, &valid);
    expect_tail_recovered(dir.path(), &config, &segment, len, removed, 30);
}

#[test]
fn torn_tail_is_reported_only_for_its_own_shard() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(4, 1 << 20);
    let log = open(dir.path(), &config);
    let keys: Vec<String> = (0..40).map(|i| format!("tenant:s{i}")).collect();
    for round in 0..5 {
        let records = keys
            .iter()
            .map(|k| Record::new(k.clone(), format!("{k} {round}")))
            .collect();
        log.append_blocking(records).unwrap();
    }
    let before: Vec<_> = (0..4).map(|s| read_all(&log, s)).collect();
    common::close(log);
    let newest = segments(dir.path(), 2).pop().unwrap();
    let len = common::file_len(&newest);
    common::append_bytes(&newest, &[0x77; 33]);
    let log = open(dir.path(), &config);
    let truncated = &log.recovery_report().truncated;
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert_eq!(
        (
            truncated[0].shard,
            truncated[0].offset,
            truncated[0].bytes_removed
        ),
        (2, len, 33)
    );
    for shard in 0..4 {
        assert_eq!(
            read_all(&log, shard),
            before[shard as usize],
            "shard {shard}"
        );
    }
    common::close(log);
}

/// A crash between creating a new segment file and writing its header leaves an empty or
/// partial newest segment; nothing in it was acknowledged.
fn torn_rollover(contents: &[u8]) {
    let (dir, config) = sealed_fixture();
    let shard_dir = common::shard_dir(dir.path(), 0);
    common::write_file(&shard_dir.join(common::segment_name(40)), contents);
    let log = open(dir.path(), &config);
    let torn = shard_dir.join(common::segment_name(40));
    assert_eq!(
        log.recovery_report().set_aside,
        vec![torn.with_extension("torn")],
        "the torn segment is set aside and reported"
    );
    let records = read_all(&log, 0);
    assert_eq!(records.len(), 40);
    for record in &records {
        assert_eq!(record.value, value(record.seq));
    }
    let appended = log
        .append_blocking(vec![Record::new("k", value(40))])
        .unwrap();
    assert_eq!(appended[0].seq, 40);
    common::close(log);
    let log = open(dir.path(), &config);
    assert!(
        log.recovery_report().truncated.is_empty(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(read_all(&log, 0).len(), 41);
    assert!(
        log.verify().unwrap().damage.is_empty(),
        "{:?}",
        log.verify().unwrap().damage
    );
    common::close(log);
}

#[test]
fn empty_newest_segment_from_a_crash_during_rollover_is_recovered() {
    torn_rollover(&[]);
}

#[test]
fn partial_header_of_newest_segment_from_a_crash_during_rollover_is_recovered() {
    torn_rollover(b"TRIBSEG\0\x01\x00");
}

#[test]
fn damaged_or_missing_index_files_are_ignored_and_rebuilt() {
    let (dir, config) = sealed_fixture();
    let indexes = common::index_files(dir.path(), 0);
    assert!(
        indexes.len() >= 3,
        "sealed segments have .idx files: {indexes:?}"
    );
    // Timestamps and seqs to look up, before the damage.
    let log = open(dir.path(), &config);
    let records = read_all(&log, 0);
    common::close(log);

    common::flip_byte(&indexes[0], 50, 0xFF);
    common::truncate(&indexes[1], 20);
    std::fs::remove_file(&indexes[2]).unwrap();

    let log = open(dir.path(), &config);
    assert_eq!(read_all(&log, 0), records);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut probes: Vec<&tributary_stream::StoredRecord> = records.iter().collect();
    probes.dedup_by_key(|r| r.timestamp);
    for record in probes {
        let at = runtime
            .block_on(log.resolve(0, StartPosition::AtTimestamp(record.timestamp)))
            .unwrap();
        let expected = records
            .iter()
            .find(|r| r.timestamp >= record.timestamp)
            .unwrap()
            .seq;
        assert_eq!(at, expected, "AtTimestamp({})", record.timestamp);
        let batch = log
            .read_blocking(
                0,
                record.seq,
                ReadLimits {
                    max_records: 1,
                    ..ReadLimits::default()
                },
            )
            .unwrap();
        assert_eq!(&batch.records[0], record);
    }
    assert!(log.verify().unwrap().damage.is_empty());
    common::close(log);
}
