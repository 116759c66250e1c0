//! An open rollup bucket: the rows of one table's time chunk while it is
//! still in memory, keyed by time bucket and dimension codes.
//!
//! Layout: keys are stored row-major in one `Vec<u32>` (`width` codes per
//! row: bucket start, then the dimensions), measures beside them, and a
//! `hashbrown::HashTable` of row numbers finds a key's row. Adding a flow is
//! one hash of a short integer array and one probe. Rows are never removed;
//! the bucket is dropped whole once sealed.
//!
//! Invariant: a key appears in at most one row (checked by [`RollupBucket::check`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampSecondArray, UInt64Array};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use std::hash::BuildHasher as _;

use hashbrown::HashTable;

use crate::dims::Dim;
use crate::schema::dim_array;

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
    /// Adds `other` (wrapping never happens in practice: u64 bytes).
    pub fn add(&mut self, other: Measures) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.packets = self.packets.saturating_add(other.packets);
        self.flows = self.flows.saturating_add(other.flows);
    }
}

/// The rows of one open time chunk of a rollup table.
#[derive(Debug)]
pub struct RollupBucket {
    width: usize,
    keys: Vec<u32>,
    measures: Vec<Measures>,
    rows: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
}

impl RollupBucket {
    /// An empty bucket whose keys are `width` codes long.
    pub fn new(width: usize) -> Self {
        RollupBucket {
            width,
            keys: Vec::new(),
            measures: Vec::new(),
            rows: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x7472_6177),
        }
    }

    /// Adds `measures` to the row of `key` (`key[0]` is the bucket start).
    #[inline]
    pub fn add(&mut self, key: &[u32], measures: Measures) {
        debug_assert_eq!(key.len(), self.width);
        let hash = self.hasher.hash_one(key);
        let width = self.width;
        let keys = &self.keys;
        if let Some(row) = self
            .rows
            .find(hash, |&row| &keys[row as usize * width..][..width] == key)
        {
            self.measures[*row as usize].add(measures);
            return;
        }
        let row = self.measures.len() as u32;
        self.keys.extend_from_slice(key);
        self.measures.push(measures);
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.rows.insert_unique(hash, row, |&r| {
            hasher.hash_one(&keys[r as usize * width..][..width])
        });
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.measures.len()
    }

    /// Whether the bucket has no rows.
    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// Every row's key and measures.
    pub fn rows(&self) -> impl Iterator<Item = (&[u32], Measures)> + '_ {
        self.keys
            .chunks_exact(self.width)
            .zip(self.measures.iter().copied())
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.keys.capacity() * 4
            + self.measures.capacity() * std::mem::size_of::<Measures>()
            + self.rows.capacity() * 5
    }

    /// The rows as a batch of `schema` (time, `dims`, measures).
    pub fn to_batch(
        &self,
        schema: &SchemaRef,
        dims: &[Dim],
        dictionary: &Arc<StringArray>,
    ) -> Result<RecordBatch, ArrowError> {
        let column = |i: usize| self.keys.iter().skip(i).step_by(self.width).copied();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        columns.push(Arc::new(
            TimestampSecondArray::from_iter_values(column(0).map(i64::from)).with_timezone("UTC"),
        ));
        for (i, dim) in dims.iter().enumerate() {
            columns.push(dim_array(*dim, column(i + 1), dictionary)?);
        }
        let measure = |f: fn(&Measures) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(self.measures.iter().map(f)))
        };
        columns.push(measure(|m| m.bytes));
        columns.push(measure(|m| m.packets));
        columns.push(measure(|m| m.flows));
        RecordBatch::try_new(schema.clone(), columns)
    }

    /// Checks that no key appears twice (a paired check at sealing).
    pub fn check(&self) -> Result<(), String> {
        let mut seen = hashbrown::HashSet::with_capacity(self.len());
        for (key, _) in self.rows() {
            if !seen.insert(key) {
                return Err(format!("rollup key {key:?} appears twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_share_a_row() {
        let mut bucket = RollupBucket::new(3);
        let m = |b| Measures {
            bytes: b,
            packets: 1,
            flows: 1,
        };
        bucket.add(&[60, 1, 2], m(10));
        bucket.add(&[60, 1, 3], m(5));
        bucket.add(&[60, 1, 2], m(7));
        for i in 0..10_000u32 {
            bucket.add(&[120, i % 100, 0], m(1));
        }
        assert_eq!(bucket.len(), 102);
        let rows: Vec<_> = bucket.rows().take(2).collect();
        assert_eq!(rows[0].1.bytes, 17);
        assert_eq!(rows[0].1.flows, 2);
        assert_eq!(rows[1].1.bytes, 5);
        bucket.check().unwrap();
    }
}
