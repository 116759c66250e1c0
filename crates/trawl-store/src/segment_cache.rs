//! Rollup segments kept decoded in memory, so that queries over recent
//! data read Arrow batches instead of decoding Parquet each time (DuckDB or
//! ClickHouse answer from memory; a query that decodes a 2 M-row
//! `flows_1m` from Parquet spends most of its time there).
//!
//! ```text
//! seal_finish ─► insert(id, batches written)   (free: already in memory)
//! StoreTable::scan ─► get(id) hit ─► memory scan
//!                      └ miss ─► Parquet scan, and begin_load(id) ─► a blocking task reads
//!                                 the segment (validated as every read is) ─► insert
//! store open, every published manifest ─► set_listed(ids)
//! ```
//!
//! Invariants: segments are immutable and their ids never reused, so an
//! entry is never stale; it is dropped once its segment leaves the
//! manifest, and only a segment the last published manifest lists is
//! taken in (a load that ends after a compaction replaced its segment is
//! refused). An entry's batches have exactly its table's schema and the
//! manifest's row count (checked at insert: else it is not cached, and the
//! query reads Parquet). The cache holds at most `bytes_max` bytes of
//! Arrow buffers, each buffer counted once per entry (least recently used
//! first out); a segment refused once (too large, or failing the checks)
//! is not loaded again while listed. Only rollup tables are cached: detail
//! segments are large and read rarely.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::commit::batches_memory_once;

/// A segment's rows, shared with the queries reading them.
pub type CachedBatches = Arc<[RecordBatch]>;

/// Decoded segments by id (see the module header).
#[derive(Debug, Default)]
pub struct SegmentCache {
    bytes_max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<u64, Entry>,
    /// Ids being read by a loader: not scheduled twice.
    loading: HashSet<u64>,
    /// The ids the last published manifest lists: nothing else is taken in.
    listed: HashSet<u64>,
    /// Listed ids refused at insert (too large, failed a check): not
    /// loaded again.
    refused: HashSet<u64>,
    bytes: usize,
    /// Use counter: an entry's `used` is the tick of its last use.
    tick: u64,
    hits: u64,
    misses: u64,
}

#[derive(Debug)]
struct Entry {
    batches: CachedBatches,
    bytes: usize,
    used: u64,
}

/// What the cache holds and how it served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Segments held.
    pub segments: usize,
    /// Bytes of Arrow buffers held.
    pub bytes: usize,
    /// Segments a query found in memory.
    pub hits: u64,
    /// Segments a query read from Parquet.
    pub misses: u64,
}

impl SegmentCache {
    /// A cache of at most `bytes_max` bytes (0: caches nothing).
    pub fn new(bytes_max: usize) -> Self {
        SegmentCache {
            bytes_max,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Segment `id`'s rows, if held (counted as a hit or a miss).
    pub fn get(&self, id: u64) -> Option<CachedBatches> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        match inner.entries.get_mut(&id) {
            Some(entry) => {
                entry.used = tick;
                let batches = entry.batches.clone();
                inner.hits += 1;
                Some(batches)
            }
            None => {
                inner.misses += 1;
                None
            }
        }
    }

    /// Whether a loader should read segment `id` (not held, not being
    /// read, and the cache holds anything); the caller then calls
    /// [`insert`](Self::insert) or [`end_load`](Self::end_load).
    pub fn begin_load(&self, id: u64) -> bool {
        if self.bytes_max == 0 {
            return false;
        }
        let mut inner = self.lock();
        inner.listed.contains(&id)
            && !inner.refused.contains(&id)
            && !inner.entries.contains_key(&id)
            && inner.loading.insert(id)
    }

    /// A load of `id` ended without an insert (the read failed).
    pub fn end_load(&self, id: u64) {
        self.lock().loading.remove(&id);
    }

    /// Holds `batches` as segment `id`'s rows if they are its `rows` rows
    /// (the manifest's count), each batch has `schema`, and they fit;
    /// evicts the least recently used entries to make room.
    pub fn insert(&self, id: u64, batches: &[RecordBatch], schema: &SchemaRef, rows: u64) {
        let checked = batches
            .iter()
            .all(|b| b.schema().fields() == schema.fields())
            && batches.iter().map(|b| b.num_rows() as u64).sum::<u64>() == rows;
        let bytes = batches_memory_once(batches);
        let mut inner = self.lock();
        inner.loading.remove(&id);
        if !inner.listed.contains(&id) || inner.entries.contains_key(&id) {
            return;
        }
        if !checked || bytes > self.bytes_max {
            inner.refused.insert(id);
            return;
        }
        while inner.bytes + bytes > self.bytes_max {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            inner.remove(oldest);
        }
        inner.tick += 1;
        let entry = Entry {
            batches: batches.into(),
            bytes,
            used: inner.tick,
        };
        inner.bytes += bytes;
        inner.entries.insert(id, entry);
        debug_assert!(inner.bytes <= self.bytes_max);
    }

    /// The ids a newly published manifest lists: drops every entry it does
    /// not (compacted away or past retention), and takes in no other.
    pub fn set_listed(&self, listed: HashSet<u64>) {
        let mut inner = self.lock();
        let gone: Vec<u64> = inner
            .entries
            .keys()
            .copied()
            .filter(|id| !listed.contains(id))
            .collect();
        for id in gone {
            inner.remove(id);
        }
        inner.refused.retain(|id| listed.contains(id));
        inner.listed = listed;
    }

    /// What the cache holds and how it served.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            segments: inner.entries.len(),
            bytes: inner.bytes,
            hits: inner.hits,
            misses: inner.misses,
        }
    }
}

