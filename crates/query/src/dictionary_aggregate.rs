//! Grouping on dictionary-encoded columns without hashing every row.
//!
//! The lake's low-cardinality strings (event types, page paths, referrers, browsers, …) are
//! read as Arrow dictionaries (see `dictionary.rs`): a batch is a small array of distinct
//! values plus one integer key per row. DataFusion's hash aggregation has no path for such
//! keys; it would turn every row back into its string and hash it (~20–30 ns a row), where
//! DuckDB groups on the dictionary. [`DictionaryAggregateRule`] replaces each eligible
//! `AggregateExec` by a [`DictionaryAggregateExec`] that does the same work with the same
//! accumulators, but finds each row's group in two steps:
//!
//! 1. the batch's dictionary values are interned once (a few hundred strings, not thousands of
//!    rows; a dictionary shared by consecutive batches is interned only once);
//! 2. every row's group is then its key's group: one array lookup.
//!
//! Group keys of several columns, of which some are dictionaries, are hydrated into string
//! views (no copy of the strings) and interned by DataFusion's column-wise group values, the
//! path plain strings take; DataFusion itself would fall back to its slower row format there.
//!
//! The node keeps the aggregate's mode, output schema and partitioning, so the plan around it
//! (repartitioning, the final aggregate, top-K) is unchanged.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use datafusion::physical_plan::aggregates::{
    AggregateExec, AggregateInputMode, AggregateOutputMode,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan,
    InputDistributionRequirements, InputOrderMode, PlanProperties, ReplaceChildrenOptions,
};
use futures::{StreamExt, TryStreamExt};

/// Replaces every `AggregateExec` that groups on at least one dictionary column (and that
/// [`DictionaryAggregateExec`] can run exactly) by one.
#[derive(Debug, Default)]
pub struct DictionaryAggregateRule;

impl PhysicalOptimizerRule for DictionaryAggregateRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if !eligible(aggregate)? {
                return Ok(Transformed::no(node));
            }
            let replacement: Arc<dyn ExecutionPlan> =
                Arc::new(DictionaryAggregateExec::try_new(Arc::clone(&node))?);
            Ok(Transformed::yes(replacement))
        })
        .data()
    }

    fn name(&self) -> &str {
        "dictionary_aggregate"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `aggregate` groups on a dictionary column and uses only what the node supports:
/// plain `GROUP BY` (no grouping sets), unordered input, no limit, and aggregates with a
/// groups accumulator (count, sum, min, max, avg, …) that are neither `DISTINCT` nor ordered.
fn eligible(aggregate: &AggregateExec) -> Result<bool> {
    let group_by = aggregate.group_expr();
    if group_by.expr().is_empty()
        || group_by.has_grouping_set()
        || aggregate.limit_options().is_some()
        || !matches!(aggregate.input_order_mode(), InputOrderMode::Linear)
        || matches!(
            aggregate.mode(),
            datafusion::physical_plan::aggregates::AggregateMode::PartialReduce
        )
    {
        return Ok(false);
    }
    let input_schema = aggregate.input().schema();
    let mut any_dictionary = false;
    for (expr, _) in group_by.expr() {
        if let DataType::Dictionary(_, value) = expr.data_type(&input_schema)? {
            if hydrated_type(&value).is_none() {
                return Ok(false);
            }
            any_dictionary = true;
        }
    }
    let aggregates_supported = aggregate.aggr_expr().iter().all(|aggr| {
        aggr.groups_accumulator_supported() && !aggr.is_distinct() && aggr.order_bys().is_empty()
    });
    Ok(any_dictionary && aggregates_supported)
}

/// The type a dictionary's values are interned as: strings and binaries as views (the cast
/// from a dictionary only builds views into the dictionary's buffers).
fn hydrated_type(value: &DataType) -> Option<DataType> {
    match value {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(DataType::Utf8View),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            Some(DataType::BinaryView)
        }
        _ => None,
    }
}

/// An `AggregateExec` run with dictionary-aware grouping (see the module docs).
#[derive(Debug)]
pub struct DictionaryAggregateExec {
    /// The aggregate it stands for: its mode, expressions, schema and properties.
    aggregate: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
}

