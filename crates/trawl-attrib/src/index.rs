//! The attribution index: applies metadata events and flow heartbeats, and
//! answers [`AttributionIndex::owner_at`] — which workload held an IP at a
//! given time, and which rule said so.
//!
//! ## Rules, in order
//!
//! 1. **Declared**: an ownership interval from metadata events covers `t`.
//! 2. **Learned**: flows captured at an interface whose workload is known
//!    at the flow's time (`interface` events, and `assign` or snapshot
//!    entries with `interface_id`: see [`crate::interface`]) confirm that
//!    workload as the owner of the interface's own address over the flows'
//!    `[start, end]`. A flow teaches nothing when the interface has several
//!    declared owners then (a shared ENI: EKS pods on their node's ENI), or
//!    when the address is declared to another workload over the flow's
//!    time (counted in [`IndexStats::learned_conflicts`]). Learned spans
//!    are kept apart from declared intervals and answer only when no
//!    declared interval covers `t`, with one exception:
//!
//! 2a. **Contradicted declarations.** AWS writes an interface's own address
//!     as the local side of its records (the source of egress records, the
//!     destination of ingress ones; a forwarded packet's foreign address goes
//!     to `pkt-srcaddr`/`pkt-dstaddr`, the interface's primary address to
//!     `srcaddr`/`dstaddr`), and a private IP is on one interface of a VPC at
//!     a time. So when a flow at interface I, whose one owner is B, shows
//!     address X while X is declared to A *on another interface* (an
//!     `assign` or snapshot entry naming it; or on I itself, before I was
//!     attached to B after it was A's), A's declaration is out of date: A's
//!     release and B's assign were lost. The flow is learned as a span
//!     *overriding A* (counted in [`IndexStats::learned_overrides`]): it
//!     answers over A's declared interval, and over no other. Any mark of
//!     the IP declared later than the span's start (A asserted again, a
//!     snapshot, another owner, a release; whenever it arrives) ends the
//!     span's override there: the newest word wins. A declaration that names
//!     no interface is never overridden (a Kubernetes pod's IP, declared
//!     without its node's ENI), a shared interface teaches nothing, and one
//!     record overrides at most [`OVERRIDE_RECORD_SECS_MAX`] (AWS aggregates
//!     over 600 s at most; a forged record with a far `end` does not take an
//!     IP for long). Private ranges reused across VPCs would defeat this
//!     rule (as they defeat any attribution keyed by IP alone).
//! 3. **Network**, **AwsIpRanges**: the longest matching user prefix, then
//!    AWS's published ranges.
//! 4. **Internet** for a public address, **Unknown** for a private one.
//!
//! ## Order tolerance
//!
//! Declared ownership is the set of marks of [`crate::timeline`], which is
//! the same whatever order events arrive in. A snapshot also releases every
//! IP it does not list; it is remembered for the reorder window so that an
//! assignment arriving late (but within the window) is released by the
//! snapshots taken after it. Events further behind the newest event than
//! the window are still applied and counted as `late_beyond_window`.
//!
//! ## Horizon
//!
//! The horizon is the time up to which metadata is taken to be complete:
//! the newest event time minus the reorder window, or a later time a source
//! vouches for ([`AttributionIndex::advance_horizon`]). An answer for
//! `t <= horizon` is *settled*; the pipeline holds flows whose answer is not
//! settled, up to a configured delay. Only believed times count as "newest"
//! (`newest.rs`): an event stamped past the wall clock plus
//! `future_slack_secs`, or that far ahead of the newest event until others
//! confirm it, is applied but moves neither retention nor the horizon.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use trawl_flowlog::{FlowDirection, FlowRecord, LogStatus};

use crate::event::MetadataEvent;
use crate::interface::{InterfaceOwner, InterfaceRecord};
use crate::ipmap::IpMap;
use crate::newest::{NewestLimits, NewestTime, Observed, wall_clock_secs};
use crate::prefix::{NetworkEntry, PrefixSource, PrefixTables, is_private};
use crate::time::{Secs, to_stored};
use crate::timeline::{Held, Mark, Timeline};
use crate::workload::{NO_OWNER, Workload, WorkloadId, WorkloadTable};

/// Limits and windows of an index; every one has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// How far behind the newest event an event may arrive and still be
    /// placed exactly (seconds). Also how long snapshots are remembered.
    pub reorder_window_secs: u32,
    /// History kept behind the newest event (seconds); older intervals are pruned.
    pub retention_secs: u32,
    /// Heartbeats of one owner closer than this (seconds) join one learned span.
    pub learned_gap_secs: u32,
    /// Most learned spans kept per IP (oldest dropped first).
    pub learned_spans_per_ip_max: usize,
    /// Most snapshots remembered for late events.
    pub snapshots_retained_max: usize,
    /// Most ownership marks held; past it, history is pruned from the oldest end.
    pub marks_max: usize,
    /// How far past the wall clock, or past the newest believed event, an
    /// event's time may be and still move the newest event time, retention
    /// and the horizon (seconds; see `newest.rs`). A later event (a broken
    /// clock) is applied and counted in [`IndexStats::future_events`] but
    /// moves none of them until later events confirm its time.
    pub future_slack_secs: u32,
    /// The wall clock in Unix seconds; `None`: the system's. For tests.
    pub wall_clock_secs: Option<u32>,
}

impl IndexConfig {
    /// How event times are believed (see [`IndexConfig::future_slack_secs`]).
    pub fn newest_limits(&self) -> NewestLimits {
        NewestLimits {
            slack_secs: self.future_slack_secs,
            ..NewestLimits::default()
        }
    }

    /// The wall clock (Unix seconds).
    pub fn wall_clock(&self) -> u32 {
        wall_clock_secs(self.wall_clock_secs)
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            reorder_window_secs: 15 * 60,
            retention_secs: 7 * 24 * 3600,
            learned_gap_secs: 120,
            learned_spans_per_ip_max: 64,
            snapshots_retained_max: 16,
            marks_max: 200_000_000,
            future_slack_secs: 3600,
            wall_clock_secs: None,
        }
    }
}

/// Which rule answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A declared ownership interval.
    Declared,
    /// A span learned from flows at the owner's interface.
    Learned,
    /// The user's CIDR table.
    Network,
    /// AWS's published ranges.
    AwsIpRanges,
    /// A public address no table knows.
    Internet,
    /// A private address no table knows.
    Unknown,
}

impl Rule {
    /// The rule's name in output (`declared`, `aws_ip_ranges`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Rule::Declared => "declared",
            Rule::Learned => "learned",
            Rule::Network => "network",
            Rule::AwsIpRanges => "aws_ip_ranges",
            Rule::Internet => "internet",
            Rule::Unknown => "unknown",
        }
    }

    /// Whether a workload interval (declared or learned) answered.
    pub const fn is_interval(self) -> bool {
        matches!(self, Rule::Declared | Rule::Learned)
    }
}

