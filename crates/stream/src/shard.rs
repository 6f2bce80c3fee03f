//! One shard: its ordered list of segments, shared between its writer thread and readers.
//!
//! The writer is the only one that adds or removes segments; readers take a snapshot of the
//! list (cheap `Arc` clones) and read below each segment's published extent. A segment that
//! retention removes while a reader holds it stays readable until the reader drops it (the
//! file is unlinked, not truncated).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::index::SegmentExtent;
use crate::segment::{ReadBudget, Recovered, Segment};
use crate::{ReadBatch, RecoveryReport, SeqNo, ShardId, StoredRecord, StreamError, TruncatedTail};

/// State of one shard visible to readers and the writer.
pub(crate) struct Shard {
    /// The shard number.
    pub id: ShardId,
    /// `shards/<id:05>` under the stream directory.
    pub dir: PathBuf,
    /// Segments in sequence order; the last is the active one.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// The published high watermark (next sequence number), for long-polling readers.
    watermark: watch::Sender<SeqNo>,
    /// The first persistence failure; once set, the shard refuses appends.
    failure: Mutex<Option<String>>,
}

/// The directory of a shard under the stream directory.
pub(crate) fn shard_dir(stream_dir: &Path, shard: ShardId) -> PathBuf {
    stream_dir.join("shards").join(format!("{shard:05}"))
}