impl DictionaryAggregateExec {
    /// Wraps `aggregate`, which must be an eligible `AggregateExec`.
    pub fn try_new(aggregate: Arc<dyn ExecutionPlan>) -> Result<DictionaryAggregateExec> {
        if aggregate.downcast_ref::<AggregateExec>().is_none() {
            return Err(DataFusionError::Internal(
                "DictionaryAggregateExec wraps an AggregateExec".into(),
            ));
        }
        Ok(DictionaryAggregateExec {
            aggregate,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn inner(&self) -> Result<&AggregateExec> {
        self.aggregate
            .downcast_ref::<AggregateExec>()
            .ok_or_else(|| DataFusionError::Internal("not an AggregateExec".into()))
    }
}

impl DisplayAs for DictionaryAggregateExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DictionaryAggregateExec: ")?;
        match self.inner() {
            Ok(aggregate) => {
                let groups: Vec<String> = aggregate
                    .group_expr()
                    .expr()
                    .iter()
                    .map(|(expr, name)| format!("{expr} as {name}"))
                    .collect();
                let aggregates: Vec<&str> =
                    aggregate.aggr_expr().iter().map(|a| a.name()).collect();
                write!(
                    f,
                    "mode={:?}, gby=[{}], aggr=[{}]",
                    aggregate.mode(),
                    groups.join(", "),
                    aggregates.join(", ")
                )
            }
            Err(_) => self.aggregate.fmt_as(format, f),
        }
    }
}

impl ExecutionPlan for DictionaryAggregateExec {
    fn name(&self) -> &'static str {
        "DictionaryAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.aggregate.children()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.aggregate.input_distribution_requirements()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).replace_children(children, options)?;
        Ok(Arc::new(DictionaryAggregateExec::try_new(aggregate)?))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let aggregate = self.inner()?;
        let input = aggregate.input().execute(partition, Arc::clone(&context))?;
        let schema = aggregate.schema();
        let reservation = MemoryConsumer::new(format!("DictionaryAggregateExec[{partition}]"))
            .register(context.memory_pool());
        let mut state = GroupingState::try_new(aggregate, reservation)?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let batch_size = context.session_config().batch_size().max(1);
        let output_schema = Arc::clone(&schema);
        let batches = async move {
            let mut input = input;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let _timer = baseline.elapsed_compute().timer();
                state.add(&batch)?;
            }
            let _timer = baseline.elapsed_compute().timer();
            let output = state.finish(&output_schema)?;
            baseline.record_output(output.num_rows());
            let chunks: Vec<Result<RecordBatch>> = (0..output.num_rows())
                .step_by(batch_size)
                .map(|offset| Ok(output.slice(offset, batch_size.min(output.num_rows() - offset))))
                .collect();
            Ok::<_, DataFusionError>(futures::stream::iter(chunks))
        };
        let stream = futures::stream::once(batches).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Which aggregate arguments a batch feeds, by the aggregate's input mode.
enum Arguments {
    /// Raw rows: each aggregate's own expressions.
    Raw(Vec<Vec<Arc<dyn PhysicalExpr>>>),
    /// Partial states: each aggregate's state columns, from this index on.
    States(Vec<std::ops::Range<usize>>),
}

/// One partition's groups and accumulators.
struct GroupingState {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    keys: GroupKeys,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Each aggregate's `FILTER (WHERE …)` over raw input rows (none when merging states).
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    arguments: Arguments,
    output_mode: AggregateOutputMode,
    /// Group index of each row of the current batch.
    groups: Vec<usize>,
    reservation: MemoryReservation,
}

impl GroupingState {
    fn try_new(aggregate: &AggregateExec, reservation: MemoryReservation) -> Result<Self> {
        let input_schema = aggregate.input().schema();
        let group_exprs: Vec<Arc<dyn PhysicalExpr>> = aggregate
            .group_expr()
            .expr()
            .iter()
            .map(|(expr, _)| Arc::clone(expr))
            .collect();
        let key_types = group_exprs
            .iter()
            .map(|expr| expr.data_type(&input_schema))
            .collect::<Result<Vec<_>>>()?;
        let accumulators = aggregate
            .aggr_expr()
            .iter()
            .map(|aggr| aggr.create_groups_accumulator())
            .collect::<Result<Vec<_>>>()?;
        let arguments = match aggregate.mode().input_mode() {
            AggregateInputMode::Raw => Arguments::Raw(
                aggregate
                    .aggr_expr()
                    .iter()
                    .map(|aggr| aggr.expressions())
                    .collect(),
            ),
            AggregateInputMode::Partial => {
                let mut next = group_exprs.len();
                let mut ranges = Vec::new();
                for aggr in aggregate.aggr_expr() {
                    let states = aggr.state_fields()?.len();
                    ranges.push(next..next + states);
                    next += states;
                }
                Arguments::States(ranges)
            }
        };
        Ok(GroupingState {
            keys: GroupKeys::try_new(&key_types)?,
            group_exprs,
            accumulators,
            // `FILTER (WHERE …)` applies to raw rows; merging partial states ignores it, and
            // its columns are not those of a partial state batch.
            filters: match aggregate.mode().input_mode() {
                AggregateInputMode::Raw => aggregate.filter_expr().to_vec(),
                AggregateInputMode::Partial => Vec::new(),
            },
            arguments,
            output_mode: aggregate.mode().output_mode(),
            groups: Vec::new(),
            reservation,
        })
    }

