//! Open shards: the open rows of every table, split so that writers on
//! several threads add flows at once.
//!
//! A store holds `open_shards` shards (by default one per core). A writer
//! ([`Store::add_batch`](super::Store::add_batch), which takes `&self`)
//! locks its thread's own shard, or the next one no other writer holds,
//! adds its whole batch there and lets go: writers on different threads
//! never wait for each other while a shard is free, each keeps its rows
//! (and hash tables) to itself while it can, and a single writer always
//! uses one shard (so a store fed from one thread behaves as an unsharded
//! one). A shard
//! keeps its own rollup layouts (side-key interners), so nothing shared is
//! written per flow; workloads' side codes come from a cache all shards
//! read (`sides.rs`).
//!
//! Rollups are sums, so shards need no merging to be right: a seal writes
//! each shard's rows of a chunk as a segment of its own (the chunk's
//! segments are summed by queries and merged by compaction, as deltas
//! are), and queries read every shard's open rows. Detail rows are only
//! appended. Whatever needs every shard at once (a seal, maintenance)
//! takes the store exclusively, so no writer is between its flows and
//! their positions then.
//!
//! A writer adds a flow's row a few flows after it computed the row's key
//! ([`ShardTable::add`]): the row's slot is prefetched meanwhile, so the
//! cache misses of several flows overlap. The batch ends with
//! [`ShardTable::flush`].
//!
//! Invariant: a shard's rollup tables line up with the store's; no add is
//! pending once a batch is added (whoever locks the shard next sees every
//! row; asserted where open rows are read); and each shard's open memory
//! is published in [`Shard::bytes`] after every batch, so the memory cap
//! is checked without locking any shard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use std::collections::VecDeque;

use super::{OpenChunks, RollupTable};
use crate::detail::DetailBucket;
use crate::dims::Dim;
use crate::rollup::{Measures, RollupBucket, RollupLayout, RowKey};

/// Counters of what writers added (summed over shards in
/// [`StoreStats`](super::StoreStats)).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AddStats {
    pub records: u64,
    pub records_without_time: u64,
    pub records_without_traffic: u64,
    pub late_records: u64,
    pub expired_records: u64,
    pub future_records: u64,
}

/// The open rows of one rollup table in one shard.
#[derive(Debug)]
pub(super) struct ShardTable {
    /// Side-key interner of this shard's rows.
    pub layout: RollupLayout,
    /// Rows added to this table directly (all of them for a base table).
    pub open: OpenChunks<RollupBucket>,
    /// Adds whose slots are being prefetched, oldest first (at most
    /// [`PREFETCH_AHEAD`]; empty whenever the shard is not locked).
    pending: VecDeque<PendingAdd>,
}

/// How many adds ahead of the one it makes a writer prefetches the row's
/// slot: enough to keep several cache misses in flight, few enough that
/// the lines are still in cache when their adds come.
const PREFETCH_AHEAD: usize = 16;

/// An add waiting for its slot's line (see [`ShardTable::add`]).
#[derive(Debug, Clone, Copy)]
struct PendingAdd {
    chunk: u32,
    hash: u64,
    key: RowKey,
    measures: Measures,
}

impl ShardTable {
    /// An empty table of `dims`.
    fn new(dims: &[Dim]) -> ShardTable {
        ShardTable {
            layout: RollupLayout::new(dims),
            open: OpenChunks::default(),
            pending: VecDeque::with_capacity(PREFETCH_AHEAD),
        }
    }

    /// Adds `measures` to the row of `key` in chunk `chunk`: the row's slot
    /// is prefetched now and the add made [`PREFETCH_AHEAD`] adds later, or
    /// at [`ShardTable::flush`]. On high-cardinality traffic nearly every
    /// add is a new row in a table far larger than the caches, and the
    /// misses of several adds then overlap instead of following each other.
    #[inline]
    pub fn add(&mut self, chunk: u32, key: RowKey, measures: Measures) {
        let hash = self
            .open
            .get_or_insert(chunk, RollupBucket::default)
            .prefetch(&key);
        if self.pending.len() == PREFETCH_AHEAD {
            self.add_oldest();
        }
        self.pending.push_back(PendingAdd {
            chunk,
            hash,
            key,
            measures,
        });
    }

    /// Makes every pending add: called before the shard is let go, so
    /// that whoever locks it next (a query, a seal) sees every row.
    pub fn flush(&mut self) {
        while !self.pending.is_empty() {
            self.add_oldest();
        }
    }

    /// Whether no add is pending.
    pub fn is_flushed(&self) -> bool {
        self.pending.is_empty()
    }

