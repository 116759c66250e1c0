//! One IP's declared ownership: a sorted list of marks, each saying "from
//! `at` on, the owner is `owner`" (or nobody, for a release).
//!
//! The owner at `t` is the owner of the last mark at or before `t`; an
//! interval is a run of marks with one owner, up to the next mark with
//! another. This makes every insertion commutative: the same set of marks
//! gives the same timeline whatever order they arrived in.
//!
//! Invariants (checked by [`Timeline::check`] at persistence boundaries):
//! marks are strictly increasing in `at` (one mark per instant). At one
//! instant an assignment beats a release, and between two different
//! assignments the greater workload (by content) wins — a conflict.
//! Merging same-owner neighbours is only done behind the reorder window
//! ([`Timeline::compact_before`]), where no late mark can land between them.
//!
//! Storage: a lookup in a large index costs what its memory accesses
//! cost, so a timeline of up to [`PACKED_MARKS`] marks is packed into the
//! timeline's own 55 bytes (the first mark's time, then 40 bits a mark:
//! 20 for its offset from the first, 20 for its owner), and an
//! [`IpRecord`](crate::IpRecord) fits one cache line. Longer timelines,
//! offsets of 12 days or more and workload ids of 2^20 or more move to the
//! heap, with the times of six marks kept beside the pointer that split
//! them into the newest 8 and six even parts of the history: a lookup
//! reads (and a batch prefetches) only the part that holds its answer. Storage is canonical (the packed form whenever the marks fit,
//! unused bytes fixed), so equal marks make equal timelines.

use smallvec::SmallVec;

use crate::workload::{NO_OWNER, WorkloadId, WorkloadTable};

/// "From `at` on, `owner` holds the IP" ([`NO_OWNER`]: released).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    /// Unix seconds.
    pub at: u32,
    /// The owner from `at` on.
    pub owner: WorkloadId,
}

/// What an insertion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// The timeline changed (false for a duplicate).
    pub changed: bool,
    /// An assignment landed on an interval of another owner that was never released.
    pub overlap: bool,
    /// Two different assignments at the same instant.
    pub conflict: bool,
}

/// An owner and the interval `[from, to)` it held the IP for (`to` open while held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The owner.
    pub owner: WorkloadId,
    /// Start of the interval.
    pub from: u32,
    /// End of the interval, if it has ended.
    pub to: Option<u32>,
}

/// Marks a timeline holds packed in its own bytes before they move to the
/// heap: a lookup in a large index then reads one cache line.
pub const PACKED_MARKS: usize = 10;

/// Times of marks a spilled timeline keeps beside its pointer: they split
/// the marks into `FENCES + 1` parts, and a lookup reads only the part
/// that holds its answer. The last fence sets the newest [`TAIL_MARKS`]
/// apart (live flows ask about recent times); the others split the
/// history before them evenly.
const FENCES: usize = 6;

/// Marks in the newest part of a spilled timeline (two lines at most).
const TAIL_MARKS: usize = 8;

/// Parts of a spilled timeline longer than this are binary searched;
/// shorter ones are counted without a branch.
const COUNTED_MARKS_MAX: usize = 2 * PACKED_MARKS;

/// Lines of a part that a lookup prefetches.
const PREFETCH_LINES_MAX: usize = 4;

/// Bits of a packed mark's offset and of its owner.
const FIELD_BITS: u32 = 20;

/// The largest value of a packed field. As an offset it fills unused
/// slots, so real offsets are below it.
const FIELD_MAX: u32 = (1 << FIELD_BITS) - 1;

/// The first mark's time (4 bytes), the number of marks (1), then 5 bytes a mark.
const PACKED_BYTES: usize = 5 + 5 * PACKED_MARKS;

/// Marks being edited: room for a packed timeline and an insertion
/// without touching the heap.
type EditMarks = SmallVec<[Mark; PACKED_MARKS + 1]>;

/// One IP's marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    storage: Storage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Storage {
    Packed(Packed),
    Spilled(Spilled),
}

impl Storage {
    /// The canonical storage of `marks`: packed if they fit.
    fn of(marks: EditMarks) -> Storage {
        match Packed::encode(&marks) {
            Some(packed) => Storage::Packed(packed),
            None => {
                let mut marks = marks.into_vec();
                if marks.capacity() > 2 * marks.len() + 4 {
                    marks.shrink_to_fit();
                }
                Storage::Spilled(Spilled::new(marks))
            }
        }
    }
}

