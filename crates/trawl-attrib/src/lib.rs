//! # trawl-attrib
//!
//! Time-aware attribution: which workload owned an IP address *at a given
//! moment*. IPs float between applications minute to minute, so a flow from
//! 10.1.2.3 at 14:05 belongs to whoever held 10.1.2.3 at 14:05.
//!
//! ## Data flow
//!
//! ```text
//! metadata events (JSON lines, CSV snapshots) ──► AttributionIndex::apply ─┐
//! flow records at an interface (heartbeats)    ──► learn_from_flow ─────────┤
//!   (the interface's owners at the flow's time: interface.rs)               │
//! [[networks]], ip-ranges.json                 ──► add_networks / add_aws_ip_ranges
//!                                                                           ▼
//!                       owner_at(ip, t) ──► Attribution { rule, owner, interval, settled }
//! ```
//!
//! The crate knows flow records (to learn from them) but nothing of storage
//! or serving. See [`index`] for the rules and their order, [`event`] for the
//! public event format, [`timeline`] for why delivery order does not matter,
//! [`interface`] for shared and moving interfaces.

pub mod event;
mod flatmap;
pub mod index;
pub mod interface;
mod ipmap;
pub mod newest;
mod persist;
pub mod prefix;
pub mod time;
pub mod timeline;
pub mod workload;

pub use event::{EventError, MetadataEvent, SnapshotOwner, read_csv_snapshot, read_json_lines};
pub use index::{
    ApplyError, Attribution, AttributionIndex, IndexConfig, IndexStats, IpRecord, LearnedSpans,
    OVERRIDE_RECORD_SECS_MAX, PLACEMENTS_PER_IP_MAX, Rule, SOURCE_POSITION_BYTES_MAX,
    SOURCE_POSITIONS_MAX, Span,
};
pub use interface::InterfaceOwner;
pub use newest::{NewestLimits, NewestTime, Observed, wall_clock_secs};
pub use persist::PersistError;
pub use prefix::{IpRangesError, NetworkEntry, is_private};
pub use time::{Secs, format_time, parse_time};
pub use timeline::{Held, Mark, Timeline};
pub use workload::{NO_OWNER, Workload, WorkloadId, WorkloadTable};