/// The answer of [`AttributionIndex::owner_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    /// Which rule answered.
    pub rule: Rule,
    /// The workload (see [`AttributionIndex::workload`]); for the class rules,
    /// a workload of kind `internet` or `unknown`.
    pub owner: WorkloadId,
    /// Start of the interval or span that answered.
    pub from: Option<Secs>,
    /// Its end, if it has ended.
    pub to: Option<Secs>,
    /// The matching prefix, for the prefix rules.
    pub prefix: Option<IpNet>,
    /// Whether metadata is complete up to the time asked about.
    pub settled: bool,
}

/// Most interfaces remembered per IP for [`AttributionIndex`]'s placements
/// (the oldest forgotten first: a declaration whose interface is forgotten
/// is never overridden).
pub const PLACEMENTS_PER_IP_MAX: usize = 16;

/// Most metadata sources whose positions the index keeps.
pub const SOURCE_POSITIONS_MAX: usize = 4096;

/// Most bytes of one source position (key and value).
pub const SOURCE_POSITION_BYTES_MAX: usize = 4096;

/// Counters of an index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Events applied.
    pub events: u64,
    /// Ownership marks that changed nothing (duplicate events, and snapshot
    /// re-assertions of an instant already marked).
    pub unchanged_marks: u64,
    /// Assignments over an interval of another owner that was never released.
    pub overlaps: u64,
    /// Different assignments of one IP at the same instant.
    pub conflicts: u64,
    /// Events further behind the newest event than the reorder window.
    pub late_beyond_window: u64,
    /// Events refused (time outside 1970–2106, before the pruned history,
    /// workload table full).
    pub refused_events: u64,
    /// Events refused because their time is before history the index
    /// pruned: placed there, they would bring back what retention removed.
    pub before_pruned_events: u64,
    /// Events stamped past the wall clock plus the future slack, or that far
    /// ahead of the newest event (applied; they did not move the newest
    /// event time or the horizon).
    pub future_events: u64,
    /// Heartbeats learned from flows.
    pub heartbeats: u64,
    /// Flows whose interface has no known workload at the flow's time.
    pub heartbeats_unmapped: u64,
    /// Flows at an interface with several declared workloads at the flow's
    /// time (a shared ENI): they teach nothing.
    pub heartbeats_shared: u64,
    /// Flows whose local side could not be told.
    pub heartbeats_without_local_side: u64,
    /// Flows whose interface's workload is not the one declared for the
    /// address over the flow's time: they teach nothing.
    pub learned_conflicts: u64,
    /// Flows that contradicted the address's declaration (it places the
    /// address on another interface) and were learned over it.
    pub learned_overrides: u64,
    /// Marks merged behind the reorder window.
    pub compacted_marks: u64,
    /// Marks pruned by retention or the memory bound.
    pub pruned_marks: u64,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The event's time does not fit 1970–2106.
    #[error("event time {0} is outside 1970-2106")]
    TimeOutOfRange(Secs),
    /// The workload table is full.
    #[error(
        "too many distinct workloads (at most {})",
        crate::workload::WORKLOADS_MAX
    )]
    WorkloadsFull,
    /// The event is older than the history the index keeps.
    #[error(
        "event time {at} is before {pruned_before}, where the ownership history was pruned (retention): it cannot be placed"
    )]
    BeforePrunedHistory {
        /// The event's time.
        at: Secs,
        /// Where the kept history begins.
        pruned_before: Secs,
    },
}

/// A span over which flows confirmed an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First second confirmed.
    pub from: u32,
    /// Last second confirmed.
    pub to: u32,
    /// The owner confirmed.
    pub owner: WorkloadId,
    /// The declared owner the flows contradicted (rule 2a of the module
    /// header), whose interval the span answers over; [`NO_OWNER`] for a
    /// span that answers only where nothing is declared.
    pub overrides: WorkloadId,
}

impl Span {
    /// Whether the span answers over `overrides`' declared interval.
    pub fn is_overriding(&self) -> bool {
        self.overrides != NO_OWNER
    }
}

/// Longest record (`end - start`, seconds) that may override a
/// declaration (rule 2a of the module header).
pub const OVERRIDE_RECORD_SECS_MAX: u32 = 900;

/// Learned spans of one IP, ordered by `from`. Kept behind one pointer
/// (null when there are none) so that the record stays one cache line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[expect(
    clippy::box_collection,
    reason = "a thin pointer (8 bytes) where a Vec takes 24 keeps IpRecord one cache line"
)]
pub struct LearnedSpans(Option<Box<Vec<Span>>>);

impl LearnedSpans {
    /// Runs `edit` on the spans; no spans left frees their box.
    fn edit<R>(&mut self, edit: impl FnOnce(&mut Vec<Span>) -> R) -> R {
        let spans = self.0.get_or_insert_with(Box::default);
        let result = edit(spans);
        if spans.is_empty() {
            self.0 = None;
        }
        result
    }

    /// Keeps the spans `keep` approves; touches no heap when there are none
    /// (maintenance walks every IP, and most have learned nothing).
    fn retain(&mut self, keep: impl FnMut(&Span) -> bool) {
        if !self.is_empty() {
            self.edit(|spans| spans.retain(keep));
        }
    }

    /// Heap bytes held.
    fn memory_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |spans| {
            std::mem::size_of::<Vec<Span>>() + spans.capacity() * std::mem::size_of::<Span>()
        })
    }
}

impl std::ops::Deref for LearnedSpans {
    type Target = [Span];

    fn deref(&self) -> &[Span] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<'a> IntoIterator for &'a LearnedSpans {
    type Item = &'a Span;
    type IntoIter = std::slice::Iter<'a, Span>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<Vec<Span>> for LearnedSpans {
    fn from(spans: Vec<Span>) -> Self {
        LearnedSpans((!spans.is_empty()).then(|| Box::new(spans)))
    }
}

/// What the index knows of one IP.
///
/// One cache line (checked below): a lookup reads one record, and the
/// IPv4 table keeps each record on a line of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRecord {
    /// Declared ownership.
    pub timeline: Timeline,
    /// Learned spans.
    pub learned: LearnedSpans,
}

const _: () = assert!(std::mem::size_of::<IpRecord>() <= 64);

impl IpRecord {
    /// The span covering `t`, an overriding one first.
    fn learned_at(&self, t: u32) -> Option<&Span> {
        let covering = |s: &&Span| s.from <= t && t <= s.to;
        let mut spans = self.learned.iter().rev().filter(covering);
        let first = spans.next()?;
        if first.is_overriding() {
            return Some(first);
        }
        Some(spans.find(|s| s.is_overriding()).unwrap_or(first))
    }