/// Marks on the heap, and the times of the marks at the
/// [`fence`](Spilled::fence) positions (`u32::MAX` past the end).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spilled {
    marks: Vec<Mark>,
    fences: [u32; FENCES],
}

impl Spilled {
    fn new(marks: Vec<Mark>) -> Self {
        let fences = std::array::from_fn(|k| {
            marks
                .get(Self::fence(marks.len(), k))
                .map_or(u32::MAX, |m| m.at)
        });
        Spilled { marks, fences }
    }

    /// Position of fence `k` among `len` marks.
    fn fence(len: usize, k: usize) -> usize {
        (k + 1) * len.saturating_sub(TAIL_MARKS) / FENCES
    }

    /// The part of the marks that holds the last mark at or before `t`:
    /// every mark before it is at or before `t`, every mark after it later.
    #[inline]
    fn part(&self, t: u32) -> std::ops::Range<usize> {
        let k: usize = self.fences.iter().map(|&f| usize::from(f <= t)).sum();
        let len = self.marks.len();
        let start = k.checked_sub(1).map_or(0, |k| Self::fence(len, k));
        let end = if k == FENCES {
            len
        } else {
            Self::fence(len, k)
        };
        start..end
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::store(&[])
    }
}

/// Reading marks, whichever way they are stored.
trait MarkList {
    fn len(&self) -> usize;
    fn mark(&self, index: usize) -> Mark;
    /// How many marks are at or before `t`.
    fn at_or_before(&self, t: u32) -> usize;
}

/// Up to [`PACKED_MARKS`] marks packed as described in the module header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packed([u8; PACKED_BYTES]);

impl Packed {
    /// Packs `marks` (sorted), or says they do not fit.
    fn encode(marks: &[Mark]) -> Option<Packed> {
        if marks.len() > PACKED_MARKS {
            return None;
        }
        let base = marks.first().map_or(0, |m| m.at);
        let mut bytes = [0; PACKED_BYTES];
        bytes[..4].copy_from_slice(&base.to_le_bytes());
        bytes[4] = marks.len() as u8;
        for slot in 0..PACKED_MARKS {
            let (offset, owner) = match marks.get(slot) {
                Some(mark) => (mark.at.checked_sub(base)?, mark.owner),
                None => (FIELD_MAX, NO_OWNER),
            };
            if (offset >= FIELD_MAX && slot < marks.len()) || owner > FIELD_MAX {
                return None;
            }
            let word = u64::from(offset) | u64::from(owner) << FIELD_BITS;
            bytes[5 + 5 * slot..10 + 5 * slot].copy_from_slice(&word.to_le_bytes()[..5]);
        }
        Some(Packed(bytes))
    }

    fn base(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    #[inline]
    fn word(&self, slot: usize) -> u64 {
        let mut word = [0; 8];
        word[..5].copy_from_slice(&self.0[5 + 5 * slot..10 + 5 * slot]);
        u64::from_le_bytes(word)
    }

    #[inline]
    fn offset(&self, slot: usize) -> u32 {
        (self.word(slot) as u32) & FIELD_MAX
    }
}

impl MarkList for Packed {
    fn len(&self) -> usize {
        usize::from(self.0[4])
    }

    #[inline]
    fn mark(&self, index: usize) -> Mark {
        Mark {
            at: self.base() + self.offset(index),
            owner: (self.word(index) >> FIELD_BITS) as u32 & FIELD_MAX,
        }
    }

    /// Counts without a branch on the marks (a binary search over a
    /// handful of random times mispredicts at nearly every step); unused
    /// slots hold [`FIELD_MAX`], beyond every real offset and every `t`.
    #[inline]
    fn at_or_before(&self, t: u32) -> usize {
        let Some(offset) = t.checked_sub(self.base()) else {
            return 0;
        };
        let offset = offset.min(FIELD_MAX - 1);
        (0..PACKED_MARKS)
            .map(|slot| usize::from(self.offset(slot) <= offset))
            .sum()
    }
}

impl MarkList for Spilled {
    fn len(&self) -> usize {
        self.marks.len()
    }

    fn mark(&self, index: usize) -> Mark {
        self.marks[index]
    }

