//! [`LakeTable`]: a catalog table as a DataFusion table.
//!
//! A scan is planned in five steps, each over the catalog's facts rather than the object store
//! (listing a bucket is slow and would see files that are staged but not committed):
//!
//! 1. the filters' bounds on the time column narrow the catalog listing (`time_range.rs`);
//! 2. one [`Catalog::snapshot`] gives the live files, consistent as of one commit;
//! 3. filters on partition columns only are decided exactly per file, the rest (and the tenant
//!    scope) prune files by their min/max facts (`pruning.rs`);
//! 4. the remaining files become one Parquet scan, with exact row counts as statistics (so an
//!    unfiltered `COUNT(*)` is answered without reading a file) and the page index on;
//! 5. under [`Scope::Tenant`] the scan is wrapped in [`TenantFilterExec`] (`tenant.rs`).
//!
//! Filters other than partition-only ones are answered `Inexact`: DataFusion keeps applying
//! them above the scan. Without a tenant scope its optimizer pushes them into the Parquet
//! reader (row-group, page and row-level filtering); under a tenant scope they reach the reader
//! only as statistics for pruning, because the tenant barrier must run before any expression of
//! the query sees a row.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{
    ColumnStatistics, DFSchema, DataFusionError, Result, ScalarValue, Statistics,
};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType, col, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as ColumnExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::projection::ProjectionExpr;
use tributary_catalog::{Catalog, DataFile, TableInfo};
use tributary_lake::schema::partition_type;

use crate::dictionary::{dictionary_columns, file_hints, with_dictionaries};
use crate::error::QueryError;
use crate::pruning::{
    FileStatistics, PrunableColumns, is_partition_filter, partition_matches, pruning_predicate,
    unqualify,
};
use crate::scope::Scope;
use crate::stats::{ScanCounter, ScanStats};
use crate::tenant::TenantFilterExec;
use crate::time_range::time_range;

/// A catalog table (events, raw_events, …) seen through one [`Scope`].
pub struct LakeTable {
    catalog: Arc<dyn Catalog>,
    name: String,
    columns: PrunableColumns,
    /// Columns stored in the files.
    file_schema: SchemaRef,
    /// Partition columns, appended after the file columns (`dt` a DATE, the others text; never
    /// null: see `tributary_lake::schema::partition_type`).
    partition_fields: Vec<FieldRef>,
    /// `file_schema` then `partition_fields`: what SQL sees.
    schema: SchemaRef,
    scope: Scope,
    lake: ObjectStoreUrl,
    counter: Arc<ScanCounter>,
}

impl fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeTable")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("lake", &self.lake.as_str())
            .finish_non_exhaustive()
    }
}