    /// A mark declared at `at` ends every override from `at` on (the newest
    /// word wins: rule 2a of the module header).
    fn end_overrides_at(&mut self, at: u32) {
        if !self.learned.iter().any(|s| s.is_overriding() && s.to >= at) {
            return;
        }
        self.learned.edit(|spans| {
            for span in spans.iter_mut().filter(|s| s.is_overriding() && s.to >= at) {
                if span.from < at {
                    span.to = at - 1;
                } else {
                    span.overrides = NO_OWNER;
                }
            }
        });
    }

    fn is_empty(&self) -> bool {
        self.timeline.is_empty() && self.learned.is_empty()
    }
}

#[derive(Debug, Clone)]
struct RetainedSnapshot {
    at: u32,
    listed: hashbrown::HashSet<IpAddr, foldhash::fast::FixedState>,
    /// The addresses it covers.
    scope: Scope,
}

impl RetainedSnapshot {
    /// Whether the snapshot released `ip` (canonical): covered, not listed.
    fn released(&self, ip: &IpAddr) -> bool {
        self.scope.covers(ip) && !self.listed.contains(ip)
    }
}

/// The addresses a snapshot speaks for: those in `within` (empty: every
/// one) but not in `except` (single addresses kept in a hash set, so a
/// poll that leaves thousands of pod addresses out stays cheap).
#[derive(Debug, Clone, Default)]
struct Scope {
    within: Vec<IpNet>,
    except_hosts: hashbrown::HashSet<IpAddr, foldhash::fast::FixedState>,
    except_nets: Vec<IpNet>,
}

impl Scope {
    fn new(within: &[IpNet], except: &[IpNet]) -> Scope {
        let mut scope = Scope {
            within: within.to_vec(),
            ..Scope::default()
        };
        for net in except {
            if net.prefix_len() == net.max_prefix_len() {
                scope.except_hosts.insert(net.addr().to_canonical());
            } else {
                scope.except_nets.push(*net);
            }
        }
        scope
    }

    /// Whether `ip` (canonical) is in the scope.
    fn covers(&self, ip: &IpAddr) -> bool {
        covers(&self.within, ip)
            && !self.except_hosts.contains(ip)
            && !self.except_nets.iter().any(|net| net.contains(ip))
    }
}

/// Whether a snapshot over `within` (empty: everything) covers `ip`.
fn covers(within: &[ipnet::IpNet], ip: &IpAddr) -> bool {
    within.is_empty() || within.iter().any(|net| net.contains(ip))
}

/// The index.
#[derive(Debug, Clone)]
pub struct AttributionIndex {
    config: IndexConfig,
    workloads: WorkloadTable,
    ips: IpMap<IpRecord>,
    interfaces: hashbrown::HashMap<String, InterfaceRecord, foldhash::fast::FixedState>,
    /// The interfaces each IP was declared on (at most
    /// [`PLACEMENTS_PER_IP_MAX`], the newest by mark time), to tell where a
    /// declaration put an IP.
    placements: hashbrown::HashMap<IpAddr, Vec<Box<str>>, foldhash::fast::FixedState>,
    snapshots: VecDeque<RetainedSnapshot>,
    prefixes: PrefixTables,
    /// The newest believed event time (a wrong clock cannot move it).
    newest: NewestTime,
    vouched_horizon: u32,
    /// The horizon goes no further (see [`AttributionIndex::cap_horizon`]).
    horizon_cap: Option<u32>,
    /// History before this time was pruned: events there are refused.
    pruned_before: u32,
    /// Where each metadata source has been read to, saved with the index
    /// (opaque values, like the store's positions).
    source_positions: BTreeMap<String, String>,
    /// When each position was last set (a count, not saved: loaded ones are
    /// the oldest), to forget the stalest past the bound.
    source_touched: hashbrown::HashMap<String, u64, foldhash::fast::FixedState>,
    source_touches: u64,
    internet: WorkloadId,
    unknown: WorkloadId,
    stats: IndexStats,
}

impl Default for AttributionIndex {
    fn default() -> Self {
        Self::new(IndexConfig::default())
    }
}

fn clamp_time(t: Secs) -> u32 {
    t.clamp(0, Secs::from(u32::MAX)) as u32
}

/// What a flow record can teach, by how its local address is told.
enum LearnedAt<'r> {
    /// From `flow-direction`.
    Interface(InterfaceFlow<'r>),
    /// Without it: from the declarations of the interface's workload.
    Declared {
        interface_id: &'r str,
        start: Secs,
        end: Secs,
    },
}

/// A span learned and the address whose spans it was joined to.
type JoinedSpan = (IpAddr, Span);

/// A flow at an interface whose local address its direction tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InterfaceFlow<'r> {
    interface_id: &'r str,
    start: Secs,
    end: Secs,
    local: Option<IpAddr>,
}

/// What `record` can teach, if anything (it needs an interface, times and
/// an `OK` status).
fn learned_at<'r>(record: &FlowRecord<'r>) -> Option<LearnedAt<'r>> {
    let (Some(interface_id), Some(start), Some(end)) =
        (record.interface_id(), record.start(), record.end())
    else {
        return None;
    };
    if record.log_status() != Some(LogStatus::Ok) {
        return None;
    }
    let (start, end) = (start as Secs, end as Secs);
    let local = match record.flow_direction() {
        Some(FlowDirection::Egress) => record.src_addr(),
        Some(FlowDirection::Ingress) => record.dst_addr(),
        None => {
            return Some(LearnedAt::Declared {
                interface_id,
                start,
                end,
            });
        }
    };
    Some(LearnedAt::Interface(InterfaceFlow {
        interface_id,
        start,
        end,
        local,
    }))
}

/// The counters learning from a flow moves (see [`IndexStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LearnCounts([u64; 6]);

impl LearnCounts {
    fn of(stats: &IndexStats) -> Self {
        LearnCounts([
            stats.heartbeats,
            stats.heartbeats_unmapped,
            stats.heartbeats_shared,
            stats.heartbeats_without_local_side,
            stats.learned_conflicts,
            stats.learned_overrides,
        ])
    }

    fn since(self, before: LearnCounts) -> Self {
        LearnCounts(std::array::from_fn(|i| self.0[i] - before.0[i]))
    }

    fn add_to(self, stats: &mut IndexStats) {
        let [
            heartbeats,
            unmapped,
            shared,
            without_local,
            conflicts,
            overrides,
        ] = self.0;
        stats.heartbeats += heartbeats;
        stats.heartbeats_unmapped += unmapped;
        stats.heartbeats_shared += shared;
        stats.heartbeats_without_local_side += without_local;
        stats.learned_conflicts += conflicts;
        stats.learned_overrides += overrides;
    }
}

