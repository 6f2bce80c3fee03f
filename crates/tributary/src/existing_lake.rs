//! The lake of a data directory that `serve` created, opened for the commands that work on it
//! (`query`, `replay`, `verify`). No recovery runs here: a server running on the same directory
//! may have staged files of a commit in progress, and only it (or its next start) may clean up.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use object_store::ObjectStore;
use tributary_catalog::{Catalog, EmbeddedCatalog};
use tributary_lake::local_store;
use tributary_query::{QueryEngine, Scope};

use crate::config::Config;

/// Fails, saying what to do, when the data directory has no catalog yet; `command` names the
/// command that needs one.
pub fn require(config: &Config, command: &str) -> Result<()> {
    let path = config.catalog_path();
    if !path.exists() {
        bail!(
            "no catalog at {}, so nothing to {command}: run `tributary serve --data {}` first (it \
             creates the lake)",
            path.display(),
            config.data_dir.display()
        );
    }
    Ok(())
}

/// The catalog and the lake's object store.
pub fn open(config: &Config) -> Result<(Arc<dyn Catalog>, Arc<dyn ObjectStore>)> {
    let path = config.catalog_path();
    let catalog: Arc<dyn Catalog> = Arc::new(
        EmbeddedCatalog::open(&path)
            .with_context(|| format!("opening the catalog {}", path.display()))?,
    );
    let store = local_store(&config.lake_dir()).context("opening the lake")?;
    Ok((catalog, store))
}

/// A SQL engine over the lake, and the scope a `--tenant` option asks for (every tenant when
/// it is absent): what `query` and `verify` run their SQL with.
pub fn query_engine(config: &Config, tenant: Option<&str>) -> Result<(QueryEngine, Scope)> {
    let (catalog, store) = open(config)?;
    let engine = QueryEngine::new(catalog, store, config.query.clone())
        .context("starting the SQL engine")?;
    let scope = match tenant {
        Some(tenant) => Scope::Tenant(tenant.to_string()),
        None => Scope::All,
    };
    Ok((engine, scope))
}
