//! Which of a snapshot's files a scan must read, decided from what the catalog knows about each
//! file without opening it: its partition values, its event-time range and its tenant range.
//!
//! Two mechanisms, both over the same file list:
//! - filters on partition columns only (`dt = '…'`, `event_family IN (…)`) are evaluated
//!   exactly on each file's partition values, so the engine need not apply them again;
//! - every filter (and the tenant scope) is rewritten by DataFusion's [`PruningPredicate`] into
//!   a test on per-file min/max statistics, which removes files that cannot hold a matching
//!   row (a one-hour range on `ts` keeps the files whose `[min_ts, max_ts]` meets the hour).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::ColumnarValue;
use tributary_catalog::DataFile;

/// The columns of a table the catalog keeps per-file facts about.
#[derive(Debug, Clone)]
pub(crate) struct PrunableColumns {
    /// Hive partition columns, in order.
    pub(crate) partition: Vec<String>,
    /// The column `DataFile::min_ts`/`max_ts` describe.
    pub(crate) time: String,
    /// The column `DataFile::min_tenant`/`max_tenant` describe.
    pub(crate) tenant: String,
}

/// Removes table qualifiers (`events.dt` → `dt`): filters reach a scan qualified with the
/// table's name, while the schemas pruning evaluates them against are the table's own.
pub(crate) fn unqualify(expr: Expr) -> Result<Expr> {
    expr.transform(|expr| match expr {
        Expr::Column(column) if column.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(column.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|transformed| transformed.data)
}

/// Whether `filter` reads only partition columns and can be decided exactly per file from the
/// partition values (no subqueries, no outer references, no volatile or stable functions).
pub(crate) fn is_partition_filter(filter: &Expr, partition_columns: &[String]) -> bool {
    if partition_columns.is_empty() {
        return false;
    }
    let columns: Vec<&str> = partition_columns.iter().map(String::as_str).collect();
    let needs_context = filter
        .exists(|expr| {
            Ok(matches!(
                expr,
                Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::SetComparison(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::ScalarVariable(..)
                    | Expr::Placeholder(_)
            ))
        })
        .unwrap_or(true);
    !needs_context && expr_applicable_for_cols(&columns, filter)
}

/// Evaluates partition-only `filters` on each file's partition values: `true` where the file
/// belongs to a partition the filters accept (a NULL result rejects, as in `WHERE`).
pub(crate) fn partition_matches(
    files: &[DataFile],
    filters: &[Expr],
    partition_schema: &SchemaRef,
    plan_expr: impl Fn(Expr, &DFSchema) -> Result<Arc<dyn PhysicalExpr>>,
) -> Result<Vec<bool>> {
    let Some(filter) = conjunction(filters.iter().cloned()) else {
        return Ok(vec![true; files.len()]);
    };
    let columns = partition_schema
        .fields()
        .iter()
        .map(|field| {
            let values: StringArray = files
                .iter()
                .map(|file| file.partition_value(field.name()))
                .collect();
            Ok(cast(&values, field.data_type())?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let batch = RecordBatch::try_new(Arc::clone(partition_schema), columns)?;
    let df_schema = DFSchema::try_from(Arc::clone(partition_schema))?;
    let predicate = plan_expr(unqualify(filter)?, &df_schema)?;
    let result = match predicate.evaluate(&batch)? {
        ColumnarValue::Array(array) => array,
        ColumnarValue::Scalar(scalar) => scalar.to_array_of_size(files.len())?,
    };
    let result = result.as_boolean_opt().cloned().unwrap_or_else(|| {
        // Not a boolean: DataFusion's own filter would reject it at planning, keep every file.
        BooleanArray::from(vec![true; files.len()])
    });
    Ok((0..files.len())
        .map(|i| result.is_valid(i) && result.value(i))
        .collect())
}

/// Builds the min/max pruning predicate of `predicate` over the table schema, or `None` when
/// it cannot prune anything (or cannot be built, which only costs reading more files).
pub(crate) fn pruning_predicate(
    predicate: Arc<dyn PhysicalExpr>,
    table_schema: &SchemaRef,
) -> Option<Arc<PruningPredicate>> {
    PruningPredicateBuilder::new()
        .with_file_schema(Arc::clone(table_schema))
        .build(predicate)
}

/// The catalog's per-file facts, in the form [`PruningPredicate`] asks for: one "container"
/// per file.
pub(crate) struct FileStatistics<'a> {
    files: &'a [&'a DataFile],
    columns: &'a PrunableColumns,
    schema: &'a SchemaRef,
}

impl<'a> FileStatistics<'a> {
    /// Statistics of `files` of a table with `schema` (file columns then partition columns).
    pub(crate) fn new(
        files: &'a [&'a DataFile],
        columns: &'a PrunableColumns,
        schema: &'a SchemaRef,
    ) -> Self {
        FileStatistics {
            files,
            columns,
            schema,
        }
    }

    /// Which files may hold rows passing `predicate` (all of them if it cannot be evaluated).
    pub(crate) fn keep(&self, predicate: &PruningPredicate) -> Vec<bool> {
        predicate.prune(self).unwrap_or_else(|error| {
            tracing::debug!(%error, "file pruning failed; reading every listed file");
            vec![true; self.files.len()]
        })
    }

    fn is_partition(&self, name: &str) -> bool {
        self.columns.partition.iter().any(|column| column == name)
    }

    /// Text statistics in the column's declared type (Utf8 today; a cast keeps a future
    /// Utf8View or dictionary column prunable).
    fn text(&self, name: &str, value: impl Fn(&DataFile) -> Option<&str>) -> Option<ArrayRef> {
        let field = self.schema.field_with_name(name).ok()?;
        let values: StringArray = self.files.iter().map(|file| value(file)).collect();
        cast(&values, field.data_type()).ok()
    }

    fn time(&self, value: impl Fn(&DataFile) -> i64) -> Option<ArrayRef> {
        let field = self.schema.field_with_name(&self.columns.time).ok()?;
        let DataType::Timestamp(TimeUnit::Microsecond, tz) = field.data_type() else {
            return None;
        };
        let values =
            TimestampMicrosecondArray::from_iter_values(self.files.iter().map(|file| value(file)))
                .with_timezone_opt(tz.clone());
        Some(Arc::new(values))
    }

    fn bound(&self, column: &Column, max: bool) -> Option<ArrayRef> {
        let name = column.name.as_str();
        if self.is_partition(name) {
            return self.text(name, |file| file.partition_value(name));
        }
        if name == self.columns.time {
            return self.time(|file| if max { file.max_ts } else { file.min_ts });
        }
        if name == self.columns.tenant {
            return self.text(name, |file| {
                Some(if max {
                    file.max_tenant.as_str()
                } else {
                    file.min_tenant.as_str()
                })
            });
        }
        None
    }
}

impl PruningStatistics for FileStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, false)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, true)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        // Partition values come from the path and are never null; other columns are unknown.
        self.is_partition(&column.name)
            .then(|| Arc::new(UInt64Array::from(vec![0; self.files.len()])) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(
            self.files.iter().map(|file| file.rows),
        )))
    }

    fn contained(&self, column: &Column, values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        // A file holds exactly one value of each partition column, so membership is known.
        if !self.is_partition(&column.name) {
            return None;
        }
        let texts: Option<HashSet<&str>> = values.iter().map(scalar_text).collect();
        let texts = texts?;
        Some(
            self.files
                .iter()
                .map(|file| {
                    file.partition_value(&column.name)
                        .map(|value| texts.contains(value))
                })
                .collect(),
        )
    }
}