impl AttributionIndex {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Self {
        let mut workloads = WorkloadTable::default();
        let internet = workloads
            .intern(&Workload::of_kind("internet"))
            .unwrap_or(NO_OWNER);
        let unknown = workloads
            .intern(&Workload::of_kind("unknown"))
            .unwrap_or(NO_OWNER);
        AttributionIndex {
            config,
            workloads,
            ips: IpMap::default(),
            interfaces: Default::default(),
            placements: Default::default(),
            snapshots: VecDeque::new(),
            prefixes: PrefixTables::default(),
            newest: NewestTime::default(),
            vouched_horizon: 0,
            horizon_cap: None,
            pruned_before: 0,
            source_positions: BTreeMap::new(),
            source_touched: Default::default(),
            source_touches: 0,
            internet,
            unknown,
            stats: IndexStats::default(),
        }
    }

    /// Where the metadata source `key` has been read to, as saved with the
    /// index (issue 13 #13: files were applied again at every start).
    pub fn source_position(&self, key: &str) -> Option<&str> {
        self.source_positions.get(key).map(String::as_str)
    }

    /// Records where the metadata source `key` has been read to; saved with
    /// the index, so that a restart applies only what is new. Past
    /// [`SOURCE_POSITIONS_MAX`] sources the one set longest ago (a file no
    /// longer configured) is forgotten: if it comes back it is applied
    /// from its start, and the events before the pruned history are
    /// refused. Refused (`false`) past [`SOURCE_POSITION_BYTES_MAX`] bytes.
    pub fn set_source_position(&mut self, key: &str, value: &str) -> bool {
        if key.len() + value.len() > SOURCE_POSITION_BYTES_MAX {
            return false;
        }
        if !self.source_positions.contains_key(key)
            && self.source_positions.len() >= SOURCE_POSITIONS_MAX
        {
            let touched = &self.source_touched;
            let oldest = self
                .source_positions
                .keys()
                .min_by_key(|k| touched.get(*k).copied().unwrap_or(0))
                .cloned();
            if let Some(oldest) = oldest {
                self.source_positions.remove(&oldest);
                self.source_touched.remove(&oldest);
            }
        }
        self.source_touches += 1;
        self.source_touched
            .insert(key.to_string(), self.source_touches);
        self.source_positions
            .insert(key.to_string(), value.to_string());
        true
    }

    /// Every source position (for saving).
    pub fn source_positions(&self) -> &BTreeMap<String, String> {
        &self.source_positions
    }

    /// The time before which history was pruned (0: none was).
    pub fn pruned_before(&self) -> Secs {
        Secs::from(self.pruned_before)
    }

    /// The configuration.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    /// The workload of an id (`None` for [`NO_OWNER`]).
    pub fn workload(&self, id: WorkloadId) -> Option<&Workload> {
        self.workloads.get(id).map(|w| &**w)
    }

    /// The workload table.
    pub fn workloads(&self) -> &WorkloadTable {
        &self.workloads
    }

    /// Adds user networks (`[[networks]]`).
    pub fn add_networks(&mut self, entries: &[NetworkEntry]) {
        self.prefixes.add_networks(entries, &mut self.workloads);
    }

    /// Loads AWS's `ip-ranges.json`; returns the number of prefixes.
    pub fn add_aws_ip_ranges(
        &mut self,
        json: &[u8],
        source_name: &str,
    ) -> Result<usize, crate::prefix::IpRangesError> {
        self.prefixes
            .add_aws_ip_ranges(json, source_name, &mut self.workloads)
    }

    /// The time up to which metadata is taken to be complete.
    pub fn horizon(&self) -> Secs {
        let by_window = self
            .newest_at()
            .saturating_sub(self.config.reorder_window_secs);
        let horizon = by_window.max(self.vouched_horizon);
        Secs::from(self.horizon_cap.map_or(horizon, |cap| horizon.min(cap)))
    }

    /// Keeps the horizon at or before `cap` (none: no cap): a source that
    /// has not seen past `cap` (a cloud inventory polled every minute)
    /// holds it whatever the other sources' times say. Not saved.
    pub fn cap_horizon(&mut self, cap: Option<Secs>) {
        self.horizon_cap = cap.map(clamp_time);
    }

    /// Records that a source vouches for completeness up to `t` (a file read
    /// to its end, a stream whose watermark passed `t`).
    /// A time past the wall clock plus the future slack is not believed.
    pub fn advance_horizon(&mut self, t: Secs) {
        let bound = self.config.newest_limits().bound(self.config.wall_clock());
        let t = clamp_time(t).min(bound);
        self.vouched_horizon = self.vouched_horizon.max(t);
    }

    /// The newest believed event time (0 before any).
    fn newest_at(&self) -> u32 {
        self.newest.get().unwrap_or(0)
    }

    /// The newest believed event time applied (see `newest.rs`).
    pub fn newest_event_at(&self) -> Secs {
        Secs::from(self.newest_at())
    }

    /// Applies one metadata event.
    pub fn apply(&mut self, event: &MetadataEvent) -> Result<(), ApplyError> {
        let result = self.apply_unchecked(event);
        match result {
            Ok(()) => self.stats.events += 1,
            Err(_) => self.stats.refused_events += 1,
        }
        result
    }

    fn apply_unchecked(&mut self, event: &MetadataEvent) -> Result<(), ApplyError> {
        if let MetadataEvent::Heartbeat {
            ip,
            interface_id,
            from,
            to,
        } = event
        {
            // Not a declaration: no newest time, no horizon (see the event).
            let _ = self.learn(*ip, interface_id, *from, *to);
            return Ok(());
        }
        let at = to_stored(event.at()).ok_or(ApplyError::TimeOutOfRange(event.at()))?;
        if at < self.pruned_before {
            // Issue 13 #13: placed before the pruned history (a metadata
            // file applied again at start), an assignment whose release was
            // pruned came back as the IP's current owner.
            self.stats.before_pruned_events += 1;
            return Err(ApplyError::BeforePrunedHistory {
                at: event.at(),
                pruned_before: Secs::from(self.pruned_before),
            });
        }
        if at.saturating_add(self.config.reorder_window_secs) < self.newest_at() {
            self.stats.late_beyond_window += 1;
        }
        let (limits, now) = (self.config.newest_limits(), self.config.wall_clock());
        if self.newest.observe(at, limits, now) != Observed::Believed {
            // Applied, but a wrong clock must not prune history or settle flows.
            self.stats.future_events += 1;
        }
        match event {
            MetadataEvent::Assign {
                ip,
                workload,
                interface_id,
                ..
            } => {
                let owner = self.intern(workload)?;
                self.assign(*ip, at, owner, interface_id.as_deref());
            }
            MetadataEvent::Release { ip, .. } => self.mark(
                *ip,
                Mark {
                    at,
                    owner: NO_OWNER,
                },
            ),
            MetadataEvent::Snapshot {
                owners,
                within,
                except,
                ..
            } => {
                let mut listed =
                    hashbrown::HashSet::with_hasher(foldhash::fast::FixedState::default());
                for entry in owners {
                    let owner = self.intern(&entry.workload)?;
                    self.assign(entry.ip, at, owner, entry.interface_id.as_deref());
                    listed.insert(entry.ip.to_canonical());
                }
                self.release_unlisted(at, listed, Scope::new(within, except));
            }
            MetadataEvent::Interface {
                interface_id,
                workload,
                ..
            } => {
                let owner = self.intern(workload)?;
                self.interfaces
                    .entry_ref(interface_id.as_str())
                    .or_default()
                    .attach(at, owner, &self.workloads);
            }
            MetadataEvent::Heartbeat { .. } => {}
        }
        Ok(())
    }

