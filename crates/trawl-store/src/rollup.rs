//! An open rollup bucket: the rows of one table's time chunk while it is
//! still in memory, and the layout that turns a flow's dimensions into a
//! row key.
//!
//! A row key is nine `u32`s ([`RowKey`]): the bucket start, a *side key*
//! for each side, then protocol, service port, action, direction, cross-AZ
//! and cross-region (null when the table does not keep them). A side key
//! stands for the tuple of workload attributes the table keeps for that side
//! (say app and AZ); tuples are interned per table, and each workload's side
//! keys are cached by workload id, so the hot path reads two cached ids
//! instead of twelve codes. Rows live in a `RowTable` per minute (rows in
//! the order first added, found through an index of 8-byte slots): adding
//! a flow is one hash of 36 bytes and, usually, one index slot, which the
//! store's writers prefetch several flows ahead (`store/shard.rs`).
//!
//! Invariant: a key maps to one row; a side key expands to exactly the
//! codes it was interned from (see [`RollupLayout::expand`]).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, RecordBatch, StringArray, TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::SchemaRef;
use arrow::datatypes::TimestampSecondType;
use arrow::error::ArrowError;
use trawl_attrib::WorkloadId;

use crate::dims::{DIM_COUNT, Dim, NULL_CODE, SideCodes};
use crate::row_table::RowTable;
use crate::schema::dim_array;

/// Codes of a row key (see the module header).
pub const KEY_WIDTH: usize = 9;

/// A rollup row key.
pub type RowKey = [u32; KEY_WIDTH];

/// First dimension after the side fields (`protocol`).
const OTHER_DIMS_START: usize = Dim::Protocol as usize;

type Hasher = std::hash::BuildHasherDefault<KeyHasher>;

fn hasher() -> Hasher {
    Hasher::default()
}

/// A hasher for short integer keys: folds 8 bytes at a time with a
/// multiply, then mixes with murmur3's finalizer so every input bit reaches
/// the top bits hashbrown uses as tags.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    #[inline]
    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    #[inline]
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The measures of a rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measures {
    /// Sum of bytes.
    pub bytes: u64,
    /// Sum of packets.
    pub packets: u64,
    /// Number of flow records.
    pub flows: u64,
}

impl Measures {
    /// Adds `other`, saturating.
    pub fn add(&mut self, other: Measures) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.packets = self.packets.saturating_add(other.packets);
        self.flows = self.flows.saturating_add(other.flows);
    }
}

/// Which dimensions a table keeps, and its interned side tuples.
#[derive(Debug)]
pub struct RollupLayout {
    dims: Vec<Dim>,
    kept: [bool; DIM_COUNT],
    tuples: Vec<SideCodes>,
    tuple_ids: hashbrown::HashMap<SideCodes, u32, Hasher>,
    /// Side keys of each workload id: `[as source, as destination]`.
    by_workload: Vec<[u32; 2]>,
}

impl RollupLayout {
    /// The layout of a table keeping `dims`.
    pub fn new(dims: &[Dim]) -> Self {
        let mut kept = [false; DIM_COUNT];
        for d in dims {
            kept[*d as usize] = true;
        }
        RollupLayout {
            dims: dims.to_vec(),
            kept,
            tuples: Vec::new(),
            tuple_ids: hashbrown::HashMap::with_hasher(hasher()),
            by_workload: Vec::new(),
        }
    }

    /// The dimensions kept, in column order.
    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    /// Forgets the per-workload cache (the workload table was replaced).
    pub fn forget_workloads(&mut self) {
        self.by_workload.clear();
    }

    /// The side key of the kept part of `codes` (side `offset` 0 = src, 6 = dst).
    fn side_key(&mut self, codes: &[u32], offset: usize) -> u32 {
        let mut tuple = [NULL_CODE; 6];
        tuple.copy_from_slice(&codes[offset..offset + 6]);
        self.intern(tuple, offset)
    }

    /// The side key of the kept part of a side's six workload codes.
    fn intern(&mut self, mut tuple: SideCodes, offset: usize) -> u32 {
        for (i, slot) in tuple.iter_mut().enumerate() {
            if !self.kept[offset + i] {
                *slot = NULL_CODE;
            }
        }
        if let Some(id) = self.tuple_ids.get(&tuple) {
            return *id;
        }
        let id = self.tuples.len() as u32;
        self.tuples.push(tuple);
        self.tuple_ids.insert(tuple, id);
        id
    }