impl Inner {
    fn remove(&mut self, id: u64) {
        if let Some(entry) = self.entries.remove(&id) {
            self.bytes -= entry.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    fn batch(rows: usize) -> RecordBatch {
        let values = Int64Array::from(vec![1; rows]);
        RecordBatch::try_new(schema(), vec![Arc::new(values)]).unwrap()
    }

    /// A cache listing ids 0 to 99.
    fn listing(bytes_max: usize) -> SegmentCache {
        let cache = SegmentCache::new(bytes_max);
        cache.set_listed((0..100).collect());
        cache
    }

    #[test]
    fn a_batch_of_another_schema_or_row_count_is_not_cached() {
        let cache = listing(1 << 20);
        let other = Arc::new(Schema::new(vec![Field::new("w", DataType::Int64, false)]));
        cache.insert(1, &[batch(10)], &other, 10);
        assert!(cache.get(1).is_none());
        // A writer that dropped its rows after writing leaves none (the
        // compaction did: its merged segments were cached empty).
        cache.insert(3, &[], &schema(), 10);
        cache.insert(4, &[batch(9)], &schema(), 10);
        assert!(cache.get(3).is_none() && cache.get(4).is_none());
        cache.insert(2, &[batch(10)], &schema(), 10);
        assert_eq!(cache.get(2).unwrap()[0].num_rows(), 10);
    }

    #[test]
    fn a_segment_being_loaded_is_not_loaded_twice_and_a_failed_load_can_be_retried() {
        let cache = listing(1 << 20);
        assert!(cache.begin_load(7));
        assert!(!cache.begin_load(7));
        cache.end_load(7);
        assert!(cache.begin_load(7));
        cache.insert(7, &[batch(3)], &schema(), 3);
        assert!(!cache.begin_load(7), "held");
        assert!(
            !SegmentCache::new(0).begin_load(1),
            "a cache of 0 bytes loads nothing"
        );
    }

    #[test]
    fn an_unlisted_or_refused_segment_is_not_taken_in_or_loaded_again() {
        let cache = listing(1 << 20);
        assert!(!cache.begin_load(100), "not listed");
        cache.insert(100, &[batch(3)], &schema(), 3);
        assert!(
            cache.get(100).is_none(),
            "a load ending after its segment left"
        );
        assert!(cache.begin_load(5));
        cache.insert(5, &[batch(3)], &schema(), 4);
        assert!(!cache.begin_load(5), "refused once: not read again");
        cache.set_listed((10..20).collect());
        cache.set_listed((0..20).collect());
        assert!(cache.begin_load(5), "forgotten once it left the manifest");
    }

    #[test]
    fn a_buffer_shared_by_columns_is_counted_once() {
        use arrow::array::{DictionaryArray, StringArray, UInt32Array};
        let values = Arc::new(StringArray::from(vec!["x".repeat(1 << 16)]));
        let keys = UInt32Array::from(vec![0u32; 10]);
        let column = Arc::new(DictionaryArray::new(keys, values));
        let dictionary = DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", dictionary.clone(), false),
            Field::new("b", dictionary, false),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column.clone(), column]).unwrap();
        let cache = listing(1 << 20);
        cache.insert(1, &[batch.clone(), batch], &schema, 20);
        let bytes = cache.stats().bytes;
        assert!((1 << 16..2 << 16).contains(&bytes), "{bytes} bytes");
    }

    proptest! {
        /// Against a model (a list in use order): after any inserts, gets
        /// and retains, the cache holds what the model holds, within its
        /// bytes, and evicts the least recently used first.
        #[test]
        fn the_cache_is_a_bounded_lru_of_listed_segments(
            ops in proptest::collection::vec((0u8..3, 0u64..12, 1usize..400), 1..80),
        ) {
            let one = batch(1).get_array_memory_size();
            let bytes_max = 20 * one.max(1) * 8;
            let cache = listing(bytes_max);
            // (id, bytes, rows), least recently used first.
            let mut model: Vec<(u64, usize, usize)> = Vec::new();
            // Ids `id % 3 == gone` are not listed (3: all are).
            let mut gone = 3;
            for (op, id, rows) in ops {
                match op {
                    0 => {
                        let b = batch(rows);
                        let bytes = batches_memory_once(std::slice::from_ref(&b));
                        cache.insert(id, &[b], &schema(), rows as u64);
                        let listed = id % 3 != gone;
                        if listed && bytes <= bytes_max && !model.iter().any(|m| m.0 == id) {
                            while model.iter().map(|m| m.1).sum::<usize>() + bytes > bytes_max {
                                model.remove(0);
                            }
                            model.push((id, bytes, rows));
                        }
                    }
                    1 => {
                        let got = cache.get(id).map(|b| b[0].num_rows());
                        let at = model.iter().position(|m| m.0 == id);
                        prop_assert_eq!(got, at.map(|i| model[i].2));
                        if let Some(i) = at {
                            let used = model.remove(i);
                            model.push(used);
                        }
                    }
                    _ => {
                        gone = id % 3;
                        cache.set_listed((0..12).filter(|s| s % 3 != gone).collect());
                        model.retain(|m| m.0 % 3 != gone);
                    }
                }
                let stats = cache.stats();
                prop_assert!(stats.bytes <= bytes_max);
                prop_assert_eq!(stats.segments, model.len());
                prop_assert_eq!(stats.bytes, model.iter().map(|m| m.1).sum::<usize>());
            }
        }
    }
}
