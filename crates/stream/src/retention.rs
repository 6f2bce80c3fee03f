//! Retention: whole sealed segments are deleted once past the age or size limit.
//!
//! Records a registered consumer had not read yet are counted against that consumer
//! (`expired_unread`) before the segment goes, so lost data shows up in `consumer_lag` and the
//! operator's dashboards instead of vanishing.

use std::time::Duration;

use tributary_model::now_micros;

use crate::consumer::ConsumerStore;
use crate::fsutil::sync_dir;
use crate::segment::index_path;
use crate::shard::Shard;
use crate::{RetentionConfig, StreamError};

/// Applies `config` to `shard`; returns the number of segments deleted.
pub(crate) fn apply(
    shard: &Shard,
    config: &RetentionConfig,
    consumers: &ConsumerStore,
) -> Result<u64, StreamError> {
    let mut deleted = 0;
    loop {
        let segments = shard.segments();
        // The active segment is never deleted.
        let [oldest, _, ..] = segments.as_slice() else {
            break;
        };
        let extent = oldest.extent();
        let total_bytes: u64 = segments.iter().map(|s| s.extent().len).sum();
        let too_old = !config.max_age.is_zero()
            && extent
                .max_ts
                .is_some_and(|newest| age(newest) > config.max_age);
        let too_big = config
            .max_bytes_per_shard
            .is_some_and(|limit| total_bytes > limit);
        if !(too_old || too_big) {
            break;
        }
        consumers.count_expired(shard.id, oldest.base_seq, extent.next_seq)?;
        let Some(segment) = shard.pop_oldest() else {
            break;
        };
        for path in [segment.path.clone(), index_path(&segment.path)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StreamError::io(format!("deleting {}", path.display()), e)),
            }
        }
        sync_dir(&shard.dir)?;
        tracing::info!(
            shard = shard.id,
            segment = %segment.path.display(),
            first_seq = segment.base_seq,
            next_seq = extent.next_seq,
            reason = if too_old { "age" } else { "size" },
            "retention deleted a segment"
        );
        deleted += 1;
    }
    Ok(deleted)
}

/// How long ago a stream timestamp was.
fn age(timestamp: i64) -> Duration {
    Duration::from_micros(now_micros().saturating_sub(timestamp).max(0) as u64)
}
