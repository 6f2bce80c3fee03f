//! The tenant barrier: the plan node every tenant-scoped scan is wrapped in.
//!
//! It keeps the rows whose tenant column equals the scope's tenant and nothing else, and it is
//! deliberately opaque to the optimizer: no filter, projection, limit or dynamic filter from
//! above is pushed through it. DataFusion's own `FilterExec` would be pushed into the Parquet
//! reader together with the query's filters, where a user expression (a cast that fails, a
//! division by zero) could run on another tenant's rows before the tenant test and report the
//! offending value in its error message. Below this node only the tenant test and the
//! statistics-based pruning run; every expression of the query runs above it, on the tenant's
//! rows only.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::StreamExt;

/// Passes on only the rows of one tenant.
#[derive(Debug)]
pub struct TenantFilterExec {
    input: Arc<dyn ExecutionPlan>,
    /// `tenant_column = '<tenant>'`, over the input's schema.
    predicate: Arc<dyn PhysicalExpr>,
    tenant: String,
    properties: Arc<PlanProperties>,
}

impl TenantFilterExec {
    /// Wraps `input`; `predicate` must be the tenant test over `input`'s schema.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        predicate: Arc<dyn PhysicalExpr>,
        tenant: String,
    ) -> Self {
        // Dropping rows keeps the input's partitioning, order and constants.
        let properties = Arc::clone(input.properties());
        TenantFilterExec {
            input,
            predicate,
            tenant,
            properties,
        }
    }

    /// The tenant whose rows pass.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl DisplayAs for TenantFilterExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantFilterExec: {}", self.predicate)
    }
}

impl ExecutionPlan for TenantFilterExec {
    fn name(&self) -> &'static str {
        "TenantFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.predicate)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(input), true) = (children.pop(), children.is_empty()) else {
            return Err(DataFusionError::Internal(
                "TenantFilterExec takes exactly one child".into(),
            ));
        };
        let properties = match options.children_properties {
            ChildrenPropertiesMode::Keep => Arc::clone(&self.properties),
            ChildrenPropertiesMode::Recompute => Arc::clone(input.properties()),
        };
        Ok(Arc::new(TenantFilterExec {
            input,
            predicate: Arc::clone(&self.predicate),
            tenant: self.tenant.clone(),
            properties,
        }))
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

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let predicate = Arc::clone(&self.predicate);
        let rows = input.map(move |batch| batch.and_then(|batch| keep_tenant(&batch, &predicate)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::LowerEqual
    }

    // Statistics stay DataFusion's default (unknown): exact input statistics must never reach
    // the aggregate optimizer, which would answer COUNT(*) for every tenant from them.
}

fn keep_tenant(batch: &RecordBatch, predicate: &Arc<dyn PhysicalExpr>) -> Result<RecordBatch> {
    let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = mask.as_boolean_opt().ok_or_else(|| {
        DataFusionError::Internal("the tenant predicate did not evaluate to booleans".into())
    })?;
    // A NULL comparison (a NULL tenant) drops the row.
    Ok(filter_record_batch(batch, mask)?)
}
