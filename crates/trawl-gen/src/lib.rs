//! # trawl-gen
//!
//! A seeded, deterministic synthetic cloud estate and the VPC flow logs and
//! metadata events it would produce — for `trawl generate`, `trawl demo`,
//! the end-to-end tests and benches.
//!
//! ```text
//! EstateConfig ──► Estate::tick (one simulated second)
//!                    ├─ churn: instances replaced, IPs returned to a small
//!                    │  per-region pool and reused by other apps
//!                    │  ──► metadata events (assign / release / snapshot)
//!                    ├─ conversations: Zipf callers → their dependencies,
//!                    │  request + reply logged at both ends, rejected probes,
//!                    │  AWS services, the internet
//!                    │  ──► flow-log lines, grouped by (account, region)
//!                    └─ Truth: totals and bytes per (src app, dst app),
//!                       from the generator's own knowledge of who sent what
//! files::write_estate ──► S3 delivery layout (.log.gz per account, region
//!                        and 5 minutes), metadata.jsonl, ip-ranges.json, truth.json
//! ```
//!
//! The same config (seed included) always yields the same bytes.

pub mod estate;
pub mod files;
pub mod names;
pub mod truth;

pub use estate::{
    Cardinality, Estate, EstateConfig, LogGroup, TickOutput, default_format, v5_all_fields_format,
};
pub use files::{FilesReport, Layout, WriteError, write_estate};
pub use truth::Truth;