    fn cached_side_key(
        &mut self,
        workload: WorkloadId,
        side: usize,
        codes: &[u32; DIM_COUNT],
    ) -> u32 {
        if let Some(keys) = self.by_workload.get(workload as usize)
            && keys[side] != NULL_CODE
        {
            return keys[side];
        }
        let key = self.side_key(codes, side * 6);
        if self.by_workload.len() <= workload as usize {
            self.by_workload
                .resize(workload as usize + 1, [NULL_CODE; 2]);
        }
        self.by_workload[workload as usize][side] = key;
        key
    }

    /// The row key of a flow in bucket `bucket_start` with all dimension
    /// `codes`; `workloads` are the sides' workload ids (for the cache).
    #[inline]
    pub fn key(
        &mut self,
        bucket_start: u32,
        workloads: Option<[WorkloadId; 2]>,
        codes: &[u32; DIM_COUNT],
    ) -> RowKey {
        let (src, dst) = match workloads {
            Some([src, dst]) => (
                self.cached_side_key(src, 0, codes),
                self.cached_side_key(dst, 1, codes),
            ),
            None => (self.side_key(codes, 0), self.side_key(codes, 6)),
        };
        let mut key = [NULL_CODE; KEY_WIDTH];
        key[0] = bucket_start;
        key[1] = src;
        key[2] = dst;
        for (i, slot) in key[3..].iter_mut().enumerate() {
            if self.kept[OTHER_DIMS_START + i] {
                *slot = codes[OTHER_DIMS_START + i];
            }
        }
        key
    }

    /// The key in this layout, at `grain_secs`, of the row `key` of layout
    /// `from` (which keeps at least this layout's dimensions). `sides`
    /// caches `from`'s side keys translated to this layout's.
    #[inline]
    pub fn rekey(
        &mut self,
        from: &RollupLayout,
        key: &RowKey,
        grain_secs: u32,
        sides: &mut Vec<u32>,
    ) -> RowKey {
        let mut out = [NULL_CODE; KEY_WIDTH];
        out[0] = key[0] - key[0] % grain_secs;
        for side in 0..2 {
            let from_side = key[1 + side] as usize;
            if sides.len() <= from_side {
                sides.resize(from_side + 1, NULL_CODE);
            }
            if sides[from_side] == NULL_CODE {
                sides[from_side] = self.intern(from.tuples[from_side], side * 6);
            }
            out[1 + side] = sides[from_side];
        }
        for (i, slot) in out[3..].iter_mut().enumerate() {
            if self.kept[OTHER_DIMS_START + i] {
                *slot = key[3 + i];
            }
        }
        out
    }

    /// Whether this layout keeps every dimension `other` keeps.
    pub fn keeps_all_of(&self, other: &RollupLayout) -> bool {
        other.dims.iter().all(|d| self.kept[*d as usize])
    }

    /// The code of `dim` in the row of `key`.
    #[inline]
    pub fn expand(&self, key: &RowKey, dim: Dim) -> u32 {
        let d = dim as usize;
        if d < 6 {
            self.tuples[key[1] as usize][d]
        } else if d < OTHER_DIMS_START {
            self.tuples[key[2] as usize][d - 6]
        } else {
            key[3 + d - OTHER_DIMS_START]
        }
    }

    /// Field `field` (0–5) of the tuples of `side_keys`: one side's
    /// column of a batch. Every key is one this layout interned (a seal's
    /// batch checks it first: [`RollupBucket::to_checked_batch`]).
    fn side_column(&self, side_keys: &[u32], field: usize) -> Vec<u32> {
        let fields: Vec<u32> = self.tuples.iter().map(|tuple| tuple[field]).collect();
        side_keys
            .iter()
            .map(|key| {
                debug_assert!((*key as usize) < fields.len(), "side key {key}");
                fields.get(*key as usize).copied().unwrap_or(NULL_CODE)
            })
            .collect()
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.tuples.capacity() * 24
            + self.tuple_ids.capacity() * 29
            + self.by_workload.capacity() * 8
    }
}

