//! Crash points for the crash tests: a real process killed at an exact step of a commit.
//!
//! Set `TRIB_CRASH_AT=<point>` (or `<point>:<n>` to crash at the n-th time the point is
//! reached) and the process aborts there, as abruptly as a power cut short of the OS: nothing
//! is flushed, no destructor runs. The variable is read once; unset, a crash point costs one
//! relaxed atomic load. (The name does not start with `TRIBUTARY_`, which the configuration
//! owns.)
//!
//! Points: `flush.after_stage`, `flush.after_upload`, `flush.after_commit`,
//! `compaction.after_stage`, `compaction.after_upload`, `compaction.after_commit`,
//! `retention.after_commit`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a crash point.
pub const CRASH_AT_VAR: &str = "TRIB_CRASH_AT";

struct Armed {
    point: String,
    at_hit: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(CRASH_AT_VAR).ok()?;
            let (point, at_hit) = match value.split_once(':') {
                Some((point, n)) => (point.to_string(), n.parse().unwrap_or(1)),
                None => (value, 1),
            };
            Some(Armed {
                point,
                at_hit: at_hit.max(1),
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if `point` is armed and this is the hit it is armed for.
pub fn crash_point(point: &str) {
    let Some(armed) = armed() else { return };
    if armed.point != point {
        return;
    }
    let hit = armed.hits.fetch_add(1, Ordering::Relaxed) + 1;
    if hit == armed.at_hit {
        eprintln!("{CRASH_AT_VAR}: crashing at {point} (hit {hit})");
        std::process::abort();
    }
}
