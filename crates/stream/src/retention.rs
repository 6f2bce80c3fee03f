//! Retention: whole sealed segments are deleted once past the age or size limit.
//!
//! Records a registered consumer had not read yet are counted against that consumer
//! (`expired_unread`) before the segment goes, so lost data shows up in `consumer_lag` and the
//! operator's dashboards instead of vanishing.

use std::path::PathBuf;
use std::time::Duration;

use tributary_model::now_micros;

use crate::consumer::ConsumerStore;
use crate::fsutil::sync_dir;
use crate::segment::index_path;
use crate::shard::Shard;
use crate::{RetentionConfig, SeqNo, ShardId, StreamError};

/// A sealed segment retention has taken out of its shard: no reader finds it any more, and its
/// files are to be deleted (see [`remove`]).
#[derive(Debug)]
pub(crate) struct Detached {
    shard: ShardId,
    dir: PathBuf,
    path: PathBuf,
    first_seq: SeqNo,
    next_seq: SeqNo,
    reason: &'static str,
}

/// Applies `config` to `shard`: takes every segment past the age or size limit out of the
/// shard (counting what registered consumers had not read) and returns them, oldest first, for
/// [`remove`]. The files stay until then; if the process stops first, the next open finds them
/// as the shard's oldest segments, already past every consumer, and retention takes them again.
pub(crate) fn detach(
    shard: &Shard,
    config: &RetentionConfig,
    consumers: &ConsumerStore,
) -> Result<Vec<Detached>, StreamError> {
    let mut detached = Vec::new();
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
        detached.push(Detached {
            shard: shard.id,
            dir: shard.dir.clone(),
            path: segment.path.clone(),
            first_seq: segment.base_seq,
            next_seq: extent.next_seq,
            reason: if too_old { "age" } else { "size" },
        });
    }
    Ok(detached)
}

/// Deletes the files of `detached` segments and syncs their directories. Unlinking a large
/// synced file takes the kernel a while (~0.5 s for 1 GiB on this project's test machine), so
/// the shard writer runs this on a thread of its own rather than between appends.
pub(crate) fn remove(detached: &[Detached]) -> Result<(), StreamError> {
    for segment in detached {
        for path in [segment.path.clone(), index_path(&segment.path)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StreamError::io(format!("deleting {}", path.display()), e)),
            }
        }
        tracing::info!(
            shard = segment.shard,
            segment = %segment.path.display(),
            first_seq = segment.first_seq,
            next_seq = segment.next_seq,
            reason = segment.reason,
            "retention deleted a segment"
        );
    }
    let mut dirs: Vec<&PathBuf> = detached.iter().map(|segment| &segment.dir).collect();
    dirs.dedup();
    for dir in dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

/// How long ago a stream timestamp was.
fn age(timestamp: i64) -> Duration {
    Duration::from_micros(now_micros().saturating_sub(timestamp).max(0) as u64)
}