/// The hash of a row key: four 8-byte words and the last code through
/// [`KeyHasher`].
#[inline]
pub(crate) fn key_hash(key: &RowKey) -> u64 {
    use std::hash::Hasher as _;
    let mut hasher = KeyHasher::default();
    for pair in key.chunks_exact(2) {
        hasher.write_u64(u64::from(pair[0]) | (u64::from(pair[1]) << 32));
    }
    hasher.write_u64(u64::from(key[KEY_WIDTH - 1]));
    hasher.finish()
}

/// The rows of one open time chunk of a rollup table, one [`RowTable`]
/// per time bucket: flows arrive roughly in time order, so the table being
/// filled is the current minute's.
#[derive(Debug, Default)]
pub struct RollupBucket {
    by_time: Vec<(u32, RowTable)>,
    last: usize,
}

impl RollupBucket {
    /// Adds `measures` to the row of `key`.
    #[inline]
    pub fn add(&mut self, key: RowKey, measures: Measures) {
        self.add_hashed(key_hash(&key), &key, measures);
    }

    /// Starts loading the slot of `key` (whose hash this returns), so that
    /// a later [`RollupBucket::add_hashed`] of it finds the line in cache.
    #[inline]
    pub fn prefetch(&mut self, key: &RowKey) -> u64 {
        let hash = key_hash(key);
        self.rows_at(key[0]).prefetch(hash);
        hash
    }

    /// [`RollupBucket::add`] of a key whose [`key_hash`] is `hash`.
    #[inline]
    pub fn add_hashed(&mut self, hash: u64, key: &RowKey, measures: Measures) {
        self.rows_at(key[0]).add(hash, key, measures);
    }

    /// The table of bucket `time`, made if there is none.
    #[inline]
    fn rows_at(&mut self, time: u32) -> &mut RowTable {
        if self.by_time.get(self.last).is_none_or(|(t, _)| *t != time) {
            self.last = match self.by_time.iter().position(|(t, _)| *t == time) {
                Some(i) => i,
                None => {
                    // A new minute is sized as the latest one before it:
                    // minutes of one stream hold similar rows, and a table
                    // grown by doubling rebuilds its index on the way (when
                    // rows lay in the slots, 2 % of a high-cardinality
                    // ingest). At most that bucket's size, which the memory
                    // count already saw. A late minute starts small (it may
                    // be a few stragglers).
                    let latest = self.by_time.iter().max_by_key(|(t, _)| *t);
                    let rows = latest
                        .filter(|(t, _)| *t < time)
                        .map_or(0, |(_, rows)| rows.len());
                    self.by_time.push((time, RowTable::with_capacity(rows)));
                    self.by_time.len() - 1
                }
            };
        }
        &mut self.by_time[self.last].1
    }

    /// Makes room for `rows` more rows in bucket `time`: a regroup that
    /// knows its size grows the table once instead of doubling it.
    pub fn reserve(&mut self, time: u32, rows: usize) {
        self.rows_at(time).reserve(rows);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.by_time.iter().map(|(_, rows)| rows.len()).sum()
    }

    /// Whether the bucket has no rows.
    pub fn is_empty(&self) -> bool {
        self.by_time.iter().all(|(_, rows)| rows.is_empty())
    }