    /// Adds one input batch to the groups.
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = self
            .group_exprs
            .iter()
            .map(|expr| expr.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        self.keys.intern(&keys, &mut self.groups)?;
        let total_groups = self.keys.len();
        for (index, accumulator) in self.accumulators.iter_mut().enumerate() {
            let filter = match self.filters.get(index).and_then(Option::as_ref) {
                Some(filter) => Some(boolean(filter.evaluate(batch)?.into_array(rows)?)?),
                None => None,
            };
            match &self.arguments {
                Arguments::Raw(expressions) => {
                    let values = expressions
                        .get(index)
                        .map(|exprs| {
                            exprs
                                .iter()
                                .map(|expr| expr.evaluate(batch)?.into_array(rows))
                                .collect::<Result<Vec<_>>>()
                        })
                        .transpose()?
                        .unwrap_or_default();
                    accumulator.update_batch(
                        &values,
                        &self.groups,
                        filter.as_ref(),
                        total_groups,
                    )?;
                }
                Arguments::States(ranges) => {
                    let values: Vec<ArrayRef> = ranges
                        .get(index)
                        .map(|range| batch.columns()[range.clone()].to_vec())
                        .unwrap_or_default();
                    accumulator.merge_batch(&values, &self.groups, total_groups)?;
                }
            }
        }
        let size = self.keys.size()
            + self.groups.capacity() * size_of::<usize>()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>();
        self.reservation.try_resize(size)?;
        Ok(())
    }

    /// Every group with its states (partial output) or results (final output), as one batch
    /// of `schema`.
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns = self.keys.emit()?;
        for accumulator in &mut self.accumulators {
            match self.output_mode {
                AggregateOutputMode::Partial => columns.extend(accumulator.state(EmitTo::All)?),
                AggregateOutputMode::Final => columns.push(accumulator.evaluate(EmitTo::All)?),
            }
        }
        if columns.len() != schema.fields().len() {
            return Err(DataFusionError::Internal(format!(
                "DictionaryAggregateExec produced {} columns for a schema of {}",
                columns.len(),
                schema.fields().len()
            )));
        }
        // Group keys come out as views; the schema says what the aggregate promised.
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(column)
                } else {
                    Ok(cast(&column, field.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.reservation.free();
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

fn boolean(array: ArrayRef) -> Result<BooleanArray> {
    array
        .as_boolean_opt()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("an aggregate filter is not boolean".into()))
}

/// A dictionary column's values, row by row, as `data_type`. Not `cast` of the whole
/// dictionary: it would turn a key pointing at a null value into an empty string.
fn hydrate(key: &ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    let dictionary = key.as_any_dictionary_opt().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "a dictionary was expected, got {}",
            key.data_type()
        ))
    })?;
    let values = cast(dictionary.values(), data_type)?;
    Ok(take(&values, dictionary.keys(), None)?)
}

/// How rows find their group.
enum GroupKeys {
    /// One dictionary column: its values are interned, rows map through their keys.
    Dictionary(DictionaryKeys),
    /// Several columns: dictionaries hydrated to views, then interned column-wise.
    Hydrated {
        values: Box<dyn GroupValues>,
        types: Vec<Option<DataType>>,
    },
}

