//! The dedup store: exactly-once into the curated lake by event id within a window.
//!
//! Each accepted event's key — a 128-bit hash of (tenant, event id) — is remembered with the
//! stream position where it was first seen and the time the collector received it. An event
//! whose key is known *at another position* is a producer retry: a duplicate. An event whose
//! key is known *at its own position* is the same record read again after a consumer restart
//! (the lake resumes from its last committed checkpoint), so it is not a duplicate. That makes
//! the store safe to write ahead of the lake's commit: [`DedupStore::sync`] makes the new keys
//! durable before the commit that publishes their events, and a crash between the two only
//! leaves keys whose events are read again, at the same positions, and kept.
//!
//! Storage: keys live in memory (about 48 bytes each with the hash table's overhead: a day of
//! 100 million distinct events is ~5 GB, so size `window` to the traffic) and in an append-only
//! file: a 24-byte header, then blocks of fixed 36-byte records, one block per
//! [`DedupStore::write_out`] with one CRC over it. (Format 2 kept a CRC per record: in a profile
//! of the lake writer, computing it for every event took 58 of the pipeline's 369 samples.) Opening reads the file, skips a
//! torn tail and keys past the window, and rewrites it compactly; the file is rewritten again
//! whenever it holds more than twice the live keys.
//!
//! The key is XXH3-128 (a published algorithm, so a key means the same in every build that
//! reads the file) seeded with a random value the store draws when it is created and keeps in
//! its header: event ids come from clients, and without the secret seed nobody can choose ids
//! that collide with another tenant's.

use std::collections::hash_map::Entry;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::PipelineError;
use crate::pipeline::StreamPosition;

/// Bytes of one record: key (16), shard (4), seq (8), received_at (8).
const RECORD_BYTES: usize = 36;

/// Bytes of a block's header: record count (4), crc32c of the records (4).
const BLOCK_HEADER_BYTES: usize = 8;

/// Most records in one block: a block is checked whole, so a damaged one costs at most this
/// many keys (and a write-out of more keys writes several blocks).
const MAX_BLOCK_RECORDS: usize = 65_536;

/// Bytes of one format-2 record: a format-3 record and its own crc32c (4).
const V2_RECORD_BYTES: usize = 40;

/// The file's first bytes, naming what it is.
const MAGIC: [u8; 8] = *b"TRBDEDUP";

/// The layout this code writes. Format 2 (a CRC per record) is still read, and rewritten as
/// format 3 when the store opens; format 1 (no header, keys from the standard library's
/// unspecified `DefaultHasher`) is not read: its keys cannot be recomputed.
const FORMAT_VERSION: u32 = 3;

/// Bytes of the header: magic (8), format version (4), key seed (8), crc32c (4).
const HEADER_BYTES: usize = 24;

/// What the store says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupVerdict {
    /// The first time this id was seen within the window (or the same record read again).
    First,
    /// Seen before, at `first`: a duplicate.
    Repeat {
        /// Where the id was first seen.
        first: StreamPosition,
    },
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    position: StreamPosition,
    received_at: i64,
}

/// The dedup store (see the module docs). One per lake writer; not shared between processes.
#[derive(Debug)]
pub struct DedupStore {
    path: PathBuf,
    /// Open for appending.
    file: File,
    /// Records of the keys added since the last write-out, encoded, not yet in the file.
    pending: Vec<u8>,
    seen: KeyMap,
    window_micros: i64,
    /// The newest `received_at` seen: the window's end.
    newest: i64,
    /// Records in the file or pending (live or expired).
    records_in_file: usize,
    /// Keys added since the last expiry pass.
    added_since_expiry: usize,
    /// Held (an exclusive `flock` on `<path>.lock`) while the store is open: two processes
    /// appending to one store would each miss the other's keys.
    _lock: File,
    /// Seeds the key hash; kept in the file's header.
    seed: u64,
    /// Where a key's input is put together, reused from check to check.
    scratch: Vec<u8>,
}

/// The remembered keys. They are hash values already, and SipHash over them again cost a tenth
/// of the pipeline: foldhash is a few multiplications, seeded at random per process.
type KeyMap = std::collections::HashMap<u128, Seen, foldhash::fast::RandomState>;