    fn intern(&mut self, workload: &Workload) -> Result<WorkloadId, ApplyError> {
        self.workloads
            .intern(workload)
            .ok_or(ApplyError::WorkloadsFull)
    }

    fn mark(&mut self, ip: IpAddr, mark: Mark) {
        let record = self.ips.entry(ip);
        insert_counted(record, mark, &self.workloads, &mut self.stats);
    }

    fn assign(&mut self, ip: IpAddr, at: u32, owner: WorkloadId, interface_id: Option<&str>) {
        let record = self.ips.entry(ip);
        insert_counted(record, Mark { at, owner }, &self.workloads, &mut self.stats);
        // Snapshots taken after `at` that do not list the IP released it.
        let canonical = ip.to_canonical();
        for snapshot in &self.snapshots {
            if snapshot.at > at && snapshot.released(&canonical) {
                let release = Mark {
                    at: snapshot.at,
                    owner: NO_OWNER,
                };
                record.timeline.insert(release, &self.workloads);
                record.end_overrides_at(snapshot.at);
            }
        }
        if let Some(interface_id) = interface_id {
            self.interfaces
                .entry_ref(interface_id)
                .or_default()
                .add_address(ip, at, owner, &self.workloads);
            self.place(ip, interface_id);
        }
    }

    /// Remembers that `ip` was declared on `interface_id`; past the bound,
    /// forgets the interface whose newest mark of the IP is the oldest.
    fn place(&mut self, ip: IpAddr, interface_id: &str) {
        let ip = ip.to_canonical();
        let placed = self.placements.entry(ip).or_default();
        if placed.iter().any(|p| &**p == interface_id) {
            return;
        }
        if placed.len() >= PLACEMENTS_PER_IP_MAX {
            let interfaces = &self.interfaces;
            let newest_mark = |id: &str| interfaces.get(id).map_or(0, |r| r.newest_mark_of(ip));
            if let Some(oldest) = (0..placed.len()).min_by_key(|&i| newest_mark(&placed[i])) {
                placed.swap_remove(oldest);
            }
        }
        placed.push(interface_id.into());
    }

    fn release_unlisted(
        &mut self,
        at: u32,
        listed: hashbrown::HashSet<IpAddr, foldhash::fast::FixedState>,
        scope: Scope,
    ) {
        let compact_cutoff = self
            .newest_at()
            .saturating_sub(self.config.reorder_window_secs);
        let mut compacted = 0;
        for (ip, record) in self.ips.iter_mut() {
            if !listed.contains(&ip)
                && scope.covers(&ip.to_canonical())
                && record.timeline.owner_at(at) != NO_OWNER
            {
                record.timeline.insert(
                    Mark {
                        at,
                        owner: NO_OWNER,
                    },
                    &self.workloads,
                );
                record.end_overrides_at(at);
            }
            compacted += record.timeline.compact_before(compact_cutoff);
        }
        for record in self.interfaces.values_mut() {
            compacted += record.compact_before(compact_cutoff);
        }
        self.stats.compacted_marks += compacted as u64;
        self.snapshots
            .push_back(RetainedSnapshot { at, listed, scope });
        self.forget_old_snapshots();
    }

