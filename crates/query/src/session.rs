//! The DataFusion session every query runs in: built once per engine (configuration, the
//! runtime with the lake's object store and the Parquet metadata cache), then copied per query
//! with a fresh catalog holding only that query's table providers.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;

use crate::config::QueryConfig;
use crate::dictionary_aggregate::DictionaryAggregateRule;
use crate::error::QueryError;

/// The object store URL the lake root is registered under; files are addressed relative to it.
pub const LAKE_URL: &str = "tributary://lake/";
/// The catalog name queries see (`tributary.public.events`).
pub const CATALOG: &str = "tributary";
/// The schema name queries see.
pub const SCHEMA: &str = "public";

/// Builds the engine's base session: nothing registered in its catalog, the lake as the only
/// object store.
pub(crate) fn base_state(
    store: Arc<dyn ObjectStore>,
    config: &QueryConfig,
) -> Result<(SessionState, ObjectStoreUrl), QueryError> {
    let session = SessionConfig::new()
        .with_target_partitions(config.effective_target_partitions())
        .with_batch_size(config.batch_size.max(1))
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
        .with_create_default_catalog_and_schema(false)
        // Pages are skipped by their index and filters are evaluated while decoding Parquet,
        // cheapest first, where each scan says so: DataFusion filters rows in the reader if
        // either this setting or the scan's own option asks for it, so this one stays off and
        // `LakeTable::parquet_options` decides per scan (never under a tenant scope, and only
        // when it pays; see provider.rs).
        .set_bool("datafusion.execution.parquet.pushdown_filters", false)
        .set_bool("datafusion.execution.parquet.reorder_filters", true)
        .set_bool("datafusion.execution.parquet.enable_page_index", true)
        .set_bool("datafusion.execution.parquet.pruning", true);
    let limit = usize::try_from(config.effective_memory_limit_bytes()).unwrap_or(usize::MAX);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limit, 1.0)
        .build_arc()?;
    // The default registry can read the server's local files (`file://`): a query must only
    // ever reach the lake, even if some statement found a way to name a path.
    let _local = runtime.deregister_object_store(ObjectStoreUrl::local_filesystem().as_ref());
    let lake = ObjectStoreUrl::parse(LAKE_URL)?;
    runtime.register_object_store(lake.as_ref(), store);
    let state = SessionStateBuilder::new()
        .with_config(session)
        .with_runtime_env(runtime)
        .with_default_features()
        // After DataFusion's own rules: groups on dictionary columns without hashing each row.
        .with_physical_optimizer_rule(Arc::new(DictionaryAggregateRule))
        // No `CREATE EXTERNAL TABLE` factories, whatever the SQL options say.
        .with_table_factories(HashMap::new())
        .build();
    Ok((state, lake))
}

/// A copy of `base` whose catalog holds exactly `tables`, under `tributary.public`.
pub(crate) fn query_state(
    base: &SessionState,
    tables: Vec<(String, Arc<dyn TableProvider>)>,
) -> Result<SessionState, QueryError> {
    let schema = MemorySchemaProvider::new();
    for (name, table) in tables {
        schema.register_table(name, table)?;
    }
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(SCHEMA, Arc::new(schema))?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(CATALOG.to_string(), Arc::new(catalog));
    Ok(SessionStateBuilder::new_from_existing(base.clone())
        .with_catalog_list(Arc::new(catalogs))
        .build())
}
