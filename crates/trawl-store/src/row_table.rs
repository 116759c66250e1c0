//! The rows of one time bucket of an open rollup table: rows kept in the
//! order they were first added, found through an open-addressing index
//! whose slot for a key can be prefetched before the key is added.
//!
//! Why not `hashbrown`: on high-cardinality traffic a minute's table holds
//! about a million rows, every flow adds a new row, and an add waited on
//! two cache misses (the control bytes, then the entry) that no caller
//! could start early; it was a quarter of an ingest's CPU time. Here the
//! caller [`RowTable::prefetch`]es the index slot of the next few flows
//! while it adds this one (see `ShardTable::add` in `store/shard.rs`).
//!
//! Why an index beside the rows, not rows in the slots (as until
//! 2026-12-07): a slot of the index is 8 bytes (the row's number and 32
//! bits of its key's hash), so the part that is read at random is an
//! eighth of the size. With rows in 64-byte slots, a million-row minute
//! was a 128 MiB table: nearly every add missed the TLB as well as the
//! cache (the add waited on its prefetch more than on anything else), a
//! doubling rehashed and faulted in every row again, and a seal scanned
//! twice the slots it had rows. Now a new row is appended (written in
//! order), growing rebuilds only the index (from its own slots' tags),
//! and a seal reads the rows as they lie.
//!
//! Invariants: a key has at most one row, and one index slot, which holds
//! the row's number plus one (0 is an empty slot) and the high 32 bits of
//! the key's hash (its tag); that slot is reached from the key's home slot
//! (`tag & mask`: so growing places slots by their tags alone, reading
//! neither rows nor keys) without passing an empty one (rows are never
//! removed); the index is at most [`LOAD_NUM`]/[`LOAD_DEN`] full, so a
//! probe always ends.

use crate::rollup::{Measures, RowKey, key_hash};

/// A row: its key and measures.
#[derive(Debug, Clone, Copy)]
struct Row {
    key: RowKey,
    measures: Measures,
}

/// Largest share of index slots in use before the index doubles.
const LOAD_NUM: usize = 5;
const LOAD_DEN: usize = 8;

/// Fewest slots an index has.
const SLOTS_MIN: usize = 16;

/// Rows a table can hold: a slot keeps a row's number plus one in 32 bits.
const ROWS_MAX: usize = u32::MAX as usize - 1;

/// An index slot of the row numbered `row`, whose key's hash is `hash`.
#[inline]
fn slot_of(row: usize, hash: u64) -> u64 {
    (hash & !u64::from(u32::MAX)) | (row as u64 + 1)
}

/// Whether index slot `slot` may be the row of a key whose hash is `hash`
/// (the high 32 bits agree; the key itself says for sure).
#[inline]
fn tag_matches(slot: u64, hash: u64) -> bool {
    (slot ^ hash) >> 32 == 0
}

/// The row number an occupied index slot holds.
#[inline]
fn row_of(slot: u64) -> usize {
    (slot as u32) as usize - 1
}

/// The home slot, in an index of `slots` slots (a power of two), of a key
/// whose hash (or index slot: only the high 32 bits count) is `hash`.
#[inline]
fn home_of(hash: u64, slots: usize) -> usize {
    ((hash >> 32) as usize) & slots.wrapping_sub(1)
}

/// Index slots for `rows` rows under the load limit.
fn slots_for(rows: usize) -> usize {
    (rows.saturating_mul(LOAD_DEN) / LOAD_NUM + 1)
        .next_power_of_two()
        .max(SLOTS_MIN)
}

/// A table of rollup rows (see the module header).
#[derive(Debug, Default, Clone)]
pub struct RowTable {
    /// Open-addressing index of `rows` (see the module header).
    index: Vec<u64>,
    /// Rows in the order their keys were first added.
    rows: Vec<Row>,
}

impl RowTable {
    /// A table with room for `rows` rows before it grows.
    pub fn with_capacity(rows: usize) -> RowTable {
        if rows == 0 {
            return RowTable::default();
        }
        RowTable {
            index: empty_index(slots_for(rows)),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Heap bytes held (every slot and row of room, used or not).
    pub fn memory_bytes(&self) -> usize {
        self.index.capacity() * std::mem::size_of::<u64>()
            + self.rows.capacity() * std::mem::size_of::<Row>()
    }

    /// Starts loading the home slot of a key of `hash` (where its probe
    /// starts; a probe that goes on reads the next slots, on the same
    /// line or the next). Changes nothing.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(slot) = self.index.get(self.home(hash)) {
            trawl_prefetch::prefetch(slot);
        }
    }

    /// Adds `measures` to the row of `key`, whose hash is `hash`
    /// ([`key_hash`] of it: the table places every key by that).
    ///
    /// # Panics
    /// If the table already holds `u32::MAX - 1` rows (a store seals long
    /// before: its memory cap is far below that).
    #[inline]
    pub fn add(&mut self, hash: u64, key: &RowKey, measures: Measures) {
        debug_assert_eq!(hash, key_hash(key));
        self.add_hashed_as(hash, key, measures);
    }