impl LakeTable {
    /// The table `info` describes, read from the object store registered under `lake` (paths
    /// of its files are relative to it), limited to the rows `scope` allows.
    pub fn try_new(
        catalog: Arc<dyn Catalog>,
        info: &TableInfo,
        scope: Scope,
        lake: ObjectStoreUrl,
    ) -> Result<LakeTable, QueryError> {
        let def = &info.def;
        let schema_error = |message: String| QueryError::Schema {
            table: def.name.clone(),
            message,
        };
        let file_schema = tributary_lake::schema::schema_from_json(&def.schema)
            .map_err(|error| schema_error(error.to_string()))?;
        let file_schema = with_dictionaries(
            &with_string_views(&file_schema),
            &dictionary_columns(&def.name, &file_schema),
        );
        for column in &def.partition_columns {
            if file_schema.field_with_name(column).is_ok() {
                return Err(schema_error(format!(
                    "partition column {column:?} is also stored in the files"
                )));
            }
        }
        if file_schema.field_with_name(&def.tenant_column).is_err() {
            return Err(schema_error(format!(
                "tenant column {:?} is not in the schema",
                def.tenant_column
            )));
        }
        let partition_fields: Vec<FieldRef> = def
            .partition_columns
            .iter()
            .map(|column| Arc::new(Field::new(column, partition_type(column), false)))
            .collect();
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.extend(partition_fields.iter().cloned());
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            file_schema.metadata().clone(),
        ));
        Ok(LakeTable {
            catalog,
            name: def.name.clone(),
            columns: PrunableColumns {
                partition: def.partition_columns.clone(),
                time: def.time_column.clone(),
                tenant: def.tenant_column.clone(),
            },
            file_schema: Arc::new(file_schema),
            partition_fields,
            schema,
            scope,
            lake,
            counter: Arc::default(),
        })
    }

    /// Shares `counter` with other tables of the same query, so the query's scans add up.
    pub(crate) fn with_counter(mut self, counter: Arc<ScanCounter>) -> Self {
        self.counter = counter;
        self
    }

    /// The table's name in SQL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the scans planned over this table so far read.
    pub fn scan_stats(&self) -> ScanStats {
        self.counter.snapshot()
    }

    fn partition_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.partition_fields.clone()))
    }

    /// `tenant_column = '<tenant>'`, as a logical expression over this table.
    fn tenant_filter(&self) -> Option<Expr> {
        let tenant = self.scope.tenant()?;
        Some(
            col(datafusion::common::Column::new_unqualified(
                &self.columns.tenant,
            ))
            .eq(lit(tenant)),
        )
    }

    /// The files of one snapshot that may hold rows passing `filters` (and the scope).
    async fn live_files(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<DataFile>> {
        let range = time_range(filters, &self.columns.time);
        let snapshot = self
            .catalog
            .snapshot(&self.name, range.from, range.until)
            .await
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        let listed = snapshot.files;

        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|filter| is_partition_filter(filter, &self.columns.partition))
            .cloned()
            .collect();
        let by_partition = partition_matches(
            &listed,
            &partition_filters,
            &self.partition_schema(),
            |expr, schema| state.create_physical_expr(expr, schema),
        )?;
        let candidates: Vec<&DataFile> = listed
            .iter()
            .zip(&by_partition)
            .filter_map(|(file, keep)| keep.then_some(file))
            .collect();

        let mut predicates: Vec<Expr> = filters.to_vec();
        predicates.extend(self.tenant_filter());
        let keep = match self.physical_predicate(state, predicates) {
            Some(predicate) => match pruning_predicate(predicate, &self.schema) {
                Some(pruning) => {
                    FileStatistics::new(&candidates, &self.columns, &self.schema).keep(&pruning)
                }
                None => vec![true; candidates.len()],
            },
            None => vec![true; candidates.len()],
        };
        let files: Vec<DataFile> = candidates
            .into_iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|(file, _)| file.clone())
            .collect();
        let bytes = files.iter().map(|file| file.bytes).sum();
        self.counter
            .record(listed.len() as u64, files.len() as u64, bytes);
        tracing::debug!(
            table = %self.name,
            listed = listed.len(),
            scanned = files.len(),
            from = ?range.from,
            until = ?range.until,
            "scan planned"
        );
        Ok(files)
    }

    /// The conjunction of `filters` as a physical expression over the table schema, leaving
    /// out any filter that cannot be planned on its own (that only prunes less).
    fn physical_predicate(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Option<Arc<dyn PhysicalExpr>> {
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema)).ok()?;
        let usable: Vec<Expr> = filters
            .into_iter()
            .filter_map(|filter| unqualify(filter).ok())
            .filter(|filter| !filter.is_volatile())
            .filter(|filter| {
                state
                    .create_physical_expr(filter.clone(), &df_schema)
                    .is_ok()
            })
            .collect();
        let predicate = conjunction(usable)?;
        state.create_physical_expr(predicate, &df_schema).ok()
    }

    /// One file as DataFusion reads it: path, size, partition values and what the catalog
    /// knows about its contents.
    fn partitioned_file(
        &self,
        file: &DataFile,
        hints: &HashMap<u32, SchemaRef>,
    ) -> Result<PartitionedFile> {
        let values = self
            .partition_fields
            .iter()
            .map(|field| match file.partition_value(field.name()) {
                Some(value) => ScalarValue::try_from_string(value.to_string(), field.data_type()),
                None => ScalarValue::try_from(field.data_type()),
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = usize::try_from(file.rows).unwrap_or(usize::MAX);
        let bytes = usize::try_from(file.bytes).unwrap_or(usize::MAX);
        let columns = self
            .file_schema
            .fields()
            .iter()
            .map(|field| self.column_statistics(field, file))
            .collect();
        let statistics = Statistics {
            // The catalog's row count is exact: COUNT(*) without filters is answered from it.
            num_rows: Precision::Exact(rows),
            total_byte_size: Precision::Inexact(bytes),
            column_statistics: columns,
        };
        let partitioned = PartitionedFile::new(file.path.clone(), file.bytes)
            .with_partition_values(values)
            .with_statistics(Arc::new(statistics));
        Ok(match hints.get(&file.schema_version) {
            Some(hint) => partitioned.with_arrow_schema(Arc::clone(hint)),
            None => partitioned,
        })
    }

    fn column_statistics(&self, field: &Field, file: &DataFile) -> ColumnStatistics {
        // Bounds are marked inexact: they are used for planning, never to answer MIN/MAX.
        let name = field.name();
        if *name == self.columns.time
            && let DataType::Timestamp(TimeUnit::Microsecond, tz) = field.data_type()
        {
            return ColumnStatistics::new_unknown()
                .with_min_value(Precision::Inexact(ScalarValue::TimestampMicrosecond(
                    Some(file.min_ts),
                    tz.clone(),
                )))
                .with_max_value(Precision::Inexact(ScalarValue::TimestampMicrosecond(
                    Some(file.max_ts),
                    tz.clone(),
                )));
        }
        // Under a tenant scope the tenant bounds would name other tenants (in EXPLAIN output),
        // and the barrier above makes them useless to the planner anyway.
        if *name == self.columns.tenant
            && self.scope.tenant().is_none()
            && field.data_type() == &DataType::Utf8
        {
            return ColumnStatistics::new_unknown()
                .with_min_value(Precision::Inexact(ScalarValue::Utf8(Some(
                    file.min_tenant.clone(),
                ))))
                .with_max_value(Precision::Inexact(ScalarValue::Utf8(Some(
                    file.max_tenant.clone(),
                ))));
        }
        ColumnStatistics::new_unknown()
    }

    /// Spreads files over `groups` scan partitions with about the same bytes each (largest
    /// first onto the lightest), each group in path order so plans are repeatable.
    fn file_groups(
        &self,
        files: &[DataFile],
        groups: usize,
        hints: &HashMap<u32, SchemaRef>,
    ) -> Result<(Vec<FileGroup>, Statistics)> {
        let groups = groups.clamp(1, files.len().max(1));
        let mut order: Vec<&DataFile> = files.iter().collect();
        order.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        let mut buckets: Vec<(u64, Vec<&DataFile>)> = vec![(0, Vec::new()); groups];
        for file in order {
            if let Some(lightest) = buckets.iter_mut().min_by_key(|(bytes, _)| *bytes) {
                lightest.0 += file.bytes;
                lightest.1.push(file);
            }
        }
        let mut all = Vec::with_capacity(files.len());
        let mut file_groups = Vec::with_capacity(groups);
        for (_, mut bucket) in buckets {
            if bucket.is_empty() {
                continue;
            }
            bucket.sort_by(|a, b| a.path.cmp(&b.path));
            let members: Vec<PartitionedFile> = bucket
                .iter()
                .map(|file| self.partitioned_file(file, hints))
                .collect::<Result<_>>()?;
            let statistics = Statistics::try_merge_iter(
                members.iter().filter_map(|file| file.statistics.as_deref()),
                &self.schema,
            )?;
            all.push(statistics.clone());
            file_groups.push(FileGroup::new(members).with_statistics(Arc::new(statistics)));
        }
        let table = if all.is_empty() {
            Statistics::new_unknown(&self.schema)
        } else {
            Statistics::try_merge_iter(all.iter(), &self.schema)?
        };
        Ok((file_groups, table))
    }

    /// The Arrow schema each schema version's files are read with (see `dictionary.rs`).
    async fn file_hints(&self) -> Result<HashMap<u32, SchemaRef>> {
        if dictionary_columns(&self.name, &self.file_schema).is_empty() {
            return Ok(HashMap::new());
        }
        let versions = self
            .catalog
            .schema_versions(&self.name)
            .await
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        Ok(file_hints(&self.name, &versions))
    }

    /// Parquet reading options: the session's, with the page index and pruning on, and row
    /// filtering in the reader only when no tenant barrier must come first and it can pay off.
    fn parquet_options(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> TableParquetOptions {
        let mut options = state.default_table_options().parquet;
        options.global.enable_page_index = true;
        options.global.pruning = true;
        options.global.pushdown_filters =
            self.scope.tenant().is_none() && self.row_filter_pays(projection, filters);
        options.global.reorder_filters = true;
        options
    }

    /// Whether filtering rows inside the Parquet reader saves work for this scan. The reader
    /// decodes the filter's columns first and then only the selected rows of the other
    /// projected columns; when the query reads nothing but the filter's own columns (`SELECT
    /// referrer … WHERE referrer NOT LIKE …`) there is nothing left to skip, and reading the
    /// same column again through a fragmented row selection costs more than filtering after
    /// the scan (q04 of `bench query`: 140 → 70 ms).
    fn row_filter_pays(&self, projection: Option<&Vec<usize>>, filters: &[Expr]) -> bool {
        let filtered: Vec<usize> = filters
            .iter()
            .filter(|filter| !is_partition_filter(filter, &self.columns.partition))
            .flat_map(|filter| filter.column_refs())
            .filter_map(|column| self.schema.index_of(&column.name).ok())
            .collect();
        reads_beyond_filter(projection.map(Vec::as_slice), &filtered)
    }

    /// Wraps `plan` in the tenant barrier, then drops the tenant column again if the query did
    /// not ask for it.
    fn isolate(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        tenant: &str,
        wanted: Option<&[usize]>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = plan.schema();
        let tenant_type = schema
            .field_with_name(&self.columns.tenant)?
            .data_type()
            .clone();
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let filter = col(datafusion::common::Column::new_unqualified(
            &self.columns.tenant,
        ))
        .eq(lit(ScalarValue::try_from_string(
            tenant.to_string(),
            &tenant_type,
        )?));
        let predicate = datafusion::physical_expr::create_physical_expr(
            &filter,
            &df_schema,
            &datafusion::physical_expr::execution_props::ExecutionProps::new(),
            &Default::default(),
        )?;
        let barrier: Arc<dyn ExecutionPlan> =
            Arc::new(TenantFilterExec::new(plan, predicate, tenant.to_string()));
        let Some(wanted) = wanted else {
            return Ok(barrier);
        };
        if wanted.len() == schema.fields().len() {
            return Ok(barrier);
        }
        // The scan read `wanted` plus the tenant column at the end; keep the first ones.
        let projection: Vec<ProjectionExpr> = (0..wanted.len())
            .map(|index| {
                let name = schema.field(index).name().clone();
                let column: Arc<dyn PhysicalExpr> = Arc::new(ColumnExpr::new(&name, index));
                ProjectionExpr::from((column, name))
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(projection, barrier)?))
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| {
                if is_partition_filter(filter, &self.columns.partition) {
                    // Decided per file from its partition values, exactly.
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = filters
            .iter()
            .cloned()
            .map(unqualify)
            .collect::<Result<Vec<_>>>()?;
        let files = self.live_files(state, &filters).await?;
        if files.is_empty() {
            let schema = match projection {
                Some(indices) => Arc::new(self.schema.project(indices)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }

        // Under a tenant scope the scan also reads the tenant column, appended last, for the
        // barrier; the projection above drops it again.
        let tenant_index = self.schema.index_of(&self.columns.tenant)?;
        let scan_projection: Option<Vec<usize>> = match (projection, self.scope.tenant()) {
            (Some(indices), Some(_)) if !indices.contains(&tenant_index) => {
                let mut indices = indices.clone();
                indices.push(tenant_index);
                Some(indices)
            }
            (projection, _) => projection.cloned(),
        };

        let options = self.parquet_options(state, projection, &filters);
        let table_schema = TableSchema::builder(Arc::clone(&self.file_schema))
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let mut source =
            ParquetSource::new(table_schema).with_table_parquet_options(options.clone());
        if self.scope.tenant().is_some() {
            // The query's filters and the tenant test, for row-group and page pruning only.
            let mut predicates = filters.clone();
            predicates.extend(self.tenant_filter());
            if let Some(predicate) = self.physical_predicate(state, predicates) {
                source = source.with_predicate(predicate);
            }
        }
        let hints = self.file_hints().await?;
        let (file_groups, statistics) =
            self.file_groups(&files, state.config().target_partitions(), &hints)?;
        let config = FileScanConfigBuilder::new(self.lake.clone(), Arc::new(source))
            .with_file_groups(file_groups)
            .with_statistics(statistics)
            .with_projection_indices(scan_projection)?
            // A limit below the tenant barrier would count other tenants' rows.
            .with_limit(if self.scope.tenant().is_some() {
                None
            } else {
                limit
            })
            .build();
        // Through the format so the reader shares the runtime's Parquet metadata cache.
        let plan = ParquetFormat::default()
            .with_options(options)
            .create_physical_plan(state, config)
            .await?;
        match self.scope.tenant() {
            Some(tenant) => self.isolate(plan, tenant, projection.map(Vec::as_slice)),
            None => Ok(plan),
        }
    }
}

/// Whether a scan of `projection` (every column when `None`) with row filters over the
/// columns `filtered` reads any other column, whose decoding the filters could spare.
///
/// Without a filter of the query's own there is nothing to weigh, and row filtering would only
/// run the filters DataFusion derives while the query runs: a hash join's build-side keys or a
/// top-K threshold, tested on every probe-side row (q12 of `bench query` spent 1.0 s of CPU in
/// one such test that kept every row). Those still prune files, row groups and pages by their
/// statistics.
fn reads_beyond_filter(projection: Option<&[usize]>, filtered: &[usize]) -> bool {
    match projection {
        _ if filtered.is_empty() => false,
        None => true,
        Some(projection) => projection.iter().any(|index| !filtered.contains(index)),
    }
}

/// `schema` with every string (top level, in structs and lists) read as `Utf8View`. Maps keep
/// `Utf8`: DataFusion's map lookup (`properties['item_id']`) compares keys with a `Utf8` literal
/// and has no coercion to views.
///
/// The Parquet reader then points into its decoded pages instead of copying every value into
/// one contiguous buffer, and strings of up to 12 bytes live inline in the view: decoding,
/// filtering and grouping on strings (paths, referrers, event types, ids) all get cheaper.
/// The files keep plain `BYTE_ARRAY` columns; this is only how Tributary reads them.
fn with_string_views(schema: &Schema) -> Schema {
    let fields: Vec<FieldRef> = schema.fields().iter().map(field_with_views).collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn field_with_views(field: &FieldRef) -> FieldRef {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(type_with_views(field.data_type())),
    )
}

fn type_with_views(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field_with_views).collect()),
        DataType::List(item) => DataType::List(field_with_views(item)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::reads_beyond_filter;

    #[test]
    fn row_filters_pay_only_when_other_columns_are_read() {
        // SELECT referrer … WHERE referrer NOT LIKE …: nothing to skip.
        assert!(!reads_beyond_filter(Some(&[8]), &[8]));
        // SELECT item_id … WHERE event_type = …: item_id is decoded for matching rows only.
        assert!(reads_beyond_filter(Some(&[5, 12]), &[5]));
        assert!(reads_beyond_filter(None, &[5]), "every column is read");
        assert!(
            !reads_beyond_filter(Some(&[5]), &[]),
            "no filter of the query's own: only runtime filters would run per row"
        );
    }
}
