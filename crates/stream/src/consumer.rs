//! Named consumers and their durable checkpoints.
//!
//! Each consumer is one small JSON file, `consumers/<name>.json`, replaced atomically on every
//! commit (write temporary, fsync, rename, fsync directory), so a crash leaves the previous or
//! the new checkpoints — never a mix. A checkpoint is the next sequence number to read, per
//! shard; delivery is at-least-once: records after the last commit are read again after a
//! restart.
//!
//! ```text
//! {"version":1,"name":"lake","positions":[120,98,131,77],"expired_unread":[0,0,0,0]}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::fsutil::{create_dir_durable, write_atomic};
use crate::{SeqNo, ShardId, StreamError};

/// What is stored for one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConsumerState {
    version: u32,
    name: String,
    /// Per shard: the next sequence number to read.
    pub positions: Vec<SeqNo>,
    /// Per shard: records retention deleted before this consumer read them.
    pub expired_unread: Vec<u64>,
}

/// All consumers of one stream.
pub(crate) struct ConsumerStore {
    dir: PathBuf,
    shards: usize,
    consumers: Mutex<BTreeMap<String, ConsumerState>>,
}

/// Checks a consumer name: it becomes a file name, so it is kept to a safe alphabet.
pub(crate) fn validate_name(name: &str) -> Result<(), StreamError> {
    let invalid = |reason| {
        Err(StreamError::InvalidConsumerName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return invalid("must be 1 to 64 characters");
    }
    if name.starts_with('.') {
        return invalid("must not start with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("may contain only A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

impl ConsumerStore {
    /// Loads every consumer file under `dir`, creating the directory.
    pub fn open(dir: &Path, shards: usize) -> Result<ConsumerStore, StreamError> {
        create_dir_durable(dir)?;
        ConsumerStore::open_existing(dir, shards)
    }

    /// Loads every consumer file under `dir` without creating anything (read-only use).
    pub fn open_existing(dir: &Path, shards: usize) -> Result<ConsumerStore, StreamError> {
        let mut consumers = BTreeMap::new();
        if !dir.is_dir() {
            return Ok(ConsumerStore {
                dir: dir.to_path_buf(),
                shards,
                consumers: Mutex::new(consumers),
            });
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| StreamError::io(format!("listing {}", dir.display()), e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| StreamError::io(format!("reading {}", path.display()), e))?;
            let mut state: ConsumerState = serde_json::from_str(&text).map_err(|e| {
                StreamError::Config(format!(
                    "consumer file {} is unreadable: {e}",
                    path.display()
                ))
            })?;
            if state.positions.len() != shards {
                return Err(StreamError::Config(format!(
                    "consumer file {} has {} shards, the stream has {shards}",
                    path.display(),
                    state.positions.len()
                )));
            }
            state.expired_unread.resize(shards, 0);
            consumers.insert(state.name.clone(), state);
        }
        Ok(ConsumerStore {
            dir: dir.to_path_buf(),
            shards,
            consumers: Mutex::new(consumers),
        })
    }

    /// Registers `name` starting at `start` unless it exists. Returns whether it was new.
    pub fn register(&self, name: &str, start: Vec<SeqNo>) -> Result<bool, StreamError> {
        validate_name(name)?;
        let mut consumers = self.consumers.lock();
        if consumers.contains_key(name) {
            return Ok(false);
        }
        let state = ConsumerState {
            version: 1,
            name: name.to_string(),
            positions: start,
            expired_unread: vec![0; self.shards],
        };
        self.persist(&state)?;
        consumers.insert(name.to_string(), state);
        Ok(true)
    }

    /// The sorted names.
    pub fn names(&self) -> Vec<String> {
        self.consumers.lock().keys().cloned().collect()
    }

    /// A consumer's state.
    pub fn get(&self, name: &str) -> Result<ConsumerState, StreamError> {
        self.consumers
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| StreamError::UnknownConsumer(name.to_string()))
    }

    /// Durably moves a consumer's checkpoints.
    pub fn commit(&self, name: &str, positions: &[(ShardId, SeqNo)]) -> Result<(), StreamError> {
        let mut consumers = self.consumers.lock();
        let state = consumers
            .get(name)
            .ok_or_else(|| StreamError::UnknownConsumer(name.to_string()))?;
        let mut next = state.clone();
        for &(shard, seq) in positions {
            let slot = next
                .positions
                .get_mut(shard as usize)
                .ok_or(StreamError::UnknownShard {
                    shard,
                    shards: self.shards as u32,
                })?;
            *slot = seq;
        }
        self.persist(&next)?;
        consumers.insert(name.to_string(), next);
        Ok(())
    }

    /// Moves checkpoints that lie past their shard's end back to it (after an OS crash under
    /// `interval`/`none` durability, a checkpoint can point at records that did not survive).
    /// Returns `(consumer, shard, checkpoint, new checkpoint)` for each one moved.
    pub fn clamp_to(
        &self,
        next_seqs: &[SeqNo],
    ) -> Result<Vec<(String, ShardId, SeqNo, SeqNo)>, StreamError> {
        let mut consumers = self.consumers.lock();
        let mut moved = Vec::new();
        for state in consumers.values_mut() {
            let mut updated = state.clone();
            for (shard, (position, &end)) in updated.positions.iter_mut().zip(next_seqs).enumerate()
            {
                if *position > end {
                    moved.push((state.name.clone(), shard as ShardId, *position, end));
                    *position = end;
                }
            }
            if updated != *state {
                self.persist(&updated)?;
                *state = updated;
            }
        }
        Ok(moved)
    }

    /// Retention is deleting records `[first, next)` of `shard`: every consumer that had not
    /// read them yet gets them counted, and its checkpoint moves to `next`.
    pub fn count_expired(
        &self,
        shard: ShardId,
        first: SeqNo,
        next: SeqNo,
    ) -> Result<(), StreamError> {
        let mut consumers = self.consumers.lock();
        for state in consumers.values_mut() {
            let Some(&position) = state.positions.get(shard as usize) else {
                continue;
            };
            if position >= next {
                continue;
            }
            let mut updated = state.clone();
            updated.expired_unread[shard as usize] += next - position.max(first);
            updated.positions[shard as usize] = next;
            self.persist(&updated)?;
            tracing::warn!(
                consumer = %updated.name,
                shard,
                records = next - position.max(first),
                "retention deleted records this consumer had not read"
            );
            *state = updated;
        }
        Ok(())
    }

    fn persist(&self, state: &ConsumerState) -> Result<(), StreamError> {
        let json = serde_json::to_vec(state).map_err(|e| {
            StreamError::Config(format!("serializing consumer {}: {e}", state.name))
        })?;
        write_atomic(&self.dir.join(format!("{}.json", state.name)), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["lake", "index-1", "a.b_c"] {
            validate_name(good).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "x y", &"n".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn commits_survive_reopen_and_expiry_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConsumerStore::open(dir.path(), 2).unwrap();
        assert!(store.register("lake", vec![0, 0]).unwrap());
        assert!(
            !store.register("lake", vec![9, 9]).unwrap(),
            "register is idempotent"
        );
        store.commit("lake", &[(1, 7)]).unwrap();
        store.count_expired(0, 0, 5).unwrap();
        store.count_expired(1, 0, 5).unwrap(); // already past: nothing counted

        let reopened = ConsumerStore::open(dir.path(), 2).unwrap();
        let state = reopened.get("lake").unwrap();
        assert_eq!(state.positions, vec![5, 7]);
        assert_eq!(state.expired_unread, vec![5, 0]);
        assert!(matches!(
            reopened.commit("lake", &[(2, 1)]),
            Err(StreamError::UnknownShard {
                shard: 2,
                shards: 2
            })
        ));
        assert!(matches!(
            reopened.get("nope"),
            Err(StreamError::UnknownConsumer(_))
        ));
    }
}