    /// Reads only the part the fences point at (prefetched by
    /// [`Timeline::prefetch_for`]).
    #[inline]
    fn at_or_before(&self, t: u32) -> usize {
        let part = self.part(t);
        let marks = &self.marks[part.clone()];
        let counted = if marks.len() <= COUNTED_MARKS_MAX {
            marks.iter().map(|m| usize::from(m.at <= t)).sum()
        } else {
            marks.partition_point(|m| m.at <= t)
        };
        part.start + counted
    }
}

impl Timeline {
    /// Builds a timeline from marks already in order (persistence).
    pub(crate) fn from_marks(marks: Vec<Mark>) -> Self {
        Timeline {
            storage: Storage::of(SmallVec::from_vec(marks)),
        }
    }

    /// The canonical timeline of `marks`.
    fn store(marks: &[Mark]) -> Self {
        Timeline {
            storage: Storage::of(SmallVec::from_slice(marks)),
        }
    }

    fn list(&self) -> &dyn MarkList {
        match &self.storage {
            Storage::Packed(packed) => packed,
            Storage::Spilled(marks) => marks,
        }
    }

    /// Runs `edit` on the marks, then stores them canonically again.
    fn edit<R>(&mut self, edit: impl FnOnce(&mut EditMarks) -> R) -> R {
        let mut marks: EditMarks = match &mut self.storage {
            Storage::Packed(packed) => (0..packed.len()).map(|i| packed.mark(i)).collect(),
            Storage::Spilled(spilled) => SmallVec::from_vec(std::mem::take(&mut spilled.marks)),
        };
        let result = edit(&mut marks);
        self.storage = Storage::of(marks);
        result
    }

    /// The marks, in time order.
    pub fn marks(&self) -> Vec<Mark> {
        let list = self.list();
        (0..list.len()).map(|i| list.mark(i)).collect()
    }

    /// Number of marks.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether there are no marks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the marks are packed in the timeline itself (no heap).
    pub fn is_packed(&self) -> bool {
        matches!(self.storage, Storage::Packed(_))
    }

    /// Inserts a mark (see the module header for the rules at one instant).
    pub fn insert(&mut self, mark: Mark, workloads: &WorkloadTable) -> Inserted {
        self.edit(|marks| {
            let index = marks.partition_point(|m| m.at < mark.at);
            if let Some(existing) = marks.get_mut(index).filter(|m| m.at == mark.at) {
                return settle_same_instant(existing, mark.owner, workloads);
            }
            let before = index.checked_sub(1).map(|i| marks[i].owner);
            let overlap = mark.owner != NO_OWNER
                && before.is_some_and(|owner| owner != NO_OWNER && owner != mark.owner);
            marks.insert(index, mark);
            Inserted {
                changed: true,
                overlap,
                conflict: false,
            }
        })
    }

    /// Starts loading the marks a lookup at `t` will read, if they are on
    /// the heap (packed marks are in the timeline itself). Batched lookups
    /// call it a few lookups ahead, once the timeline itself has arrived.
    #[inline]
    pub fn prefetch_for(&self, t: u32) {
        if let Storage::Spilled(spilled) = &self.storage {
            let part = &spilled.marks[spilled.part(t)];
            let marks_per_line = 64 / std::mem::size_of::<Mark>();
            for mark in part.iter().step_by(marks_per_line).take(PREFETCH_LINES_MAX) {
                trawl_prefetch::prefetch(mark);
            }
            if let Some(last) = part.last() {
                trawl_prefetch::prefetch(last);
            }
        }
    }

    /// The owner at `t` and its interval, if anyone held the IP then.
    #[inline]
    pub fn held_at(&self, t: u32) -> Option<Held> {
        match &self.storage {
            Storage::Packed(packed) => held_at(packed, t),
            Storage::Spilled(spilled) => held_at(spilled, t),
        }
    }

    /// The owner at `t` ([`NO_OWNER`] if none), without the interval.
    #[inline]
    pub fn owner_at(&self, t: u32) -> WorkloadId {
        match &self.storage {
            Storage::Packed(packed) => owner_at(packed, t),
            Storage::Spilled(spilled) => owner_at(spilled, t),
        }
    }

    /// Whether every owner declared over `[from, to]` is `owner` or nobody
    /// (the mark in force at `from`, and every mark after it up to `to`).
    pub fn only_owner_within(&self, from: u32, to: u32, owner: WorkloadId) -> bool {
        let list = self.list();
        let first = list.at_or_before(from).saturating_sub(1);
        (first..list.len())
            .map(|i| list.mark(i))
            .take_while(|m| m.at <= to)
            .all(|m| m.owner == owner || m.owner == NO_OWNER)
    }

