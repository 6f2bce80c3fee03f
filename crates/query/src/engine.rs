//! [`QueryEngine`]: SQL text in, Arrow batches out, within the scope, row limit and time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SQLOptions;
use futures::StreamExt;
use object_store::ObjectStore;
use tributary_catalog::Catalog;

use crate::config::QueryConfig;
use crate::error::QueryError;
use crate::provider::LakeTable;
use crate::scope::Scope;
use crate::session::{base_state, query_state};
use crate::stats::{ScanCounter, ScanStats};

/// Runs SQL over the catalog's tables. Cheap to clone; clones share the runtime (and its
/// Parquet metadata cache).
#[derive(Clone)]
pub struct QueryEngine {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<dyn Catalog>,
    config: QueryConfig,
    base: SessionState,
    lake: ObjectStoreUrl,
    runtime: Option<tokio::runtime::Handle>,
    /// One permit per query that may run at once (`max_concurrent_queries`).
    turns: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("config", &self.inner.config)
            .field("lake", &self.inner.lake.as_str())
            .finish_non_exhaustive()
    }
}

/// The answer to one query.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// The result's columns.
    pub schema: SchemaRef,
    /// The rows, at most the row limit of them.
    pub batches: Vec<RecordBatch>,
    /// Rows in `batches`.
    pub rows: usize,
    /// Whether the query had more rows than the limit (they were dropped).
    pub truncated: bool,
    /// How much of the lake the query read.
    pub scan: ScanStats,
    /// Planning and execution time.
    pub elapsed: Duration,
}

/// A planned query: its physical plan, ready to run or to print.
#[derive(Debug)]
pub struct PlannedQuery {
    /// The optimized physical plan.
    pub plan: Arc<dyn ExecutionPlan>,
    /// What its scans will read (known once planned).
    pub scan: ScanStats,
    task: Arc<TaskContext>,
}

impl PlannedQuery {
    /// The result's columns.
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Runs the plan, every row, with no limit or timeout (the CLI's path: it writes whole
    /// results to files).
    pub fn execute(&self) -> Result<SendableRecordBatchStream, QueryError> {
        Ok(execute_stream(
            Arc::clone(&self.plan),
            Arc::clone(&self.task),
        )?)
    }
}

impl QueryEngine {
    /// An engine over `catalog`'s tables, reading their files from `store` (rooted at the lake
    /// root: catalog paths are relative to it).
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        config: QueryConfig,
    ) -> Result<QueryEngine, QueryError> {
        let (base, lake) = base_state(store, &config)?;
        let turns = Arc::new(tokio::sync::Semaphore::new(
            config.max_concurrent_queries.max(1),
        ));
        Ok(QueryEngine {
            inner: Arc::new(Inner {
                catalog,
                config,
                base,
                lake,
                runtime: None,
                turns,
            }),
        })
    }

    /// Runs queries on `runtime` instead of the caller's: DataFusion's CPU-heavy work then stays
    /// off the runtime that serves HTTP and ingest.
    pub fn with_runtime(self, runtime: tokio::runtime::Handle) -> QueryEngine {
        let inner = &self.inner;
        QueryEngine {
            inner: Arc::new(Inner {
                catalog: Arc::clone(&inner.catalog),
                config: inner.config.clone(),
                base: inner.base.clone(),
                lake: inner.lake.clone(),
                runtime: Some(runtime),
                turns: Arc::clone(&inner.turns),
            }),
        }
    }

    /// The engine's limits.
    pub fn config(&self) -> &QueryConfig {
        &self.inner.config
    }

    /// Runs one SQL statement within `scope`, answering at most `config.max_rows` rows and
    /// giving up after `config.timeout`.
    pub async fn execute(&self, sql: &str, scope: Scope) -> Result<QueryOutput, QueryError> {
        self.execute_with_limit(sql, scope, self.inner.config.max_rows)
            .await
    }

