//! The store: open buckets in memory, sealed segments on disk, one manifest.
//!
//! Data flow: [`Store::add_batch`] takes attributed flows and adds each to
//! the open bucket of its time chunk in every *base* table (`flows_1m`, and
//! `flows` when enabled). A coarser rollup whose dimensions a finer one
//! keeps (`flows_1h`, `flows_1d`) is *derived*: its open rows are the finer
//! table's open rows with their time floored (queries), regrouped or, when
//! regrouping would not halve them, written as they are (seals:
//! `store/seal.rs`), so each flow costs one hash-map update however many
//! rollups there are (a flow past
//! the finer table's retention but within the coarser one's is added to the
//! coarser table directly). The watermark is the newest *believed* event
//! time minus the allowed lateness: a time past the wall clock plus
//! `future_slack_secs`, or that far ahead of the stream until other records
//! confirm it (`trawl_attrib::newest`), is stored and counted in
//! `future_records` but never seals or expires anything. A record older
//! than the watermark is still added (never dropped) and counted late. [`Store::seal`] turns every open bucket into a
//! segment and commits the manifest with the source positions handed in
//! with the batches; a chunk that already has segments gets another one (a
//! delta), and queries sum across them. A seal can also run in three steps
//! ([`Store::seal_begin`], [`crate::SealJob::write`] without the store lock,
//! [`Store::seal_finish`]; see [`crate::commit`]) so that adding and
//! querying go on while Parquet is encoded and synced. [`Store::maintain`] compacts the
//! segments of a chunk once the watermark has passed it (or once it has too
//! many), and applies each table's retention.
//!
//! While someone listens to the live tail ([`Store::tail_subscribe`]),
//! each batch's stored flows are also built as `flows` rows and sent to
//! the listeners (`tail.rs`); otherwise that costs one relaxed atomic load
//! per batch.
//!
//! Open rows live in shards (`store/shard.rs`): writers on several threads
//! add at once under the store's shared lock, each to a shard no other
//! writer holds; a seal writes each shard's rows of a chunk as a segment
//! of its own (rollups are sums: the chunk's segments add up, as deltas
//! do).
//!
//! When to seal: when the watermark passes an open chunk ([`Store::seal_due`]),
//! when open-bucket memory passes `open_bytes_max` (checked after every
//! batch, so memory stays under the cap plus one batch), and whenever the
//! caller wants its positions durable. Every seal writes *all* open buckets,
//! because a manifest's positions must cover everything added before them:
//! nothing is lost or doubled by replaying from the manifest's positions
//! after a crash at any point.
//!
//! Invariants: open buckets of a table are keyed by distinct chunk starts; a
//! record's bucket is `start - start % grain_secs`, inside its chunk; the
//! manifest lists only fsynced files; files leave the disk only after a
//! manifest without them is published.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef, TimestampSecondType, UInt64Type};
use trawl_attrib::{
    NewestLimits, NewestTime, Observed, WorkloadId, WorkloadTable, wall_clock_secs,
};
use trawl_flowlog::{FlowRecord, LogStatus};

use crate::commit::{PendingSegment, SealJob, Steps};

mod compact;
mod seal;
mod shard;
mod sides;
use crate::detail::DetailBucket;
use crate::dict::Dictionary;
use crate::dims::{
    ACTION_TEXTS, DIM_COUNT, DIRECTION_TEXTS, Dim, DimType, KeywordCodes, NULL_CODE, NULL_SIDE,
    flow_dims,
};
use crate::error::StoreError;
use crate::manifest::{Manifest, SegmentMeta};
use crate::rollup::{Measures, RollupBucket, RollupLayout, regrain};
use crate::schema::{RollupSpec, detail_schema, text_type};
use crate::segment::read_segment;
use crate::segment_cache::SegmentCache;
use crate::tail::{TailFeed, TailRows, TailSubscription};
pub use compact::CompactionJob;
use shard::{Shard, Shards, lock};
use sides::WorkloadSides;

/// Name of the detail table.
pub const DETAIL_TABLE: &str = "flows";

/// Configuration of the detail table `flows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailSpec {
    /// Whether `flows` keeps one row per record.
    pub enabled: bool,
    /// Width of a segment's time chunk (seconds).
    pub chunk_secs: u32,
    /// History kept behind the watermark (seconds).
    pub retention_secs: u32,
}

impl Default for DetailSpec {
    fn default() -> Self {
        DetailSpec {
            enabled: true,
            chunk_secs: 3600,
            retention_secs: 6 * 3600,
        }
    }
}

/// Everything a store can be told; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Where segments and the manifest live.
    pub data_dir: PathBuf,
    /// How far behind the newest event a record may start and still be on
    /// time (seconds). Later records are kept too, and counted late.
    pub lateness_secs: u32,
    /// Cap on open-bucket memory; passing it seals early.
    pub open_bytes_max: usize,
    /// The rollup tables (default `flows_1m`, `flows_1h`, `flows_1d`).
    pub rollups: Vec<RollupSpec>,
    /// The detail table.
    pub detail: DetailSpec,
    /// A chunk with more segments than this is compacted even while open.
    pub segments_per_chunk_max: usize,
    /// Most bytes of segments one compaction reads into memory (and so how
    /// long it holds the store): the smallest segments of a chunk are
    /// merged up to this, the rest at a later pass or never.
    pub compaction_bytes_max: u64,
    /// Most distinct strings in the dictionary.
    pub dictionary_strings_max: usize,
    /// How long a file replaced by compaction or retention stays on disk for
    /// queries that already planned to read it.
    pub delete_delay: Duration,
    /// How far past the wall clock, or past the newest believed `start`, a
    /// record's `start` may be and still move the watermark (seconds; see
    /// `trawl_attrib::newest`). A record later than that (a broken clock, a
    /// file from the wrong place) is stored and counted in
    /// [`StoreStats::future_records`], but never drives sealing or retention.
    pub future_slack_secs: u32,
    /// The wall clock in Unix seconds; `None`: the system's. For tests.
    pub wall_clock_secs: Option<u32>,
    /// Most bytes of decoded rollup segments kept in memory for queries
    /// (`segment_cache.rs`; 0: none). Only a store that a query engine
    /// reads keeps any (not `trawl ingest`).
    pub segment_cache_bytes_max: usize,
    /// Shards of open rows: writers on this many threads add at once (see
    /// `store/shard.rs`). Default: the number of cores, at most 8.
    pub open_shards: usize,
}

