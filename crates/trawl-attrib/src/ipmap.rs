//! A hash map keyed by IP address. IPv4 keys (most estates are mostly
//! IPv4) live in a [`FlatMap`] of `u32` keys, where a lookup costs one
//! memory access that a batch can start early ([`IpMap::prefetch_probe`],
//! then [`IpMap::get_prefetched`]); IPv6 keys in a `hashbrown` map.
//! IPv4-mapped IPv6 addresses are the same key as their IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flatmap::FlatMap;

type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

/// Map from IP address to `V`.
#[derive(Debug, Clone)]
pub struct IpMap<V> {
    v4: FlatMap<V>,
    v6: Map<u128, V>,
}

impl<V: Default> Default for IpMap<V> {
    fn default() -> Self {
        IpMap {
            v4: FlatMap::default(),
            v6: Map::default(),
        }
    }
}

impl<V: Default> IpMap<V> {
    /// The value of `ip`, inserting a default one if absent.
    pub fn entry(&mut self, ip: IpAddr) -> &mut V {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.entry(v4.to_bits()),
            IpAddr::V6(v6) => self.v6.entry(v6.to_bits()).or_default(),
        }
    }

    /// The value of `ip`.
    #[inline]
    pub fn get(&self, ip: IpAddr) -> Option<&V> {
        match ip {
            IpAddr::V4(v4) => self.v4.get(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4.get(v4.to_bits()),
                None => self.v6.get(&v6.to_bits()),
            },
        }
    }

    /// Starts loading the memory the probe for `ip` reads (IPv4 only).
    #[inline]
    pub fn prefetch_probe(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            self.v4.prefetch_key(v4.to_bits());
        }
    }

    /// The value of `ip`, as [`get`](Self::get), after starting to load it
    /// (IPv4 only) without reading it: call it some lookups ahead of using
    /// the value.
    #[inline]
    pub fn get_prefetched(&self, ip: IpAddr) -> Option<&V> {
        match ip {
            IpAddr::V4(v4) => self.v4.get_prefetched(v4.to_bits()),
            IpAddr::V6(_) => self.get(ip),
        }
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, ip: IpAddr, value: V) {
        *self.entry(ip) = value;
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        self.v4.retain(&mut keep);
        self.v6.retain(|_, v| keep(v));
    }
}

impl<V> IpMap<V> {
    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Every address and value.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &V)> {
        let v4 = self
            .v4
            .iter()
            .map(|(k, v)| (IpAddr::V4(Ipv4Addr::from_bits(k)), v));
        let v6 = self
            .v6
            .iter()
            .map(|(k, v)| (IpAddr::V6(Ipv6Addr::from_bits(*k)), v));
        v4.chain(v6)
    }

    /// Every address and value, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IpAddr, &mut V)> {
        let v4 = self
            .v4
            .iter_mut()
            .map(|(k, v)| (IpAddr::V4(Ipv4Addr::from_bits(k)), v));
        let v6 = self
            .v6
            .iter_mut()
            .map(|(k, v)| (IpAddr::V6(Ipv6Addr::from_bits(*k)), v));
        v4.chain(v6)
    }

    /// Heap bytes of the tables themselves (not of what values own).
    pub fn table_bytes(&self) -> usize {
        self.v4.table_bytes() + self.v6.capacity() * (16 + std::mem::size_of::<V>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv6_is_the_ipv4_key() {
        let mut map = IpMap::<u8>::default();
        *map.entry("10.0.0.1".parse().unwrap()) = 7;
        assert_eq!(map.get("::ffff:10.0.0.1".parse().unwrap()), Some(&7));
        *map.entry("2001:db8::1".parse().unwrap()) = 9;
        assert_eq!(map.len(), 2);
        let mut keys: Vec<String> = map.iter().map(|(ip, _)| ip.to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["10.0.0.1", "2001:db8::1"]);
    }
}
