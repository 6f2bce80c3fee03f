//! # tributary-lake
//!
//! The lake of DESIGN.md (the delivery stream + object store part): a checkpointed consumer of
//! the stream that writes
//!
//! - the **raw archive** (`raw/events/dt=…/hour=…`): every stream record exactly as the
//!   collector acknowledged it, in zstd Parquet with the fields replay and tenant isolation need
//!   beside it — the source of every replay;
//! - **curated events** (`curated/events/dt=…/event_family=…`): the DESIGN.md schema in zstd
//!   Parquet, `properties` as `map<string,string>`, configured properties promoted to typed
//!   columns, rows sorted by (tenant_id, ts), page statistics and the page index on.
//!
//! Files go live through the catalog's commit protocol ([`commit`]): staged, uploaded, then
//! committed together with the consumer checkpoint, so a crash at any point leaves neither a
//! missing nor a duplicated event. [`replay`] runs stored events (quarantine, or a range of the
//! raw archive) through the pipeline again and swaps the result in with one commit.
//! [`compaction`] merges small files into target-size ones and [`lifecycle`] drops partitions
//! past retention. Storage goes through `object_store`: local disk
//! now ([`local_store`]), S3 without code changes.
#![deny(missing_docs)]

pub mod buffer;
pub mod commit;
pub mod compaction;
mod config;
mod error;
pub mod family;
pub mod fault;
pub mod layout;
pub mod lifecycle;
pub mod parquet_io;
pub mod raw_buffer;
pub mod replay;
mod routing;
pub mod schema;
mod store;
pub mod telemetry;
mod writer;

pub use config::{CompactionConfig, LakeConfig, LakeRetentionConfig};
pub use error::LakeError;
pub use store::local_store;
pub use writer::{FlushSummary, LakeTables, LakeWriter, WriterRole, archive_consumer};