fn scalar_text(value: &ScalarValue) -> Option<&str> {
    match value {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)) => Some(text),
        ScalarValue::Dictionary(_, inner) => scalar_text(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{col, lit};
    use datafusion::physical_expr::create_physical_expr;
    use datafusion::physical_expr::execution_props::ExecutionProps;

    use super::*;

    fn file(path: &str, dt: &str, family: &str, ts: (i64, i64), tenants: (&str, &str)) -> DataFile {
        DataFile {
            table: "events".into(),
            path: path.into(),
            partition: vec![
                ("dt".into(), dt.into()),
                ("event_family".into(), family.into()),
            ],
            rows: 10,
            bytes: 100,
            min_ts: ts.0,
            max_ts: ts.1,
            min_tenant: tenants.0.into(),
            max_tenant: tenants.1.into(),
            schema_version: 1,
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("dt", DataType::Utf8, false),
            Field::new("event_family", DataType::Utf8, false),
        ]))
    }

    fn columns() -> PrunableColumns {
        PrunableColumns {
            partition: vec!["dt".into(), "event_family".into()],
            time: "ts".into(),
            tenant: "tenant_id".into(),
        }
    }

    fn plan(expr: Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        create_physical_expr(&expr, schema, &ExecutionProps::new(), &Default::default())
    }

    fn keep(files: &[DataFile], filter: Expr) -> Vec<bool> {
        let schema = schema();
        let df_schema = DFSchema::try_from(Arc::clone(&schema)).unwrap();
        let predicate = plan(filter, &df_schema).unwrap();
        let pruning = pruning_predicate(predicate, &schema).unwrap();
        let refs: Vec<&DataFile> = files.iter().collect();
        let columns = columns();
        FileStatistics::new(&refs, &columns, &schema).keep(&pruning)
    }

    #[test]
    fn time_tenant_and_partition_bounds_prune_files() {
        let files = vec![
            file("a", "2026-01-01", "page", (0, 99), ("acme", "acme")),
            file("b", "2026-01-01", "track", (100, 199), ("acme", "zeta")),
            file("c", "2026-01-02", "page", (200, 299), ("beta", "beta")),
        ];
        let ts = |v| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        assert_eq!(
            keep(&files, col("ts").gt_eq(ts(150))),
            vec![false, true, true]
        );
        assert_eq!(
            keep(&files, col("tenant_id").eq(lit("acme"))),
            vec![true, true, false]
        );
        assert_eq!(
            keep(
                &files,
                col("event_family").in_list(vec![lit("page")], false)
            ),
            vec![true, false, true]
        );
    }

    #[test]
    fn partition_filters_are_decided_exactly() {
        let files = vec![
            file("a", "2026-01-01", "page", (0, 1), ("a", "a")),
            file("b", "2026-01-02", "track", (0, 1), ("a", "a")),
        ];
        let partition: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("dt", DataType::Utf8, false),
            Field::new("event_family", DataType::Utf8, false),
        ]));
        let filter = col("dt")
            .gt(lit("2026-01-01"))
            .or(col("event_family").eq(lit("page")));
        let partition_columns = ["dt".to_string(), "event_family".to_string()];
        assert!(is_partition_filter(&filter, &partition_columns));
        assert!(!is_partition_filter(
            &col("ts").is_null(),
            &partition_columns
        ));
        let keep = partition_matches(&files, &[filter], &partition, plan).unwrap();
        assert_eq!(keep, vec![true, true]);
        let keep = partition_matches(&files, &[col("dt").eq(lit("2026-01-02"))], &partition, plan)
            .unwrap();
        assert_eq!(keep, vec![false, true]);
    }
}