impl GroupKeys {
    fn try_new(key_types: &[DataType]) -> Result<GroupKeys> {
        if let [DataType::Dictionary(_, value)] = key_types {
            return Ok(GroupKeys::Dictionary(DictionaryKeys::try_new(value)?));
        }
        let types: Vec<Option<DataType>> = key_types
            .iter()
            .map(|key_type| match key_type {
                DataType::Dictionary(_, value) => hydrated_type(value),
                _ => None,
            })
            .collect();
        let fields: Vec<Field> = key_types
            .iter()
            .zip(&types)
            .enumerate()
            .map(|(index, (key_type, hydrated))| {
                Field::new(
                    format!("key{index}"),
                    hydrated.clone().unwrap_or_else(|| key_type.clone()),
                    true,
                )
            })
            .collect();
        let values = new_group_values(Arc::new(Schema::new(fields)), &GroupOrdering::None)?;
        Ok(GroupKeys::Hydrated { values, types })
    }

    fn intern(&mut self, keys: &[ArrayRef], groups: &mut Vec<usize>) -> Result<()> {
        match self {
            GroupKeys::Dictionary(dictionary) => {
                let [key] = keys else {
                    return Err(DataFusionError::Internal(
                        "one dictionary key column expected".into(),
                    ));
                };
                dictionary.intern(key, groups)
            }
            GroupKeys::Hydrated { values, types } => {
                let hydrated = keys
                    .iter()
                    .zip(types.iter())
                    .map(|(key, hydrated)| match hydrated {
                        Some(data_type) => hydrate(key, data_type),
                        None => Ok(Arc::clone(key)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                values.intern(&hydrated, groups)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            GroupKeys::Dictionary(dictionary) => dictionary.values.len(),
            GroupKeys::Hydrated { values, .. } => values.len(),
        }
    }

    fn size(&self) -> usize {
        match self {
            GroupKeys::Dictionary(dictionary) => {
                dictionary.values.size()
                    + dictionary.value_groups.capacity() * size_of::<Option<usize>>()
            }
            GroupKeys::Hydrated { values, .. } => values.size(),
        }
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        match self {
            GroupKeys::Dictionary(dictionary) => dictionary.values.emit(EmitTo::All),
            GroupKeys::Hydrated { values, .. } => values.emit(EmitTo::All),
        }
    }
}

/// Groups of one dictionary column.
struct DictionaryKeys {
    /// The distinct values seen, in the hydrated type; a group index is a value's index.
    values: Box<dyn GroupValues>,
    hydrated: DataType,
    /// The last batch's dictionary and the group of each of its entries used so far:
    /// consecutive batches of one Parquet column chunk share their dictionary. Entries no row
    /// uses never become groups.
    last_dictionary: Option<ArrayRef>,
    value_groups: Vec<Option<usize>>,
    /// Scratch: entries first used by the current batch, and the groups they got.
    first_used: Vec<u32>,
    new_groups: Vec<usize>,
}

impl DictionaryKeys {
    fn try_new(value: &DataType) -> Result<DictionaryKeys> {
        let hydrated = hydrated_type(value).ok_or_else(|| {
            DataFusionError::Internal(format!("dictionary values of type {value} not supported"))
        })?;
        let schema = Arc::new(Schema::new(vec![Field::new("key", hydrated.clone(), true)]));
        Ok(DictionaryKeys {
            values: new_group_values(schema, &GroupOrdering::None)?,
            hydrated,
            last_dictionary: None,
            value_groups: Vec::new(),
            first_used: Vec::new(),
            new_groups: Vec::new(),
        })
    }

    fn intern(&mut self, key: &ArrayRef, groups: &mut Vec<usize>) -> Result<()> {
        let dictionary = key.as_any_dictionary_opt().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "a dictionary was expected, got {}",
                key.data_type()
            ))
        })?;
        let values = dictionary.values();
        let same = self
            .last_dictionary
            .as_ref()
            .is_some_and(|last| last.to_data().ptr_eq(&values.to_data()));
        if !same {
            self.value_groups.clear();
            self.value_groups.resize(values.len(), None);
            self.last_dictionary = Some(Arc::clone(values));
        }
        let nulls = key.nulls().cloned();
        // The lake's dictionaries have Int32 keys: read them in place rather than as a
        // converted copy.
        match dictionary.keys().as_primitive_opt::<Int32Type>() {
            Some(keys) => self.assign(
                keys.values().iter().map(|&index| index as usize),
                nulls.as_ref(),
                values,
                groups,
            ),
            None => self.assign(
                dictionary.normalized_keys().into_iter(),
                nulls.as_ref(),
                values,
                groups,
            ),
        }
    }