    fn forget_old_snapshots(&mut self) {
        let cutoff = self
            .newest_at()
            .saturating_sub(self.config.reorder_window_secs);
        self.snapshots.retain(|s| s.at >= cutoff);
        while self.snapshots.len() > self.config.snapshots_retained_max {
            let oldest = self
                .snapshots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.at)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.snapshots.remove(i);
            }
        }
    }

    /// Learns that the workload of `interface_id` owned `ip` over
    /// `[start, end]`, if the interface had one declared workload at `start`
    /// and at `end`, and `ip` is declared to nobody else over that time
    /// (see the module header).
    /// Returns whether a span was learned.
    pub fn learn(&mut self, ip: IpAddr, interface_id: &str, start: Secs, end: Secs) -> bool {
        self.learn_span(ip, interface_id, start, end).is_some()
    }

    /// [`learn`](Self::learn), returning the span joined to `ip`'s.
    fn learn_span(
        &mut self,
        ip: IpAddr,
        interface_id: &str,
        start: Secs,
        end: Secs,
    ) -> Option<Span> {
        let (start, end) = (clamp_time(start), clamp_time(end.max(start)));
        let owner = self.interface_owner_within(interface_id, start, end)?;
        let span = self.span_to_learn(ip, owner, start, end, true)?;
        self.join_learned(ip, span);
        Some(span)
    }

    /// The one workload of an interface over `[start, end]` (looked up at
    /// both ends), counting a flow that has none or several.
    fn interface_owner_within(
        &mut self,
        interface_id: &str,
        start: u32,
        end: u32,
    ) -> Option<WorkloadId> {
        // One lookup of the interface for both ends (a string hash and
        // compare per flow learned from).
        let owner = match self.interfaces.get(interface_id) {
            None => InterfaceOwner::Unknown,
            Some(record) => {
                let owner_at = |t| record.owner_at(t, |ip, t| self.declared_owner(ip, t));
                match owner_at(start) {
                    InterfaceOwner::One(owner) if start == end => InterfaceOwner::One(owner),
                    InterfaceOwner::One(owner) => match owner_at(end) {
                        InterfaceOwner::One(later) if later == owner => InterfaceOwner::One(owner),
                        InterfaceOwner::Unknown
                        | InterfaceOwner::One(_)
                        | InterfaceOwner::Shared => InterfaceOwner::Shared,
                    },
                    other => other,
                }
            }
        };
        match owner {
            InterfaceOwner::One(owner) => Some(owner),
            InterfaceOwner::Unknown => {
                self.stats.heartbeats_unmapped += 1;
                None
            }
            InterfaceOwner::Shared => {
                self.stats.heartbeats_shared += 1;
                None
            }
        }
    }

    /// Learns `owner` for `ip` over `[start, end]` unless the IP is declared
    /// to another workload then; with `at_interface` (the flow's interface,
    /// whose one owner is `owner`, logged `ip` as its own address), it is
    /// learned over a declaration it contradicts (rule 2a, module header).
    fn learn_as(
        &mut self,
        ip: IpAddr,
        owner: WorkloadId,
        start: u32,
        end: u32,
        at_interface: bool,
    ) -> bool {
        let Some(span) = self.span_to_learn(ip, owner, start, end, at_interface) else {
            return false;
        };
        self.join_learned(ip, span);
        true
    }

    /// The span [`learn_as`](Self::learn_as) joins to `ip`'s, if any,
    /// counted (learned, or a conflict).
    fn span_to_learn(
        &mut self,
        ip: IpAddr,
        owner: WorkloadId,
        start: u32,
        end: u32,
        at_interface: bool,
    ) -> Option<Span> {
        let consistent = self
            .ips
            .get(ip)
            .is_none_or(|r| r.timeline.only_owner_within(start, end, owner));
        let span = if consistent {
            Some(Span {
                from: start,
                to: end,
                owner,
                overrides: NO_OWNER,
            })
        } else if at_interface {
            self.overriding_span(ip, owner, start, end)
        } else {
            None
        };
        let Some(span) = span else {
            self.stats.learned_conflicts += 1;
            return None;
        };
        self.stats.learned_overrides += u64::from(span.is_overriding());
        self.stats.heartbeats += 1;
        Some(span)
    }

    /// Joins `span` to `ip`'s learned spans.
    fn join_learned(&mut self, ip: IpAddr, span: Span) {
        let (gap, spans_max) = (
            self.config.learned_gap_secs,
            self.config.learned_spans_per_ip_max,
        );
        self.ips
            .entry(ip)
            .learned
            .edit(|spans| join_or_insert(spans, span, gap, spans_max));
    }

    /// The span overriding the declaration of `ip` that a flow of `owner`
    /// over `[start, end]` contradicts, if it does: `ip` is declared then to
    /// one workload other than `owner`, the one owner of the interface that
    /// logged the flow, and that declaration placed it on an interface (on
    /// another one, or on the same before it was attached to `owner`: it
    /// cannot count there, or the interface would have had two owners). The
    /// span ends before the next mark of the IP (rule 2a, module header).
    fn overriding_span(&self, ip: IpAddr, owner: WorkloadId, start: u32, end: u32) -> Option<Span> {
        let record = self.ips.get(ip)?;
        let declared = record.timeline.owner_at(start);
        let short = end - start <= OVERRIDE_RECORD_SECS_MAX;
        if declared == NO_OWNER || declared == owner || !short {
            return None;
        }
        let placed = self
            .placements
            .get(&ip.to_canonical())
            .is_some_and(|placed| {
                placed.iter().any(|interface_id| {
                    self.interfaces
                        .get(&**interface_id)
                        .is_some_and(|r| r.holds(ip, declared, start))
                })
            });
        if !placed {
            return None;
        }
        let to = match record.timeline.next_mark_after(start) {
            Some(next) if next.at <= end => next.at - 1,
            _ => end,
        };
        Some(Span {
            from: start,
            to,
            owner,
            overrides: declared,
        })
    }

    /// Learns from one flow record: the interface's own address (source of
    /// egress traffic, destination of ingress; without `flow-direction`, the
    /// side declared to the interface's workload) was held by the
    /// interface's workload over the record's `[start, end]` (see
    /// [`learn`](Self::learn) for when a record teaches nothing).
    /// Returns the address and times learned, if a span was.
    pub fn learn_from_flow(&mut self, record: &FlowRecord<'_>) -> Option<(IpAddr, Secs, Secs)> {
        let mut taught = None;
        self.learn_from_flows(std::slice::from_ref(record), |_, span| taught = Some(span));
        taught
    }

    /// [`learn_from_flow`](Self::learn_from_flow) for every record of a
    /// batch, calling `learned` with each record that taught a span. A
    /// record with the same interface, times and local address as the one
    /// before it (the two records of a connection, egress and ingress)
    /// finds what that one read unchanged (learning changes only learned
    /// spans, which deciding a span does not read): the same span is
    /// joined again and the same counters move, without the interface and
    /// declaration lookups.
    pub fn learn_from_flows<'r>(
        &mut self,
        records: &'r [FlowRecord<'r>],
        mut learned: impl FnMut(&'r FlowRecord<'r>, (IpAddr, Secs, Secs)),
    ) {
        let mut previous: Option<(InterfaceFlow<'r>, Option<JoinedSpan>, LearnCounts)> = None;
        for record in records {
            let outcome = match learned_at(record) {
                None => None,
                Some(LearnedAt::Interface(at)) => {
                    let span = match &previous {
                        Some((before, span, counts)) if *before == at => {
                            counts.add_to(&mut self.stats);
                            if let Some((ip, span)) = *span {
                                self.join_learned(ip, span);
                            }
                            *span
                        }
                        _ => {
                            let counts_before = LearnCounts::of(&self.stats);
                            let span = self.learn_at_interface(at);
                            let counts = LearnCounts::of(&self.stats).since(counts_before);
                            previous = Some((at, span, counts));
                            span
                        }
                    };
                    span.map(|(ip, _)| (ip, at.start, at.end))
                }
                Some(LearnedAt::Declared {
                    interface_id,
                    start,
                    end,
                }) => self.learn_by_declaration(record, interface_id, start, end),
            };
            if let Some(span) = outcome {
                learned(record, span);
            }
        }
    }

    /// Learns from a flow whose local address is known from its direction:
    /// the address and the span joined to its spans, if one was.
    fn learn_at_interface(&mut self, at: InterfaceFlow<'_>) -> Option<JoinedSpan> {
        let InterfaceFlow {
            interface_id,
            start,
            end,
            local,
        } = at;
        match local {
            Some(ip) => self
                .learn_span(ip, interface_id, start, end)
                .map(|span| (ip, span)),
            None => {
                self.stats.heartbeats_without_local_side += 1;
                None
            }
        }
    }

    /// Learns from a flow without `flow-direction`: the side declared to
    /// the interface's workload is the local one.
    fn learn_by_declaration(
        &mut self,
        record: &FlowRecord<'_>,
        interface_id: &str,
        start: Secs,
        end: Secs,
    ) -> Option<(IpAddr, Secs, Secs)> {
        let (start, end) = (clamp_time(start), clamp_time(end.max(start)));
        let owner = self.interface_owner_within(interface_id, start, end)?;
        let learned = match self.local_side(owner, record.src_addr(), record.dst_addr(), start) {
            Some(ip) => self.learn_as(ip, owner, start, end, false).then_some(ip),
            None => {
                self.stats.heartbeats_without_local_side += 1;
                None
            }
        };
        learned.map(|ip| (ip, Secs::from(start), Secs::from(end)))
    }

    /// The one side of a flow declared to `owner` at `t`, if exactly one is.
    fn local_side(
        &self,
        owner: WorkloadId,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        t: u32,
    ) -> Option<IpAddr> {
        let held_by_owner = |ip: Option<IpAddr>| {
            ip.filter(|ip| {
                self.ips
                    .get(*ip)
                    .is_some_and(|r| r.timeline.owner_at(t) == owner)
            })
        };
        match (held_by_owner(src), held_by_owner(dst)) {
            (Some(ip), None) | (None, Some(ip)) => Some(ip),
            _ => None,
        }
    }

    /// Who an interface was declared to at `t`: nobody, one workload, or
    /// several (a shared ENI). See [`crate::interface`].
    pub fn interface_owner_at(&self, interface_id: &str, t: Secs) -> InterfaceOwner {
        let Some(record) = self.interfaces.get(interface_id) else {
            return InterfaceOwner::Unknown;
        };
        record.owner_at(clamp_time(t), |ip, t| self.declared_owner(ip, t))
    }

    /// Number of interfaces with declared history.
    pub fn interface_count(&self) -> usize {
        self.interfaces.len()
    }

    /// The declared owner of `ip` at `t` ([`NO_OWNER`] if none).
    fn declared_owner(&self, ip: IpAddr, t: u32) -> WorkloadId {
        self.ips
            .get(ip)
            .map_or(NO_OWNER, |r| r.timeline.owner_at(t))
    }

    /// Who held `ip` at `t`, and which rule says so.
    #[inline]
    pub fn owner_at(&self, ip: IpAddr, t: Secs) -> Attribution {
        self.answer(self.ips.get(ip), ip, t, self.horizon())
    }

    /// [`owner_at`](Self::owner_at) for many queries at once, appending to
    /// `out` in query order. A lookup in a large index waits on memory
    /// twice: the probe's line of the key array, then the IP's record.
    /// Here both are prefetched ahead of need (the key line
    /// `2 * LOOKAHEAD` queries ahead, the record `LOOKAHEAD` ahead), so
    /// the memory accesses of many lookups are in flight at once instead
    /// of queueing one behind the other. A timeline too long to be packed
    /// in its record is a third access: the part of its marks that holds
    /// the answer is prefetched `LOOKAHEAD / 4` ahead, once the record has
    /// arrived (earlier, the wait for the record slows every lookup).
    pub fn owner_at_many(&self, queries: &[(IpAddr, Secs)], out: &mut Vec<Attribution>) {
        const LOOKAHEAD: usize = 12;
        out.reserve(queries.len());
        let horizon = self.horizon();
        let mut found: [Option<&IpRecord>; LOOKAHEAD] = [None; LOOKAHEAD];
        for (ip, _) in queries.iter().take(2 * LOOKAHEAD) {
            self.ips.prefetch_probe(*ip);
        }
        for (slot, (ip, _)) in found.iter_mut().zip(queries) {
            *slot = self.ips.get_prefetched(*ip);
        }
        for (i, (ip, t)) in queries.iter().enumerate() {
            if let Some((ahead, _)) = queries.get(i + 2 * LOOKAHEAD) {
                self.ips.prefetch_probe(*ahead);
            }
            let record = found[i % LOOKAHEAD];
            if let (Some(ahead), Some((_, t))) = (
                found[(i + LOOKAHEAD / 4) % LOOKAHEAD],
                queries.get(i + LOOKAHEAD / 4),
            ) {
                ahead.timeline.prefetch_for(clamp_time(*t));
            }
            if let Some((ahead, _)) = queries.get(i + LOOKAHEAD) {
                found[i % LOOKAHEAD] = self.ips.get_prefetched(*ahead);
            }
            out.push(self.answer(record, *ip, *t, horizon));
        }
    }

    #[inline]
    fn answer(&self, record: Option<&IpRecord>, ip: IpAddr, t: Secs, horizon: Secs) -> Attribution {
        let settled = t <= horizon;
        let t32 = clamp_time(t);
        if let Some(record) = record {
            let held = record.timeline.held_at(t32);
            let learned = if record.learned.is_empty() {
                None
            } else {
                record.learned_at(t32)
            };
            if let Some(answer) = choose(held, learned, settled) {
                return answer;
            }
        }
        self.by_prefix(ip, settled)
    }

    fn by_prefix(&self, ip: IpAddr, settled: bool) -> Attribution {
        let (rule, owner, prefix) = match self.prefixes.lookup(ip.to_canonical()) {
            Some((PrefixSource::Network, net, id)) => (Rule::Network, id, Some(net)),
            Some((PrefixSource::AwsIpRanges, net, id)) => (Rule::AwsIpRanges, id, Some(net)),
            None if is_private(ip) => (Rule::Unknown, self.unknown, None),
            None => (Rule::Internet, self.internet, None),
        };
        Attribution {
            rule,
            owner,
            from: None,
            to: None,
            prefix,
            settled,
        }
    }

    /// Every declared interval of `ip`, in time order.
    pub fn history(&self, ip: IpAddr) -> Vec<Held> {
        self.ips
            .get(ip)
            .map(|r| r.timeline.intervals())
            .unwrap_or_default()
    }

    /// Every IP the index holds, with its record.
    pub fn records(&self) -> impl Iterator<Item = (IpAddr, &IpRecord)> {
        self.ips.iter()
    }

    /// Number of IPs with declared or learned history.
    pub fn ip_count(&self) -> usize {
        self.ips.len()
    }

    /// Number of ownership marks (an interval is one or more marks),
    /// interfaces' included.
    pub fn mark_count(&self) -> usize {
        let interfaces: usize = self
            .interfaces
            .values()
            .map(InterfaceRecord::mark_count)
            .sum();
        self.ips
            .iter()
            .map(|(_, r)| r.timeline.len())
            .sum::<usize>()
            + interfaces
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        let records: usize = self
            .ips
            .iter()
            .map(|(_, r)| r.timeline.memory_bytes() + r.learned.memory_bytes())
            .sum();
        let interfaces: usize = self
            .interfaces
            .iter()
            .map(|(k, r)| k.capacity() + std::mem::size_of::<InterfaceRecord>() + r.memory_bytes())
            .sum();
        let snapshots: usize = self
            .snapshots
            .iter()
            .map(|s| s.listed.capacity() * 18)
            .sum();
        let placements: usize = self
            .placements
            .values()
            .map(|placed| {
                std::mem::size_of::<(IpAddr, Vec<Box<str>>)>()
                    + placed.capacity() * std::mem::size_of::<Box<str>>()
                    + placed.iter().map(|id| id.len()).sum::<usize>()
            })
            .sum();
        self.ips.table_bytes()
            + records
            + self.workloads.memory_bytes()
            + interfaces
            + placements
            + snapshots
    }

    /// Merges redundant marks behind the reorder window, prunes history
    /// beyond the retention, and enforces the mark limit by pruning further
    /// from the oldest end. Call it every so often (the pipeline does, on a
    /// timer); snapshots also compact as they pass.
    pub fn maintain(&mut self) {
        let compact_cutoff = self
            .newest_at()
            .saturating_sub(self.config.reorder_window_secs);
        let mut retention = self.config.retention_secs;
        loop {
            let prune_cutoff = self
                .newest_at()
                .saturating_sub(retention)
                .min(compact_cutoff);
            let (mut compacted, mut pruned, mut marks) = (0, 0, 0);
            for (_, record) in self.ips.iter_mut() {
                compacted += record.timeline.compact_before(compact_cutoff);
                pruned += record.timeline.prune_before(prune_cutoff);
                record.learned.retain(|s| s.to >= prune_cutoff);
                marks += record.timeline.len();
            }
            self.ips.retain(|r| !r.is_empty());
            let ips = &self.ips;
            let declared =
                |ip: IpAddr, t: u32| ips.get(ip).map_or(NO_OWNER, |r| r.timeline.owner_at(t));
            for record in self.interfaces.values_mut() {
                compacted += record.compact_before(compact_cutoff);
                pruned += record.prune_before(prune_cutoff, declared);
                marks += record.mark_count();
            }
            self.interfaces.retain(|_, r| !r.is_forgotten(prune_cutoff));
            self.forget_placements();
            self.stats.compacted_marks += compacted as u64;
            self.stats.pruned_marks += pruned as u64;
            self.pruned_before = self.pruned_before.max(prune_cutoff);
            if marks <= self.config.marks_max || retention <= self.config.reorder_window_secs {
                break;
            }
            retention /= 2;
        }
        self.forget_old_snapshots();
    }

    /// Forgets placements on interfaces that no longer list the IP.
    fn forget_placements(&mut self) {
        let interfaces = &self.interfaces;
        self.placements.retain(|ip, placed| {
            placed.retain(|id| interfaces.get(&**id).is_some_and(|r| r.lists(*ip)));
            !placed.is_empty()
        });
    }

    /// What is saved beside the ownership history: where history was
    /// pruned, and the sources' positions.
    pub(crate) fn saved_extras(&self) -> (u32, &BTreeMap<String, String>) {
        (self.pruned_before, &self.source_positions)
    }

    /// Restores what [`saved_extras`](Self::saved_extras) gave.
    pub(crate) fn restore_extras(
        &mut self,
        pruned_before: u32,
        positions: BTreeMap<String, String>,
    ) {
        self.pruned_before = pruned_before;
        self.source_positions = positions;
    }

    pub(crate) fn parts(&self) -> (&WorkloadTable, &IpMap<IpRecord>, u32, u32) {
        (
            &self.workloads,
            &self.ips,
            self.newest_at(),
            self.vouched_horizon,
        )
    }

    pub(crate) fn interfaces(&self) -> impl Iterator<Item = (&str, &InterfaceRecord)> {
        self.interfaces.iter().map(|(k, r)| (k.as_str(), r))
    }

    pub(crate) fn restore(
        config: IndexConfig,
        workloads: WorkloadTable,
        ips: IpMap<IpRecord>,
        interfaces: Vec<(String, InterfaceRecord)>,
        newest_at: u32,
        vouched_horizon: u32,
    ) -> Self {
        let mut index = AttributionIndex::new(config);
        index.workloads = workloads;
        index.internet = index
            .workloads
            .intern(&Workload::of_kind("internet"))
            .unwrap_or(NO_OWNER);
        index.unknown = index
            .workloads
            .intern(&Workload::of_kind("unknown"))
            .unwrap_or(NO_OWNER);
        index.ips = ips;
        index.interfaces = interfaces.into_iter().collect();
        // Oldest first, so that past the bound the newest are kept.
        let mut placements: Vec<(u32, IpAddr, String)> = index
            .interfaces
            .iter()
            .flat_map(|(id, record)| {
                record
                    .addresses
                    .iter()
                    .map(|a| (a.marks.last().map_or(0, |m| m.at), a.ip, id.clone()))
            })
            .collect();
        placements.sort();
        for (_, ip, id) in placements {
            index.place(ip, &id);
        }
        // Times carried past the wall clock (by a version without the
        // bound) are pulled back, so they stop pruning history and settling flows.
        let (limits, now) = (index.config.newest_limits(), index.config.wall_clock());
        index.newest = NewestTime::new((newest_at > 0).then_some(newest_at), limits, now);
        index.vouched_horizon = vouched_horizon.min(limits.bound(now));
        index
    }
}