    fn add_oldest(&mut self) {
        if let Some(add) = self.pending.pop_front() {
            self.open
                .get_or_insert(add.chunk, RollupBucket::default)
                .add_hashed(add.hash, &add.key, add.measures);
        }
    }
}

/// A shard held by a writer: its pending adds are made when it is let go,
/// also when the writer unwinds (a panic mid-batch must not leave adds
/// pending for the next holder, which `lock` hands a poisoned shard).
#[derive(Debug)]
pub(super) struct Writing<'a>(MutexGuard<'a, Shard>);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

impl std::ops::Deref for Writing<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.0
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.0
    }
}

/// One shard's open rows (see the module header).
#[derive(Debug)]
pub(super) struct Shard {
    /// Per rollup table, in the store's order.
    pub tables: Vec<ShardTable>,
    /// Open detail rows.
    pub detail: OpenChunks<DetailBucket>,
    /// What this shard's writers added.
    pub stats: AddStats,
}

impl Shard {
    /// An empty shard for `rollups`.
    pub fn new(rollups: &[RollupTable]) -> Shard {
        Shard {
            tables: rollups
                .iter()
                .map(|table| ShardTable::new(&table.spec.dims))
                .collect(),
            detail: OpenChunks::default(),
            stats: AddStats::default(),
        }
    }

    /// Whether no table has an add pending (see [`ShardTable::add`]).
    pub fn is_flushed(&self) -> bool {
        self.tables.iter().all(ShardTable::is_flushed)
    }

    /// Heap bytes held by the open buckets.
    pub fn memory_bytes(&self) -> usize {
        debug_assert!(self.is_flushed());
        self.sum_open(RollupBucket::memory_bytes, DetailBucket::memory_bytes)
    }

    /// Rows held by the open buckets.
    pub fn rows(&self) -> usize {
        self.sum_open(RollupBucket::len, DetailBucket::len)
    }

    /// Sums `rollup` over the open rollup buckets and `detail` over the
    /// open detail buckets.
    fn sum_open(
        &self,
        rollup: impl Fn(&RollupBucket) -> usize,
        detail: impl Fn(&DetailBucket) -> usize,
    ) -> usize {
        let rollups: usize = self
            .tables
            .iter()
            .flat_map(|t| &t.open.chunks)
            .map(|(_, b)| rollup(b))
            .sum();
        rollups
            + self
                .detail
                .chunks
                .iter()
                .map(|(_, b)| detail(b))
                .sum::<usize>()
    }

    /// Makes every pending add of every table (see [`ShardTable::add`]).
    pub fn flush(&mut self) {
        for table in &mut self.tables {
            table.flush();
        }
    }

    /// Drops every open row (a seal took them).
    pub fn clear(&mut self) {
        debug_assert!(self.is_flushed());
        for table in &mut self.tables {
            table.open.chunks.clear();
        }
        self.detail.chunks.clear();
    }

    /// Forgets the per-workload caches (the workload table was replaced).
    pub fn forget_workloads(&mut self) {
        for table in &mut self.tables {
            table.layout.forget_workloads();
        }
    }
}

/// The shards of a store and what each holds in memory.
#[derive(Debug)]
pub(super) struct Shards {
    shards: Vec<Mutex<Shard>>,
    /// Each shard's open memory after its last batch (see the module header).
    bytes: Vec<AtomicUsize>,
}

