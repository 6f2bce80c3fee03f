//! The embedded log against a model: random appends, reads, reopens (some after an unacknowledged
//! torn or garbage tail was added to a shard's newest segment) and segment sizes. After every
//! reopen and at the end, every shard reads back exactly what was acknowledged, in order, at the
//! sequence numbers `append` returned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use tributary_stream::{Durability, EmbeddedLog, ReadLimits, Record, StreamConfig, shard_for_key};

const KEYS: usize = 6;

#[derive(Debug, Clone)]
enum Tail {
    /// Zero bytes, as a preallocating file system leaves after a crash.
    Zeros(usize),
    /// Random bytes.
    Garbage(Vec<u8>),
    /// A well-formed frame cut short: the write that was under way at the crash.
    TornFrame { records: usize, cut: Index },
    /// A complete frame with one byte wrong.
    BadChecksum { records: usize, flip: Index },
    /// A damaged frame followed by a valid one whose `durable_offset` does not reach past the
    /// damage: both belong to one unsynced group commit, so both are a torn tail.
    DamagedThenUnsynced { records: usize },
}

#[derive(Debug, Clone)]
enum Op {
    /// (key index, value length) per record.
    Append(Vec<(usize, usize)>),
    /// Close, optionally damage a shard's tail, maybe change the segment size, open again.
    Reopen {
        tail: Option<(Index, Tail)>,
        segment_bytes: u64,
    },
    /// A bounded read from a random position of a random shard.
    Read {
        shard: Index,
        from: Index,
        max_records: usize,
        max_bytes: usize,
    },
}

#[derive(Debug, Clone)]
struct Case {
    shards: u32,
    segment_bytes: u64,
    durability: Durability,
    read_limits: (usize, usize),
    ops: Vec<Op>,
}

fn segment_bytes() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![4096u64, 6000, 16 << 10, 64 << 10])
}

fn tail() -> impl Strategy<Value = Tail> {
    prop_oneof![
        (1usize..5000).prop_map(Tail::Zeros),
        prop::collection::vec(any::<u8>(), 1..600).prop_map(Tail::Garbage),
        (1usize..6, any::<Index>()).prop_map(|(records, cut)| Tail::TornFrame { records, cut }),
        (1usize..6, any::<Index>()).prop_map(|(records, flip)| Tail::BadChecksum { records, flip }),
        (1usize..4).prop_map(|records| Tail::DamagedThenUnsynced { records }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let value_len = prop_oneof![0usize..16, 0usize..2000];
    let append = prop::collection::vec((0..KEYS, value_len), 1..50).prop_map(Op::Append);
    let reopen = (
        prop::option::weighted(0.6, (any::<Index>(), tail())),
        segment_bytes(),
    )
        .prop_map(|(tail, segment_bytes)| Op::Reopen {
            tail,
            segment_bytes,
        });
    let read = (
        any::<Index>(),
        any::<Index>(),
        1usize..40,
        prop_oneof![1usize..3000, Just(4 << 20)],
    )
        .prop_map(|(shard, from, max_records, max_bytes)| Op::Read {
            shard,
            from,
            max_records,
            max_bytes,
        });
    prop_oneof![6 => append, 2 => reopen, 1 => read]
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u32..=4,
        segment_bytes(),
        prop::sample::select(vec![
            Durability::Fsync,
            Durability::None,
            Durability::Interval(Duration::from_millis(5)),
        ]),
        (
            prop_oneof![1usize..50, Just(10_000)],
            prop_oneof![1usize..5000, Just(4 << 20)],
        ),
        prop::collection::vec(op(), 1..30),
    )
        .prop_map(
            |(shards, segment_bytes, durability, read_limits, ops)| Case {
                shards,
                segment_bytes,
                durability,
                read_limits,
                ops,
            },
        )
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("tenant-{}:session-{i}", i % 2))
}

/// What the log must hold: per shard, (key, value) at index = seq.
type Model = Vec<Vec<(Bytes, Bytes)>>;

