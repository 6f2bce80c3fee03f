//! Timestamps as the lake stores them: microseconds since the Unix epoch, UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since 1970-01-01T00:00:00Z. Signed so that a skewed producer clock before the
/// epoch is still representable (and then rejected by validation, not by arithmetic overflow).
pub type TimestampMicros = i64;

/// The current wall-clock time in microseconds since the Unix epoch.
///
/// A clock set before the epoch yields 0 rather than panicking: the stream keeps its own
/// per-shard timestamps non-decreasing, so a bad clock cannot reorder anything.
pub fn now_micros() -> TimestampMicros {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_2020() {
        // 2020-01-01T00:00:00Z in microseconds.
        assert!(now_micros() > 1_577_836_800_000_000);
    }
}