    /// The first mark after `t`, if any.
    pub fn next_mark_after(&self, t: u32) -> Option<Mark> {
        let list = self.list();
        let index = list.at_or_before(t);
        (index < list.len()).then(|| list.mark(index))
    }

    /// The newest mark, if any.
    pub fn last(&self) -> Option<Mark> {
        let list = self.list();
        list.len().checked_sub(1).map(|i| list.mark(i))
    }

    /// Every interval `[from, to)` with its owner, in time order.
    pub fn intervals(&self) -> Vec<Held> {
        let list = self.list();
        (0..list.len())
            .filter_map(|i| {
                let mark = list.mark(i);
                let starts_run = i == 0 || list.mark(i - 1).owner != mark.owner;
                (starts_run && mark.owner != NO_OWNER).then(|| Held {
                    owner: mark.owner,
                    from: mark.at,
                    to: end_of_run(list, i),
                })
            })
            .collect()
    }

    /// Merges marks before `cutoff` that repeat their predecessor's owner
    /// (snapshot re-assertions, repeated releases); returns how many went.
    pub fn compact_before(&mut self, cutoff: u32) -> usize {
        self.edit(|marks| {
            let before = marks.len();
            let mut previous: Option<WorkloadId> = None;
            marks.retain(|mark| {
                let redundant = mark.at < cutoff
                    && previous.map_or(mark.owner == NO_OWNER, |owner| owner == mark.owner);
                previous = Some(mark.owner);
                !redundant
            });
            before - marks.len()
        })
    }

    /// Forgets history before `cutoff`, keeping what is needed to answer
    /// for `t >= cutoff`; returns how many marks went.
    pub fn prune_before(&mut self, cutoff: u32) -> usize {
        self.edit(|marks| {
            let first_kept = marks.partition_point(|m| m.at < cutoff);
            // The last mark before the cutoff still says who owns the IP at the cutoff.
            let keep_from = match first_kept.checked_sub(1) {
                Some(i) if marks[i].owner != NO_OWNER => i,
                _ => first_kept,
            };
            marks.drain(..keep_from);
            keep_from
        })
    }

    /// Checks the invariants; `workloads` is the number of interned workloads.
    pub fn check(&self, workloads: usize) -> Result<(), String> {
        let marks = self.marks();
        for pair in marks.windows(2) {
            if pair[0].at >= pair[1].at {
                return Err(format!(
                    "marks out of order: {} then {}",
                    pair[0].at, pair[1].at
                ));
            }
        }
        if *self != Timeline::store(&marks) {
            return Err("marks not stored canonically".into());
        }
        match marks.iter().find(|m| m.owner as usize > workloads) {
            Some(m) => Err(format!("owner id {} beyond {workloads} workloads", m.owner)),
            None => Ok(()),
        }
    }