fn check_everything(log: &EmbeddedLog, model: &Model, limits: ReadLimits, when: &str) {
    for (shard, want) in model.iter().enumerate() {
        let shard = shard as u32;
        let got = common::read_from(log, shard, 0, limits);
        assert_eq!(
            got.len(),
            want.len(),
            "{when}: shard {shard} holds {} records, acknowledged {}",
            got.len(),
            want.len()
        );
        for (record, (key, value)) in got.iter().zip(want) {
            assert_eq!(
                &record.key, key,
                "{when}: shard {shard} seq {} key",
                record.seq
            );
            assert!(
                record.value == value,
                "{when}: shard {shard} seq {} value differs ({} vs {} bytes)",
                record.seq,
                record.value.len(),
                value.len()
            );
        }
        for pair in got.windows(2) {
            assert!(
                pair[0].timestamp <= pair[1].timestamp,
                "{when}: shard {shard} timestamps decrease at seq {}",
                pair[1].seq
            );
        }
    }
    let stats = log.shard_stats_blocking();
    for (shard, want) in model.iter().enumerate() {
        assert_eq!(stats[shard].first_seq, 0, "{when}: shard {shard} first_seq");
        assert_eq!(
            stats[shard].next_seq,
            want.len() as u64,
            "{when}: shard {shard} next_seq"
        );
    }
    let report = log.verify().unwrap();
    assert!(
        report.damage.is_empty(),
        "{when}: verify found {:?}",
        report.damage
    );
    let total: usize = model.iter().map(Vec::len).sum();
    assert_eq!(
        report.records, total as u64,
        "{when}: verify counted records"
    );
}

/// Shard stats through the async trait, from a blocking context.
trait StatsBlocking {
    fn shard_stats_blocking(&self) -> Vec<tributary_stream::ShardStats>;
}

impl StatsBlocking for EmbeddedLog {
    fn shard_stats_blocking(&self) -> Vec<tributary_stream::ShardStats> {
        use tributary_stream::Stream;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(self.shard_stats()).unwrap()
    }
}

/// Builds the bytes of a tail for `shard` whose newest segment is `len` bytes long and whose
/// next sequence number is `next_seq`.
fn tail_bytes(tail: &Tail, len: u64, next_seq: u64) -> Vec<u8> {
    let frame = |first_seq: u64, records: usize, durable: u64| {
        let records: Vec<(Vec<u8>, Vec<u8>)> = (0..records)
            .map(|i| {
                (
                    b"torn-key".to_vec(),
                    common::payload(first_seq + i as u64, 100 + i * 37),
                )
            })
            .collect();
        common::encode_frame(first_seq, common::now_micros(), durable, &records)
    };
    match tail {
        Tail::Zeros(n) => vec![0; *n],
        Tail::Garbage(bytes) => bytes.clone(),
        Tail::TornFrame { records, cut } => {
            let mut bytes = frame(next_seq, *records, len);
            bytes.truncate(1 + cut.index(bytes.len() - 1));
            bytes
        }
        Tail::BadChecksum { records, flip } => {
            let mut bytes = frame(next_seq, *records, len);
            let at = 4 + flip.index(bytes.len() - 4);
            bytes[at] ^= 0x5a;
            bytes
        }
        Tail::DamagedThenUnsynced { records } => {
            let mut bytes = frame(next_seq, *records, len);
            let at = bytes.len() - 1;
            bytes[at] ^= 0xff;
            bytes.extend(frame(next_seq + *records as u64, 1, len));
            bytes
        }
    }
}

fn open(dir: &Path, config: &StreamConfig) -> EmbeddedLog {
    common::open(dir, config)
}

