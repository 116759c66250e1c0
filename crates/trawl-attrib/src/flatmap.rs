//! An open-addressing hash table for `u32` keys (IPv4 addresses), laid out
//! so that a lookup in a table far larger than the caches costs one memory
//! access that can be started early.
//!
//! Keys live in their own dense array (4 bytes a slot: a million keys fit
//! in the last-level cache, and a probe sequence almost always stays in one
//! cache line); the value of slot `i` lives at `values[i]`, padded to whole
//! cache lines so it never straddles one more line than its size needs.
//! A lookup is then: probe the keys (cache), read one value (memory). For a
//! batch, [`FlatMap::prefetch_key`] and [`FlatMap::prefetch_value`] start
//! both accesses ahead of need (see `AttributionIndex::owner_at_many`).
//!
//! Linear probing from a multiplicative hash mapped onto the capacity by a
//! multiply-shift (any capacity, not only powers of two, so the table is at
//! most a quarter larger than its contents). The load stays at or below
//! [`LOAD_MAX_PERCENT`]; growing rehashes everything; removal rebuilds
//! (it happens in bulk, in `retain`). Key 0 marks a free slot in the key
//! array, so the key 0 itself has a slot of its own after the others.

/// Highest share of used slots, in percent, before the table grows.
pub const LOAD_MAX_PERCENT: usize = 80;

/// The key that marks a free slot in the key array.
const FREE: u32 = 0;

/// A value padded and aligned to whole cache lines.
#[derive(Debug, Clone, Default)]
#[repr(align(64))]
struct Lines<V>(V);

/// Map from `u32` to `V`.
#[derive(Debug, Clone)]
pub struct FlatMap<V> {
    /// Probed keys; [`FREE`] where no key is.
    keys: Vec<u32>,
    /// `values[i]` belongs to `keys[i]`; one more value than keys, for the key 0.
    values: Vec<Lines<V>>,
    /// Whether the key 0 is present.
    has_zero: bool,
    len: usize,
}

impl<V: Default> Default for FlatMap<V> {
    fn default() -> Self {
        FlatMap {
            keys: Vec::new(),
            values: Vec::new(),
            has_zero: false,
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
    /// The slot of `key` (`Ok`), or the free slot it would take (`Err`).
    /// The table must have slots.
    #[inline]
    fn find(&self, key: u32) -> Result<usize, usize> {
        let capacity = self.keys.len();
        if key == FREE {
            return if self.has_zero {
                Ok(capacity)
            } else {
                Err(capacity)
            };
        }
        let mut index = home(key, capacity);
        loop {
            let probed = self.keys[index];
            if probed == key {
                return Ok(index);
            }
            if probed == FREE {
                return Err(index);
            }
            index += 1;
            if index == capacity {
                index = 0;
            }
        }
    }

    /// The slot holding `key`.
    #[inline]
    fn slot(&self, key: u32) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.find(key).ok()
    }

    /// The value in a slot [`slot`](Self::slot) returned.
    #[inline]
    fn value(&self, slot: usize) -> &V {
        &self.values[slot].0
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: u32) -> Option<&V> {
        self.slot(key).map(|slot| self.value(slot))
    }

    /// Starts loading the key-array line where the probe for `key` begins.
    #[inline]
    pub fn prefetch_key(&self, key: u32) {
        if !self.keys.is_empty() {
            trawl_prefetch::prefetch(&self.keys[home(key, self.keys.len())]);
        }
    }

    /// The value of `key`, after starting to load every cache line of it:
    /// the probe reads the key array (which should be cached, see
    /// [`prefetch_key`](Self::prefetch_key)), the value itself is not read.
    #[inline]
    pub fn get_prefetched(&self, key: u32) -> Option<&V> {
        let slot = self.slot(key)?;
        let lines = std::mem::size_of::<Lines<V>>().div_ceil(64);
        trawl_prefetch::prefetch_lines(&self.values[slot], lines);
        Some(self.value(slot))
    }

    /// The value of `key`, inserting a default one if absent.
    pub fn entry(&mut self, key: u32) -> &mut V {
        if (self.len + 1) * 100 > self.keys.len() * LOAD_MAX_PERCENT {
            self.grow();
        }
        let index = match self.find(key) {
            Ok(index) => index,
            Err(index) => {
                self.occupy(index, key, V::default());
                index
            }
        };
        &mut self.values[index].0
    }

    fn occupy(&mut self, index: usize, key: u32, value: V) {
        match self.keys.get_mut(index) {
            Some(slot_key) => *slot_key = key,
            None => self.has_zero = true,
        }
        self.values[index] = Lines(value);
        self.len += 1;
    }

    fn grow(&mut self) {
        let capacity = (self.keys.len() * 3 / 2).max(16);
        self.rebuild(capacity, |_| true);
    }

    /// Reinserts every kept entry into `capacity` slots.
    fn rebuild(&mut self, capacity: usize, mut keep: impl FnMut(&mut V) -> bool) {
        let keys = std::mem::replace(&mut self.keys, vec![FREE; capacity]);
        let values = std::mem::take(&mut self.values);
        self.values = (0..=capacity).map(|_| Lines::default()).collect();
        let had_zero = std::mem::replace(&mut self.has_zero, false);
        self.len = 0;
        for (key, Lines(mut value)) in used_keys(&keys, had_zero).zip(values) {
            if let Some(key) = key
                && keep(&mut value)
                && let Err(index) = self.find(key)
            {
                self.occupy(index, key, value);
            }
        }
    }

    /// Keeps the entries for which `keep` is true (and shrinks if much emptier).
    pub fn retain(&mut self, keep: impl FnMut(&mut V) -> bool) {
        let capacity = self.keys.len();
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
        self.keys.len()
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        used_keys(&self.keys, self.has_zero)
            .zip(&self.values)
            .filter_map(|(key, value)| Some((key?, &value.0)))
    }

    /// Every key and value, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut V)> {
        used_keys(&self.keys, self.has_zero)
            .zip(&mut self.values)
            .filter_map(|(key, value)| Some((key?, &mut value.0)))
    }

    /// Bytes of the key and value arrays.
    pub fn table_bytes(&self) -> usize {
        self.keys.capacity() * 4 + self.values.capacity() * std::mem::size_of::<Lines<V>>()
    }
}

/// The key of each slot (`None` where free), in slot order, the key 0's last.
fn used_keys(keys: &[u32], has_zero: bool) -> impl Iterator<Item = Option<u32>> + '_ {
    keys.iter()
        .map(|k| (*k != FREE).then_some(*k))
        .chain([has_zero.then_some(FREE)])
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