/// Inserts a mark into an IP's timeline and counts what it did.
fn insert_counted(
    record: &mut IpRecord,
    mark: Mark,
    workloads: &WorkloadTable,
    stats: &mut IndexStats,
) {
    let inserted = record.timeline.insert(mark, workloads);
    record.end_overrides_at(mark.at);
    stats.unchanged_marks += u64::from(!inserted.changed);
    stats.overlaps += u64::from(inserted.overlap);
    stats.conflicts += u64::from(inserted.conflict);
}

/// Extends the span of the same owner and kind (overriding or not) that
/// `new` touches (within `gap`), or inserts `new` in `from` order; the
/// oldest span goes past `spans_max`.
fn join_or_insert(spans: &mut Vec<Span>, new: Span, gap: u32, spans_max: usize) {
    let joinable = spans.iter().rposition(|s| {
        s.owner == new.owner
            && s.overrides == new.overrides
            && s.from <= new.to.saturating_add(gap)
            && new.from <= s.to.saturating_add(gap)
    });
    if let Some(mut i) = joinable {
        let span = &mut spans[i];
        span.from = span.from.min(new.from);
        span.to = span.to.max(new.to);
        // Extended backwards, it may now start before spans listed ahead of it.
        while i > 0 && spans[i - 1].from > spans[i].from {
            spans.swap(i - 1, i);
            i -= 1;
        }
        return;
    }
    let index = spans.partition_point(|s| s.from <= new.from);
    spans.insert(index, new);
    if spans.len() > spans_max {
        spans.remove(0);
    }
}

/// Declared, learned, or neither (see the module header).
#[inline]
fn choose(held: Option<Held>, learned: Option<&Span>, settled: bool) -> Option<Attribution> {
    let from_learned = |span: &Span| Attribution {
        rule: Rule::Learned,
        owner: span.owner,
        from: Some(Secs::from(span.from)),
        to: Some(Secs::from(span.to)),
        prefix: None,
        settled,
    };
    match (held, learned) {
        // Rule 2a: the flows contradict a declaration made before them.
        (Some(held), Some(span))
            if span.overrides == held.owner
                && span.owner != held.owner
                && held.from <= span.from =>
        {
            Some(from_learned(span))
        }
        (Some(held), _) => Some(Attribution {
            rule: Rule::Declared,
            owner: held.owner,
            from: Some(Secs::from(held.from)),
            to: held.to.map(Secs::from),
            prefix: None,
            settled,
        }),
        (None, Some(span)) => Some(from_learned(span)),
        (None, None) => None,
    }
}