fn run(case: Case) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StreamConfig {
        shards: Some(case.shards),
        segment_bytes: case.segment_bytes,
        durability: case.durability,
        ..StreamConfig::default()
    };
    let limits = ReadLimits {
        max_records: case.read_limits.0,
        max_bytes: case.read_limits.1,
        max_wait: Duration::ZERO,
    };
    let mut log = open(dir.path(), &config);
    assert!(
        log.recovery_report().truncated.is_empty(),
        "a new log reported recovery"
    );
    let mut model: Model = vec![Vec::new(); case.shards as usize];
    let mut next_value = 0u64;
    for (step, op) in case.ops.iter().enumerate() {
        match op {
            Op::Append(batch) => {
                let records: Vec<Record> = batch
                    .iter()
                    .map(|&(k, len)| {
                        next_value += 1;
                        let mut value = next_value.to_le_bytes().to_vec();
                        value.extend(common::payload(next_value, len));
                        value.truncate(len);
                        Record::new(key(k), value)
                    })
                    .collect();
                let appended = log.append_blocking(records.clone()).unwrap();
                assert_eq!(
                    appended.len(),
                    records.len(),
                    "step {step}: one Appended per record"
                );
                for (record, landed) in records.into_iter().zip(appended) {
                    let shard = shard_for_key(&record.key, case.shards);
                    assert_eq!(
                        landed.shard, shard,
                        "step {step}: shard of {:?}",
                        record.key
                    );
                    let list = &mut model[shard as usize];
                    assert_eq!(
                        landed.seq,
                        list.len() as u64,
                        "step {step}: seq on shard {shard}"
                    );
                    list.push((record.key, record.value));
                }
            }
            Op::Read {
                shard,
                from,
                max_records,
                max_bytes,
            } => {
                let shard = shard.index(case.shards as usize);
                let want = &model[shard];
                let from = from.index(want.len() + 1);
                let limits = ReadLimits {
                    max_records: *max_records,
                    max_bytes: *max_bytes,
                    max_wait: Duration::ZERO,
                };
                let batch = log
                    .read_blocking(shard as u32, from as u64, limits)
                    .unwrap();
                assert_eq!(batch.expired_skipped, 0);
                assert!(
                    batch.records.len() <= *max_records,
                    "step {step}: over max_records"
                );
                assert_eq!(
                    batch.records.is_empty(),
                    from == want.len(),
                    "step {step}: read of shard {shard} from {from} of {} returned {} records",
                    want.len(),
                    batch.records.len()
                );
                assert_eq!(
                    batch.next_seq,
                    (from + batch.records.len()) as u64,
                    "step {step}: next_seq"
                );
                for (i, record) in batch.records.iter().enumerate() {
                    assert_eq!(record.seq, (from + i) as u64, "step {step}: seq");
                    assert_eq!(
                        record.key,
                        want[from + i].0,
                        "step {step}: key at {}",
                        record.seq
                    );
                    assert!(
                        record.value == want[from + i].1,
                        "step {step}: value at {}",
                        record.seq
                    );
                }
            }
            Op::Reopen {
                tail,
                segment_bytes,
            } => {
                common::close(log);
                let mut expected_cut = None;
                if let Some((pick, tail)) = tail {
                    let candidates: Vec<u32> = (0..case.shards)
                        .filter(|&s| !common::segments(dir.path(), s).is_empty())
                        .collect();
                    if !candidates.is_empty() {
                        let shard = candidates[pick.index(candidates.len())];
                        let newest = common::segments(dir.path(), shard).pop().unwrap();
                        let len = common::file_len(&newest);
                        let bytes = tail_bytes(tail, len, model[shard as usize].len() as u64);
                        common::append_bytes(&newest, &bytes);
                        expected_cut = Some((shard, newest, len, bytes.len() as u64));
                    }
                }
                config.segment_bytes = *segment_bytes;
                log = open(dir.path(), &config);
                let truncated = &log.recovery_report().truncated;
                match expected_cut {
                    None => assert!(
                        truncated.is_empty(),
                        "step {step}: clean reopen reported {truncated:?}"
                    ),
                    Some((shard, segment, offset, removed)) => {
                        assert_eq!(
                            truncated.len(),
                            1,
                            "step {step}: expected one truncation, got {truncated:?}"
                        );
                        let cut = &truncated[0];
                        assert_eq!(cut.shard, shard, "step {step}: {cut:?}");
                        common::assert_same_segment(&cut.segment, &segment);
                        assert_eq!(
                            (cut.offset, cut.bytes_removed),
                            (offset, removed),
                            "step {step}: {cut:?}"
                        );
                        assert_eq!(
                            common::file_len(&segment),
                            offset,
                            "step {step}: the tail is still on disk"
                        );
                    }
                }
                check_everything(
                    &log,
                    &model,
                    limits,
                    &format!("after reopen at step {step}"),
                );
            }
        }
    }
    check_everything(&log, &model, limits, "at the end");
    common::close(log);
    let log = open(dir.path(), &config);
    assert!(log.recovery_report().truncated.is_empty());
    check_everything(&log, &model, limits, "after the final reopen");
    common::close(log);
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 200, ..ProptestConfig::with_cases(24) })]

    #[test]
    fn log_holds_exactly_what_was_acknowledged(case in case()) {
        run(case);
    }
}