impl Shard {
    /// Opens (or creates) a shard's segments, recovering the newest one.
    pub fn open(
        stream_dir: &Path,
        id: ShardId,
        index_interval: u64,
        writable: bool,
        recovery: &mut RecoveryReport,
    ) -> Result<Shard, StreamError> {
        let dir = shard_dir(stream_dir, id);
        if writable {
            crate::fsutil::create_dir_durable(&dir)?;
        }
        let mut bases = list_segments(&dir)?;
        let mut active = None;
        // Recover from the newest segment backwards: a segment torn while being created is set
        // aside and the one before it becomes the active one again.
        while let Some(&base) = bases.last() {
            let path = dir.join(crate::segment::segment_file_name(base));
            match Segment::recover_active(&path, id, base, index_interval, writable)? {
                Recovered::Ready {
                    segment,
                    truncated: cut,
                } => {
                    if let Some((offset, bytes_removed)) = cut {
                        recovery.truncated.push(TruncatedTail {
                            shard: id,
                            segment: path.clone(),
                            offset,
                            bytes_removed,
                        });
                    }
                    active = Some(segment);
                    bases.pop();
                    break;
                }
                Recovered::SetAside(aside) => {
                    recovery.set_aside.push(aside);
                    bases.pop();
                }
                Recovered::Unreadable => {
                    bases.pop();
                }
            }
        }
        let active = match active {
            Some(segment) => segment,
            None if writable => Segment::create(&dir, id, 0)?,
            None => {
                return Err(StreamError::Config(format!(
                    "shard {id} in {} has no readable segment",
                    dir.display()
                )));
            }
        };
        let mut segments = Vec::with_capacity(bases.len() + 1);
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(active.base_seq);
            let path = dir.join(crate::segment::segment_file_name(base));
            segments.push(Arc::new(Segment::open_sealed(
                &path,
                id,
                base,
                next_base,
                index_interval,
                writable,
            )?));
        }
        let next_seq = active.extent().next_seq;
        segments.push(Arc::new(active));
        let (watermark, _) = watch::channel(next_seq);
        Ok(Shard {
            id,
            dir,
            segments: RwLock::new(segments),
            watermark,
            failure: Mutex::new(None),
        })
    }

    /// A snapshot of the segment list.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    /// The active (newest) segment.
    pub fn active(&self) -> Arc<Segment> {
        let segments = self.segments.read();
        // The list is never empty: open creates a segment and retention keeps the active one.
        Arc::clone(&segments[segments.len() - 1])
    }

    /// Adds a new active segment (the writer, after sealing the previous one).
    pub fn push_segment(&self, segment: Arc<Segment>) {
        self.segments.write().push(segment);
    }

    /// Removes the oldest segment (retention); never the active one.
    pub fn pop_oldest(&self) -> Option<Arc<Segment>> {
        let mut segments = self.segments.write();
        if segments.len() > 1 {
            Some(segments.remove(0))
        } else {
            None
        }
    }

    /// Sequence number of the oldest retained record.
    pub fn first_seq(&self) -> SeqNo {
        let segments = self.segments.read();
        segments.first().map_or(0, |s| s.base_seq)
    }

    /// The published high watermark.
    pub fn next_seq(&self) -> SeqNo {
        *self.watermark.borrow()
    }

    /// Publishes a new high watermark, waking long-polling readers.
    pub fn publish_watermark(&self, next_seq: SeqNo) {
        self.watermark.send_replace(next_seq);
    }

    /// A receiver that changes whenever the watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<SeqNo> {
        self.watermark.subscribe()
    }

    /// Marks the shard failed; the first reason is kept.
    pub fn fail(&self, reason: String) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            tracing::error!(shard = self.id, %reason, "shard can no longer persist; refusing appends");
            *failure = Some(reason);
        }
    }

    /// The error to answer appends with, once the shard has failed.
    pub fn failure(&self) -> Option<StreamError> {
        self.failure
            .lock()
            .as_ref()
            .map(|reason| StreamError::Unavailable {
                shard: self.id,
                reason: reason.clone(),
            })
    }

    /// Reads records from `from` on, within the budget.
    pub fn read(&self, from: SeqNo, budget: &mut ReadBudget) -> Result<ReadBatch, StreamError> {
        let segments = self.segments();
        let first = segments.first().map_or(0, |s| s.base_seq);
        let watermark = self.next_seq();
        let (start, expired_skipped) = if from < first {
            (first, first - from)
        } else {
            (from, 0)
        };
        let mut records: Vec<StoredRecord> = Vec::new();
        if start < watermark {
            let first_segment = segments
                .partition_point(|s| s.base_seq <= start)
                .saturating_sub(1);
            for segment in &segments[first_segment..] {
                let from_here = records.last().map_or(start, |r| r.seq + 1);
                segment.read_into(from_here, budget, &mut records)?;
                if budget.exhausted() {
                    break;
                }
            }
        }
        // A record published after the watermark snapshot is left for the next read, so that
        // `next_seq` never runs ahead of what a caller could have seen.
        records.retain(|r| r.seq < watermark.max(start));
        let next_seq = records.last().map_or(start, |r| r.seq + 1);
        Ok(ReadBatch {
            records,
            next_seq,
            expired_skipped,
        })
    }

    /// Resolves `AtTimestamp`: the first record at or after `timestamp`, else the watermark.
    pub fn seek_timestamp(&self, timestamp: i64) -> Result<SeqNo, StreamError> {
        for segment in self.segments() {
            match segment.extent().max_ts {
                Some(max_ts) if max_ts >= timestamp => {
                    if let Some(seq) = segment.seek_timestamp(timestamp)? {
                        return Ok(seq);
                    }
                }
                _ => {}
            }
        }
        Ok(self.next_seq())
    }

    /// The time of the record at `seq`, if it is retained and published.
    pub fn timestamp_of(&self, seq: SeqNo) -> Result<Option<i64>, StreamError> {
        let mut budget = ReadBudget::new(1, 1);
        let batch = self.read(seq, &mut budget)?;
        Ok(batch.records.first().map(|r| r.timestamp))
    }

    /// Bytes, extent and time range of the shard.
    pub fn summary(&self) -> (u64, u32, Option<i64>, Option<i64>) {
        let segments = self.segments();
        let extents: Vec<SegmentExtent> = segments.iter().map(|s| s.extent()).collect();
        let bytes = extents.iter().map(|e| e.len).sum();
        let oldest = extents.iter().find_map(|e| e.min_ts);
        let newest = extents.iter().rev().find_map(|e| e.max_ts);
        (bytes, segments.len() as u32, oldest, newest)
    }
}

/// Base sequence numbers of the segment files in a shard directory, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, StreamError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(base) if stem.len() == 20 => bases.push(base),
            _ => {
                tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a segment")
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}
