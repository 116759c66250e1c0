//! What a seal writes: every shard's open rows turned into the batches of
//! segments, on every core (called by [`Store::seal_begin`] under the
//! store lock; the batches are encoded and written without it).
//!
//! ```text
//! phase 1, each (shard, base table) and each shard's detail on its own core:
//!     open bucket of a chunk ─► one Arrow batch (RollupBucket::to_batch)
//! phase 2, each (shard, derived table) on its own core, per source chunk:
//!     (source chunks in one bucket of the derived table decided together)
//!     regrouping would keep > half the rows ─► the source's batch, time floored (regrain)
//!     otherwise                              ─► the source's rows regrouped to the
//!                                               derived grain and dimensions
//! ```
//!
//! Why two ways: regrouping costs one insert into a hash table the size of
//! its output per source row. On high-cardinality traffic (a minute's keys
//! do not recur within the hour) it left as many rows as it read and took
//! most of a seal (1.7 s for each of `flows_1h` and `flows_1d` on 1.25 M
//! rows, against 0.8 s to convert `flows_1m` itself). A distinct-count
//! estimate of the regrouped keys ([`crate::distinct`], one hash per row)
//! decides per chunk, and sizes the table when it regroups. A derived
//! table's rows therefore need not be unique per key within a segment:
//! queries sum rows of equal keys anyway (as across delta segments, and
//! for open rows, which are regrained the same way), and compaction merges
//! them later, off the hot path.
//!
//! Invariants: each (shard, table, chunk) becomes at most one segment, in
//! the order shard, table (the store's order), detail last; every row of a
//! segment lies in its chunk and on its table's grain (checked here for
//! regrouped rows, and for every batch before it is written).

use std::sync::{Arc, MutexGuard};

use arrow::array::{RecordBatch, StringArray};

use super::shard::{Shard, ShardTable, lock};
use super::{DETAIL_TABLE, OpenChunks, Store};
use crate::commit::{PendingSegment, in_parallel};
use crate::distinct::DistinctEstimate;
use crate::error::StoreError;
use crate::rollup::{RollupBucket, RollupLayout, key_hash, regrain};

/// A source chunk is regrouped only if that leaves at most this share of
/// its rows; past it, its batch is written as it is, time floored.
const REGROUP_ROWS_SHARE_MAX: f64 = 0.5;

/// A segment's table, chunk start, chunk length and rows, before it has an id.
pub(super) type SegmentBatches<'t> = (&'t str, u32, u32, Vec<RecordBatch>);

/// One unit of conversion: a shard and a rollup table (`None`: its detail rows).
type Item = (usize, Option<usize>);