    /// Like [`Self::execute`] with a row limit of `max_rows`, which cannot exceed the
    /// configured one.
    pub async fn execute_with_limit(
        &self,
        sql: &str,
        scope: Scope,
        max_rows: usize,
    ) -> Result<QueryOutput, QueryError> {
        let max_rows = max_rows.min(self.inner.config.max_rows);
        let timeout = self.inner.config.timeout;
        let engine = self.clone();
        let sql = sql.to_string();
        let work = async move {
            let started = Instant::now();
            // Waiting for a turn counts against the timeout: a caller waits at most that in all.
            let Ok(Ok(_turn)) =
                tokio::time::timeout(timeout, Arc::clone(&engine.inner.turns).acquire_owned())
                    .await
            else {
                return Err(QueryError::Timeout(timeout));
            };
            tokio::time::timeout(
                timeout.saturating_sub(started.elapsed()),
                engine.run(&sql, scope, max_rows),
            )
            .await
            .unwrap_or(Err(QueryError::Timeout(timeout)))
        };
        match &self.inner.runtime {
            Some(runtime) => {
                // Aborted if the caller goes away (a client that hung up stops its query).
                let mut task = AbortOnDrop(runtime.spawn(work));
                match (&mut task.0).await {
                    Ok(result) => result,
                    Err(error) => Err(QueryError::Internal(format!("query task failed: {error}"))),
                }
            }
            None => work.await,
        }
    }

    /// Plans one SQL statement within `scope` without running it (for `EXPLAIN`-like output
    /// and for streaming every row, see [`PlannedQuery::execute`]).
    pub async fn plan(&self, sql: &str, scope: Scope) -> Result<PlannedQuery, QueryError> {
        crate::complexity::check(sql)?;
        let counter = Arc::new(ScanCounter::default());
        let state = self.session(&scope, &counter).await?;
        let logical = state.create_logical_plan(sql).await.map_err(|error| {
            let error = QueryError::from(error);
            match error {
                QueryError::InvalidSql(message) if message.contains("single SQL statement") => {
                    QueryError::InvalidSql(format!("{message}: send one statement per request"))
                }
                other => other,
            }
        })?;
        check_allowed(&logical, &scope)?;
        let plan = state.create_physical_plan(&logical).await?;
        Ok(PlannedQuery {
            plan,
            scan: counter.snapshot(),
            task: state.task_ctx(),
        })
    }

    /// A session whose catalog holds every catalog table, seen through `scope`.
    async fn session(
        &self,
        scope: &Scope,
        counter: &Arc<ScanCounter>,
    ) -> Result<SessionState, QueryError> {
        let inner = &self.inner;
        let tables = inner.catalog.tables().await?;
        let providers = tables
            .iter()
            .map(|info| {
                let table = LakeTable::try_new(
                    Arc::clone(&inner.catalog),
                    info,
                    scope.clone(),
                    inner.lake.clone(),
                )?
                .with_counter(Arc::clone(counter));
                Ok((
                    info.def.name.clone(),
                    Arc::new(table) as Arc<dyn TableProvider>,
                ))
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        query_state(&inner.base, providers)
    }

    async fn run(
        &self,
        sql: &str,
        scope: Scope,
        max_rows: usize,
    ) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        let planned = self.plan(sql, scope).await?;
        let schema = planned.schema();
        let mut stream = planned.execute()?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if rows + batch.num_rows() > max_rows {
                // One row past the limit is enough to know the answer is truncated; dropping
                // the stream cancels the rest of the work.
                let keep = max_rows - rows;
                if keep > 0 {
                    batches.push(batch.slice(0, keep));
                }
                rows = max_rows;
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
        Ok(QueryOutput {
            schema,
            batches,
            rows,
            truncated,
            scan: planned.scan,
            elapsed: started.elapsed(),
        })
    }
}

/// Refuses what a read-only SQL endpoint must not run: DDL (`CREATE EXTERNAL TABLE` could
/// name any path), DML and `COPY` (writes), statements (`SET` could turn off the limits), and,
/// for a tenant, `EXPLAIN ANALYZE`, whose scan metrics count rows of every tenant in a file.
fn check_allowed(plan: &LogicalPlan, scope: &Scope) -> Result<(), QueryError> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|error| {
            QueryError::NotAllowed(format!(
                "{}; only queries (SELECT, WITH, VALUES, EXPLAIN, DESCRIBE, SHOW) are allowed",
                error.message()
            ))
        })?;
    if scope.tenant().is_some() {
        // Plain EXPLAIN shows the plan only; the other forms show what the scans found in
        // (or know about) files that also hold other tenants' rows.
        let revealing = plan
            .exists(|node| {
                Ok(match node {
                    LogicalPlan::Analyze(_) => true,
                    LogicalPlan::Explain(explain) => {
                        explain.verbose || explain.show_statistics == Some(true)
                    }
                    _ => false,
                })
            })
            .unwrap_or(true);
        if revealing {
            return Err(QueryError::NotAllowed(
                "EXPLAIN ANALYZE, EXPLAIN VERBOSE and EXPLAIN (COSTS) are only available to \
                 admin keys; use plain EXPLAIN"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
