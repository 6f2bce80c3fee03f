//! Small file-system helpers for durable code: every write that must survive a crash goes
//! through here, so the sync discipline lives in one place.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::StreamError;

/// Syncs a directory, making creations, renames and deletions of its entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StreamError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| StreamError::io(format!("syncing directory {}", dir.display()), e))
}

/// Replaces `path` with `bytes` atomically and durably: write a temporary sibling, sync it,
/// rename it over the target, sync the directory. A crash leaves the old or the new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StreamError> {
    let tmp = path.with_extension("tmp");
    let context = || format!("writing {}", tmp.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StreamError::io(context(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StreamError::io(context(), e))?;
    fs::rename(&tmp, path).map_err(|e| {
        StreamError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates `dir` and its parents, syncing each newly created level's parent so the directory
/// itself survives a crash.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), StreamError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(StreamError::io(
                format!("creating directory {}", dir.display()),
                e,
            ));
        }
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}