impl Shards {
    /// `count` (at least one) empty shards for `rollups`.
    pub fn new(count: usize, rollups: &[RollupTable]) -> Shards {
        let count = count.max(1);
        Shards {
            shards: (0..count)
                .map(|_| Mutex::new(Shard::new(rollups)))
                .collect(),
            bytes: (0..count).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// The calling thread's own shard if no writer holds it, else the next
    /// free one after it (waiting for its own if all are held), and its
    /// index. Threads own shards in the order they first write
    /// ([`writer_thread_index`]), so two pipeline workers keep their rows,
    /// and their hash tables in their own core's cache, apart.
    pub fn writer(&self) -> (usize, Writing<'_>) {
        let count = self.shards.len();
        let own = writer_thread_index() % count;
        for i in (own..count).chain(0..own) {
            match self.shards[i].try_lock() {
                Ok(guard) => return (i, Writing(guard)),
                Err(TryLockError::Poisoned(poisoned)) => {
                    return (i, Writing(poisoned.into_inner()));
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        (own, Writing(lock(&self.shards[own])))
    }

    /// Shard `index` (modulo their number), waiting for it if it is held.
    pub fn lock(&self, index: usize) -> (usize, Writing<'_>) {
        let index = index % self.shards.len();
        (index, Writing(lock(&self.shards[index])))
    }

    /// Publishes shard `index`'s open memory.
    pub fn publish_bytes(&self, index: usize, shard: &Shard) {
        self.bytes[index].store(shard.memory_bytes(), Ordering::Relaxed);
    }

    /// Open memory of every shard, as last published.
    pub fn bytes(&self) -> usize {
        self.bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Every shard, locked one after the other (for readers: queries).
    pub fn each(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
        self.shards.iter().map(lock)
    }

    /// Every shard, for the store's exclusive owner (seals, maintenance).
    pub fn each_mut(&mut self) -> impl Iterator<Item = &mut Shard> {
        self.shards
            .iter_mut()
            .map(|s| s.get_mut().unwrap_or_else(PoisonError::into_inner))
    }

    /// Drops every open row and republishes the memory (a seal took them).
    pub fn clear(&mut self) {
        for shard in self.each_mut() {
            shard.clear();
        }
        for bytes in &self.bytes {
            bytes.store(0, Ordering::Relaxed);
        }
    }

    /// What every shard's writers added, summed.
    pub fn stats(&self) -> AddStats {
        self.each().fold(AddStats::default(), |sum, shard| {
            let s = shard.stats;
            AddStats {
                records: sum.records + s.records,
                records_without_time: sum.records_without_time + s.records_without_time,
                records_without_traffic: sum.records_without_traffic + s.records_without_traffic,
                late_records: sum.late_records + s.late_records,
                expired_records: sum.expired_records + s.expired_records,
                future_records: sum.future_records + s.future_records,
            }
        })
    }
}

/// This thread's index among the threads that ever wrote to a store, in
/// the order of their first write (per process).
fn writer_thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static OWN: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    OWN.with(|own| *own)
}

/// Locks `mutex`; a poisoned lock still holds whole data (every writer
/// leaves a shard or the dictionary consistent between flows).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefetch ring: every add is made once, at the latest at
    /// `flush`, across chunks and minutes and however many are pending.
    #[test]
    fn pending_adds_are_all_made_once_by_flush() {
        let mut table = ShardTable::new(Dim::ALL);
        for i in 0..1000u32 {
            let time = 60 * (i % 3) + 3600 * (i % 2);
            let key: RowKey = [time, i % 37, 0, 6, 443, 1, 0, 0, 0];
            let measures = Measures {
                bytes: u64::from(i),
                packets: 1,
                flows: 1,
            };
            table.add(time - time % 3600, key, measures);
        }
        assert!(!table.is_flushed());
        table.flush();
        assert!(table.is_flushed());
        let rows: Vec<(RowKey, Measures)> = table
            .open
            .chunks
            .iter()
            .flat_map(|(_, bucket)| bucket.rows())
            .collect();
        // 37 side codes x 6 (minute, hour) pairs, all met within 1000 adds.
        assert_eq!(rows.len(), 37 * 6);
        assert_eq!(rows.iter().map(|(_, m)| m.flows).sum::<u64>(), 1000);
        assert_eq!(
            rows.iter().map(|(_, m)| m.bytes).sum::<u64>(),
            999 * 1000 / 2
        );
    }

    /// Regression (cold review): a writer that unwound between
    /// [`ShardTable::add`] and [`ShardTable::flush`] (a panic later in its
    /// batch: `lock` ignores the poison and `Shards::writer` reuses the
    /// shard) left its last adds pending past the lock: the next locker saw
    /// no row, and a seal's `Shard::clear` kept the pending add for the
    /// open rows after it. A writer holds the shard through [`Writing`],
    /// whose drop makes them, unwinding included.
    #[test]
    fn a_writer_unwinding_before_flush_leaves_no_add_pending_past_the_lock() {
        let shard = Mutex::new(Shard {
            tables: vec![ShardTable::new(Dim::ALL)],
            detail: OpenChunks::default(),
            stats: AddStats::default(),
        });
        let key: RowKey = [60, 0, 0, 6, 443, 1, 0, 0, 0];
        let measures = Measures {
            bytes: 100,
            packets: 1,
            flows: 1,
        };
        let unwound = std::panic::catch_unwind(|| {
            let mut writer = Writing(lock(&shard));
            writer.tables[0].add(0, key, measures);
            panic!("a later flow of the batch panics before ShardTable::flush");
        });
        assert!(unwound.is_err());
        let mut next = lock(&shard);
        let visible = next.rows();
        next.clear(); // what a seal does once it took the open rows
        let pending_after_seal = !next.is_flushed();
        assert!(
            visible == 1 && !pending_after_seal,
            "rows visible to the next locker: {visible} (want 1, the add made before \
             the panic); an add still pending after a seal's clear: {pending_after_seal}"
        );
    }
}