    /// Every row's key and measures.
    pub fn rows(&self) -> impl Iterator<Item = (RowKey, Measures)> + '_ {
        self.by_time.iter().flat_map(|(_, rows)| rows.rows())
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.by_time
            .iter()
            .map(|(_, rows)| rows.memory_bytes())
            .sum()
    }

    /// The rows as a batch of `schema` (time, the layout's dims, measures).
    pub fn to_batch(
        &self,
        schema: &SchemaRef,
        layout: &RollupLayout,
        dictionary: &Arc<StringArray>,
    ) -> Result<RecordBatch, ArrowError> {
        self.batch_of(schema, layout, dictionary, None)
    }

    /// [`to_batch`](Self::to_batch) for a seal, checking every row before
    /// it is written: its time bucket starts on `grain_secs` and its side
    /// keys are ones `layout` interned. Checked in the same pass (a
    /// separate one read a minute's rows, 64–128 MiB then, once more: 1.5 %
    /// of a high-cardinality ingest).
    pub fn to_checked_batch(
        &self,
        schema: &SchemaRef,
        layout: &RollupLayout,
        dictionary: &Arc<StringArray>,
        grain_secs: u32,
    ) -> Result<RecordBatch, ArrowError> {
        self.batch_of(schema, layout, dictionary, Some(grain_secs))
    }

    fn batch_of(
        &self,
        schema: &SchemaRef,
        layout: &RollupLayout,
        dictionary: &Arc<StringArray>,
        check_grain_secs: Option<u32>,
    ) -> Result<RecordBatch, ArrowError> {
        // One pass over the rows (read in order) copies each row's key
        // words and measures into dense columns; each dimension's
        // codes are then filled column by column: a side's fields gathered
        // from its interned tuples, the other dimensions taken as they are.
        let len = self.len();
        let sides = layout.tuples.len() as u32;
        let mut times: Vec<i64> = Vec::with_capacity(len);
        let mut key_words: [Vec<u32>; KEY_WIDTH - 1] =
            std::array::from_fn(|_| Vec::with_capacity(len));
        let mut measures: [Vec<u64>; 3] = std::array::from_fn(|_| Vec::with_capacity(len));
        for (key, m) in self.rows() {
            if let Some(grain) = check_grain_secs
                && (!key[0].is_multiple_of(grain) || key[1] >= sides || key[2] >= sides)
            {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "rollup row key {key:?} is not one this table makes"
                )));
            }
            times.push(i64::from(key[0]));
            for (words, word) in key_words.iter_mut().zip(&key[1..]) {
                words.push(*word);
            }
            for (column, value) in measures.iter_mut().zip([m.bytes, m.packets, m.flows]) {
                column.push(value);
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        columns.push(Arc::new(
            TimestampSecondArray::new(times.into(), None).with_timezone("UTC"),
        ));
        let [src_sides, dst_sides, other @ ..] = &mut key_words;
        let dims = layout.dims();
        for (i, dim) in dims.iter().enumerate() {
            let d = *dim as usize;
            let codes = match d {
                0..6 => layout.side_column(src_sides, d),
                6..OTHER_DIMS_START => layout.side_column(dst_sides, d - 6),
                // Moved at its last use (a layout may list a dimension twice).
                _ if dims[i + 1..].contains(dim) => other[d - OTHER_DIMS_START].clone(),
                _ => std::mem::take(&mut other[d - OTHER_DIMS_START]),
            };
            columns.push(dim_array(*dim, codes, dictionary)?);
        }
        for column in measures {
            columns.push(Arc::new(UInt64Array::new(column.into(), None)));
        }
        RecordBatch::try_new(schema.clone(), columns)
    }
}

