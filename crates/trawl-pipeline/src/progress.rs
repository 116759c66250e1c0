//! Which parts of one file are in the store while several workers add its
//! chunks at once, and the position that says so.
//!
//! A file's reader inflates it and hands whole-line chunks to whichever
//! worker is free (`source.rs`), so chunks finish out of order. A position
//! that named only the end of the last finished batch would claim earlier
//! chunks still being added (lost after a crash), and one that named only
//! the contiguous prefix would leave later, finished chunks to be read
//! again (doubled). So the position carries both: `offset`, the end of the
//! contiguous prefix in the store, and `done`, the finished ranges past it.
//! A resumed read skips both.
//!
//! ```text
//! worker: add_batch(flows) ─► FileProgress::complete(range) ─► note position   (one store read lock)
//! reader: dispatch chunk ─► started(); worker: finished() ─► reader waits for none outstanding
//! ```
//!
//! Invariants: `done` ranges are disjoint, non-adjacent, and start past
//! `offset`; a range completes once. The position is computed and noted
//! under one lock, so positions reach the store in the order their ranges
//! completed and a later note never undoes an earlier range. `done` holds
//! at most one range per chunk in flight (the chunks in flight are bounded
//! by the chunk queue and the workers).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Finished ranges of a file's decompressed text (see the module header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    /// Everything before it is finished.
    pub offset: u64,
    /// Finished ranges past `offset`: start → end.
    done: BTreeMap<u64, u64>,
}

impl Ranges {
    /// Ranges with everything before `offset` and the ranges `done` finished.
    pub fn new(offset: u64, done: &[(u64, u64)]) -> Ranges {
        let mut ranges = Ranges {
            offset,
            done: BTreeMap::new(),
        };
        for &(start, end) in done {
            ranges.complete(start..end);
        }
        ranges
    }

    /// Marks `range` finished.
    pub fn complete(&mut self, range: Range<u64>) {
        let (mut start, mut end) = (range.start.max(self.offset), range.end);
        if start >= end {
            return;
        }
        // Join a range ending where this one starts, and any it overlaps.
        if let Some((&s, &e)) = self.done.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.done.remove(&s);
        }
        while let Some((&s, &e)) = self.done.range(start..=end).next() {
            end = end.max(e);
            self.done.remove(&s);
        }
        if start <= self.offset {
            self.offset = self.offset.max(end);
        } else {
            self.done.insert(start, end);
        }
    }

    /// The finished ranges past `offset`, in order.
    pub fn done(&self) -> Vec<(u64, u64)> {
        self.done.iter().map(|(s, e)| (*s, *e)).collect()
    }

    /// Whether `at` is in a finished range.
    pub fn contains(&self, at: u64) -> bool {
        at < self.offset
            || self
                .done
                .range(..=at)
                .next_back()
                .is_some_and(|(_, &e)| at < e)
    }

    /// The first finished byte at or after `at` (`u64::MAX` if none), and
    /// where the finished run starting there ends.
    pub fn next_done(&self, at: u64) -> Option<(u64, u64)> {
        if at < self.offset {
            return Some((at, self.offset));
        }
        if let Some((_, &e)) = self.done.range(..=at).next_back()
            && at < e
        {
            return Some((at, e));
        }
        self.done.range(at..).next().map(|(s, e)| (*s, *e))
    }
}

/// The shared progress of one file read by several workers.
#[derive(Debug)]
pub struct FileProgress {
    ranges: Mutex<Ranges>,
    outstanding: Mutex<usize>,
    all_finished: Condvar,
    /// A chunk handed out failed part way (panicked): the read must not
    /// be recorded complete.
    failed: AtomicBool,
    /// The end of the file's text: a last line read without a newline is
    /// processed with one added, which is not in the file.
    end_max: AtomicU64,
}

impl FileProgress {
    /// Progress of a read resumed at `resume`.
    pub fn new(resume: Ranges) -> FileProgress {
        FileProgress {
            ranges: Mutex::new(resume),
            outstanding: Mutex::new(0),
            all_finished: Condvar::new(),
            failed: AtomicBool::new(false),
            end_max: AtomicU64::new(u64::MAX),
        }
    }

