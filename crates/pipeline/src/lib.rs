//! # tributary-pipeline
//!
//! The functions part of DESIGN.md: what happens to an event between the stream and the
//! curated lake. Per event, in this order:
//!
//! 1. **validation** ([`registry`]): the event type's JSON Schema, from the versioned schema
//!    registry, checks the event; every violation is kept with its JSON pointer and rule;
//! 2. **enrichment** ([`enrich`]): user agent, referrer class and host, UTM campaign from the
//!    page URL, page host, geography from the IP — then the IP is anonymized;
//! 3. **privacy** ([`privacy`]): configured PII fields are tokenized with a keyed HMAC
//!    (deterministic, so joins on them still work) or dropped;
//! 4. **dedup** ([`dedup`]): an event id seen before, at another stream position, within the
//!    window is a producer retry and is counted once.
//!
//! The result is an [`Outcome`]: curated, quarantined (with every reason) or a duplicate.
//! A bad event never blocks the shard: it becomes a quarantine row and the consumer moves on.
//! The raw archive is written before any of this and is never changed by it, so every outcome
//! can be recomputed by replay after a schema or configuration fix.
#![deny(missing_docs)]

mod config;
pub mod dedup;
pub mod enrich;
mod error;
pub mod http;
pub mod openapi;
mod pipeline;
pub mod privacy;
pub mod registry;
pub mod telemetry;

pub use config::{PipelineConfig, UnknownEventTypes};
pub use error::PipelineError;
pub use http::router;
pub use pipeline::{Outcome, Pipeline, Quarantined, StreamPosition};
pub use telemetry::StageCounts;