/// The rows of `batch` (a finer rollup's, with a superset of the columns)
/// as rows of `schema`: `time` floored to `grain_secs`, the columns
/// `schema` names taken as they are. Rows are not merged.
pub fn regrain(
    batch: &RecordBatch,
    schema: &SchemaRef,
    grain_secs: u32,
) -> Result<RecordBatch, ArrowError> {
    let grain = i64::from(grain_secs);
    let times = batch.column(0).as_primitive::<TimestampSecondType>();
    let floored: TimestampSecondArray = times.unary(|t| t - t.rem_euclid(grain));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(floored.with_timezone("UTC"))];
    for field in &schema.fields()[1..] {
        let column = batch.column_by_name(field.name()).ok_or_else(|| {
            ArrowError::SchemaError(format!("no column {} to derive from", field.name()))
        })?;
        columns.push(column.clone());
    }
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_keys_expand_to_the_kept_codes() {
        let mut layout = RollupLayout::new(&[Dim::SrcApp, Dim::DstAz, Dim::ServicePort]);
        let mut codes = [NULL_CODE; DIM_COUNT];
        codes[Dim::SrcApp as usize] = 7;
        codes[Dim::SrcAz as usize] = 9; // not kept
        codes[Dim::DstAz as usize] = 11;
        codes[Dim::ServicePort as usize] = 443;
        codes[Dim::Protocol as usize] = 6; // not kept
        let key = layout.key(60, Some([3, 4]), &codes);
        assert_eq!(layout.expand(&key, Dim::SrcApp), 7);
        assert_eq!(layout.expand(&key, Dim::SrcAz), NULL_CODE);
        assert_eq!(layout.expand(&key, Dim::DstAz), 11);
        assert_eq!(layout.expand(&key, Dim::ServicePort), 443);
        assert_eq!(layout.expand(&key, Dim::Protocol), NULL_CODE);
        assert_eq!(
            layout.key(60, None, &codes),
            key,
            "cache and interning agree"
        );
        codes[Dim::SrcAz as usize] = 10;
        assert_eq!(
            layout.key(60, None, &codes),
            key,
            "unkept fields do not split rows"
        );
    }

    #[test]
    fn equal_keys_share_a_row() {
        let mut bucket = RollupBucket::default();
        let m = |b| Measures {
            bytes: b,
            packets: 1,
            flows: 1,
        };
        let key = |t, a| {
            let mut k = [NULL_CODE; KEY_WIDTH];
            k[0] = t;
            k[1] = a;
            k
        };
        bucket.add(key(60, 1), m(10));
        bucket.add(key(60, 2), m(5));
        bucket.add(key(60, 1), m(7));
        for i in 0..10_000u32 {
            bucket.add(key(120, i % 100), m(1));
        }
        assert_eq!(bucket.len(), 102);
        let row = bucket
            .rows()
            .find(|(k, _)| *k == key(60, 1))
            .map(|(_, m)| m);
        assert_eq!(
            row,
            Some(Measures {
                bytes: 17,
                packets: 2,
                flows: 2
            })
        );
    }

    proptest::proptest! {
        /// Against the layout's own expansion: a batch's every column holds
        /// each row's code (nulls as nulls), whichever dimensions a table
        /// keeps and however side tuples recur.
        #[test]
        fn batch_columns_match_expand(
            rows in proptest::collection::vec(
                (0u32..6, 0u32..6, proptest::option::of(0u32..3), proptest::option::of(0u32..70_000)),
                1..200),
            keep_mask in 1u32..(1 << 18),
        ) {
            use arrow::array::{Array, AsArray};
            use arrow::datatypes::{Int32Type, UInt32Type};
            use proptest::prelude::*;
            let dims: Vec<Dim> = Dim::ALL.iter().copied().filter(|d| keep_mask & (1 << *d as usize) != 0).collect();
            prop_assume!(!dims.is_empty());
            let spec = crate::schema::RollupSpec { dims: dims.clone(), ..crate::schema::RollupSpec::minutely() };
            let mut layout = RollupLayout::new(&dims);
            let mut bucket = RollupBucket::default();
            for (src, dst, text, port) in &rows {
                let mut codes = [NULL_CODE; DIM_COUNT];
                for (side, workload) in [(0, *src), (6, *dst)] {
                    for field in 0..6u32 {
                        codes[side + field as usize] = if (workload + field).is_multiple_of(4) {
                            NULL_CODE
                        } else {
                            (workload * 7 + field) % 3
                        };
                    }
                }
                codes[Dim::Action as usize] = text.unwrap_or(NULL_CODE);
                codes[Dim::ServicePort as usize] = port.unwrap_or(NULL_CODE);
                codes[Dim::CrossAz as usize] = port.map_or(NULL_CODE, |p| p % 2);
                let key = layout.key(120, Some([*src, *dst]), &codes);
                bucket.add(key, Measures { bytes: 1, packets: 1, flows: 1 });
            }
            let dictionary = Arc::new(StringArray::from(vec!["a", "b", "c"]));
            let batch = bucket.to_checked_batch(&spec.schema(), &layout, &dictionary, 60).expect("batch");
            let keys: Vec<RowKey> = bucket.rows().map(|(key, _)| key).collect();
            prop_assert_eq!(batch.num_rows(), keys.len());
            for (column, dim) in dims.iter().enumerate() {
                let array = batch.column(column + 1);
                for (row, key) in keys.iter().enumerate() {
                    let code = layout.expand(key, *dim);
                    prop_assert_eq!(array.is_null(row), code == NULL_CODE);
                    if code == NULL_CODE {
                        continue;
                    }
                    let value = match dim.dim_type() {
                        crate::dims::DimType::Text => array.as_dictionary::<UInt32Type>().keys().value(row),
                        crate::dims::DimType::Int => array.as_primitive::<Int32Type>().value(row) as u32,
                        crate::dims::DimType::Bool => u32::from(array.as_boolean().value(row)),
                    };
                    prop_assert_eq!(value, code, "{} row {}", dim.name(), row);
                }
            }
        }
    }

    /// A seal's batch is checked in the pass that builds it: a row whose
    /// time is off the grain, or whose side key the layout never made, is
    /// refused (and never indexes past the layout's tuples).
    #[test]
    fn a_checked_batch_refuses_a_key_the_table_does_not_make() {
        let spec = crate::schema::RollupSpec::minutely();
        let schema = spec.schema();
        let dictionary = Arc::new(StringArray::from(vec![""]));
        let mut layout = RollupLayout::new(&spec.dims);
        let codes = [NULL_CODE; DIM_COUNT];
        let good = layout.key(120, Some([1, 2]), &codes);
        let measures = Measures {
            bytes: 1,
            packets: 1,
            flows: 1,
        };
        let mut bucket = RollupBucket::default();
        bucket.add(good, measures);
        let checked = bucket.to_checked_batch(&schema, &layout, &dictionary, 60);
        assert_eq!(checked.map(|b| b.num_rows()).ok(), Some(1));
        let mut off_grain = good;
        off_grain[0] = 121;
        let mut unknown_side = good;
        unknown_side[2] = 99;
        for bad in [off_grain, unknown_side] {
            let mut bucket = RollupBucket::default();
            bucket.add(good, measures);
            bucket.add(bad, measures);
            let error = bucket
                .to_checked_batch(&schema, &layout, &dictionary, 60)
                .expect_err("refused");
            assert!(
                error.to_string().contains("not one this table makes"),
                "{error}"
            );
        }
    }
    fn one_flow(bytes: u64) -> Measures {
        Measures {
            bytes,
            packets: 1,
            flows: 1,
        }
    }

    fn key_at(time: u32, n: u32) -> RowKey {
        let mut key = [0; KEY_WIDTH];
        key[0] = time;
        key[3] = n;
        key
    }

    /// A new minute starts with room for the latest minute's rows; a
    /// late one (a few stragglers, say) starts small, instead of taking as
    /// much room as the minute made before it.
    #[test]
    fn a_late_minute_starts_small_and_a_new_one_with_the_latest_ones_room() {
        let mut bucket = RollupBucket::default();
        for n in 0..4000 {
            bucket.add(key_at(120, n), one_flow(1));
        }
        let full = bucket.memory_bytes();
        bucket.add(key_at(60, 0), one_flow(1));
        let late = bucket.memory_bytes() - full;
        assert!(late <= RowTable::with_capacity(16).memory_bytes(), "{late}");
        bucket.add(key_at(180, 0), one_flow(1));
        let new = bucket.memory_bytes() - full - late;
        assert_eq!(new, RowTable::with_capacity(4000).memory_bytes());
        assert_eq!(bucket.len(), 4002);
    }

    proptest::proptest! {
        /// Against a HashMap oracle: however minutes interleave, arrive
        /// late and grow, equal keys share a row and the sums add up.
        #[test]
        fn bucket_rows_match_a_hashmap(
            adds in proptest::collection::vec((0u32..4, 0u32..300, 1u64..100), 0..3000),
        ) {
            let mut bucket = RollupBucket::default();
            let mut oracle: std::collections::HashMap<RowKey, u64> = std::collections::HashMap::new();
            for (minute, n, bytes) in adds {
                // Minute 0 holds many keys, the others few: they fill beside it.
                let n = if minute == 0 { n * 7 } else { n % (minute * 40) };
                let key = key_at(minute * 60, n);
                bucket.add(key, one_flow(bytes));
                *oracle.entry(key).or_default() += bytes;
            }
            let rows: std::collections::HashMap<RowKey, u64> =
                bucket.rows().map(|(key, m)| (key, m.bytes)).collect();
            proptest::prop_assert_eq!(bucket.len(), oracle.len());
            proptest::prop_assert_eq!(rows, oracle);
        }
    }
}