    /// Heap bytes held (packed marks count as none).
    pub fn memory_bytes(&self) -> usize {
        match &self.storage {
            Storage::Packed(_) => 0,
            Storage::Spilled(spilled) => spilled.marks.capacity() * std::mem::size_of::<Mark>(),
        }
    }
}

/// The owner of the last mark at or before `t` ([`NO_OWNER`] if none).
#[inline]
fn owner_at<L: MarkList>(list: &L, t: u32) -> WorkloadId {
    list.at_or_before(t)
        .checked_sub(1)
        .map_or(NO_OWNER, |i| list.mark(i).owner)
}

/// The owner at `t` and its interval: the last mark at or before `t`, back
/// to the first mark of its run and on to the next mark of another owner.
#[inline]
fn held_at<L: MarkList>(list: &L, t: u32) -> Option<Held> {
    let index = list.at_or_before(t).checked_sub(1)?;
    let Mark { owner, .. } = list.mark(index);
    if owner == NO_OWNER {
        return None;
    }
    let first = (0..index)
        .rev()
        .find(|&i| list.mark(i).owner != owner)
        .map_or(0, |i| i + 1);
    Some(Held {
        owner,
        from: list.mark(first).at,
        to: end_of_run(list, index),
    })
}

/// When the run of owners containing mark `index` ends: the first later
/// mark with another owner, if any.
#[inline]
fn end_of_run<L: MarkList + ?Sized>(list: &L, index: usize) -> Option<u32> {
    let owner = list.mark(index).owner;
    (index + 1..list.len())
        .map(|i| list.mark(i))
        .find(|m| m.owner != owner)
        .map(|m| m.at)
}

fn settle_same_instant(
    existing: &mut Mark,
    owner: WorkloadId,
    workloads: &WorkloadTable,
) -> Inserted {
    let mut outcome = Inserted::default();
    if existing.owner == owner || owner == NO_OWNER {
        return outcome;
    }
    if existing.owner != NO_OWNER {
        outcome.conflict = true;
        if workloads.order(owner, existing.owner).is_le() {
            return outcome;
        }
    }
    existing.owner = owner;
    outcome.changed = true;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::ops::Bound;

    fn table() -> (WorkloadTable, WorkloadId, WorkloadId) {
        let mut table = WorkloadTable::default();
        let a = table
            .intern(&Workload {
                app: Some("a".into()),
                ..Workload::default()
            })
            .unwrap();
        let b = table
            .intern(&Workload {
                app: Some("b".into()),
                ..Workload::default()
            })
            .unwrap();
        (table, a, b)
    }

    #[test]
    fn last_mark_at_or_before_wins_and_intervals_follow() {
        let (t, a, b) = table();
        let mut line = Timeline::default();
        line.insert(
            Mark {
                at: 20,
                owner: NO_OWNER,
            },
            &t,
        );
        line.insert(Mark { at: 10, owner: a }, &t);
        line.insert(Mark { at: 30, owner: b }, &t);
        assert_eq!(line.owner_at(9), NO_OWNER);
        assert_eq!(
            line.held_at(10),
            Some(Held {
                owner: a,
                from: 10,
                to: Some(20)
            })
        );
        assert_eq!(line.held_at(25), None);
        assert_eq!(
            line.held_at(99),
            Some(Held {
                owner: b,
                from: 30,
                to: None
            })
        );
        assert_eq!(line.intervals().len(), 2);
    }

    #[test]
    fn same_instant_assign_beats_release_and_content_breaks_ties() {
        let (t, a, b) = table();
        let mut one = Timeline::default();
        one.insert(
            Mark {
                at: 5,
                owner: NO_OWNER,
            },
            &t,
        );
        one.insert(Mark { at: 5, owner: b }, &t);
        let conflict = one.insert(Mark { at: 5, owner: a }, &t);
        assert!(conflict.conflict && !conflict.changed);
        let mut two = Timeline::default();
        two.insert(Mark { at: 5, owner: a }, &t);
        two.insert(Mark { at: 5, owner: b }, &t);
        two.insert(
            Mark {
                at: 5,
                owner: NO_OWNER,
            },
            &t,
        );
        assert_eq!(one, two);
        assert_eq!(one.owner_at(5), b);
    }

    #[test]
    fn overlap_is_flagged_when_an_unreleased_interval_is_taken_over() {
        let (t, a, b) = table();
        let mut line = Timeline::default();
        line.insert(Mark { at: 1, owner: a }, &t);
        assert!(line.insert(Mark { at: 2, owner: b }, &t).overlap);
        assert!(!line.insert(Mark { at: 3, owner: b }, &t).overlap);
    }

    #[test]
    fn compaction_and_pruning_keep_answers_after_the_cutoff() {
        let (t, a, b) = table();
        let mut line = Timeline::default();
        for (at, owner) in [
            (1, a),
            (2, a),
            (3, NO_OWNER),
            (4, NO_OWNER),
            (5, b),
            (6, b),
            (9, a),
        ] {
            line.insert(Mark { at, owner }, &t);
        }
        let answers: Vec<_> = (0..12).map(|s| line.held_at(s)).collect();
        assert_eq!(line.compact_before(8), 3);
        assert_eq!(
            answers,
            (0..12).map(|s| line.held_at(s)).collect::<Vec<_>>()
        );
        line.prune_before(6);
        assert_eq!(
            line.held_at(6),
            Some(Held {
                owner: b,
                from: 5,
                to: Some(9)
            })
        );
        assert_eq!(line.held_at(10).map(|h| h.owner), Some(a));
        line.check(2).unwrap();
    }

    /// Times near zero, across the 20-bit offset limit, and at the end of
    /// `u32`; owners small and across the 20-bit owner limit (0 releases);
    /// short timelines (packed or not) and long ones.
    fn marks_strategy() -> impl Strategy<Value = BTreeMap<u32, u32>> {
        let at = prop_oneof![
            0u32..2_000,
            1_048_000u32..1_049_200,
            u32::MAX - 50..=u32::MAX
        ];
        let owner = prop_oneof![4 => 0u32..4, 1 => FIELD_MAX - 1..FIELD_MAX + 2];
        // Long ones too: their parts are binary searched.
        prop_oneof![
            3 => proptest::collection::btree_map(at.clone(), owner.clone(), 0..25),
            1 => proptest::collection::btree_map(at, owner, 100..250),
        ]
    }

    fn naive_held(marks: &BTreeMap<u32, u32>, t: u32) -> Option<Held> {
        let (&at, &owner) = marks.range(..=t).next_back()?;
        if owner == NO_OWNER {
            return None;
        }
        let from = marks
            .range(..=at)
            .rev()
            .take_while(|(_, o)| **o == owner)
            .last()
            .map(|(a, _)| *a)?;
        let to = marks
            .range((Bound::Excluded(at), Bound::Unbounded))
            .find(|(_, o)| **o != owner)
            .map(|(a, _)| *a);
        Some(Held { owner, from, to })
    }

    fn answers(line: &Timeline, marks: &BTreeMap<u32, u32>) -> Vec<(u32, Option<Held>, u32)> {
        let edges = marks
            .keys()
            .flat_map(|&at| [at.saturating_sub(1), at, at.saturating_add(1)]);
        edges
            .chain([0, FIELD_MAX, u32::MAX])
            .map(|t| (t, line.held_at(t), line.owner_at(t)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Packed or spilled, a timeline answers as a plain sorted map of
        /// its marks does, whatever order they were inserted in.
        #[test]
        fn timeline_equals_a_sorted_map_packed_or_spilled(
            (marks, order) in marks_strategy().prop_flat_map(|marks| {
                let order = Just(marks.iter().map(|(a, o)| (*a, *o)).collect::<Vec<_>>()).prop_shuffle();
                (Just(marks), order)
            }),
            cutoff in 0u32..1_100_000,
        ) {
            let table = WorkloadTable::default();
            let mut line = Timeline::default();
            for (at, owner) in order {
                let inserted = line.insert(Mark { at, owner }, &table);
                prop_assert!(inserted.changed);
            }
            let expected: Vec<Mark> = marks.iter().map(|(&at, &owner)| Mark { at, owner }).collect();
            prop_assert_eq!(line.marks(), expected.clone());
            let fits = expected.len() <= PACKED_MARKS
                && expected.iter().all(|m| m.at - expected[0].at < FIELD_MAX && m.owner <= FIELD_MAX);
            prop_assert_eq!(line.is_packed(), fits);
            line.check(usize::MAX).map_err(TestCaseError::fail)?;
            for (t, held, owner) in answers(&line, &marks) {
                let naive = naive_held(&marks, t);
                prop_assert_eq!(held, naive, "held at {}", t);
                prop_assert_eq!(owner, naive.map_or(NO_OWNER, |h| h.owner), "owner at {}", t);
            }
            let naive_intervals: Vec<Held> = marks
                .keys()
                .filter_map(|&at| naive_held(&marks, at).filter(|h| h.from == at))
                .collect();
            prop_assert_eq!(line.intervals(), naive_intervals);

            let after = |answers: Vec<(u32, Option<Held>, u32)>| {
                answers.into_iter().filter(|(t, _, _)| *t >= cutoff).map(|(t, _, owner)| (t, owner)).collect::<Vec<_>>()
            };
            let before_cut = after(answers(&line, &marks));
            line.compact_before(cutoff);
            line.prune_before(cutoff);
            line.check(usize::MAX).map_err(TestCaseError::fail)?;
            prop_assert_eq!(after(answers(&line, &marks)), before_cut);
        }
    }

    #[test]
    fn eleventh_mark_spills_and_compaction_packs_again() {
        let (t, a, _) = table();
        let mut line = Timeline::default();
        for at in 0..PACKED_MARKS as u32 {
            line.insert(Mark { at, owner: a }, &t);
        }
        assert!(line.is_packed() && line.memory_bytes() == 0);
        line.insert(Mark { at: 100, owner: a }, &t);
        assert!(!line.is_packed() && line.memory_bytes() > 0);
        assert_eq!(line.compact_before(50), PACKED_MARKS - 1);
        assert!(line.is_packed());
        assert_eq!(
            line.held_at(200),
            Some(Held {
                owner: a,
                from: 0,
                to: None
            })
        );
    }
}
