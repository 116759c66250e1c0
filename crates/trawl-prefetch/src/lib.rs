//! # trawl-prefetch
//!
//! [`prefetch`] asks the CPU to start loading the cache line holding a
//! value, without waiting for it. Lookups in tables far larger than the
//! caches (the attribution index: one random cache line per IP) go from
//! one memory latency each to many latencies in flight at once when the
//! caller prefetches the lines of the lookups a few steps ahead.
//!
//! A prefetch has no effect on what a program computes: it never faults,
//! never changes memory, and the CPU may ignore it. Rust's own safe
//! `std::hint::prefetch_read` is not stable yet (rust-lang/rust#146941);
//! when it is, this crate goes. It holds the workspace's only `unsafe`
//! block, so that every other crate can forbid `unsafe` outright.
//!
//! On targets other than x86-64 the hint does nothing.

/// Starts loading the cache line that holds the start of `value` into
/// every cache level. Returns at once.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    prefetch_address(std::ptr::from_ref(value).cast::<u8>());
}

/// Starts loading the cache line of `value` and the `lines - 1` lines
/// after it (a value that spans several lines); the addresses past `value`
/// are hints only and need not be valid.
#[inline(always)]
pub fn prefetch_lines<T>(value: &T, lines: usize) {
    let start = std::ptr::from_ref(value).cast::<u8>();
    for line in 0..lines {
        prefetch_address(start.wrapping_add(line * 64));
    }
}

#[inline(always)]
fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        #[allow(unsafe_code)]
        // SAFETY: `prefetcht0` is a hint: it never faults (even on an
        // invalid address), writes nothing and reads nothing the program
        // can observe. SSE is part of the x86-64 baseline, so the
        // instruction exists on every CPU this code runs on.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_changes_nothing() {
        let values: Vec<u64> = (0..1024).collect();
        for value in &values {
            prefetch(value);
        }
        prefetch_lines(&values[1000], 8);
        assert_eq!(values.iter().sum::<u64>(), 1023 * 1024 / 2);
    }
}