impl StoreConfig {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            lateness_secs: 15 * 60,
            open_bytes_max: 1 << 30,
            rollups: vec![
                RollupSpec::minutely(),
                RollupSpec::hourly(),
                RollupSpec::daily(),
            ],
            detail: DetailSpec::default(),
            segments_per_chunk_max: 8,
            compaction_bytes_max: 256 << 20,
            dictionary_strings_max: 4_000_000,
            delete_delay: Duration::from_secs(60),
            future_slack_secs: 3600,
            wall_clock_secs: None,
            segment_cache_bytes_max: 512 << 20,
            // At most 8: a seal writes a segment per shard into an open
            // chunk, compacted past `segments_per_chunk_max` (8).
            open_shards: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        }
    }

    /// How times are believed (see [`StoreConfig::future_slack_secs`]).
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

    fn validate(&self) -> Result<(), StoreError> {
        let mut names = vec![DETAIL_TABLE];
        for spec in &self.rollups {
            spec.validate().map_err(StoreError::Config)?;
            if names.contains(&spec.name.as_str()) {
                return Err(StoreError::Config(format!(
                    "table {} defined twice",
                    spec.name
                )));
            }
            names.push(&spec.name);
        }
        if !(1..=64).contains(&self.open_shards) {
            return Err(StoreError::Config(format!(
                "open_shards must be 1 to 64, not {}",
                self.open_shards
            )));
        }
        if self.detail.chunk_secs == 0 {
            return Err(StoreError::Config(
                "flows: chunk_secs must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// One attributed flow, as the store takes it.
#[derive(Debug, Clone, Copy)]
pub struct EnrichedFlow<'r, 'a> {
    /// The decoded record.
    pub record: &'r FlowRecord<'a>,
    /// Owner of the source address at the flow's time.
    pub src: WorkloadId,
    /// Owner of the destination address at the flow's time.
    pub dst: WorkloadId,
}

/// One flow being added to a shard, with what the batch worked out for it.
#[derive(Clone, Copy)]
struct Added<'r, 'a> {
    start: u32,
    record: &'r FlowRecord<'a>,
    workloads: [WorkloadId; 2],
    dims: &'r [u32; DIM_COUNT],
    watermark: u32,
}

/// Whether `watermark` has passed the end of the chunk starting at `chunk`.
fn chunk_closed(chunk: u32, chunk_secs: u32, watermark: u32) -> bool {
    u64::from(chunk) + u64::from(chunk_secs) <= u64::from(watermark)
}

/// Whether the chunk starting at `chunk` overlaps `[from, to]`.
fn chunk_overlaps(chunk: u32, chunk_secs: u32, (from, to): (u32, u32)) -> bool {
    chunk <= to && u64::from(chunk) + u64::from(chunk_secs) > u64::from(from)
}

/// The data behind a lock its holder owns exclusively (no locking).
fn lock_mut<T>(mutex: &mut Mutex<T>) -> &mut T {
    mutex
        .get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counters of a store since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records added.
    pub records: u64,
    /// Records without a usable `start` (not stored).
    pub records_without_time: u64,
    /// NODATA / SKIPDATA records (kept in `flows`, not in rollups).
    pub records_without_traffic: u64,
    /// Records older than the watermark when they arrived (kept).
    pub late_records: u64,
    /// Records older than a table's retention (not stored in that table).
    pub expired_records: u64,
    /// Records whose `start` was past the wall clock plus
    /// [`StoreConfig::future_slack_secs`], or that far ahead of the stream
    /// when they arrived (stored; they did not move the watermark).
    pub future_records: u64,
    /// Seals that committed.
    pub seals: u64,
    /// Segments written by seals.
    pub segments_sealed: u64,
    /// Of those, segments for a chunk that already had one (deltas).
    pub delta_segments: u64,
    /// Compactions (one per chunk merged).
    pub compactions: u64,
    /// Chunks left uncompacted because the string dictionary was full
    /// (merged, their strings would have become "(dictionary full)").
    pub compactions_refused: u64,
    /// Segments merged away by compaction.
    pub segments_compacted: u64,
    /// Segments removed by retention.
    pub segments_expired: u64,
}

/// What a seal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Segments written.
    pub segments: usize,
    /// Rows written across them.
    pub rows: u64,
}

/// Records that `table` lacks a flow at `time` (see [`Manifest::dropped_below`]).
fn note_dropped(dropped_below: &mut BTreeMap<String, u32>, table: &str, time: u32) {
    let below = time.saturating_add(1);
    match dropped_below.get_mut(table) {
        Some(t) => *t = (*t).max(below),
        None => {
            dropped_below.insert(table.to_string(), below);
        }
    }
}

/// The open buckets of one table, by chunk start (few: a linear scan).
#[derive(Debug)]
struct OpenChunks<B> {
    chunks: Vec<(u32, B)>,
}

impl<B> Default for OpenChunks<B> {
    fn default() -> Self {
        OpenChunks { chunks: Vec::new() }
    }
}

impl<B> OpenChunks<B> {
    #[inline]
    fn get_or_insert(&mut self, chunk: u32, make: impl FnOnce() -> B) -> &mut B {
        let i = match self.chunks.iter().position(|(c, _)| *c == chunk) {
            Some(i) => i,
            None => {
                self.chunks.push((chunk, make()));
                self.chunks.len() - 1
            }
        };
        &mut self.chunks[i].1
    }
}

#[derive(Debug)]
struct RollupTable {
    spec: RollupSpec,
    schema: SchemaRef,
    /// The base table this one is derived from, if any (see [`derive_sources`]).
    source: Option<usize>,
    /// The retention of that source: flows past it are added here directly.
    source_retention_secs: Option<u32>,
}

/// For each rollup, the base table it is derived from: a derived table is
/// not fed per flow; its open rows are the open rows of its source,
/// regrouped (at seal and at query time). The source is the coarsest other
/// table that is fed per flow, keeps every dimension the derived one keeps,
/// and whose grain divides the derived one's.
fn derive_sources(specs: &[RollupSpec]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|i| specs[*i].grain_secs);
    let mut sources = vec![None; specs.len()];
    let mut bases: Vec<usize> = Vec::new();
    for i in order {
        let fits = |j: &&usize| {
            let (base, spec) = (&specs[**j], &specs[i]);
            base.grain_secs < spec.grain_secs
                && spec.grain_secs.is_multiple_of(base.grain_secs)
                && spec.dims.iter().all(|d| base.dims.contains(d))
        };
        sources[i] = bases
            .iter()
            .filter(fits)
            .max_by_key(|j| specs[**j].grain_secs)
            .copied();
        if sources[i].is_none() {
            bases.push(i);
        }
    }
    sources
}

#[derive(Debug)]
struct DetailTable {
    spec: DetailSpec,
    schema: SchemaRef,
}

/// The workload ids of both sides of every flow of `flows`.
fn workload_ids<'a>(
    flows: &'a [EnrichedFlow<'_, '_>],
) -> impl Iterator<Item = WorkloadId> + Clone + 'a {
    flows.iter().flat_map(|f| [f.src, f.dst])
}

