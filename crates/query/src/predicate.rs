//! [`SqlRowFilter`]: a SQL boolean expression (`event_type = 'track:Order Completed' AND dt >=
//! '2026-11-20'`) evaluated on record batches, for `tributary replay quarantine --where`.
//!
//! The expression is planned once against the batches' schema with DataFusion's own SQL
//! parser, type coercion and functions, so it means exactly what the same `WHERE` clause
//! means in a query over the table.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use tributary_lake::replay::RowFilter;

use crate::error::QueryError;

/// A SQL predicate over the columns of one schema.
#[derive(Debug)]
pub struct SqlRowFilter {
    sql: String,
    expr: Arc<dyn PhysicalExpr>,
}

impl SqlRowFilter {
    /// Plans `sql` against `schema`. Errors name what is wrong: unknown column, type
    /// mismatch, or an expression that is not true/false.
    pub fn parse(sql: &str, schema: SchemaRef) -> Result<SqlRowFilter, QueryError> {
        crate::complexity::check(sql)?;
        let context = SessionContext::new();
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|error| QueryError::Internal(error.to_string()))?;
        let expr = context.parse_sql_expr(sql, &df_schema)?;
        let expr = context.create_physical_expr(expr, &df_schema)?;
        let kind = expr
            .data_type(schema.as_ref())
            .map_err(|error| QueryError::InvalidSql(error.to_string()))?;
        if kind != DataType::Boolean {
            return Err(QueryError::InvalidSql(format!(
                "the predicate {sql:?} is of type {kind}; it must be true or false per row"
            )));
        }
        Ok(SqlRowFilter {
            sql: sql.to_string(),
            expr,
        })
    }
}

impl RowFilter for SqlRowFilter {
    fn select(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        let value = self
            .expr
            .evaluate(batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(|error| format!("{:?}: {error}", self.sql))?;
        value
            .as_boolean_opt()
            .cloned()
            .ok_or_else(|| format!("{:?} did not give true/false", self.sql))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["page", "track:Buy", "track:View"])),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn selects_like_a_where_clause() {
        let batch = batch();
        let filter =
            SqlRowFilter::parse("event_type LIKE 'track:%' AND n > 2", batch.schema()).unwrap();
        let chosen = filter.select(&batch).unwrap();
        let chosen: Vec<Option<bool>> = chosen.iter().collect();
        // NULL > 2 is NULL: not chosen, as in SQL.
        assert_eq!(chosen, vec![Some(false), None, Some(true)]);
        let all = SqlRowFilter::parse("true", batch.schema()).unwrap();
        assert_eq!(all.select(&batch).unwrap().true_count(), 3);
    }

    #[test]
    fn errors_name_the_problem() {
        let schema = batch().schema();
        let unknown = SqlRowFilter::parse("evnt_type = 'page'", schema.clone()).unwrap_err();
        assert!(unknown.to_string().contains("evnt_type"), "{unknown}");
        let not_boolean = SqlRowFilter::parse("n + 1", schema).unwrap_err();
        assert!(
            not_boolean.to_string().contains("true or false"),
            "{not_boolean}"
        );
    }
}