/// The key of `event_id` of `tenant`: 128 bits, so that a collision (two different events
/// taken for one) among a billion keys is ~1e-21 likely, not ~3 % as with 64. `scratch` holds
/// the input: the tenant's length first, so that ("ab", "c") and ("a", "bc") differ.
fn key(seed: u64, scratch: &mut Vec<u8>, tenant: &str, event_id: &str) -> u128 {
    scratch.clear();
    scratch.extend_from_slice(&(tenant.len() as u64).to_le_bytes());
    scratch.extend_from_slice(tenant.as_bytes());
    scratch.extend_from_slice(event_id.as_bytes());
    twox_hash::XxHash3_128::oneshot_with_seed(seed, scratch)
}

fn encode_header(seed: u64) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&seed.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// A file's format version and key seed, or why the file is not a store this code reads.
fn decode_header(contents: &[u8]) -> Result<(u32, u64), String> {
    let field = |range: std::ops::Range<usize>| contents.get(range).unwrap_or_default();
    if field(0..8) != MAGIC {
        return Err(format!(
            "not a dedup store of format 2 or {FORMAT_VERSION} (no {:?} header; a file from \
             before format 2 has none, and its keys cannot be recomputed): move it aside to \
             start an empty store",
            String::from_utf8_lossy(&MAGIC)
        ));
    }
    let crc = u32::from_le_bytes(field(20..24).try_into().unwrap_or_default());
    if contents.len() < HEADER_BYTES || crc32c::crc32c(field(0..20)) != crc {
        return Err("the header is damaged (its checksum does not match)".to_string());
    }
    let version = u32::from_le_bytes(field(8..12).try_into().unwrap_or_default());
    if version != 2 && version != FORMAT_VERSION {
        return Err(format!(
            "format {version}, and this build reads formats 2 and {FORMAT_VERSION}"
        ));
    }
    let seed = u64::from_le_bytes(field(12..20).try_into().unwrap_or_default());
    Ok((version, seed))
}

/// Appends the record of `key` to `out`.
fn encode(out: &mut Vec<u8>, key: u128, seen: Seen) {
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&seen.position.shard.to_le_bytes());
    out.extend_from_slice(&seen.position.seq.to_le_bytes());
    out.extend_from_slice(&seen.received_at.to_le_bytes());
}

/// One record (exactly [`RECORD_BYTES`], checked by its block).
fn decode(record: &[u8]) -> Option<(u128, Seen)> {
    let bytes = |range: std::ops::Range<usize>| record.get(range);
    Some((
        u128::from_le_bytes(bytes(0..16)?.try_into().ok()?),
        Seen {
            position: StreamPosition {
                shard: u32::from_le_bytes(bytes(16..20)?.try_into().ok()?),
                seq: u64::from_le_bytes(bytes(20..28)?.try_into().ok()?),
            },
            received_at: i64::from_le_bytes(bytes(28..36)?.try_into().ok()?),
        },
    ))
}