/// The store. See the module header.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    /// Shared by every shard; locked only to intern a new string.
    dict: Mutex<Dictionary>,
    keywords: KeywordCodes,
    rollups: Vec<RollupTable>,
    detail: DetailTable,
    /// The open rows (see `store/shard.rs`).
    shards: Shards,
    /// Workloads' side codes, for every shard (see `store/sides.rs`).
    sides: WorkloadSides,
    manifest: Manifest,
    pending_positions: Mutex<BTreeMap<String, String>>,
    /// See [`Manifest::dropped_below`]; committed with the next manifest.
    dropped_below: Mutex<BTreeMap<String, u32>>,
    /// The newest believed event time (see `trawl_attrib::newest`).
    newest: Mutex<NewestTime>,
    /// Event times sources have each reached (a stream's slowest
    /// partition): the watermark stays behind the smallest.
    watermark_caps: Mutex<BTreeMap<String, u32>>,
    /// Per sink, the newest generation it published: detail segments
    /// sealed after the smallest are not compacted (see
    /// [`Store::hold_detail_after`]); committed with the next manifest.
    detail_holds: Mutex<BTreeMap<String, u64>>,
    stats: StoreStats,
    doomed: Vec<(PathBuf, Instant)>,
    /// The next segment id no draft has used: drafts number from here, so
    /// a manifest that failed to publish (or published on disk but not in
    /// memory) never shares a file name with a later one.
    ids_drafted: u64,
    interrupt_after_steps: Option<usize>,
    /// Rows a seal took from the open buckets and has not yet published
    /// (being written, or left by a failed or abandoned seal for the next
    /// one); queries read them as open rows. A [`SealJob`] that is out holds
    /// the other reference: that is how the store knows a seal is writing,
    /// and a job dropped without `seal_finish` (a panicking writer) cannot
    /// leave the store waiting for it forever.
    sealing: Arc<[PendingSegment]>,
    /// Bytes of row groups a seal has encoded and not yet appended to
    /// their files (the writer's buffers, counted as open memory).
    encoded_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// Decoded rollup segments for queries, once a query engine reads the
    /// store (see `segment_cache.rs`).
    segment_cache: Arc<SegmentCache>,
    /// Whether sealed segments go into the cache (and queries load the
    /// others): set by the first query engine that asks, so a load with no
    /// queries keeps no copies.
    cache_written: std::sync::atomic::AtomicBool,
    /// The live tail of stored `flows` rows (`tail.rs`): fed by
    /// [`Store::add_batch`] only while someone listens.
    tail: Arc<TailFeed>,
}

impl Store {
    /// Opens (or creates) the data directory and restores its manifest's
    /// state; deletes files the manifest does not list.
    pub fn open(mut config: StoreConfig) -> Result<Store, StoreError> {
        config.validate()?;
        let io_error = |source| StoreError::Io {
            path: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io_error)?;
        // Segment paths go to DataFusion's object store, which needs them absolute.
        let dir = std::fs::canonicalize(&config.data_dir).map_err(io_error)?;
        config.data_dir = dir.clone();
        let manifest = Manifest::load(&dir)?;
        for segment in &manifest.segments {
            crate::segment::check_segment(&Manifest::segment_path(&dir, segment), segment)?;
        }
        let mut dict = Dictionary::new(config.dictionary_strings_max);
        let keywords = KeywordCodes {
            action: ACTION_TEXTS.map(|a| dict.code(a.as_str())),
            direction: DIRECTION_TEXTS.map(|d| dict.code(d.as_str())),
        };
        let rollups: Vec<RollupTable> = config
            .rollups
            .iter()
            .zip(derive_sources(&config.rollups))
            .map(|(spec, source)| RollupTable {
                schema: spec.schema(),
                spec: spec.clone(),
                source,
                source_retention_secs: source.map(|j| config.rollups[j].retention_secs),
            })
            .collect();
        let store = Store {
            detail: DetailTable {
                spec: config.detail.clone(),
                schema: detail_schema(),
            },
            dict: Mutex::new(dict),
            keywords,
            shards: Shards::new(config.open_shards, &rollups),
            sides: WorkloadSides::default(),
            rollups,
            pending_positions: Mutex::new(manifest.positions.clone()),
            dropped_below: Mutex::new(manifest.dropped_below.clone()),
            // A watermark already carried past the wall clock (by a version
            // without the bound) must not go on expiring history.
            newest: Mutex::new(NewestTime::new(
                manifest.max_event_time,
                config.newest_limits(),
                config.wall_clock(),
            )),
            watermark_caps: Mutex::new(BTreeMap::new()),
            detail_holds: Mutex::new(manifest.detail_holds.clone()),
            manifest,
            stats: StoreStats::default(),
            doomed: Vec::new(),
            ids_drafted: 0,
            interrupt_after_steps: None,
            sealing: Arc::from([]),
            encoded_bytes: Arc::default(),
            segment_cache: Arc::new(SegmentCache::new(config.segment_cache_bytes_max)),
            cache_written: std::sync::atomic::AtomicBool::new(false),
            tail: Arc::new(TailFeed::new()),
            config,
        };
        store.cache_segments(&[]);
        store.remove_garbage()?;
        Ok(store)
    }

