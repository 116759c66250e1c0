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
//! Invariant: a shard's rollup tables line up with the store's, and each
//! shard's open memory is published in [`Shard::bytes`] after every batch,
//! so the memory cap is checked without locking any shard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use super::{OpenChunks, RollupTable};
use crate::detail::DetailBucket;
use crate::rollup::{RollupBucket, RollupLayout};

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
                .map(|table| ShardTable {
                    layout: RollupLayout::new(&table.spec.dims),
                    open: OpenChunks::default(),
                })
                .collect(),
            detail: OpenChunks::default(),
            stats: AddStats::default(),
        }
    }

    /// Heap bytes held by the open buckets.
    pub fn memory_bytes(&self) -> usize {
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

    /// Drops every open row (a seal took them).
    pub fn clear(&mut self) {
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
    pub fn writer(&self) -> (usize, MutexGuard<'_, Shard>) {
        let count = self.shards.len();
        let own = writer_thread_index() % count;
        for i in (own..count).chain(0..own) {
            match self.shards[i].try_lock() {
                Ok(guard) => return (i, guard),
                Err(TryLockError::Poisoned(poisoned)) => return (i, poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        (own, lock(&self.shards[own]))
    }

    /// Shard `index` (modulo their number), waiting for it if it is held.
    pub fn lock(&self, index: usize) -> (usize, MutexGuard<'_, Shard>) {
        let index = index % self.shards.len();
        (index, lock(&self.shards[index]))
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