    /// Marks `range` finished and hands the new ranges to `note` under the
    /// same lock (see the module header).
    pub fn complete(&self, range: Range<u64>, note: impl FnOnce(&Ranges)) {
        let end_max = self.end_max.load(Ordering::Relaxed);
        let mut ranges = lock(&self.ranges);
        ranges.complete(range.start.min(end_max)..range.end.min(end_max));
        note(&ranges);
    }

    /// The text ends at `end`: no range completes past it.
    pub fn limit(&self, end: u64) {
        self.end_max.fetch_min(end, Ordering::Relaxed);
    }

    /// The ranges finished so far.
    pub fn ranges(&self) -> Ranges {
        lock(&self.ranges).clone()
    }

    /// A chunk was handed to a worker.
    pub fn started(&self) {
        *lock(&self.outstanding) += 1;
    }

    /// A chunk handed out stopped part way: its rest is neither added nor
    /// counted finished, so the file must be read again from its position.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Whether a chunk handed out stopped part way.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// A chunk handed out is done (added, or given up on).
    pub fn finished(&self) {
        let mut outstanding = lock(&self.outstanding);
        *outstanding = outstanding.saturating_sub(1);
        if *outstanding == 0 {
            self.all_finished.notify_all();
        }
    }

    /// Whether every chunk handed out is done; else waits up to `wait`.
    pub fn wait_finished(&self, wait: Duration) -> bool {
        let outstanding = lock(&self.outstanding);
        if *outstanding == 0 {
            return true;
        }
        let (outstanding, _) = self
            .all_finished
            .wait_timeout(outstanding, wait)
            .unwrap_or_else(PoisonError::into_inner);
        *outstanding == 0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn out_of_order_ranges_join_the_prefix_when_the_gap_closes() {
        let mut r = Ranges::new(10, &[]);
        r.complete(20..30);
        r.complete(40..50);
        assert_eq!((r.offset, r.done()), (10, vec![(20, 30), (40, 50)]));
        r.complete(30..40);
        assert_eq!((r.offset, r.done()), (10, vec![(20, 50)]));
        r.complete(10..20);
        assert_eq!((r.offset, r.done()), (50, vec![]));
    }

    #[test]
    fn a_resumed_position_keeps_its_finished_ranges() {
        let r = Ranges::new(100, &[(200, 300), (400, 450)]);
        assert!(r.contains(99) && !r.contains(100) && r.contains(250) && !r.contains(300));
        assert_eq!(r.next_done(100), Some((200, 300)));
        assert_eq!(r.next_done(250), Some((250, 300)));
        assert_eq!(r.next_done(300), Some((400, 450)));
        assert_eq!(r.next_done(450), None);
    }

    proptest! {
        /// Against a set of finished bytes: whatever order ranges finish
        /// in, `offset` is the end of the finished prefix and `done` is
        /// exactly the finished bytes past it, as disjoint, non-adjacent ranges.
        #[test]
        fn ranges_equal_the_set_of_finished_bytes(
            cuts in proptest::collection::btree_set(1u64..200, 0..30),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..31),
        ) {
            let mut bounds: Vec<u64> = vec![0];
            bounds.extend(cuts);
            bounds.push(200);
            let mut pieces: Vec<Range<u64>> = bounds.windows(2).map(|w| w[0]..w[1]).collect();
            let mut ranges = Ranges::default();
            let mut finished = [false; 200];
            for index in order {
                if pieces.is_empty() {
                    break;
                }
                let piece = pieces.swap_remove(index.index(pieces.len()));
                (piece.start..piece.end).for_each(|b| finished[b as usize] = true);
                ranges.complete(piece);
                let prefix = finished.iter().take_while(|f| **f).count() as u64;
                prop_assert_eq!(ranges.offset, prefix);
                let mut expected = Vec::new();
                let mut b = prefix as usize;
                while b < 200 {
                    if finished[b] {
                        let start = b;
                        while b < 200 && finished[b] { b += 1; }
                        expected.push((start as u64, b as u64));
                    } else {
                        b += 1;
                    }
                }
                prop_assert_eq!(ranges.done(), expected);
                for at in 0..200u64 {
                    prop_assert_eq!(ranges.contains(at), finished[at as usize]);
                }
            }
        }
    }
}