    /// Sets each row's group from its dictionary entry (`indices`, row by row), interning the
    /// entries used for the first time.
    fn assign(
        &mut self,
        indices: impl Iterator<Item = usize> + Clone,
        nulls: Option<&NullBuffer>,
        values: &ArrayRef,
        groups: &mut Vec<usize>,
    ) -> Result<()> {
        let is_null = |row: usize| nulls.is_some_and(|nulls| nulls.is_null(row));

        // Intern, in one call, the entries this batch uses for the first time. A null key
        // counts as an extra entry past the values (interned as a null).
        self.first_used.clear();
        let null_entry = values.len();
        let mut null_group = self.value_groups.get(null_entry).copied().flatten();
        let mut null_used = false;
        for (row, index) in indices.clone().enumerate() {
            if is_null(row) {
                null_used |= null_group.is_none();
                continue;
            }
            if let Some(slot) = self.value_groups.get_mut(index)
                && slot.is_none()
            {
                // Marked so the entry is listed once; the real group is set below.
                *slot = Some(usize::MAX);
                self.first_used.push(u32::try_from(index).map_err(|_| {
                    DataFusionError::Internal("a dictionary of over 2^32 values".into())
                })?);
            }
        }
        if !self.first_used.is_empty() || null_used {
            let taken = take(
                values,
                &datafusion::arrow::array::UInt32Array::from(self.first_used.clone()),
                None,
            )?;
            let mut fresh = cast(&taken, &self.hydrated)?;
            if null_used {
                fresh = datafusion::arrow::compute::concat(&[
                    fresh.as_ref(),
                    new_null_array(&self.hydrated, 1).as_ref(),
                ])?;
            }
            self.values.intern(&[fresh], &mut self.new_groups)?;
            for (&index, &group) in self.first_used.iter().zip(&self.new_groups) {
                if let Some(slot) = self.value_groups.get_mut(index as usize) {
                    *slot = Some(group);
                }
            }
            if null_used {
                null_group = self.new_groups.last().copied();
                if self.value_groups.len() == null_entry {
                    self.value_groups.push(null_group);
                }
            }
        }

        groups.clear();
        for (row, index) in indices.enumerate() {
            let group = if is_null(row) {
                null_group
            } else {
                self.value_groups.get(index).copied().flatten()
            };
            groups.push(group.ok_or_else(|| {
                DataFusionError::Internal(format!("dictionary key {index} has no group"))
            })?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{DictionaryArray, Int64Array, StringArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Two partitions of batches whose `page` column is a dictionary (each batch its own,
    /// with nulls and unused entries) and whose `page_text` holds the same values as strings.
    fn table() -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "page",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("page_text", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = |values: &[Option<&str>], keys: &[Option<i32>], n: &[Option<i64>]| {
            let keys = datafusion::arrow::array::Int32Array::from(keys.to_vec());
            let dictionary = DictionaryArray::<Int32Type>::try_new(
                keys,
                Arc::new(StringArray::from(values.to_vec())),
            )
            .unwrap();
            let text = cast(&dictionary, &DataType::Utf8).unwrap();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(dictionary),
                    text,
                    Arc::new(Int64Array::from(n.to_vec())),
                ],
            )
            .unwrap()
        };
        let first = vec![
            batch(
                &[Some("/a"), Some("/b"), Some("/unused")],
                &[Some(0), Some(1), Some(0), None, Some(1)],
                &[Some(1), Some(2), Some(3), Some(4), None],
            ),
            batch(
                &[Some("/b"), Some("/c"), None],
                &[Some(1), Some(0), Some(2), Some(1)],
                &[Some(10), Some(20), Some(30), Some(40)],
            ),
        ];
        let second = vec![batch(
            &[Some("/c"), Some("/a")],
            &[Some(1), Some(0), None, Some(0)],
            &[Some(100), None, Some(300), Some(400)],
        )];
        MemTable::try_new(schema, vec![first, second]).unwrap()
    }

    fn context(with_rule: bool) -> SessionContext {
        let mut builder = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features();
        if with_rule {
            builder = builder.with_physical_optimizer_rule(Arc::new(DictionaryAggregateRule));
        }
        let context = SessionContext::new_with_state(builder.build());
        context.register_table("t", Arc::new(table())).unwrap();
        context
    }

    async fn answer(context: &SessionContext, sql: &str) -> (String, String) {
        let frame = context.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let plan_text = displayable(plan.as_ref()).indent(false).to_string();
        let batches = frame.collect().await.unwrap();
        (
            pretty_format_batches(&batches).unwrap().to_string(),
            plan_text,
        )
    }

    /// The same query over the dictionary column with the rule, and over the string column
    /// without it, answers the same; the rule's plan has the node.
    async fn same_answer(dictionary_sql: &str) {
        let text_sql = dictionary_sql.replace("page", "page_text");
        let (expected, _) = answer(&context(false), &text_sql).await;
        let (actual, plan) = answer(&context(true), dictionary_sql).await;
        assert!(
            plan.contains("DictionaryAggregateExec"),
            "the rule did not apply:\n{plan}"
        );
        // Compared without the table's padding, which the longer column name widens.
        let cells = |text: &str| -> String {
            text.replace("page_text", "page")
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '+'))
                .collect()
        };
        assert_eq!(cells(&actual), cells(&expected), "{dictionary_sql}\n{plan}");
    }

    #[tokio::test]
    async fn grouping_on_a_dictionary_matches_grouping_on_its_strings() {
        same_answer(
            "SELECT page, count(*) AS rows, count(n) AS counted, sum(n) AS total, \
             min(n) AS low, max(n) AS high, avg(n) AS mean \
             FROM t GROUP BY page ORDER BY page NULLS FIRST",
        )
        .await;
    }

    #[tokio::test]
    async fn filtered_aggregates_and_having_keep_their_meaning() {
        same_answer(
            "SELECT page, count(*) FILTER (WHERE n > 5) AS big, sum(n) AS total \
             FROM t GROUP BY page HAVING count(*) > 1 ORDER BY page NULLS FIRST",
        )
        .await;
    }

    #[tokio::test]
    async fn a_lone_filtered_aggregate_counts_only_its_rows() {
        // The raw stage applies the filter; the final stage, whose input is (page, count
        // state), merges states without it.
        same_answer(
            "SELECT page, count(*) FILTER (WHERE n > 5) AS big FROM t \
             GROUP BY page ORDER BY page NULLS FIRST",
        )
        .await;
    }

    #[tokio::test]
    async fn several_keys_with_a_dictionary_among_them() {
        same_answer(
            "SELECT page, n % 2 AS parity, count(*) AS rows FROM t \
             GROUP BY page, n % 2 ORDER BY page NULLS FIRST, parity NULLS FIRST",
        )
        .await;
    }

    #[tokio::test]
    async fn distinct_aggregates_are_left_to_datafusion() {
        let (_, plan) = answer(
            &context(true),
            "SELECT page, count(DISTINCT n) FROM t GROUP BY page",
        )
        .await;
        let (actual, _) = answer(
            &context(true),
            "SELECT page, count(DISTINCT n) AS d FROM t GROUP BY page ORDER BY page NULLS FIRST",
        )
        .await;
        let (expected, _) = answer(
            &context(false),
            "SELECT page_text AS page, count(DISTINCT n) AS d FROM t GROUP BY page_text \
             ORDER BY page NULLS FIRST",
        )
        .await;
        assert_eq!(actual, expected);
        // DataFusion may plan the distinct as a group-by on (page, n) first, which the rule
        // may take; what it must not take is an aggregate marked DISTINCT.
        assert!(!plan.contains(
            "DictionaryAggregateExec: mode=Single, gby=[page@0 as page], aggr=[count(DISTINCT"
        ));
    }
}
