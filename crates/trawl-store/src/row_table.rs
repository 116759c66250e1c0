//! The rows of one time bucket of an open rollup table: an open-addressing
//! hash table whose slot for a key can be prefetched before the key is
//! added.
//!
//! Why not `hashbrown`: on high-cardinality traffic a minute's table holds
//! about a million rows (64 to 128 MiB), every flow adds a new row, and an
//! add waited on two cache misses (the control bytes, then the entry) that
//! no caller could start early; it was a quarter of an ingest's CPU time.
//! Here a slot is one cache line holding key, measures and an occupied
//! mark, found by linear probing from `hash & mask`, so the caller can
//! [`RowTable::prefetch`] the slots of the next few flows while it adds
//! this one (see `ShardTable::add` in `store/shard.rs`), and an add
//! usually touches one line.
//!
//! Layout: a slot is eight `u64` words (key codes 0–7 in pairs, code 8 and
//! the occupied mark, bytes, packets, flows), aligned to a cache line.
//!
//! Invariants: a key occupies at most one slot; a key's slot is reached
//! from its home slot without passing an empty one (rows are never
//! removed); the table is at most [`LOAD_NUM`]/[`LOAD_DEN`] full, so a
//! probe always ends.

use crate::rollup::{KEY_WIDTH, Measures, RowKey, key_hash};

/// A slot: eight words, one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Slot([u64; 8]);

/// Word holding code 8 of the key (low half) and the occupied mark (high).
const LAST_WORD: usize = 4;
const OCCUPIED: u64 = 1 << 32;

/// Largest share of slots in use before the table doubles.
const LOAD_NUM: usize = 5;
const LOAD_DEN: usize = 8;

/// Fewest slots a table has.
const SLOTS_MIN: usize = 16;

/// An open-addressing table of rollup rows (see the module header).
#[derive(Debug, Default, Clone)]
pub struct RowTable {
    slots: Vec<Slot>,
    len: usize,
}

fn pack(key: &RowKey, measures: Measures) -> Slot {
    let mut slot = [0u64; 8];
    for (word, pair) in slot.iter_mut().zip(key.chunks_exact(2)) {
        *word = u64::from(pair[0]) | (u64::from(pair[1]) << 32);
    }
    slot[LAST_WORD] = u64::from(key[KEY_WIDTH - 1]) | OCCUPIED;
    let mut slot = Slot(slot);
    set_measures(&mut slot, measures);
    slot
}

fn set_measures(slot: &mut Slot, measures: Measures) {
    slot.0[5] = measures.bytes;
    slot.0[6] = measures.packets;
    slot.0[7] = measures.flows;
}

fn key_of(slot: &Slot) -> RowKey {
    let mut key = [0u32; KEY_WIDTH];
    for (pair, word) in key.chunks_exact_mut(2).zip(&slot.0) {
        pair[0] = *word as u32;
        pair[1] = (*word >> 32) as u32;
    }
    key[KEY_WIDTH - 1] = slot.0[LAST_WORD] as u32;
    key
}

fn measures_of(slot: &Slot) -> Measures {
    Measures {
        bytes: slot.0[5],
        packets: slot.0[6],
        flows: slot.0[7],
    }
}

fn occupied(slot: &Slot) -> bool {
    slot.0[LAST_WORD] & OCCUPIED != 0
}

/// Whether `slot` holds the key of `packed` (a [`pack`]ed slot; the key
/// words compared without a branch per word).
#[inline]
fn same_key(slot: &Slot, packed: &Slot) -> bool {
    slot.0[..=LAST_WORD]
        .iter()
        .zip(&packed.0[..=LAST_WORD])
        .fold(0, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// Slots for `rows` rows under the load limit.
fn slots_for(rows: usize) -> usize {
    (rows.saturating_mul(LOAD_DEN) / LOAD_NUM + 1)
        .next_power_of_two()
        .max(SLOTS_MIN)
}

impl RowTable {
    /// A table with room for `rows` rows before it grows.
    pub fn with_capacity(rows: usize) -> RowTable {
        if rows == 0 {
            return RowTable::default();
        }
        RowTable {
            slots: vec![Slot::default(); slots_for(rows)],
            len: 0,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held (every slot, used or not).
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Starts loading the home slot of a key of `hash` (where its probe
    /// starts; a probe that goes on reads the next lines, which the CPU's
    /// own prefetcher follows). Changes nothing.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(slot) = self.slots.get(self.home(hash)) {
            trawl_prefetch::prefetch(slot);
        }
    }

    /// Adds `measures` to the row of `key`, whose hash is `hash`
    /// ([`key_hash`] of it: the table places every key by that).
    #[inline]
    pub fn add(&mut self, hash: u64, key: &RowKey, measures: Measures) {
        debug_assert_eq!(hash, key_hash(key));
        if self.over_load(self.len + 1) {
            self.grow(self.len + 1);
        }
        // Packed once: the probe compares it and an empty slot takes it.
        let packed = pack(key, measures);
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        loop {
            let slot = &mut self.slots[at];
            if !occupied(slot) {
                *slot = packed;
                self.len += 1;
                return;
            }
            if same_key(slot, &packed) {
                let mut sum = measures_of(slot);
                sum.add(measures);
                set_measures(slot, sum);
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// Makes room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        let wanted = self.len.saturating_add(rows);
        if self.over_load(wanted) {
            self.rehash(slots_for(wanted));
        }
    }

    /// Whether `rows` rows would fill the table past the load limit.
    fn over_load(&self, rows: usize) -> bool {
        rows.saturating_mul(LOAD_DEN) > self.slots.len() * LOAD_NUM
    }

    /// Every row's key and measures, in slot order.
    pub fn rows(&self) -> impl Iterator<Item = (RowKey, Measures)> + '_ {
        self.slots
            .iter()
            .filter(|slot| occupied(slot))
            .map(|slot| (key_of(slot), measures_of(slot)))
    }

    fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.slots.len().wrapping_sub(1)
    }

    #[cold]
    fn grow(&mut self, rows: usize) {
        self.rehash(slots_for(rows).max(self.slots.len() * 2));
    }

    fn rehash(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); slots]);
        let mask = slots - 1;
        for slot in old.iter().filter(|slot| occupied(slot)) {
            let mut at = (key_hash(&key_of(slot)) as usize) & mask;
            while occupied(&self.slots[at]) {
                at = (at + 1) & mask;
            }
            self.slots[at] = *slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn m(bytes: u64) -> Measures {
        Measures {
            bytes,
            packets: 1,
            flows: 1,
        }
    }

    #[test]
    fn a_key_packs_and_unpacks_whole() {
        let key: RowKey = [u32::MAX, 1, 2, 3, 4, 5, 6, 7, u32::MAX - 1];
        let slot = pack(&key, m(9));
        assert!(occupied(&slot) && same_key(&slot, &pack(&key, m(1))));
        assert_eq!((key_of(&slot), measures_of(&slot)), (key, m(9)));
        let mut other = key;
        other[8] = 0;
        assert!(!same_key(&slot, &pack(&other, m(9))));
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
