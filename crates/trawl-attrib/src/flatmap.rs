//! An open-addressing hash table for `u32` keys (IPv4 addresses) that keeps
//! each key next to its value, so a lookup in a table far larger than the
//! caches costs one memory access, and [`FlatMap::touch`] can start that
//! access early for a batch of lookups (see `AttributionIndex::owner_at_many`).
//!
//! Linear probing from a multiplicative hash mapped onto the capacity by a
//! multiply-shift (any capacity, not only powers of two, so the table is at
//! most a quarter larger than its contents). The load stays at or below
//! [`LOAD_MAX_PERCENT`]; growing rehashes everything; removal rebuilds
//! (it happens in bulk, in `retain`). Empty slots hold `V::default()`.

/// Highest share of used slots, in percent, before the table grows.
pub const LOAD_MAX_PERCENT: usize = 80;

#[derive(Debug, Clone, Default)]
struct Slot<V> {
    key: u32,
    used: bool,
    value: V,
}

/// Map from `u32` to `V`.
#[derive(Debug, Clone)]
pub struct FlatMap<V> {
    slots: Vec<Slot<V>>,
    len: usize,
}

impl<V: Default> Default for FlatMap<V> {
    fn default() -> Self {
        FlatMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

#[inline]
fn home(key: u32, capacity: usize) -> usize {
    let hash = key.wrapping_mul(0x9e37_79b1) ^ (key >> 16);
    let hash = hash.wrapping_mul(0x85eb_ca6b);
    ((u64::from(hash) * capacity as u64) >> 32) as usize
}

impl<V: Default> FlatMap<V> {
    /// Where `key` is, or where it would go.
    #[inline]
    fn find(&self, key: u32) -> Result<usize, usize> {
        let capacity = self.slots.len();
        let mut index = home(key, capacity);
        loop {
            let slot = &self.slots[index];
            if !slot.used {
                return Err(index);
            }
            if slot.key == key {
                return Ok(index);
            }
            index += 1;
            if index == capacity {
                index = 0;
            }
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: u32) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        self.find(key).ok().map(|i| &self.slots[i].value)
    }

    /// Reads the slot `key` hashes to, so that a later [`get`](Self::get)
    /// finds the memory already on its way; returns a value to feed to
    /// `std::hint::black_box`.
    #[inline]
    pub fn touch(&self, key: u32) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        self.slots[home(key, self.slots.len())].key
    }

    /// The value of `key`, inserting a default one if absent.
    pub fn entry(&mut self, key: u32) -> &mut V {
        if (self.len + 1) * 100 > self.slots.len() * LOAD_MAX_PERCENT {
            self.grow();
        }
        let index = match self.find(key) {
            Ok(index) => index,
            Err(index) => {
                self.slots[index] = Slot {
                    key,
                    used: true,
                    value: V::default(),
                };
                self.len += 1;
                index
            }
        };
        &mut self.slots[index].value
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 3 / 2).max(16);
        self.rebuild(capacity, |_| true);
    }

    /// Reinserts every kept entry into `capacity` slots.
    fn rebuild(&mut self, capacity: usize, mut keep: impl FnMut(&mut V) -> bool) {
        let old = std::mem::take(&mut self.slots);
        self.slots = (0..capacity).map(|_| Slot::default()).collect();
        self.len = 0;
        for mut slot in old.into_iter().filter(|s| s.used) {
            if keep(&mut slot.value)
                && let Err(index) = self.find(slot.key)
            {
                self.slots[index] = slot;
                self.len += 1;
            }
        }
    }

    /// Keeps the entries for which `keep` is true (and shrinks if much emptier).
    pub fn retain(&mut self, keep: impl FnMut(&mut V) -> bool) {
        let capacity = self.slots.len();
        self.rebuild(capacity, keep);
        if self.len * 100 < capacity * LOAD_MAX_PERCENT / 4 && capacity > 16 {
            let smaller = (self.len * 200 / LOAD_MAX_PERCENT).max(16);
            self.rebuild(smaller, |_| true);
        }
    }
}

impl<V> FlatMap<V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of slots.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.slots
            .iter()
            .filter(|s| s.used)
            .map(|s| (s.key, &s.value))
    }

    /// Every key and value, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut V)> {
        self.slots
            .iter_mut()
            .filter(|s| s.used)
            .map(|s| (s.key, &mut s.value))
    }

    /// Bytes of the slots.
    pub fn table_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<V>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec((0u8..3, 0u32..64, any::<u16>()), 0..400)) {
            let mut flat = FlatMap::<u16>::default();
            let mut model = HashMap::new();
            for (op, key, value) in ops {
                match op {
                    0 => {
                        *flat.entry(key) = value;
                        model.insert(key, value);
                    }
                    1 => {
                        flat.retain(|v| *v % 3 != 0);
                        model.retain(|_, v| *v % 3 != 0);
                    }
                    _ => prop_assert_eq!(flat.get(key), model.get(&key)),
                }
                prop_assert_eq!(flat.len(), model.len());
                prop_assert!(flat.len() * 100 <= flat.capacity() * LOAD_MAX_PERCENT);
            }
            let mut all: Vec<_> = flat.iter().map(|(k, v)| (k, *v)).collect();
            all.sort();
            let mut expected: Vec<_> = model.into_iter().collect();
            expected.sort();
            prop_assert_eq!(all, expected);
        }
    }

    #[test]
    fn sequential_keys_spread_and_all_are_found() {
        let mut flat = FlatMap::<u32>::default();
        for key in 0x0a00_0000..0x0a00_0000 + 100_000u32 {
            *flat.entry(key) = key;
        }
        for key in 0x0a00_0000..0x0a00_0000 + 100_000u32 {
            assert_eq!(flat.get(key), Some(&key));
        }
        assert_eq!(flat.get(7), None);
        assert!(flat.capacity() < 200_000);
    }
}
