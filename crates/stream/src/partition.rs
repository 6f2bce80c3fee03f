//! The stable mapping from partition key to shard.
//!
//! `shard = (murmur2(key) & 0x7fff_ffff) % shards`, with MurmurHash2 (32-bit, seed
//! `0x9747b28c`) exactly as Apache Kafka's Java client computes it in its default partitioner.
//! This mapping is part of the on-disk contract: changing it would move a session to another
//! shard mid-stream and break per-session order, so it never changes between versions (the
//! test vectors below are Kafka's own). Using Kafka's function also means a stream moved onto a
//! Kafka topic with the same partition count keeps every key on the same partition number.

use crate::ShardId;

/// Kafka's MurmurHash2 of `data` (32-bit, seed `0x9747b28c`), as a signed value like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let length = data.len();
    // Kafka hashes the length as a Java int; keys are capped far below 2^31 bytes.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The shard a partition key belongs to, out of `shards` (which must be at least 1).
pub fn shard_for_key(key: &[u8], shards: u32) -> ShardId {
    let positive = (murmur2(key) as u32) & 0x7fff_ffff;
    positive % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors: the function must match them forever.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn shards_are_in_range_and_spread() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            let shard = shard_for_key(format!("acme:session-{i}").as_bytes(), 4);
            counts[shard as usize] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn zero_shards_does_not_divide_by_zero() {
        assert_eq!(shard_for_key(b"k", 0), 0);
    }
}
