//! The object store the lake lives in.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::error::LakeError;

/// A store rooted at a local directory (created if missing). Writes land in a temporary file
/// that is renamed into place, so a file at its final path is always whole.
pub fn local_store(root: &Path) -> Result<Arc<dyn ObjectStore>, LakeError> {
    std::fs::create_dir_all(root).map_err(|error| {
        LakeError::Config(format!(
            "cannot create lake directory {}: {error}",
            root.display()
        ))
    })?;
    let store =
        LocalFileSystem::new_with_prefix(root).map_err(|source| LakeError::ObjectStore {
            path: root.display().to_string(),
            source,
        })?;
    Ok(Arc::new(store))
}
