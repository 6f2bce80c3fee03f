//! # tributary-model
//!
//! The shared vocabulary of Tributary: the event envelope every component speaks, and the few
//! identifiers that cross crate boundaries. It sits at the very top of the data flow and does no
//! I/O, so every crate may depend on it without pulling in a runtime.
//!
//! ```text
//! producers ─▶ collector ─▶ stream ─▶ pipeline ─▶ lake / index / identity / router
//!                 └──────────── all speak `Event` (this crate) ────────────┘
//! ```
//!
//! The envelope follows DESIGN.md's event model: fixed columns for what every event has, the
//! page-specific fields in `properties`.
#![deny(missing_docs)]

mod decode;
mod event;
mod time;

pub use event::{Campaign, Enrichment, Event, EventContext, PageContext};
pub use time::{TimestampMicros, now_micros};