/// Appends `records` (encoded, a whole number of them) to `out` as blocks.
fn encode_blocks(out: &mut Vec<u8>, records: &[u8]) {
    for block in records.chunks(MAX_BLOCK_RECORDS * RECORD_BYTES) {
        let count = (block.len() / RECORD_BYTES) as u32;
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(block).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// The records of format-3 blocks, in order, up to the first torn or damaged block: what
/// follows it was written after it, by the same writer, and is not trusted either. The flag
/// says whether one was found.
fn decode_blocks(mut rest: &[u8]) -> (Vec<(u128, Seen)>, bool) {
    let mut records = Vec::new();
    while !rest.is_empty() {
        let header = rest.get(..BLOCK_HEADER_BYTES);
        let count = header
            .and_then(|h| h.get(0..4)?.try_into().ok())
            .map(u32::from_le_bytes);
        let crc = header
            .and_then(|h| h.get(4..8)?.try_into().ok())
            .map(u32::from_le_bytes);
        let body_len = count.map(|count| count as usize * RECORD_BYTES);
        let body = body_len.and_then(|len| rest.get(BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len));
        let (Some(body), Some(crc)) = (body, crc) else {
            return (records, true);
        };
        if crc32c::crc32c(body) != crc {
            return (records, true);
        }
        records.extend(body.chunks_exact(RECORD_BYTES).filter_map(decode));
        rest = &rest[BLOCK_HEADER_BYTES + body.len()..];
    }
    (records, false)
}

/// The records of a format-2 file's body (a CRC per record), up to the first torn or damaged
/// one.
fn decode_v2_records(body: &[u8]) -> (Vec<(u128, Seen)>, bool) {
    let mut records = Vec::with_capacity(body.len() / V2_RECORD_BYTES);
    for record in body.chunks(V2_RECORD_BYTES) {
        let checked = record.get(RECORD_BYTES..V2_RECORD_BYTES).and_then(|crc| {
            let crc = u32::from_le_bytes(crc.try_into().ok()?);
            (crc32c::crc32c(&record[..RECORD_BYTES]) == crc).then_some(())
        });
        match checked.and_then(|()| decode(&record[..RECORD_BYTES])) {
            Some(entry) => records.push(entry),
            None => return (records, true),
        }
    }
    (records, false)
}

impl DedupStore {
    /// Opens (creating if needed) the store at `path`, remembering ids for `window`.
    pub fn open(path: impl AsRef<Path>, window: Duration) -> Result<DedupStore, PipelineError> {
        let path = path.as_ref().to_path_buf();
        let fail = |message: String| PipelineError::Dedup {
            path: path.display().to_string(),
            message,
        };
        let lock = lock(&path)?;
        let window_micros = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        let mut seen = KeyMap::default();
        let mut newest = i64::MIN;
        let mut seed = rand::random::<u64>();
        match File::open(&path) {
            Ok(mut file) => {
                let mut contents = Vec::new();
                file.read_to_end(&mut contents)
                    .map_err(|error| fail(format!("reading: {error}")))?;
                // The header is written with the file, by a rename, so it is never torn; an
                // empty file (made by hand) holds no keys to lose.
                let mut version = FORMAT_VERSION;
                if !contents.is_empty() {
                    (version, seed) = decode_header(&contents).map_err(fail)?;
                }
                let body = contents.get(HEADER_BYTES..).unwrap_or_default();
                let (records, torn) = match version {
                    2 => decode_v2_records(body),
                    _ => decode_blocks(body),
                };
                if torn {
                    tracing::warn!(path = %path.display(), "dedup store: torn tail skipped");
                }
                for (key, entry) in records {
                    newest = newest.max(entry.received_at);
                    // A key is written again only after its earlier sighting left the
                    // window, so the later record is the one in force.
                    seen.insert(key, entry);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(fail(format!("opening: {error}"))),
        }
        let horizon = newest.saturating_sub(window_micros);
        seen.retain(|_, entry: &mut Seen| entry.received_at >= horizon);
        let file =
            rewrite(&path, seed, &seen).map_err(|error| fail(format!("rewriting: {error}")))?;
        Ok(DedupStore {
            records_in_file: seen.len(),
            path,
            file,
            pending: Vec::new(),
            seen,
            window_micros,
            newest,
            added_since_expiry: 0,
            _lock: lock,
            seed,
            scratch: Vec::with_capacity(128),
        })
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Checks (and remembers) the event `event_id` of `tenant`, read at `position`, received
    /// at `received_at` (µs).
    pub fn check(
        &mut self,
        tenant: &str,
        event_id: &str,
        position: StreamPosition,
        received_at: i64,
    ) -> Result<DedupVerdict, PipelineError> {
        let key = key(self.seed, &mut self.scratch, tenant, event_id);
        let entry = Seen {
            position,
            received_at,
        };
        // One probe of the table for both the lookup and the insert: with millions of keys
        // each probe is a cache miss.
        match self.seen.entry(key) {
            Entry::Occupied(mut occupied) => {
                let first = *occupied.get();
                if first.position == position {
                    return Ok(DedupVerdict::First);
                }
                if first.received_at >= received_at.saturating_sub(self.window_micros) {
                    return Ok(DedupVerdict::Repeat {
                        first: first.position,
                    });
                }
                occupied.insert(entry);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(entry);
            }
        }
        self.newest = self.newest.max(received_at);
        encode(&mut self.pending, key, entry);
        self.records_in_file += 1;
        self.added_since_expiry += 1;
        Ok(DedupVerdict::First)
    }

    /// Makes every key added so far durable (write + fdatasync). Call before committing the
    /// events they belong to. Also forgets keys past the window and compacts the file when it
    /// has grown to twice the live keys.
    pub fn sync(&mut self) -> Result<(), PipelineError> {
        self.write_out()?.sync()
    }

    /// [`DedupStore::sync`] in two steps: this one writes the new keys to the file (and does
    /// the expiry and compaction); the [`PendingSync`] it returns makes them durable without
    /// the store, so a caller holding the store behind a lock can release it for the
    /// `fdatasync`, which may take milliseconds.
    pub fn write_out(&mut self) -> Result<PendingSync, PipelineError> {
        if self.added_since_expiry > self.seen.len() / 4 {
            let horizon = self.newest.saturating_sub(self.window_micros);
            self.seen.retain(|_, entry| entry.received_at >= horizon);
            self.added_since_expiry = 0;
        }
        if self.records_in_file > 2 * self.seen.len() + 100_000 {
            // The rewrite holds every live key, the pending ones too, and syncs itself.
            self.file = rewrite(&self.path, self.seed, &self.seen)
                .map_err(|error| self.io_error("rewriting", error))?;
            self.pending.clear();
            self.records_in_file = self.seen.len();
            return Ok(PendingSync {
                path: self.path.clone(),
                file: None,
            });
        }
        if !self.pending.is_empty() {
            let mut blocks = Vec::with_capacity(
                self.pending.len()
                    + BLOCK_HEADER_BYTES
                        * (self.pending.len() / (MAX_BLOCK_RECORDS * RECORD_BYTES) + 1),
            );
            encode_blocks(&mut blocks, &self.pending);
            self.file
                .write_all(&blocks)
                .map_err(|error| self.io_error("appending", error))?;
            self.pending.clear();
        }
        let file = self
            .file
            .try_clone()
            .map_err(|error| self.io_error("opening for sync", error))?;
        Ok(PendingSync {
            path: self.path.clone(),
            file: Some(file),
        })
    }

    fn io_error(&self, what: &str, error: std::io::Error) -> PipelineError {
        PipelineError::Dedup {
            path: self.path.display().to_string(),
            message: format!("{what}: {error}"),
        }
    }
}

/// Keys written to the store's file, not yet durable: [`PendingSync::sync`] makes them so.
#[derive(Debug)]
pub struct PendingSync {
    path: PathBuf,
    /// A second handle on the store's file; `None` when the keys are durable already.
    file: Option<File>,
}

impl PendingSync {
    /// Makes the written keys durable (fdatasync of the store's file).
    pub fn sync(self) -> Result<(), PipelineError> {
        match &self.file {
            Some(file) => file.sync_data().map_err(|error| PipelineError::Dedup {
                path: self.path.display().to_string(),
                message: format!("syncing: {error}"),
            }),
            None => Ok(()),
        }
    }
}

/// Takes the store's lock file, or says who has it.
fn lock(path: &Path) -> Result<File, PipelineError> {
    let lock_path = path.with_extension("lock");
    let fail = |message: String| PipelineError::Dedup {
        path: lock_path.display().to_string(),
        message,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| fail(format!("creating: {error}")))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| fail(format!("opening: {error}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(PipelineError::DedupInUse {
            path: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(fail(format!("locking: {error}"))),
    }
}

/// Writes the header and `seen` to a new file beside `path`, syncs it, renames it over `path`
/// and syncs the directory; returns the file opened for appending.
fn rewrite(path: &Path, seed: u64, seen: &KeyMap) -> std::io::Result<File> {
    let temporary = path.with_extension("rewrite");
    {
        let mut out = BufWriter::with_capacity(1 << 16, File::create(&temporary)?);
        out.write_all(&encode_header(seed))?;
        let full = MAX_BLOCK_RECORDS * RECORD_BYTES;
        let mut records = Vec::with_capacity(full);
        let mut block = Vec::with_capacity(BLOCK_HEADER_BYTES + full);
        let mut entries = seen.iter().peekable();
        while let Some((&key, &entry)) = entries.next() {
            encode(&mut records, key, entry);
            if records.len() == full || entries.peek().is_none() {
                encode_blocks(&mut block, &records);
                out.write_all(&block)?;
                records.clear();
                block.clear();
            }
        }
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn at(shard: u32, seq: u64) -> StreamPosition {
        StreamPosition { shard, seq }
    }

    #[test]
    fn a_retry_at_another_position_is_a_repeat_and_a_reread_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            DedupStore::open(dir.path().join("dedup.log"), Duration::from_secs(86_400)).unwrap();
        assert_eq!(
            store.check("acme", "e1", at(0, 5), HOUR).unwrap(),
            DedupVerdict::First
        );
        assert_eq!(
            store.check("acme", "e1", at(2, 9), HOUR + 1).unwrap(),
            DedupVerdict::Repeat { first: at(0, 5) }
        );
        assert_eq!(
            store.check("acme", "e1", at(0, 5), HOUR).unwrap(),
            DedupVerdict::First
        );
        // Ids are per tenant.
        assert_eq!(
            store.check("globex", "e1", at(1, 1), HOUR).unwrap(),
            DedupVerdict::First
        );
    }

    #[test]
    fn keys_survive_reopening_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        let window = Duration::from_secs(86_400);
        {
            let mut store = DedupStore::open(&path, window).unwrap();
            for i in 0..100u64 {
                store
                    .check("acme", &format!("e{i}"), at(0, i), HOUR)
                    .unwrap();
            }
            store.sync().unwrap();
        }
        // A crash mid-append leaves half a block: its header claims more than follows.
        let mut torn = Vec::new();
        encode_blocks(&mut torn, &[7u8; 3 * RECORD_BYTES]);
        torn.truncate(BLOCK_HEADER_BYTES + RECORD_BYTES + 5);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn).unwrap();
        drop(file);
        let mut store = DedupStore::open(&path, window).unwrap();
        assert_eq!(store.len(), 100);
        assert_eq!(
            store.check("acme", "e42", at(3, 1), HOUR).unwrap(),
            DedupVerdict::Repeat { first: at(0, 42) }
        );
        // Opening rewrote the file: the header and one block of the live keys.
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEADER_BYTES + BLOCK_HEADER_BYTES + 100 * RECORD_BYTES) as u64
        );
    }

    #[test]
    fn write_out_puts_the_keys_in_the_file_and_the_pending_sync_needs_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        let window = Duration::from_secs(86_400);
        let mut store = DedupStore::open(&path, window).unwrap();
        for i in 0..10u64 {
            store
                .check("acme", &format!("e{i}"), at(0, i), HOUR)
                .unwrap();
        }
        let pending = store.write_out().unwrap();
        // Written before the sync, while the store is still open: nothing left in a buffer.
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEADER_BYTES + BLOCK_HEADER_BYTES + 10 * RECORD_BYTES) as u64
        );
        drop(store);
        pending.sync().unwrap();
        let store = DedupStore::open(&path, window).unwrap();
        assert_eq!(store.len(), 10);
    }

    #[test]
    fn one_process_at_a_time_has_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        let window = Duration::from_secs(3600);
        let store = DedupStore::open(&path, window).unwrap();
        let second = DedupStore::open(&path, window);
        assert!(
            matches!(second, Err(PipelineError::DedupInUse { .. })),
            "{second:?}"
        );
        drop(store);
        DedupStore::open(&path, window).expect("free again once the first is closed");
    }

    #[test]
    fn ids_older_than_the_window_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        let mut store = DedupStore::open(&path, Duration::from_secs(3600)).unwrap();
        store.check("acme", "old", at(0, 1), 0).unwrap();
        store.check("acme", "new", at(0, 2), 3 * HOUR).unwrap();
        // Past the window: counted again, as a new first sighting.
        assert_eq!(
            store.check("acme", "old", at(0, 3), 3 * HOUR).unwrap(),
            DedupVerdict::First
        );
        store.sync().unwrap();
        drop(store);
        let store = DedupStore::open(&path, Duration::from_secs(3600)).unwrap();
        assert_eq!(store.len(), 2, "the expired first sighting was not kept");
    }

    #[test]
    fn the_tenant_and_the_id_do_not_run_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            DedupStore::open(dir.path().join("dedup.log"), Duration::from_secs(3600)).unwrap();
        assert_eq!(
            store.check("ab", "c", at(0, 1), HOUR).unwrap(),
            DedupVerdict::First
        );
        assert_eq!(
            store.check("a", "bc", at(0, 2), HOUR).unwrap(),
            DedupVerdict::First
        );
    }

    #[test]
    fn a_file_without_this_formats_header_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        // What format 1 wrote: records from the first byte.
        #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
        std::fs::write(&path, [0u8; 2 * RECORD_BYTES]).unwrap();
        let error = DedupStore::open(&path, Duration::from_secs(3600)).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("dedup.log"), "{text}");
        assert!(
            text.contains("format 2") && text.contains("move it aside"),
            "{text}"
        );

        let mut header = encode_header(7);
        header[12] ^= 1;
        #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
        std::fs::write(&path, header).unwrap();
        let text = DedupStore::open(&path, Duration::from_secs(3600))
            .unwrap_err()
            .to_string();
        assert!(text.contains("header is damaged"), "{text}");

        #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
        std::fs::write(&path, header_of_version(4, 7)).unwrap();
        let text = DedupStore::open(&path, Duration::from_secs(3600))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("format 4") && text.contains("formats 2 and 3"),
            "{text}"
        );

        // An empty file holds no keys: it is taken as a new store.
        #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
        std::fs::write(&path, []).unwrap();
        DedupStore::open(&path, Duration::from_secs(3600)).unwrap();
    }

    #[test]
    fn the_seed_is_kept_across_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        let window = Duration::from_secs(86_400);
        let seed = {
            let mut store = DedupStore::open(&path, window).unwrap();
            store.check("acme", "e1", at(0, 1), HOUR).unwrap();
            store.sync().unwrap();
            store.seed
        };
        let contents = std::fs::read(&path).unwrap();
        assert_eq!(decode_header(&contents).unwrap(), (FORMAT_VERSION, seed));
        let store = DedupStore::open(&path, window).unwrap();
        assert_eq!(store.seed, seed);
    }

    /// A header of format `version` with `seed`.
    fn header_of_version(version: u32, seed: u64) -> [u8; HEADER_BYTES] {
        let mut header = encode_header(seed);
        header[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&header[0..20]);
        header[20..24].copy_from_slice(&crc.to_le_bytes());
        header
    }

    #[test]
    fn records_round_trip_in_blocks_and_damage_ends_the_usable_log() {
        let entry = |n: u64| Seen {
            position: at(7, u64::MAX - n),
            received_at: -5 - n as i64,
        };
        let mut records = Vec::new();
        for n in 0..3 {
            encode(&mut records, u128::MAX - u128::from(n), entry(n));
        }
        let mut file = Vec::new();
        encode_blocks(&mut file, &records[..RECORD_BYTES]);
        encode_blocks(&mut file, &records[RECORD_BYTES..]);
        let (back, torn) = decode_blocks(&file);
        assert!(!torn);
        assert_eq!(back.len(), 3);
        for (n, (key, seen)) in back.iter().enumerate() {
            assert_eq!(*key, u128::MAX - n as u128);
            assert_eq!(seen.position, entry(n as u64).position);
            assert_eq!(seen.received_at, entry(n as u64).received_at);
        }
        // A flipped bit in the second block: the first block's record is all that is left.
        let mut damaged = file.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let (back, torn) = decode_blocks(&damaged);
        assert!(torn);
        assert_eq!(back.len(), 1);
        // A block cut short, and a header cut short.
        assert_eq!(decode_blocks(&file[..file.len() - 1]).0.len(), 1);
        assert_eq!(
            decode_blocks(&file[..BLOCK_HEADER_BYTES + RECORD_BYTES + 3])
                .0
                .len(),
            1
        );
    }

    #[test]
    fn a_format_2_store_is_read_and_rewritten_as_format_3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.log");
        let seed = 42;
        let mut contents = header_of_version(2, seed).to_vec();
        for i in 0..5u64 {
            let mut scratch = Vec::new();
            let key = key(seed, &mut scratch, "acme", &format!("e{i}"));
            let seen = Seen {
                position: at(0, i),
                received_at: HOUR,
            };
            let start = contents.len();
            encode(&mut contents, key, seen);
            let crc = crc32c::crc32c(&contents[start..]);
            contents.extend_from_slice(&crc.to_le_bytes());
        }
        // A torn format-2 record at the end.
        contents.extend_from_slice(&[1u8; 13]);
        #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
        std::fs::write(&path, &contents).unwrap();

        let mut store = DedupStore::open(&path, Duration::from_secs(86_400)).unwrap();
        assert_eq!(store.len(), 5);
        assert_eq!(
            store.check("acme", "e3", at(1, 9), HOUR + 1).unwrap(),
            DedupVerdict::Repeat { first: at(0, 3) }
        );
        let rewritten = std::fs::read(&path).unwrap();
        assert_eq!(decode_header(&rewritten).unwrap(), (FORMAT_VERSION, seed));
        assert_eq!(
            rewritten.len(),
            HEADER_BYTES + BLOCK_HEADER_BYTES + 5 * RECORD_BYTES
        );
    }
}
