//! Why a query failed, shaped by what the caller does next: fix the SQL, retry later, or report
//! a bug. `http.rs` is the one place these become HTTP answers.

use std::time::Duration;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tributary_catalog::CatalogError;

/// A query that did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL could not be parsed or planned: a syntax error, an unknown table or column, a type
    /// mismatch, several statements in one request. The message is DataFusion's, which names
    /// the table or column at fault.
    #[error("{0}")]
    InvalidSql(String),
    /// A statement that is parsed but not allowed here: DDL (`CREATE EXTERNAL TABLE`, `CREATE
    /// VIEW`, `DROP`), DML (`INSERT`, `COPY`), statements (`SET`, `PREPARE`, transactions), or
    /// `EXPLAIN ANALYZE` under a tenant scope.
    #[error("{0}")]
    NotAllowed(String),
    /// The statement nests its expressions deeper than the engine allows (see
    /// `complexity.rs`): planning it could exhaust the stack.
    #[error("{0}")]
    TooComplex(String),
    /// The query was valid but failed while running because of its expressions and the data,
    /// e.g. a cast that does not fit, a division by zero or an overflow.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its time limit and was cancelled.
    #[error("query did not finish within {} s (query.timeout)", .0.as_secs_f64())]
    Timeout(Duration),
    /// The query needed more memory than `query.memory_limit_bytes` left it.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// The catalog could not be read.
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// A table's schema recorded in the catalog is not a readable Arrow schema.
    #[error("table {table:?} has an unreadable schema in the catalog: {message}")]
    Schema {
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// Storage failed (object store, I/O, a corrupt Parquet file) or a bug.
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// A short machine-readable code, stable for clients.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::InvalidSql(_) => "invalid_sql",
            QueryError::NotAllowed(_) => "not_allowed",
            QueryError::TooComplex(_) => "too_complex",
            QueryError::Execution(_) => "query_failed",
            QueryError::Timeout(_) => "timeout",
            QueryError::ResourcesExhausted(_) => "resources_exhausted",
            QueryError::Catalog(_) => "catalog_unavailable",
            QueryError::Schema { .. } | QueryError::Internal(_) => "internal",
        }
    }

    /// Whether the caller caused the error (and so it is not logged as a server failure).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            QueryError::InvalidSql(_)
                | QueryError::NotAllowed(_)
                | QueryError::TooComplex(_)
                | QueryError::Execution(_)
        )
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        // A scan's catalog failure reaches DataFusion as an external error; give it back its
        // own variant (the catalog is unavailable, not the SQL wrong).
        match error {
            DataFusionError::External(inner) => match inner.downcast::<CatalogError>() {
                Ok(catalog) => QueryError::Catalog(*catalog),
                Err(other) => classify(&DataFusionError::External(other)),
            },
            other => classify(&other),
        }
    }
}

/// Sorts a DataFusion error by its innermost cause: planning errors are the SQL's fault,
/// compute errors the expression's, storage and internal errors ours.
fn classify(error: &DataFusionError) -> QueryError {
    let message = error.strip_backtrace();
    let root = error.find_root();
    match root {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => QueryError::InvalidSql(message),
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::IoError(..) | ArrowError::ExternalError(_) => QueryError::Internal(message),
            _ => QueryError::Execution(message),
        },
        DataFusionError::Execution(_) => QueryError::Execution(message),
        DataFusionError::ResourcesExhausted(_) => QueryError::ResourcesExhausted(message),
        _ => QueryError::Internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_errors_are_the_callers_and_storage_errors_ours() {
        let plan = DataFusionError::Plan("table 'nope' not found".into());
        assert!(matches!(QueryError::from(plan), QueryError::InvalidSql(_)));
        let cast = DataFusionError::ArrowError(
            Box::new(ArrowError::CastError("cannot cast 'x' to Int32".into())),
            None,
        );
        let wrapped = DataFusionError::Context("while running".into(), Box::new(cast));
        assert!(matches!(
            QueryError::from(wrapped),
            QueryError::Execution(_)
        ));
        let io = DataFusionError::IoError(std::io::Error::other("disk"));
        let error = QueryError::from(io);
        assert!(matches!(error, QueryError::Internal(_)));
        assert!(!error.is_client_error());
        let catalog = DataFusionError::External(Box::new(CatalogError::UnknownTable("t".into())));
        assert!(matches!(QueryError::from(catalog), QueryError::Catalog(_)));
    }
}
