//! Builds the pipeline `serve` runs between the stream and the curated lake: the schema
//! registry from the catalog, the privacy key (configured, or generated once into
//! `<data_dir>/privacy.key`), and the dedup store.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tributary_catalog::Catalog;
use tributary_pipeline::Pipeline;
use tributary_pipeline::dedup::DedupStore;
use tributary_pipeline::privacy::MIN_KEY_BYTES;
use tributary_pipeline::registry::{SchemaRegistry, SharedRegistry};

use crate::config::Config;

/// The pipeline and its dedup store (`None` when dedup is disabled).
pub async fn build(
    config: &Config,
    catalog: &dyn Catalog,
) -> Result<(Arc<Pipeline>, Option<DedupStore>)> {
    let registry = SchemaRegistry::load(catalog)
        .await
        .context("loading the schema registry")?;
    let key = privacy_key(config)?;
    let pipeline = Pipeline::new(&config.pipeline, SharedRegistry::new(registry), &key)
        .context("starting the pipeline")?;
    let dedup = if config.pipeline.dedup.enabled {
        let path = config.dedup_path();
        let window = config.pipeline.dedup.window;
        let store = tokio::task::spawn_blocking(move || DedupStore::open(&path, window))
            .await
            .context("opening the dedup store")?
            .context("opening the dedup store")?;
        Some(store)
    } else {
        None
    };
    Ok((Arc::new(pipeline), dedup))
}

/// The configured privacy key, or the one in `<data_dir>/privacy.key`, generated (32 random
/// bytes, hex, readable by the owner only) the first time.
fn privacy_key(config: &Config) -> Result<Vec<u8>> {
    if let Some(key) = &config.pipeline.privacy.key {
        return Ok(key.as_bytes().to_vec());
    }
    let path = config.privacy_key_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim().as_bytes().to_vec();
            if key.len() < MIN_KEY_BYTES {
                bail!(
                    "{} holds {} bytes; a privacy key needs at least {MIN_KEY_BYTES}",
                    path.display(),
                    key.len()
                );
            }
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => generate_key(&path),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn generate_key(path: &Path) -> Result<Vec<u8>> {
    let bytes: [u8; 32] = rand::random();
    let key = hex::encode(bytes);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the privacy key {}", path.display()))?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the privacy key {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a privacy key for tokenizing PII");
    Ok(key.into_bytes())
}

/// How often `serve` looks for schema versions added by `tributary schemas add` or over HTTP.
const SCHEMA_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Publishes new schema versions to the running pipeline until `stop`: every few seconds the
/// catalog's versions are compared with the last seen, and the registry is rebuilt on change.
pub async fn follow_schemas(
    registry: SharedRegistry,
    catalog: Arc<dyn Catalog>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut seen = catalog.event_schemas().await.map(|v| v.len()).unwrap_or(0);
    loop {
        tokio::select! {
            () = tokio::time::sleep(SCHEMA_POLL) => {}
            _ = stop.wait_for(|stopping| *stopping) => return Ok(()),
        }
        let versions = match catalog.event_schemas().await {
            Ok(versions) => versions,
            Err(error) => {
                tracing::warn!(%error, "could not read the schema registry; retrying");
                continue;
            }
        };
        if versions.len() == seen {
            continue;
        }
        match SchemaRegistry::from_versions(&versions) {
            Ok(rebuilt) => {
                tracing::info!(types = ?rebuilt.types(), "schema registry updated");
                registry.publish(rebuilt);
                seen = versions.len();
            }
            Err(error) => {
                tracing::error!(%error, "a recorded schema does not compile; keeping the previous registry")
            }
        }
    }
}
