//! `trawl-store`: the built-in OLAP store. It indexes attributed flows as
//! they stream and answers SQL over them, with no external database.
//!
//! ```text
//!  EnrichedFlow ──► Store::add_batch ──► open buckets (memory, per table and time chunk)
//!                                              │  seal: watermark passed, memory cap, or caller
//!                                              ▼
//!                                   Parquet segments + MANIFEST (atomic, with source positions)
//!                                              │  maintain: compaction, retention
//!  SqlEngine (DataFusion) ◄── StoreTable: open buckets ∪ segments, pruned by time
//!        (route: fine rollup → coarser one when equal)
//!                        ◄── workloads, ip_history: the attribution index
//! ```
//!
//! Tables (names are public interface): `flows` (one row per record, every
//! field plus enrichment; hours), `flows_1m`, `flows_1h` and `flows_1d`
//! (rollups over the dimensions of [`dims::Dim`], measures `bytes`,
//! `packets`, `flows`; which dimensions each keeps is configurable; the
//! coarser two are derived from `flows_1m`), `workloads` and `ip_history`.
//!
//! Modules: [`dims`] (dimensions, service-port rule), [`dict`] (string
//! codes), [`rollup`] and [`detail`] (open buckets), [`distinct`] (how
//! many rows a regroup leaves), [`schema`], [`segment`]
//! (Parquet files), [`manifest`] (durable state), [`store`] (the data flow),
//! [`sql`] (DataFusion), [`route`] (answering from a coarser rollup),
//! `tail` (the live feed of stored `flows` rows and its SQL filter:
//! [`TailFeed`], [`TailFilter`]).

mod coded_text;
pub mod commit;
pub mod detail;
pub mod dict;
mod dict_chunk;
mod dictionary_args;
pub mod dims;
pub mod distinct;
pub mod error;
mod group_text;
pub mod manifest;
pub mod readonly;
pub mod rollup;
pub mod route;
mod row_table;
pub mod schema;
pub mod segment;
pub mod segment_cache;
pub mod sql;
pub mod store;
mod tail;

pub use commit::SealJob;
pub use dims::{Dim, service_port};
pub use error::StoreError;
pub use manifest::{Manifest, SegmentMeta};
pub use rollup::Measures;
pub use schema::RollupSpec;
pub use segment_cache::{CacheStats, SegmentCache};
pub use store::CompactionJob;
pub use tail::{
    FILTER_BYTES_MAX, RecvError, TAIL_BATCHES_MAX, TailError, TailFeed, TailFilter,
    TailSubscription, TryRecvError,
};

pub use readonly::Refusal;
pub use sql::{
    Access, EngineLimits, QueryResult, ResultLimits, SharedIndex, SharedStore, SqlEngine, SqlError,
};
pub use store::{
    DETAIL_TABLE, DetailSpec, EnrichedFlow, SealReport, Store, StoreConfig, StoreStats,
    read_detail_segment,
};