    /// [`RowTable::add`] without the debug check that `hash` is the key's
    /// (tests give keys made-up hashes that collide).
    #[inline]
    fn add_hashed_as(&mut self, hash: u64, key: &RowKey, measures: Measures) {
        if self.over_load(self.rows.len() + 1) {
            self.grow(self.rows.len() + 1);
        }
        let mask = self.index.len() - 1;
        let mut at = self.home(hash);
        loop {
            let slot = self.index[at];
            if slot == 0 {
                assert!(
                    self.rows.len() < ROWS_MAX,
                    "a rollup table of {ROWS_MAX} rows"
                );
                self.index[at] = slot_of(self.rows.len(), hash);
                self.rows.push(Row {
                    key: *key,
                    measures,
                });
                return;
            }
            if tag_matches(slot, hash) {
                let row = &mut self.rows[row_of(slot)];
                if row.key == *key {
                    row.measures.add(measures);
                    return;
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Makes room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        let wanted = self.rows.len().saturating_add(rows);
        if self.over_load(wanted) {
            self.rehash(slots_for(wanted));
        }
        // Exactly: `reserve` may double, and the room counts against the cap.
        self.rows.reserve_exact(rows);
    }

    /// Whether `rows` rows would fill the index past the load limit.
    fn over_load(&self, rows: usize) -> bool {
        rows.saturating_mul(LOAD_DEN) > self.index.len() * LOAD_NUM
    }

    /// Every row's key and measures, in the order they were first added.
    pub fn rows(&self) -> impl Iterator<Item = (RowKey, Measures)> + '_ {
        self.rows.iter().map(|row| (row.key, row.measures))
    }

    fn home(&self, hash: u64) -> usize {
        home_of(hash, self.index.len())
    }

    #[cold]
    fn grow(&mut self, rows: usize) {
        self.rehash(slots_for(rows).max(self.index.len() * 2));
    }

    /// A new index of `slots` slots, each old slot placed by its tag
    /// (the rows are not read).
    fn rehash(&mut self, slots: usize) {
        let mut index = empty_index(slots);
        let mask = slots - 1;
        for &slot in self.index.iter().filter(|&&slot| slot != 0) {
            let mut at = home_of(slot, slots);
            while index[at] != 0 {
                at = (at + 1) & mask;
            }
            index[at] = slot;
        }
        self.index = index;
    }
}

/// An index of `slots` empty slots, their zeros written. Not
/// `vec![0; slots]`: a zeroed allocation of that size is fresh pages that
/// all map the kernel's shared zero page, so a probe's read of a page and
/// the write after it fault twice, and the second fault, a copy, flushes
/// the TLB of every other core running the process (an interrupt per
/// page: 4 % of the CPU of a high-cardinality ingest, in `rehash`).
/// Written, each page faults once, on the write.
fn empty_index(slots: usize) -> Vec<u64> {
    let mut index = Vec::with_capacity(slots);
    // Opaque to the optimizer, which would otherwise turn the allocation
    // and the zero fill below back into one zeroed allocation.
    std::hint::black_box(index.as_mut_ptr());
    index.resize(slots, 0);
    index
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::rollup::KEY_WIDTH;

    fn m(bytes: u64) -> Measures {
        Measures {
            bytes,
            packets: 1,
            flows: 1,
        }
    }

    #[test]
    fn a_slot_keeps_its_row_and_the_hashs_high_bits() {
        let hash = 0xdead_beef_0000_0007;
        for row in [0, 1, ROWS_MAX - 1] {
            let slot = slot_of(row, hash);
            assert_ne!(slot, 0, "an occupied slot is never empty");
            assert_eq!(row_of(slot), row);
            assert!(tag_matches(slot, hash));
            assert!(tag_matches(slot, 0xdead_beef_ffff_ffff));
            assert!(!tag_matches(slot, 0xdead_beee_0000_0007));
        }
    }

    #[test]
    fn an_all_zero_key_is_a_row_not_an_empty_slot() {
        let mut table = RowTable::default();
        table.add(key_hash(&[0; KEY_WIDTH]), &[0; KEY_WIDTH], m(3));
        table.add(key_hash(&[0; KEY_WIDTH]), &[0; KEY_WIDTH], m(4));
        assert_eq!(table.len(), 1);
        let rows: Vec<_> = table.rows().collect();
        assert_eq!(rows[0].1.bytes, 7);
    }

    /// Keys whose real [`key_hash`]es are equal (built by solving the
    /// hasher's fourth word; the table's every path, rehash included,
    /// places them by that hash) keep a row each across every grow, and
    /// each sum lands on its own row.
    #[test]
    fn keys_with_equal_real_hashes_keep_their_rows_across_grows() {
        fn fold(state: u64, word: u64) -> u64 {
            (state ^ word)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29)
        }
        fn state3(key: &RowKey) -> u64 {
            key[..6].chunks_exact(2).fold(0, |s, pair| {
                fold(s, u64::from(pair[0]) | (u64::from(pair[1]) << 32))
            })
        }
        let base: RowKey = [60, 0, 0, 6, 443, 1, 0, 0, 0];
        let target = state3(&base);
        let keys: Vec<RowKey> = (0..300u32)
            .map(|i| {
                let mut key = base;
                key[1] = i;
                let word = target ^ state3(&key);
                key[6] = word as u32;
                key[7] = (word >> 32) as u32;
                assert_eq!(key_hash(&key), key_hash(&base), "key {i}");
                key
            })
            .collect();
        let mut table = RowTable::default();
        for round in 0..2u64 {
            for (i, key) in keys.iter().enumerate() {
                table.prefetch(key_hash(key));
                table.add(key_hash(key), key, m(i as u64 + 1000 * round));
            }
        }
        assert_eq!(table.len(), keys.len());
        let rows: Vec<(RowKey, u64)> = table.rows().map(|(k, s)| (k, s.bytes)).collect();
        let want: Vec<(RowKey, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| (*key, 2 * i as u64 + 1000))
            .collect();
        assert_eq!(rows, want, "one row per key, in the order first added");
    }

    /// `with_capacity(n)` and `reserve(n)` make room for `n` more rows:
    /// adding them allocates nothing more (what `memory_bytes` counts
    /// against the cap does not move), and the index stays under its load.
    #[test]
    fn with_capacity_and_reserve_hold_their_rows_without_growing() {
        let key = |i: u32| -> RowKey { [60, i, i >> 3, 6, 443, 1, 0, 0, i ^ 5] };
        for n in [1usize, 9, 10, 11, 20, 40, 100, 1000, 4097] {
            let mut table = RowTable::with_capacity(n);
            let room = table.memory_bytes();
            for i in 0..n as u32 {
                table.add(key_hash(&key(i)), &key(i), m(1));
            }
            assert_eq!(table.memory_bytes(), room, "with_capacity({n})");
            table.reserve(n);
            let room = table.memory_bytes();
            for i in n as u32..2 * n as u32 {
                table.add(key_hash(&key(i)), &key(i), m(1));
            }
            assert_eq!(table.memory_bytes(), room, "reserve({n})");
            assert_eq!(table.len(), 2 * n);
            assert!(!table.over_load(table.len()));
        }
    }

    /// Keys given one made-up hash (`add_hashed_as`: equal tags, equal
    /// homes) get a row each, with its own sum, in the order first added,
    /// also across grows: a rehash places slots by their tags, never by
    /// the keys' real `key_hash` (at f26bd0e it rehashed from the keys,
    /// and this gave 80 rows for 40 keys).
    #[test]
    fn keys_with_one_made_up_hash_keep_their_rows_across_grows() {
        let mut table = RowTable::default();
        let hash = 0x1234_5678_0000_0003;
        let key = |i: u32| -> RowKey { [i; 9] };
        for round in 0..2 {
            for i in 0..40 {
                table.add_hashed_as(hash, &key(i), m(u64::from(i) + 100 * round));
            }
        }
        assert_eq!(
            table.len(),
            40,
            "a key added twice under one hash has one row"
        );
        let rows: Vec<(RowKey, u64)> = table.rows().map(|(k, s)| (k, s.bytes)).collect();
        let want: Vec<(RowKey, u64)> = (0..40).map(|i| (key(i), 2 * u64::from(i) + 100)).collect();
        assert_eq!(rows, want);
    }

    proptest! {
        /// Against a HashMap oracle: equal keys share a row, sums add up,
        /// however the table grew (from nothing, presized, reserved).
        #[test]
        fn rows_match_a_hashmap(
            adds in prop::collection::vec((0u32..40, 0u32..4, 0u64..1000), 0..600),
            presize in 0usize..200,
            reserve_at in 0usize..600,
        ) {
            let mut table = RowTable::with_capacity(presize);
            let mut oracle: HashMap<RowKey, Measures> = HashMap::new();
            for (i, (a, b, bytes)) in adds.iter().enumerate() {
                if i == reserve_at {
                    table.reserve(100);
                }
                let key: RowKey = [60, *a, *b, 6, 443, 1, 0, 0, *a ^ *b];
                table.prefetch(key_hash(&key));
                table.add(key_hash(&key), &key, m(*bytes));
                oracle.entry(key).or_default().add(m(*bytes));
            }
            let rows: HashMap<RowKey, Measures> = table.rows().collect();
            prop_assert_eq!(rows.len(), table.len());
            prop_assert_eq!(rows, oracle);
        }
    }
}