impl Store {
    /// Batches of every open bucket, with the segment each becomes.
    pub(super) fn open_segments(&self, first_id: u64) -> Result<Vec<PendingSegment>, StoreError> {
        let shards: Vec<MutexGuard<'_, Shard>> = self.shards.each().collect();
        let dictionary = lock(&self.dict).values();
        let derived = |t: &Option<usize>| t.is_some_and(|i| self.rollups[i].source.is_some());
        let items: Vec<Item> = (0..shards.len())
            .flat_map(|s| {
                (0..self.rollups.len())
                    .map(Some)
                    .chain([None])
                    .map(move |t| (s, t))
            })
            .collect();
        let (later, first): (Vec<Item>, Vec<Item>) = items.iter().partition(|(_, t)| derived(t));
        let bases = in_parallel(&first, |&(s, table)| match table {
            Some(index) => self.base_segments(&shards[s], index, &dictionary),
            None => self.detail_segments(&shards[s], &dictionary),
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let source_of = |s: usize, index: usize| {
            let source = self.rollups[index].source;
            first
                .iter()
                .position(|item| *item == (s, source))
                .map_or(&[][..], |k| &bases[k][..])
        };
        let deriveds = in_parallel(&later, |&(s, table)| {
            let index = table.unwrap_or_default();
            self.derived_segments(&shards[s], index, source_of(s, index), &dictionary)
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        // Back in the items' order (shard, table, detail last).
        let (mut bases, mut deriveds) = (bases.into_iter(), deriveds.into_iter());
        let mut out = Vec::new();
        let mut id = first_id;
        for item in &items {
            let next = if derived(&item.1) {
                deriveds.next()
            } else {
                bases.next()
            };
            for (table, chunk, chunk_secs, batches) in next.unwrap_or_default() {
                out.push(PendingSegment::new(table, chunk, chunk_secs, batches, id));
                id += 1;
            }
        }

        Ok(out)
    }

    /// The open rows of base rollup `index` in `shard`: one batch per chunk.
    fn base_segments(
        &self,
        shard: &Shard,
        index: usize,
        dictionary: &Arc<StringArray>,
    ) -> Result<Vec<SegmentBatches<'_>>, StoreError> {
        let own = &shard.tables[index];
        self.merged_segments(index, &own.layout, &own.open, dictionary)
    }

    /// `open`'s rows (of `layout`) as segments of rollup `index`, one
    /// batch per chunk, each checked first.
    fn merged_segments(
        &self,
        index: usize,
        layout: &RollupLayout,
        open: &OpenChunks<RollupBucket>,
        dictionary: &Arc<StringArray>,
    ) -> Result<Vec<SegmentBatches<'_>>, StoreError> {
        let table = &self.rollups[index];
        let name = table.spec.name.as_str();
        let mut out = Vec::new();
        for (chunk, bucket) in open.chunks.iter().filter(|(_, b)| !b.is_empty()) {
            let batch = bucket
                .to_checked_batch(&table.schema, layout, dictionary, table.spec.grain_secs)
                .map_err(|source| arrow_error(name, source))?;
            out.push((name, *chunk, table.spec.chunk_secs, vec![batch]));
        }
        Ok(out)
    }

    /// The open rows of derived rollup `index` in `shard`: each source
    /// chunk regrouped or passed through (see the module header), and the
    /// table's own rows regrouped. `sources` are the source's segments
    /// from phase 1.
    fn derived_segments(
        &self,
        shard: &Shard,
        index: usize,
        sources: &[SegmentBatches<'_>],
        dictionary: &Arc<StringArray>,
    ) -> Result<Vec<SegmentBatches<'_>>, StoreError> {
        let table = &self.rollups[index];
        let Some(source_index) = table.source else {
            return self.base_segments(shard, index, dictionary);
        };
        let (spec, name) = (&table.spec, table.spec.name.as_str());
        let source = &shard.tables[source_index];
        let source_chunk_secs = self.rollups[source_index].spec.chunk_secs;
        // A source chunk lies in one chunk of this table (chunks start at
        // multiples of their length), and in one bucket if the grain is
        // a multiple of it too.
        let whole_chunks = spec.chunk_secs.is_multiple_of(source_chunk_secs);
        let one_bucket = spec.grain_secs.is_multiple_of(source_chunk_secs);
        let mut regroup = Regroup::new(&spec.dims, spec.grain_secs, spec.chunk_secs);
        let mut passed: Vec<(u32, RecordBatch)> = Vec::new();
        // Source chunks that fall in one bucket of this table are decided
        // together: keys that recur only across them (once an hour, for a
        // day sealed at once) are still regrouped.
        let mut groups: Vec<(u32, Vec<&(u32, RollupBucket)>)> = Vec::new();
        for entry in source.open.chunks.iter().filter(|(_, b)| !b.is_empty()) {
            let group = if one_bucket {
                entry.0 - entry.0 % spec.grain_secs
            } else {
                entry.0
            };
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members.push(entry),
                None => groups.push((group, vec![entry])),
            }
        }
        for (_, members) in groups {
            let rows: usize = members.iter().map(|(_, b)| b.len()).sum();
            let distinct = regroup.estimate(source, members.iter().map(|(_, b)| b));
            let batches: Option<Vec<(u32, &RecordBatch)>> = members
                .iter()
                .map(|(chunk, _)| {
                    sources
                        .iter()
                        .find(|(_, c, _, _)| c == chunk)
                        .and_then(|(.., b)| b.first())
                        .map(|batch| (*chunk, batch))
                })
                .collect();
            match batches {
                Some(batches)
                    if whole_chunks && distinct > REGROUP_ROWS_SHARE_MAX * rows as f64 =>
                {
                    for (chunk, batch) in batches {
                        let batch = regrain(batch, &table.schema, spec.grain_secs)
                            .map_err(|source| arrow_error(name, source))?;
                        passed.push((chunk - chunk % spec.chunk_secs, batch));
                    }
                }
                _ => {
                    let mut reserve = one_bucket.then_some(distinct);
                    for (_, bucket) in members {
                        regroup.add(source, bucket, reserve.take());
                    }
                }
            }
        }
        let own = &shard.tables[index];
        for (_, bucket) in own.open.chunks.iter().filter(|(_, b)| !b.is_empty()) {
            regroup.add(own, bucket, None);
        }
        let mut out = self.merged_segments(index, &regroup.layout, &regroup.open, dictionary)?;
        for (chunk, batch) in passed {
            match out.iter_mut().find(|(_, c, _, _)| *c == chunk) {
                Some((.., batches)) => batches.push(batch),
                None => out.push((name, chunk, spec.chunk_secs, vec![batch])),
            }
        }
        Ok(out)
    }

    /// The open detail rows of `shard` as segment batches.
    fn detail_segments(
        &self,
        shard: &Shard,
        dictionary: &Arc<StringArray>,
    ) -> Result<Vec<SegmentBatches<'_>>, StoreError> {
        let mut out = Vec::new();
        for (chunk, bucket) in shard.detail.chunks.iter().filter(|(_, b)| !b.is_empty()) {
            let batches = bucket
                .to_batches(&self.detail.schema, dictionary)
                .map_err(|source| arrow_error(DETAIL_TABLE, source))?;
            out.push((DETAIL_TABLE, *chunk, self.detail.spec.chunk_secs, batches));
        }
        Ok(out)
    }
}

