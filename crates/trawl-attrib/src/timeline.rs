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

use smallvec::SmallVec;

use crate::workload::{NO_OWNER, WorkloadId, WorkloadTable};

/// "From `at` on, `owner` holds the IP" ([`NO_OWNER`]: released).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One IP's marks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    marks: SmallVec<[Mark; INLINE_MARKS]>,
}

/// Marks held inside the timeline itself before they move to the heap: a
/// lookup in a large index then costs one memory access fewer for most IPs.
/// Twelve fill an [`IpRecord`](crate::IpRecord) to two cache lines.
pub const INLINE_MARKS: usize = 12;

impl Timeline {
    /// Builds a timeline from marks already in order (persistence).
    pub(crate) fn from_marks(marks: Vec<Mark>) -> Self {
        Timeline {
            marks: SmallVec::from_vec(marks),
        }
    }

    /// The marks, in time order.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// Whether there are no marks.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// Inserts a mark (see the module header for the rules at one instant).
    pub fn insert(&mut self, mark: Mark, workloads: &WorkloadTable) -> Inserted {
        let index = self.marks.partition_point(|m| m.at < mark.at);
        if let Some(existing) = self.marks.get_mut(index).filter(|m| m.at == mark.at) {
            return settle_same_instant(existing, mark.owner, workloads);
        }
        let before = index.checked_sub(1).map(|i| self.marks[i].owner);
        let overlap = mark.owner != NO_OWNER
            && before.is_some_and(|owner| owner != NO_OWNER && owner != mark.owner);
        self.marks.insert(index, mark);
        Inserted {
            changed: true,
            overlap,
            conflict: false,
        }
    }

    /// The owner at `t` and its interval, if anyone held the IP then.
    #[inline]
    pub fn held_at(&self, t: u32) -> Option<Held> {
        let index = self.marks_at_or_before(t).checked_sub(1)?;
        let owner = self.marks[index].owner;
        if owner == NO_OWNER {
            return None;
        }
        let first = self.marks[..index]
            .iter()
            .rposition(|m| m.owner != owner)
            .map_or(0, |i| i + 1);
        let to = self.end_of_run(index);
        Some(Held {
            owner,
            from: self.marks[first].at,
            to,
        })
    }

    /// The owner at `t` ([`NO_OWNER`] if none), without the interval.
    #[inline]
    pub fn owner_at(&self, t: u32) -> WorkloadId {
        self.marks_at_or_before(t)
            .checked_sub(1)
            .map_or(NO_OWNER, |i| self.marks[i].owner)
    }

    /// How many marks are at or before `t`. Short timelines (most) are
    /// counted without a branch on the marks: a binary search over a
    /// handful of random times mispredicts at nearly every step.
    #[inline]
    fn marks_at_or_before(&self, t: u32) -> usize {
        if self.marks.len() <= 2 * INLINE_MARKS {
            self.marks.iter().map(|m| usize::from(m.at <= t)).sum()
        } else {
            self.marks.partition_point(|m| m.at <= t)
        }
    }

    /// Every interval `[from, to)` with its owner, in time order.
    pub fn intervals(&self) -> impl Iterator<Item = Held> + '_ {
        self.marks.iter().enumerate().filter_map(|(i, mark)| {
            let starts_run = i == 0 || self.marks[i - 1].owner != mark.owner;
            (starts_run && mark.owner != NO_OWNER).then(|| Held {
                owner: mark.owner,
                from: mark.at,
                to: self.end_of_run(i),
            })
        })
    }

    /// When the run of owners containing mark `index` ends: the first later
    /// mark with another owner, if any.
    fn end_of_run(&self, index: usize) -> Option<u32> {
        let owner = self.marks[index].owner;
        self.marks[index + 1..]
            .iter()
            .find(|m| m.owner != owner)
            .map(|m| m.at)
    }

    /// Merges marks before `cutoff` that repeat their predecessor's owner
    /// (snapshot re-assertions, repeated releases); returns how many went.
    pub fn compact_before(&mut self, cutoff: u32) -> usize {
        let before = self.marks.len();
        let mut previous: Option<WorkloadId> = None;
        self.marks.retain(|mark| {
            let redundant = mark.at < cutoff
                && previous.map_or(mark.owner == NO_OWNER, |owner| owner == mark.owner);
            previous = Some(mark.owner);
            !redundant
        });
        if self.marks.capacity() > 2 * self.marks.len() + 4 {
            self.marks.shrink_to_fit();
        }
        before - self.marks.len()
    }

    /// Forgets history before `cutoff`, keeping what is needed to answer
    /// for `t >= cutoff`; returns how many marks went.
    pub fn prune_before(&mut self, cutoff: u32) -> usize {
        let first_kept = self.marks.partition_point(|m| m.at < cutoff);
        // The last mark before the cutoff still says who owns the IP at the cutoff.
        let keep_from = match first_kept.checked_sub(1) {
            Some(i) if self.marks[i].owner != NO_OWNER => i,
            _ => first_kept,
        };
        self.marks.drain(..keep_from);
        keep_from
    }

    /// Checks the invariants; `workloads` is the number of interned workloads.
    pub fn check(&self, workloads: usize) -> Result<(), String> {
        for pair in self.marks.windows(2) {
            if pair[0].at >= pair[1].at {
                return Err(format!(
                    "marks out of order: {} then {}",
                    pair[0].at, pair[1].at
                ));
            }
        }
        match self.marks.iter().find(|m| m.owner as usize > workloads) {
            Some(m) => Err(format!("owner id {} beyond {workloads} workloads", m.owner)),
            None => Ok(()),
        }
    }

    /// Heap bytes held (marks held inline count as none).
    pub fn memory_bytes(&self) -> usize {
        if self.marks.spilled() {
            self.marks.capacity() * std::mem::size_of::<Mark>()
        } else {
            0
        }
    }
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
        assert_eq!(line.intervals().count(), 2);
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
}
