//! # tributary-query
//!
//! Tributary's SQL (DESIGN.md: the Athena part): DataFusion over the tables the catalog knows,
//! reading the lake's Parquet files, answering over HTTP (`POST /v1/query`) and to the CLI.
//!
//! ```text
//!  POST /v1/query ─▶ http: key → Scope ─▶ QueryEngine ─▶ DataFusion session (one per query)
//!  tributary query ─────────────────────▶     │            tables = every catalog table,
//!                                             │            each a LakeTable in that Scope
//!                                             ▼
//!   LakeTable::scan: filters ─▶ time range ─▶ Catalog::snapshot (live files of one commit)
//!                    ─▶ prune files by partition values, event time, tenant (pruning.rs)
//!                    ─▶ Parquet scan (predicate pushdown, page index, exact row counts;
//!                       low-cardinality strings kept as dictionaries, dictionary.rs)
//!                    ─▶ TenantFilterExec (Scope::Tenant only)  ─▶  the rest of the plan
//! ```
//!
//! **One snapshot per scan.** A scan reads the files of one catalog commit, so it sees a
//! compaction's inputs or its output, never both, and never a staged file. Nothing lists the
//! object store.
//!
//! **Pruning before opening.** The catalog keeps, per file, its partition values, row count and
//! min/max of the time and tenant columns. A filter on the time column narrows the catalog's
//! listing; partition-only filters are decided exactly per file; everything else goes through
//! DataFusion's `PruningPredicate` over those facts. A one-hour query over 30 days of data opens
//! the files of that hour. Inside the files, Parquet row-group statistics and the page index
//! skip more, and exact row counts let an unfiltered `COUNT(*)` come from the catalog alone.
//!
//! **Isolation below the SQL.** A read key's queries run with [`Scope::Tenant`]: every table
//! provider of the session wraps its scan in [`TenantFilterExec`], a plan node the optimizer
//! cannot push anything through, so the tenant test runs on every row before any expression of
//! the query sees it — whatever the SQL joins, nests, unions or names (`raw_events`,
//! `information_schema` included). No string of the SQL is inspected for this. The session
//! around it can reach nothing else: only catalog tables are registered, DDL, DML, `COPY` and
//! `SET` are refused, the only object store is the lake, and URL tables are off.
//!
//! Module map: [`scope`] (who sees what), [`config`] (`[query]` section), [`provider`]
//! (`LakeTable`), `pruning`/`time_range` (file pruning), [`tenant`] (the barrier), `session`
//! (DataFusion setup), [`dictionary_aggregate`] (`GROUP BY` on dictionaries), `complexity` (the nesting limit), [`predicate`] (a SQL `WHERE` on batches, for replays), [`engine`] (limits, timeout, entry points), [`format`](mod@format) (JSON, CSV,
//! Arrow), [`http`] (the endpoint), [`error`], [`stats`], [`telemetry`].
//!
//! ## SQL over the event model
//!
//! - struct fields: `context['page']['path']`, or `get_field(context, 'page')`;
//! - map values: `properties['item_id']` (NULL when the key is absent);
//! - partitions are ordinary columns: `WHERE dt = '2026-11-23' AND event_family = 'page'`;
//! - event time: `WHERE ts >= TIMESTAMP '2026-11-23T10:00:00Z'`.
#![deny(missing_docs)]

mod complexity;
pub mod config;
mod dictionary;
pub mod dictionary_aggregate;
pub mod engine;
pub mod error;
pub mod format;
pub mod http;
pub mod openapi;
pub mod predicate;
pub mod provider;
mod pruning;
pub mod scope;
mod session;
pub mod stats;
pub mod telemetry;
pub mod tenant;
mod time_range;

pub use config::QueryConfig;
pub use engine::{PlannedQuery, QueryEngine, QueryOutput};
pub use error::QueryError;
pub use format::Format;
pub use http::router;
pub use provider::LakeTable;
pub use scope::Scope;
pub use session::{CATALOG, LAKE_URL, SCHEMA};
pub use stats::ScanStats;
pub use tenant::TenantFilterExec;