fn arrow_error(table: &str, source: arrow::error::ArrowError) -> StoreError {
    StoreError::Arrow {
        table: table.to_string(),
        source,
    }
}

/// Rows of finer tables regrouped into a derived table's layout.
struct Regroup<'d> {
    layout: RollupLayout,
    open: OpenChunks<RollupBucket>,
    grain_secs: u32,
    chunk_secs: u32,
    /// Side keys of the table being read, translated (see [`RollupLayout::rekey`]).
    sides: Vec<u32>,
    /// The layout `sides` translates from.
    sides_of: Option<&'d RollupLayout>,
}

impl<'d> Regroup<'d> {
    fn new(dims: &[crate::Dim], grain_secs: u32, chunk_secs: u32) -> Self {
        Regroup {
            layout: RollupLayout::new(dims),
            open: OpenChunks::default(),
            grain_secs,
            chunk_secs,
            sides: Vec::new(),
            sides_of: None,
        }
    }

    /// Starts reading rows of `from` (resets the side cache on a change).
    fn read(&mut self, from: &'d RollupLayout) {
        if !self.sides_of.is_some_and(|l| std::ptr::eq(l, from)) {
            self.sides.clear();
            self.sides_of = Some(from);
        }
    }

    /// About how many rows regrouping `buckets` (rows of `from`) leaves.
    fn estimate<'b>(
        &mut self,
        from: &'d ShardTable,
        buckets: impl Iterator<Item = &'b RollupBucket>,
    ) -> f64 {
        self.read(&from.layout);
        let mut distinct = DistinctEstimate::default();
        for (key, _) in buckets.flat_map(RollupBucket::rows) {
            let key = self
                .layout
                .rekey(&from.layout, &key, self.grain_secs, &mut self.sides);
            distinct.add_hash(key_hash(&key));
        }
        distinct.estimate()
    }

    /// Regroups `bucket`'s rows (of `from`); `reserve`: the rows expected,
    /// when they all fall in one bucket of this table.
    fn add(&mut self, from: &'d ShardTable, bucket: &RollupBucket, reserve: Option<f64>) {
        self.read(&from.layout);
        let (grain, chunk_secs) = (self.grain_secs, self.chunk_secs);
        let mut first = reserve;
        for (key, measures) in bucket.rows() {
            let key = self
                .layout
                .rekey(&from.layout, &key, grain, &mut self.sides);
            let bucket = self
                .open
                .get_or_insert(key[0] - key[0] % chunk_secs, RollupBucket::default);
            if let Some(rows) = first.take() {
                // 10 % over the estimate's few per cent of error.
                bucket.reserve(key[0], (rows * 1.1) as usize);
            }
            bucket.add(key, measures);
        }
    }
}
