//! The per-shard syncer thread: `fdatasync` overlapped with the writer's next group.
//!
//! Under `fsync` durability the writer thread no longer waits for its own sync. It writes a
//! group to the page cache and hands the syncer a [`SyncJob`] (the extent written, its index
//! entries and the appends to answer), then goes straight back to encoding and writing the
//! appends that arrived meanwhile. The syncer takes every job queued, runs one `fdatasync` that
//! covers all of them, publishes the new extent to readers and answers the appends. So the disk
//! always has a sync in flight while the writer prepares the next group, and an append still
//! returns only after a sync that started after its bytes were written.
//!
//! ```text
//!  writer:  encode+write g1 ─ encode+write g2 ─ encode+write g3 ─ …
//!  syncer:          └── fdatasync(g1) ─ publish, reply ─┘└── fdatasync(g2,g3) ─ …
//! ```
//!
//! Roll-over and close first wait for the syncer to go idle ([`Syncer::wait_idle`]), so that a
//! segment is sealed only once every job on it has been answered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::index::{IndexEntry, SegmentExtent};
use crate::segment::Segment;
use crate::shard::Shard;
use crate::{SeqNo, StreamError};

/// One group written to the page cache and waiting for its sync.
pub(crate) struct SyncJob {
    /// The segment written (the active one; jobs never span a roll-over).
    pub segment: Arc<Segment>,
    /// The segment's extent once this group's bytes are on disk.
    pub extent: SegmentExtent,
    /// Index entries of this group's frames.
    pub entries: Vec<IndexEntry>,
    /// The appends to answer, with their first sequence numbers.
    pub replies: Vec<(SeqNo, oneshot::Sender<Result<SeqNo, StreamError>>)>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<SyncJob>,
    busy: bool,
    stop: bool,
}

/// The queue between a shard's writer and its syncer thread.
#[derive(Default)]
pub(crate) struct Syncer {
    state: Mutex<State>,
    /// Signalled when a job arrives or the syncer must stop.
    work: Condvar,
    /// Signalled when the queue is empty and no sync is running.
    idle: Condvar,
}

impl Syncer {
    /// Queues a job for the next sync.
    pub fn submit(&self, job: SyncJob) {
        self.state.lock().jobs.push_back(job);
        self.work.notify_one();
    }

    /// Blocks until every submitted job has been synced and answered.
    pub fn wait_idle(&self) {
        let mut state = self.state.lock();
        while state.busy || !state.jobs.is_empty() {
            self.idle.wait(&mut state);
        }
    }

    /// Asks the thread to stop once the queue is empty.
    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.work.notify_one();
    }

    /// The thread body. `synced_len` is where the active segment is known to be on disk; the
    /// writer stamps it into new frames as their `durable_offset`.
    pub fn run(&self, shard: &Shard, synced_len: &AtomicU64) {
        loop {
            let jobs: Vec<SyncJob> = {
                let mut state = self.state.lock();
                while state.jobs.is_empty() && !state.stop {
                    self.work.wait(&mut state);
                }
                if state.jobs.is_empty() {
                    return;
                }
                state.busy = true;
                state.jobs.drain(..).collect()
            };
            self.sync_and_answer(shard, synced_len, jobs);
            let mut state = self.state.lock();
            state.busy = false;
            if state.jobs.is_empty() {
                self.idle.notify_all();
            }
        }
    }

    fn sync_and_answer(&self, shard: &Shard, synced_len: &AtomicU64, jobs: Vec<SyncJob>) {
        let Some(last) = jobs.last() else { return };
        let segment = Arc::clone(&last.segment);
        let outcome = match shard.failure() {
            Some(error) => Err(error),
            None => segment
                .file
                .sync_data()
                .map_err(|e| StreamError::io(format!("syncing {}", segment.path.display()), e)),
        };
        match outcome {
            Ok(()) => {
                synced_len.fetch_max(last.extent.len, Ordering::Release);
                let next_seq = last.extent.next_seq;
                let mut replies = Vec::new();
                for mut job in jobs {
                    job.segment.publish(job.extent, &mut job.entries);
                    replies.append(&mut job.replies);
                }
                shard.publish_watermark(next_seq);
                for (first_seq, reply) in replies {
                    let _ = reply.send(Ok(first_seq));
                }
            }
            Err(error) => {
                shard.fail(error.to_string());
                let error = shard.failure().unwrap_or(error);
                for job in jobs {
                    for (_, reply) in job.replies {
                        let _ = reply.send(Err(crate::writer::unavailable(&error)));
                    }
                }
            }
        }
    }
}