    /// Deletes segment files and temporary files the manifest does not list.
    fn remove_garbage(&self) -> Result<(), StoreError> {
        let dir = &self.config.data_dir;
        let live = self.listed_paths();
        let _ = std::fs::remove_file(dir.join("MANIFEST.tmp"));
        for table in self.table_names() {
            let table_dir = dir.join(table);
            let Ok(entries) = std::fs::read_dir(&table_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let unlisted =
                    path.extension().is_some_and(|e| e == "parquet") && !live.contains(&path);
                // A segment whose write was cut short (see `write_segment`).
                let partial = path.extension().is_some_and(|e| e == "tmp");
                if unlisted || partial {
                    std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> StoreStats {
        let added = self.shards.stats();
        StoreStats {
            records: added.records,
            records_without_time: added.records_without_time,
            records_without_traffic: added.records_without_traffic,
            late_records: added.late_records,
            expired_records: added.expired_records,
            future_records: added.future_records,
            ..self.stats
        }
    }

    /// The durable state (as of the last commit).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Source positions of the last commit: where sources resume after a restart.
    pub fn positions(&self) -> &BTreeMap<String, String> {
        &self.manifest.positions
    }

    /// Source positions handed in so far, committed or not: where a source
    /// running in this process goes on from. Writers wait while it is held.
    pub fn pending_positions(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        lock(&self.pending_positions)
    }

    /// Sets positions and forgets others (a source whose input moved or is
    /// gone), with no flows: committed with the next seal, all together,
    /// as every position is.
    pub fn edit_positions(&mut self, set: &[(&str, &str)], forget: &[&str]) {
        let positions = lock_mut(&mut self.pending_positions);
        for key in forget {
            positions.remove(*key);
        }
        for (key, value) in set {
            positions.insert((*key).to_string(), (*value).to_string());
        }
    }

    /// The time below which `table` may lack flows (0: it has them all);
    /// see [`Manifest::dropped_below`].
    pub fn dropped_below(&self, table: &str) -> u32 {
        lock(&self.dropped_below).get(table).copied().unwrap_or(0)
    }

    /// Newest event time minus the allowed lateness (0 before any record),
    /// held behind the event time every source has reached
    /// ([`Store::set_watermark_cap`]).
    pub fn watermark(&self) -> u32 {
        let newest = lock(&self.newest).get();
        self.watermark_of(newest)
    }

    fn watermark_of(&self, newest: Option<u32>) -> u32 {
        let cap = lock(&self.watermark_caps).values().min().copied();
        newest
            .map(|t| cap.map_or(t, |cap| t.min(cap)))
            .map_or(0, |t| t.saturating_sub(self.config.lateness_secs))
    }

    /// Keeps the detail segments sealed after `generation` out of
    /// compaction for `holder` (a sink publishes each seal's segments, by
    /// their `sealed_in`, and has published up to `generation`); `None`
    /// drops the holder's hold. Segments are held while any holder holds
    /// them; the holds go into the next manifest, so they hold from the
    /// next open on (also in a run without the sink). Retention still
    /// removes held segments when they expire.
    pub fn hold_detail_after(&self, holder: &str, generation: Option<u64>) {
        let mut holds = lock(&self.detail_holds);
        match generation {
            Some(g) => {
                holds.insert(holder.to_string(), g);
            }
            None => {
                holds.remove(holder);
            }
        }
    }

    /// The generation `holder` holds detail segments after, if it does.
    pub fn detail_hold(&self, holder: &str) -> Option<u64> {
        lock(&self.detail_holds).get(holder).copied()
    }

    /// Detail segments sealed after this generation are held (the
    /// smallest hold), if any are.
    pub(crate) fn detail_held_after(&self) -> Option<u64> {
        lock(&self.detail_holds).values().min().copied()
    }

    /// The rows of detail segment `meta`, read from its file and checked
    /// against the table's columns (the file is read without the store
    /// lock: clone the segment's listing, drop the lock, then call
    /// [`read_detail_segment`] with what [`Store::detail_source`] gave).
    pub fn detail_source(&self) -> Option<(PathBuf, SchemaRef)> {
        let schema = self.table_schema(DETAIL_TABLE)?;
        Some((self.config.data_dir.clone(), schema))
    }

    /// Holds the watermark at or behind `reached` (event time) for
    /// `source`, a stream whose slowest input has got that far; `None`
    /// lets it go (the source stopped, or every input is idle).
    pub fn set_watermark_cap(&self, source: &str, reached: Option<u32>) {
        let mut caps = lock(&self.watermark_caps);
        match reached {
            Some(t) => caps.insert(source.to_string(), t),
            None => caps.remove(source),
        };
    }

    /// Every table's name: `flows`, then the rollups.
    pub fn table_names(&self) -> Vec<&str> {
        std::iter::once(DETAIL_TABLE)
            .chain(self.rollups.iter().map(|r| r.spec.name.as_str()))
            .collect()
    }

    /// The schema and chunk width of `table`.
    pub fn table_schema(&self, table: &str) -> Option<SchemaRef> {
        if table == DETAIL_TABLE {
            return Some(self.detail.schema.clone());
        }
        self.rollup(table).map(|r| r.schema.clone())
    }

    fn rollup(&self, table: &str) -> Option<&RollupTable> {
        self.rollups.iter().find(|r| r.spec.name == table)
    }

    /// `(chunk_secs, retention_secs)` of `table`; `None` for a table the
    /// configuration no longer has.
    fn table_limits(&self, table: &str) -> Option<(u32, u32)> {
        if table == DETAIL_TABLE {
            let spec = &self.detail.spec;
            return Some((spec.chunk_secs, spec.retention_secs));
        }
        self.rollup(table)
            .map(|r| (r.spec.chunk_secs, r.spec.retention_secs))
    }

    fn chunk_secs(&self, table: &str) -> u32 {
        self.table_limits(table)
            .map_or(1, |(chunk_secs, _)| chunk_secs)
    }

    fn retention_floor(&self, retention_secs: u32) -> u32 {
        self.watermark().saturating_sub(retention_secs)
    }

    /// Forgets the codes of every workload (call when the workload table
    /// handed to [`Store::add_batch`] is replaced by another).
    pub fn forget_workloads(&mut self) {
        self.sides.clear();
        for shard in self.shards.each_mut() {
            shard.forget_workloads();
        }
    }

    /// Notes the side codes of the workloads `ids` of `workloads`, so that
    /// [`Store::add_noted_batch`] can add their flows without the table
    /// (see `store/sides.rs`). Cheap when all are noted already.
    pub fn note_workloads(
        &self,
        ids: impl IntoIterator<Item = WorkloadId> + Clone,
        workloads: &WorkloadTable,
    ) {
        self.sides.note(ids, workloads, &self.dict);
    }

    /// Adds attributed flows, then records `positions` (source → opaque
    /// position) as covering everything added so far. Never seals: only
    /// the caller knows when every flow before a position is in the store
    /// (a pipeline may hold some back), so it seals when [`Store::over_cap`]
    /// says so, after releasing what it holds. Takes `&self`: writers on
    /// several threads add at once, each to a shard of its own (see
    /// `store/shard.rs`); a seal needs the store exclusively, so it never
    /// falls between a batch and its positions.
    pub fn add_batch(
        &self,
        flows: &[EnrichedFlow<'_, '_>],
        workloads: &WorkloadTable,
        positions: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        self.note_workloads(workload_ids(flows), workloads);
        self.add_batch_in(None, flows, positions)
    }

    /// [`add_batch`](Self::add_batch) of flows whose workloads were noted
    /// ([`Store::note_workloads`]): no workload table needed. A flow of a
    /// workload not noted refuses the whole batch before anything of it is
    /// added ([`StoreError::WorkloadNotNoted`]).
    pub fn add_noted_batch(
        &self,
        flows: &[EnrichedFlow<'_, '_>],
        positions: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        self.add_batch_in(None, flows, positions)
    }

    /// [`add_batch`](Self::add_batch) into shard `shard` (modulo the
    /// number of shards), waiting for it if it is held. For tests that
    /// spread rows over shards deterministically.
    #[doc(hidden)]
    pub fn add_batch_to_shard(
        &self,
        shard: usize,
        flows: &[EnrichedFlow<'_, '_>],
        workloads: &WorkloadTable,
        positions: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        self.note_workloads(workload_ids(flows), workloads);
        self.add_batch_in(Some(shard), flows, positions)
    }

    fn add_batch_in(
        &self,
        shard: Option<usize>,
        flows: &[EnrichedFlow<'_, '_>],
        positions: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let sides = self.sides.read();
        if let Some(id) = workload_ids(flows).find(|id| sides.get(*id).is_none()) {
            return Err(StoreError::WorkloadNotNoted { id });
        }
        let (watermark, future) = self.observe_times(flows);
        let (index, mut shard) = match shard {
            Some(i) => self.shards.lock(i),
            None => self.shards.writer(),
        };
        shard.stats.future_records += future;
        let mut dropped: Vec<(&str, u32)> = Vec::new();
        // The live tail's rows: the flows `flows` keeps (or would keep, when
        // disabled), built only while someone listens (`tail.rs`).
        let mut tail = TailRows::start(&self.tail, flows.len());
        let tail_floor = watermark.saturating_sub(self.detail.spec.retention_secs);
        for flow in flows {
            let Some(start) = flow.record.start().and_then(|s| u32::try_from(s).ok()) else {
                shard.stats.records_without_time += 1;
                continue;
            };
            shard.stats.records += 1;
            if start < watermark {
                shard.stats.late_records += 1;
            }
            // Every id was checked above: NULL_SIDE is never taken.
            let src = sides.get(flow.src).unwrap_or(NULL_SIDE);
            let dst = sides.get(flow.dst).unwrap_or(NULL_SIDE);
            let dims = flow_dims(flow.record, &src, &dst, &self.keywords);
            let added = Added {
                start,
                record: flow.record,
                workloads: [flow.src, flow.dst],
                dims: &dims,
                watermark,
            };
            self.add_one(&mut shard, &added, &mut dropped);
            if let Some(tail) = tail.as_mut()
                && start >= tail_floor
            {
                tail.add(start, flow.record, &dims, &self.detail.schema);
            }
        }
        shard.flush();
        if let Some(tail) = tail {
            // Taken while the shard is held: every code the rows use is interned.
            let dictionary = lock(&self.dict).values();
            tail.send(&self.tail, &self.detail.schema, &dictionary);
        }
        // Noted before the shard is let go: a query that sees this batch's
        // rows also sees which tables left some of them out.
        if !dropped.is_empty() {
            let mut dropped_below = lock(&self.dropped_below);
            for (table, start) in dropped {
                note_dropped(&mut dropped_below, table, start);
            }
        }
        self.shards.publish_bytes(index, &shard);
        drop(shard);
        self.note_positions(positions)
    }

    /// Records source positions for the next seal without adding flows:
    /// the flows they cover were added before, under the same shared lock
    /// (a seal, which takes the store exclusively, never falls between).
    pub fn note_positions(&self, positions: &[(&str, &str)]) -> Result<(), StoreError> {
        if !positions.is_empty() {
            let mut pending = lock(&self.pending_positions);
            for (source, position) in positions {
                pending.insert((*source).to_string(), (*position).to_string());
            }
        }
        Ok(())
    }

    /// The watermark before `flows`, and how many of them are not believed
    /// (see `trawl_attrib::newest`); their believed times move the newest
    /// event time. One short lock for the batch.
    fn observe_times(&self, flows: &[EnrichedFlow<'_, '_>]) -> (u32, u64) {
        let (limits, now) = (self.config.newest_limits(), self.config.wall_clock());
        let mut newest = lock(&self.newest);
        let watermark = self.watermark_of(newest.get());
        let mut future = 0;
        for flow in flows {
            if let Some(start) = flow.record.start().and_then(|s| u32::try_from(s).ok())
                && newest.observe(start, limits, now) != Observed::Believed
            {
                // Kept, but a clock that is wrong must not seal or expire anything.
                future += 1;
            }
        }
        (watermark, future)
    }

    /// Adds one flow to `shard`; tables that left it out for retention go
    /// to `dropped` (see [`Manifest::dropped_below`]).
    fn add_one<'s>(
        &'s self,
        shard: &mut Shard,
        flow: &Added<'_, '_>,
        dropped: &mut Vec<(&'s str, u32)>,
    ) {
        let Added {
            start,
            record,
            workloads,
            dims,
            watermark,
        } = *flow;
        let mut expired = false;
        let has_traffic = matches!(record.log_status(), None | Some(LogStatus::Ok));
        if has_traffic {
            let measures = Measures {
                bytes: record.bytes().unwrap_or(0),
                packets: record.packets().unwrap_or(0),
                flows: 1,
            };
            let past = |retention_secs: u32| start < watermark.saturating_sub(retention_secs);
            for (table, open) in self.rollups.iter().zip(&mut shard.tables) {
                let spec = &table.spec;
                if past(spec.retention_secs) {
                    // Past retention: `expire` would delete it at the next seal.
                    expired = true;
                    dropped.push((&spec.name, start));
                    continue;
                }
                if table.source_retention_secs.is_some_and(|r| !past(r)) {
                    // Derived from its source's rows, which hold this one.
                    continue;
                }
                let key = open
                    .layout
                    .key(start - start % spec.grain_secs, Some(workloads), dims);
                open.add(start - start % spec.chunk_secs, key, measures);
            }
        } else {
            shard.stats.records_without_traffic += 1;
        }
        let detail = &self.detail;
        if detail.spec.enabled {
            if start < watermark.saturating_sub(detail.spec.retention_secs) {
                expired = true;
                dropped.push((DETAIL_TABLE, start));
            } else {
                shard
                    .detail
                    .get_or_insert(
                        start - start % detail.spec.chunk_secs,
                        DetailBucket::default,
                    )
                    .add(start, record, dims, &detail.schema);
            }
        }
        shard.stats.expired_records += u64::from(expired);
    }

    /// A new listener of the live tail: batches of the `flows` schema with
    /// the rows of every flow stored from now on (see `tail.rs`).
    pub fn tail_subscribe(&self) -> TailSubscription {
        self.tail.subscribe()
    }

    /// The live tail's feed, to subscribe without holding the store.
    pub fn tail_feed(&self) -> Arc<TailFeed> {
        self.tail.clone()
    }

    /// Approximate bytes held by open buckets (as their writers last
    /// published them), rows being sealed, a seal's encoded row groups not
    /// yet in their files, and the dictionary.
    pub fn open_bytes(&self) -> usize {
        let sealing: usize = self.sealing.iter().map(|p| p.memory_bytes).sum();
        let encoded = self
            .encoded_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        self.shards.bytes() + sealing + encoded + lock(&self.dict).memory_bytes()
    }

    /// Whether open memory (rows being sealed included) is past the cap:
    /// time for the caller to seal, and for sources to wait.
    pub fn over_cap(&self) -> bool {
        self.open_bytes() > self.config.open_bytes_max
    }

    /// Whether a seal's segments are being written (see [`crate::commit`]).
    pub fn seal_in_flight(&self) -> bool {
        Arc::strong_count(&self.sealing) > 1
    }

    /// Rows held in open buckets and rows being sealed: rows not yet in a
    /// published segment.
    pub fn open_rows(&self) -> usize {
        let sealing: u64 = self.sealing.iter().map(|p| p.meta.rows).sum();
        self.shards.each().map(|s| s.rows()).sum::<usize>() + sealing as usize
    }

    /// Whether the watermark has passed an open chunk (time to seal).
    pub fn seal_due(&self) -> bool {
        let watermark = self.watermark();
        let closed = |chunk: u32, secs: u32| chunk_closed(chunk, secs, watermark);
        self.shards.each().any(|shard| {
            self.rollups.iter().zip(&shard.tables).any(|(t, open)| {
                open.open
                    .chunks
                    .iter()
                    .any(|(c, _)| closed(*c, t.spec.chunk_secs))
            }) || shard
                .detail
                .chunks
                .iter()
                .any(|(c, _)| closed(*c, self.detail.spec.chunk_secs))
        })
    }

    /// The open rows of `table` whose chunks overlap `[from, to]`, as
    /// batches (every shard's).
    pub fn open_batches(
        &self,
        table: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let overlaps = |chunk: u32, secs: u32| chunk_overlaps(chunk, secs, (from, to));
        // Rows a seal is writing are still open rows until it publishes.
        let mut batches: Vec<RecordBatch> = self
            .sealing
            .iter()
            .filter(|p| p.meta.table == table && overlaps(p.meta.chunk_start, p.chunk_secs))
            .flat_map(|p| p.batches.iter().cloned())
            .collect();
        for shard in self.shards.each() {
            // Taken once the shard is held: a writer adding to it may have
            // interned new strings, whose codes its rows use.
            let dictionary = lock(&self.dict).values();
            self.shard_batches(&shard, table, (from, to), &dictionary, &mut batches)
                .map_err(|source| StoreError::Arrow {
                    table: table.to_string(),
                    source,
                })?;
        }
        Ok(batches)
    }

    /// [`open_batches`](Self::open_batches) of one shard, appended to `out`.
    fn shard_batches(
        &self,
        shard: &Shard,
        table: &str,
        (from, to): (u32, u32),
        dictionary: &Arc<StringArray>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), arrow::error::ArrowError> {
        let overlaps = |chunk: u32, secs: u32| chunk_overlaps(chunk, secs, (from, to));
        if table == DETAIL_TABLE {
            let secs = self.detail.spec.chunk_secs;
            for (_, bucket) in shard
                .detail
                .chunks
                .iter()
                .filter(|(c, b)| overlaps(*c, secs) && !b.is_empty())
            {
                out.extend(bucket.to_batches(&self.detail.schema, dictionary)?);
            }
            return Ok(());
        }
        let Some(index) = self.rollups.iter().position(|r| r.spec.name == table) else {
            return Ok(());
        };
        let (rollup, own) = (&self.rollups[index], &shard.tables[index]);
        debug_assert!(shard.is_flushed());
        for (_, bucket) in own
            .open
            .chunks
            .iter()
            .filter(|(c, b)| overlaps(*c, rollup.spec.chunk_secs) && !b.is_empty())
        {
            out.push(bucket.to_batch(&rollup.schema, &own.layout, dictionary)?);
        }
        let Some(j) = rollup.source else {
            return Ok(());
        };
        let (source, source_open) = (&self.rollups[j], &shard.tables[j]);
        // A derived table's open rows are its source's with `time` floored to
        // its grain, not merged: queries sum rows of equal keys anyway (as
        // across segments), so nothing is hashed per query. A source chunk
        // counts if its floored times can fall in `[from, to]`.
        let grain = rollup.spec.grain_secs;
        for (_, bucket) in source_open.open.chunks.iter().filter(|(c, b)| {
            !b.is_empty()
                && c - c % grain <= to
                && u64::from(*c) + u64::from(source.spec.chunk_secs) > u64::from(from)
        }) {
            let batch = bucket.to_batch(&source.schema, &source_open.layout, dictionary)?;
            out.push(regrain(&batch, &rollup.schema, grain)?);
        }
        Ok(())
    }

    /// The live segments of `table` whose time ranges overlap `[from, to]`.
    pub fn segments(&self, table: &str, from: u32, to: u32) -> Vec<(PathBuf, SegmentMeta)> {
        self.manifest
            .segments
            .iter()
            .filter(|s| s.table == table && s.time_min <= to && s.time_max >= from)
            .map(|s| (Manifest::segment_path(&self.config.data_dir, s), s.clone()))
            .collect()
    }

    /// Seals every open bucket into segments and commits the manifest with
    /// the positions handed in so far: [`seal_begin`](Self::seal_begin),
    /// [`SealJob::write`] and [`seal_finish`](Self::seal_finish) in one go.
    /// A caller that shares the store between threads runs the write
    /// without the lock instead.
    pub fn seal(&mut self) -> Result<SealReport, StoreError> {
        let mut job = self.seal_begin()?;
        job.write();
        self.seal_finish(job)
    }

    /// First step of a seal (see [`crate::commit`]): takes every open bucket
    /// (and the rows a failed seal left) as the segments of a [`SealJob`],
    /// and drafts the manifest that lists them with the positions handed in
    /// so far. Until [`seal_finish`](Self::seal_finish) the rows stay
    /// visible to queries, and new flows go to fresh open buckets.
    pub fn seal_begin(&mut self) -> Result<SealJob, StoreError> {
        if self.seal_in_flight() {
            return Err(StoreError::SealInFlight);
        }
        let first = self.manifest.next_segment.max(self.ids_drafted);
        let mut id = first;
        let mut pending = Vec::new();
        for left in self.sealing.iter() {
            let (table, chunk) = (&left.meta.table, left.meta.chunk_start);
            let batches = left.batches.clone();
            pending.push(PendingSegment::new(
                table,
                chunk,
                left.chunk_secs,
                batches,
                id,
            ));
            id += 1;
        }
        pending.extend(self.open_segments(id)?);
        // Rows a failed seal left share buffers with the new ones too.
        crate::commit::count_memory_once(&mut pending);
        let mut next = self.manifest.clone();
        let generation = self.manifest.generation + 1;
        next.segments.extend(pending.iter().map(|p| SegmentMeta {
            sealed_in: Some(generation),
            ..p.meta.clone()
        }));
        next.positions = lock_mut(&mut self.pending_positions).clone();
        next.detail_holds = lock(&self.detail_holds).clone();
        next.max_event_time = lock_mut(&mut self.newest).get();
        next.next_segment = first + pending.len() as u64;
        self.ids_drafted = next.next_segment;
        let expired = self.expire(&mut next);
        let deltas = pending
            .iter()
            .filter(|p| {
                self.manifest
                    .segments
                    .iter()
                    .any(|s| s.table == p.meta.table && s.chunk_start == p.meta.chunk_start)
            })
            .count();
        let pending: Arc<[PendingSegment]> = pending.into();
        self.sealing = Arc::clone(&pending);
        self.shards.clear();
        // Nothing else publishes while the job is out (maintenance waits),
        // so the generation is known now and the manifest can be written
        // with the segments, without the lock.
        next.generation = generation;
        Ok(SealJob {
            pending,
            next,
            dir: self.config.data_dir.clone(),
            steps: Steps::new(self.interrupt_after_steps.take()),
            deltas,
            expired,
            written: None,
            encoded_bytes: Arc::clone(&self.encoded_bytes),
        })
    }

    /// Last step of a seal: if the job's segments were written, publishes
    /// its manifest (the sealing rows are segments from then on). If not,
    /// or if publishing fails, the rows stay for the next seal and the
    /// error is returned.
    pub fn seal_finish(&mut self, job: SealJob) -> Result<SealReport, StoreError> {
        let SealJob {
            pending,
            next,
            mut steps,
            deltas,
            expired,
            written,
            ..
        } = job;
        written.unwrap_or_else(|| {
            Err(StoreError::Config(
                "a seal was finished before its segments were written".into(),
            ))
        })?;
        if next.generation != self.manifest.generation + 1 {
            return Err(StoreError::Config(
                "another manifest was published while a seal was out".into(),
            ));
        }
        // MANIFEST.tmp was written and synced by the job: only the rename
        // and the directory sync happen under the lock.
        steps.step()?;
        Manifest::publish_pending(&self.config.data_dir)?;
        self.manifest = next;
        self.cache_segments(&pending);
        if Arc::ptr_eq(&self.sealing, &pending) {
            self.sealing = Arc::from([]);
        }
        self.stats.seals += 1;
        self.stats.segments_sealed += pending.len() as u64;
        self.stats.delta_segments += deltas as u64;
        self.stats.segments_expired += expired as u64;
        Ok(SealReport {
            segments: pending.len(),
            rows: pending.iter().map(|p| p.meta.rows).sum(),
        })
    }

    /// Makes the next commit (of a seal or of [`Store::maintain`]) stop after
    /// `steps` durable steps (each segment write, the directory sync, the
    /// manifest write, the manifest publish) with [`StoreError::Interrupted`],
    /// leaving disk and memory as a crash at that point would. For crash tests.
    #[doc(hidden)]
    pub fn interrupt_next_commit_after(&mut self, steps: usize) {
        self.interrupt_after_steps = Some(steps);
    }

    /// Removes segments past their table's retention from `next`; returns how many.
    fn expire(&mut self, next: &mut Manifest) -> usize {
        let before = next.segments.len();
        let mut doomed = Vec::new();
        let mut dropped = Vec::new();
        next.segments.retain(|s| {
            let retention = self.table_limits(&s.table).map(|(_, r)| r);
            let keep = retention.is_none_or(|r| s.time_max >= self.retention_floor(r));
            if !keep {
                doomed.push(Manifest::segment_path(&self.config.data_dir, s));
                dropped.push((s.table.clone(), s.time_max));
            }
            keep
        });
        let dropped_below = lock_mut(&mut self.dropped_below);
        for (table, time_max) in dropped {
            note_dropped(dropped_below, &table, time_max);
        }
        next.dropped_below = dropped_below.clone();
        let now = Instant::now();
        for path in doomed {
            if !self.doomed.iter().any(|(p, _)| *p == path) {
                self.doomed.push((path, now));
            }
        }
        before - next.segments.len()
    }

    /// Writes and publishes `next` (segments already on disk); then the
    /// in-memory manifest is `next`.
    fn publish(&mut self, mut next: Manifest, steps: &mut Steps) -> Result<(), StoreError> {
        let dir = &self.config.data_dir;
        next.generation = self.manifest.generation + 1;
        steps.step()?;
        next.write_pending(dir)?;
        steps.step()?;
        Manifest::publish_pending(dir)?;
        self.manifest = next;
        self.cache_segments(&[]);
        Ok(())
    }

    /// Keeps decoded rollup segments for queries from now on (see
    /// `segment_cache.rs`): what seals and compactions write, and what
    /// queries load. A server's query engine does this; a one-off query
    /// or a load does not.
    pub fn keep_segments_in_memory(&self) {
        self.cache_written
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The decoded segments queries read, once
    /// [`keep_segments_in_memory`](Self::keep_segments_in_memory) was called.
    pub fn segment_cache(&self) -> Option<Arc<SegmentCache>> {
        self.cache_written
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| self.segment_cache.clone())
    }

    /// After a manifest is published: keeps the rollup segments just
    /// written (`written`) in the cache, if a query engine reads it, and
    /// drops the cached ones the manifest no longer lists.
    pub(crate) fn cache_segments(&self, written: &[PendingSegment]) {
        let listed: HashMap<u64, &SegmentMeta> =
            self.manifest.segments.iter().map(|s| (s.id, s)).collect();
        self.segment_cache
            .set_listed(listed.keys().copied().collect());
        if !self
            .cache_written
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        for segment in written {
            let table = &segment.meta.table;
            let Some(meta) = listed
                .get(&segment.meta.id)
                .filter(|_| table != DETAIL_TABLE)
            else {
                continue;
            };
            if let Some(schema) = self.table_schema(table) {
                self.segment_cache
                    .insert(meta.id, &segment.batches, &schema, meta.rows);
            }
        }
    }

    /// Compacts chunks (closed ones with several segments, open ones with
    /// too many), applies retention, and deletes replaced files whose delay
    /// has passed, in one go (see `compact` for the three steps a running
    /// pipeline takes, without holding the store while it reads and
    /// writes). Returns the number of chunks compacted.
    pub fn maintain(&mut self) -> Result<usize, StoreError> {
        let Some(mut job) = self.compaction_begin()? else {
            return Ok(0);
        };
        job.run();
        self.compaction_finish(job)
    }

    /// The files of the segments the published manifest lists.
    fn listed_paths(&self) -> HashSet<PathBuf> {
        let dir = &self.config.data_dir;
        self.manifest
            .segments
            .iter()
            .map(|s| Manifest::segment_path(dir, s))
            .collect()
    }

    /// Deletes replaced files (all of them with `now`, else those past the
    /// delay). A file the published manifest still lists is never deleted:
    /// retention dooms files while drafting a manifest, and when that
    /// manifest is not published (disk full) the files stay in use; they
    /// wait until a manifest without them is.
    pub fn delete_doomed(&mut self, now: bool) {
        let delay = self.config.delete_delay;
        let listed = self.listed_paths();
        self.doomed.retain(|(path, since)| {
            if listed.contains(path) {
                true
            } else if now || since.elapsed() >= delay {
                // A file already gone is what we wanted; a file we cannot
                // delete is garbage the next open removes.
                let _ = std::fs::remove_file(path);
                false
            } else {
                true
            }
        });
    }

    fn compaction_candidates(&self) -> Vec<(String, u32)> {
        let watermark = self.watermark();
        let mut counts: BTreeMap<(&str, u32), usize> = BTreeMap::new();
        for s in &self.manifest.segments {
            *counts.entry((&s.table, s.chunk_start)).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|((table, chunk), n)| {
                let closed = chunk_closed(*chunk, self.chunk_secs(table), watermark);
                (*n >= 2 && closed) || *n > self.config.segments_per_chunk_max
            })
            .map(|((table, chunk), _)| (table.to_string(), chunk))
            .collect()
    }

    /// Reads segments of one chunk and merges them into one batch: rollup
    /// rows with equal keys are summed, detail rows are concatenated.
    fn merge_segments(
        &mut self,
        table: &str,
        segments: &[SegmentMeta],
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let arrow = |source| StoreError::Arrow {
            table: table.to_string(),
            source,
        };
        let mut batches = Vec::new();
        let schema = self
            .table_schema(table)
            .ok_or_else(|| StoreError::Config(format!("no table {table}")))?;
        for s in segments {
            let path = Manifest::segment_path(&self.config.data_dir, s);
            batches.extend(read_segment_of(&path, s, table, &schema)?);
        }
        let Some(index) = self.rollups.iter().position(|r| r.spec.name == table) else {
            return Ok(batches);
        };
        let mut bucket = RollupBucket::default();
        let mut layout = RollupLayout::new(&self.rollups[index].spec.dims);
        for batch in &batches {
            self.add_rollup_batch(index, (&mut layout, &mut bucket), batch)
                .map_err(|error| match error {
                    CodesError::Arrow(e) => arrow(e),
                    CodesError::DictionaryFull => StoreError::DictionaryFull {
                        table: table.to_string(),
                        chunk_start: segments.first().map_or(0, |s| s.chunk_start),
                    },
                })?;
        }
        let rollup = &self.rollups[index];
        bucket
            .to_batch(&rollup.schema, &layout, &lock_mut(&mut self.dict).values())
            .map(|batch| vec![batch])
            .map_err(arrow)
    }

    /// Adds the rows of a rollup batch (as read from a segment) to `bucket`
    /// (its keys in `layout`).
    fn add_rollup_batch(
        &mut self,
        table: usize,
        (layout, bucket): (&mut RollupLayout, &mut RollupBucket),
        batch: &RecordBatch,
    ) -> Result<(), CodesError> {
        let dims = self.rollups[table].spec.dims.clone();
        let rows = batch.num_rows();
        let mut columns: Vec<Vec<u32>> = Vec::with_capacity(dims.len() + 1);
        let times = batch.column(0).as_primitive::<TimestampSecondType>();
        columns.push(times.values().iter().map(|t| *t as u32).collect());
        for (i, dim) in dims.iter().enumerate() {
            columns.push(self.column_codes(*dim, batch.column(i + 1))?);
        }
        let measure = |i: usize| {
            batch
                .column(dims.len() + 1 + i)
                .as_primitive::<UInt64Type>()
                .clone()
        };
        let (bytes, packets, flows) = (measure(0), measure(1), measure(2));
        let mut codes = [NULL_CODE; DIM_COUNT];
        for row in 0..rows {
            for (dim, column) in dims.iter().zip(&columns[1..]) {
                codes[*dim as usize] = column[row];
            }
            bucket.add(
                layout.key(columns[0][row], None, &codes),
                Measures {
                    bytes: bytes.value(row),
                    packets: packets.value(row),
                    flows: flows.value(row),
                },
            );
        }
        Ok(())
    }

    /// The codes of a dimension column read back from a segment.
    fn column_codes(&mut self, dim: Dim, column: &Arc<dyn Array>) -> Result<Vec<u32>, CodesError> {
        match dim.dim_type() {
            DimType::Text => {
                let column =
                    arrow::compute::cast(column, &text_type()).map_err(CodesError::Arrow)?;
                let dictionary = column.as_dictionary::<arrow::datatypes::UInt32Type>();
                let values: &StringArray = dictionary.values().as_string();
                let codes: Vec<u32> = (0..values.len())
                    .map(|i| {
                        if values.is_null(i) {
                            Some(NULL_CODE)
                        } else {
                            lock_mut(&mut self.dict).code_exact(values.value(i))
                        }
                    })
                    .collect::<Option<_>>()
                    .ok_or(CodesError::DictionaryFull)?;
                Ok((0..dictionary.len())
                    .map(|row| {
                        if dictionary.is_null(row) {
                            NULL_CODE
                        } else {
                            codes[dictionary.keys().value(row) as usize]
                        }
                    })
                    .collect())
            }
            DimType::Int => {
                let ints = column.as_primitive::<arrow::datatypes::Int32Type>();
                Ok(ints
                    .iter()
                    .map(|v| v.map_or(NULL_CODE, |v| v as u32))
                    .collect())
            }
            DimType::Bool => {
                let bools = column.as_boolean();
                Ok(bools
                    .iter()
                    .map(|v| v.map_or(NULL_CODE, u32::from))
                    .collect())
            }
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

/// The smallest of a chunk's `segments` whose bytes add up to at most
/// `bytes_max` (merged together), and the others (left as they are).
fn within_budget(
    mut segments: Vec<SegmentMeta>,
    bytes_max: u64,
) -> (Vec<SegmentMeta>, Vec<SegmentMeta>) {
    segments.sort_by_key(|s| (s.bytes, s.id));
    let mut total = 0u64;
    let fit = segments
        .iter()
        .take_while(|s| {
            total = total.saturating_add(s.bytes);
            total <= bytes_max
        })
        .count();
    let left = segments.split_off(fit);
    (segments, left)
}

/// Why a stored column could not be turned back into codes.
enum CodesError {
    Arrow(arrow::error::ArrowError),
    /// A string the full dictionary lacks (it would become the overflow text).
    DictionaryFull,
}

/// The rows of detail segment `meta` in the data directory `dir`, checked
/// against the table's `schema` (from [`Store::detail_source`]).
pub fn read_detail_segment(
    dir: &Path,
    meta: &SegmentMeta,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, StoreError> {
    read_segment_of(&dir.join(&meta.file), meta, DETAIL_TABLE, schema)
}

/// The rows of segment `meta` of `table` (at `path`), validated after
/// reading: the file must hold the table's columns (a segment written
/// before a column was added lacks it: read as nulls).
pub(crate) fn read_segment_of(
    path: &Path,
    meta: &SegmentMeta,
    table: &str,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, StoreError> {
    read_segment(path, meta)?
        .iter()
        .map(|batch| {
            align_to_schema(batch, schema).map_err(|reason| StoreError::SegmentMismatch {
                path: path.to_path_buf(),
                reason: format!("columns differ from table {table}'s: {reason}"),
            })
        })
        .collect()
}

/// `batch` with the columns of `schema`, matched by name: a column the
/// batch lacks (a segment written before the column existed) is all nulls
/// if the schema lets it be, and a plain text column where the schema
/// has a dictionary one is coded; any other difference (a column the schema
/// lacks, another type) is the reason it cannot be.
fn align_to_schema(
    batch: &RecordBatch,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<RecordBatch, String> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let have = batch.schema();
    if let Some(extra) = have
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(format!("unknown column {}", extra.name()));
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        match have.index_of(field.name()) {
            Ok(i) if have.field(i).data_type() == field.data_type() => {
                columns.push(batch.column(i).clone());
            }
            // A text field written as plain strings before `flows` coded it.
            Ok(i)
                if have.field(i).data_type() == &DataType::Utf8
                    && field.data_type() == &crate::schema::text_type() =>
            {
                let coded = arrow::compute::cast(batch.column(i), field.data_type())
                    .map_err(|e| format!("column {}: {e}", field.name()))?;
                columns.push(coded);
            }
            Ok(i) => {
                return Err(format!(
                    "column {} is {}, not {}",
                    field.name(),
                    have.field(i).data_type(),
                    field.data_type()
                ));
            }
            Err(_) if field.is_nullable() => {
                columns.push(arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                ));
            }
            Err(_) => return Err(format!("column {} missing", field.name())),
        }
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn meta(id: u64, bytes: u64) -> SegmentMeta {
        SegmentMeta {
            id,
            table: "flows".into(),
            chunk_start: 0,
            file: format!("flows/0-{id}.parquet"),
            rows: 1,
            bytes,
            time_min: 0,
            time_max: 0,
            sealed_in: None,
        }
    }

    #[test]
    fn compaction_merges_the_smallest_segments_within_its_budget() {
        let (merged, left) = within_budget(vec![meta(1, 500), meta(2, 100), meta(3, 200)], 350);
        let ids = |v: &[SegmentMeta]| v.iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!((ids(&merged), ids(&left)), (vec![2, 3], vec![1]));
        let (merged, _) = within_budget(vec![meta(1, 500)], 100);
        assert!(merged.is_empty());
    }
}

#[cfg(test)]
mod align_tests {
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, StringArray, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_segment_from_before_a_column_was_added_reads_it_as_nulls() {
        let old = Arc::new(Schema::new(vec![Field::new(
            "time",
            DataType::UInt32,
            false,
        )]));
        let time: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2]));
        let batch = RecordBatch::try_new(old, vec![time]).unwrap();
        let new = Arc::new(Schema::new(vec![
            Field::new("time", DataType::UInt32, false),
            Field::new("next_hop_az_id", DataType::Utf8, true),
        ]));
        let aligned = align_to_schema(&batch, &new).unwrap();
        assert_eq!(aligned.num_columns(), 2);
        assert_eq!(aligned.column(1).null_count(), 2);
        let other = Arc::new(Schema::new(vec![Field::new("time", DataType::Utf8, false)]));
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        let wrong = RecordBatch::try_new(other, vec![strings]).unwrap();
        assert!(align_to_schema(&wrong, &new).unwrap_err().contains("time"));
    }

    #[test]
    fn a_segment_from_before_text_fields_were_coded_reads_them_coded() {
        let old = Arc::new(Schema::new(vec![Field::new(
            "vpc_id",
            DataType::Utf8,
            true,
        )]));
        let strings: ArrayRef =
            Arc::new(StringArray::from(vec![Some("vpc-1"), None, Some("vpc-1")]));
        let batch = RecordBatch::try_new(old, vec![strings]).unwrap();
        let new = Arc::new(Schema::new(vec![Field::new(
            "vpc_id",
            crate::schema::text_type(),
            true,
        )]));
        let aligned = align_to_schema(&batch, &new).unwrap();
        assert_eq!(aligned.schema(), new);
        let back = arrow::compute::cast(aligned.column(0), &DataType::Utf8).unwrap();
        assert_eq!(back.as_string::<i32>(), batch.column(0).as_string::<i32>());
    }
}
