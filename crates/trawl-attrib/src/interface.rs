//! Which workloads an interface (ENI) was declared to over time, so that a
//! flow logged at the interface is evidence of its owner *at the flow's
//! time*, and an interface shared by several workloads teaches nothing.
//!
//! Interfaces are shared and they move: with the EKS VPC CNI, pod IPs are
//! secondary IPs on their node's ENI, so one interface carries the node and
//! every pod on it; an ENI detached from one instance and attached to
//! another changes hands; and flow logs arrive minutes late, so a flow is
//! often learned after its interface has moved on.
//!
//! An interface's history is made of two kinds of declarations, each kept
//! as marks of [`crate::timeline`] (the same whatever order events arrive in):
//!
//! - **attachment** (`interface` events): "from `at` on, the ENI is
//!   attached to W". One workload at a time; a later event moves the ENI.
//! - **addresses** (assign and snapshot entries naming the interface), per
//!   IP: "from `at` on, W holds this IP on the ENI". An address counts at
//!   `t` only while the IP's own declared owner at `t` is that workload: a
//!   release, a snapshot not listing the IP, or an assignment to another
//!   workload ends it. An ENI moves with its addresses, so the ENI's move
//!   from W to another workload (an attachment to it, after one to W, that
//!   began after W's mark) ends it too: W's release may have been lost. An
//!   attachment that moves nothing away from W (a node's ENI announced, or
//!   its workload relabelled, while its pods' addresses are on it) ends no
//!   address. Pruning keeps an address while its holder is still the IP's
//!   declared owner, even one a move ended: it is where that declaration
//!   placed the IP (see `index.rs`, rule 2a).
//!
//! The owners at `t` are the attached workload and the workloads of every
//! address that counts: none, one, or several ([`InterfaceOwner`]).
//!
//! Memory: each interface is pruned with the horizon of IP timelines (marks
//! before the cutoff go, keeping what answers at the cutoff); an address
//! that no longer counts at the cutoff and has no later mark is dropped,
//! and an interface that no event has named since the cutoff and that has
//! no address left is forgotten.

use std::net::IpAddr;

use crate::timeline::{Mark, Timeline};
use crate::workload::{NO_OWNER, WorkloadId, WorkloadTable};

/// Who an interface belonged to at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceOwner {
    /// Nothing is declared for the interface then.
    Unknown,
    /// One workload (the attachment and every address agree).
    One(WorkloadId),
    /// Several workloads at once (a shared ENI, or declarations that
    /// disagree): its flows say nothing about who owns an address.
    Shared,
}

impl InterfaceOwner {
    /// Adds one declared owner ([`NO_OWNER`] adds nothing).
    fn with(self, owner: WorkloadId) -> Self {
        match self {
            _ if owner == NO_OWNER => self,
            InterfaceOwner::Unknown => InterfaceOwner::One(owner),
            InterfaceOwner::One(one) if one == owner => self,
            _ => InterfaceOwner::Shared,
        }
    }
}

/// One address declared on an interface, and its marks there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// The IP (canonical: an IPv4-mapped IPv6 address as IPv4).
    pub ip: IpAddr,
    /// Who held the IP on the interface, from each mark on.
    pub marks: Timeline,
}

/// What the index knows of one interface (see the module header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InterfaceRecord {
    /// Attachments, from `interface` events.
    pub attached: Timeline,
    /// Addresses declared on the interface.
    pub addresses: Vec<Address>,
    /// The newest event time that named the interface (seconds).
    pub named_at: u32,
}

impl InterfaceRecord {
    /// Records that the interface is attached to `owner` from `at` on.
    pub fn attach(&mut self, at: u32, owner: WorkloadId, workloads: &WorkloadTable) {
        self.attached.insert(Mark { at, owner }, workloads);
        self.named_at = self.named_at.max(at);
    }

    /// Records that `owner` holds `ip` on the interface from `at` on.
    pub fn add_address(
        &mut self,
        ip: IpAddr,
        at: u32,
        owner: WorkloadId,
        workloads: &WorkloadTable,
    ) {
        let ip = ip.to_canonical();
        let mark = Mark { at, owner };
        match self.addresses.iter_mut().find(|a| a.ip == ip) {
            Some(address) => {
                address.marks.insert(mark, workloads);
            }
            None => {
                let mut marks = Timeline::default();
                marks.insert(mark, workloads);
                self.addresses.push(Address { ip, marks });
            }
        }
        self.named_at = self.named_at.max(at);
    }

    /// The owners at `t`; `declared(ip, t)` is the declared owner of an IP
    /// at `t` ([`NO_OWNER`] if none). Stops at the second owner found.
    pub fn owner_at(&self, t: u32, declared: impl Fn(IpAddr, u32) -> WorkloadId) -> InterfaceOwner {
        let mut owner = InterfaceOwner::Unknown.with(self.attached.owner_at(t));
        for address in &self.addresses {
            if owner == InterfaceOwner::Shared {
                break;
            }
            owner = owner.with(counted_owner(&self.attached, address, t, &declared));
        }
        owner
    }

    /// The address `ip` on this interface, if it has marks here.
    fn address(&self, ip: IpAddr) -> Option<&Address> {
        let ip = ip.to_canonical();
        self.addresses.iter().find(|a| a.ip == ip)
    }

    /// Whether `ip` has marks on this interface.
    pub fn lists(&self, ip: IpAddr) -> bool {
        self.address(ip).is_some()
    }

    /// The newest mark time of `ip` on this interface (0 if none).
    pub fn newest_mark_of(&self, ip: IpAddr) -> u32 {
        self.address(ip)
            .and_then(|a| a.marks.last())
            .map_or(0, |m| m.at)
    }

    /// Whether `owner` held `ip` on this interface at `t` by its marks here
    /// (counted or not: see the module header).
    pub fn holds(&self, ip: IpAddr, owner: WorkloadId, t: u32) -> bool {
        self.address(ip)
            .is_some_and(|a| a.marks.owner_at(t) == owner)
    }

    /// Merges marks before `compact_cutoff` that repeat their predecessor's
    /// owner; returns how many went.
    pub fn compact_before(&mut self, compact_cutoff: u32) -> usize {
        let attached = self.attached.compact_before(compact_cutoff);
        let addresses: usize = self
            .addresses
            .iter_mut()
            .map(|a| a.marks.compact_before(compact_cutoff))
            .sum();
        attached + addresses
    }

    /// Forgets history before `cutoff` (see the module header); returns
    /// how many marks went. `declared` as for [`owner_at`](Self::owner_at).
    pub fn prune_before(
        &mut self,
        cutoff: u32,
        declared: impl Fn(IpAddr, u32) -> WorkloadId,
    ) -> usize {
        // The attachment before the one in force at the cutoff tells
        // whether that one moved the ENI away from an address's holder.
        let attached_since = self.attached.held_at(cutoff).map_or(cutoff, |h| h.from);
        let mut pruned = self.attached.prune_before(attached_since);
        self.addresses.retain_mut(|address| {
            pruned += address.marks.prune_before(cutoff);
            let holder = address.marks.owner_at(cutoff);
            let counts = holder != NO_OWNER && declared(address.ip, cutoff) == holder;
            let later = address.marks.last().is_some_and(|m| m.at >= cutoff);
            if !(counts || later) {
                pruned += address.marks.len();
            }
            counts || later
        });
        pruned
    }

    /// Whether the interface may be forgotten after pruning at `cutoff`.
    pub fn is_forgotten(&self, cutoff: u32) -> bool {
        self.addresses.is_empty() && self.named_at < cutoff
    }

    /// Number of marks (attachment and addresses).
    pub fn mark_count(&self) -> usize {
        self.attached.len() + self.addresses.iter().map(|a| a.marks.len()).sum::<usize>()
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.attached.memory_bytes()
            + self.addresses.capacity() * std::mem::size_of::<Address>()
            + self
                .addresses
                .iter()
                .map(|a| a.marks.memory_bytes())
                .sum::<usize>()
    }

    /// Checks the invariants; `workloads` is the number of interned workloads.
    pub fn check(&self, workloads: usize) -> Result<(), String> {
        self.attached
            .check(workloads)
            .map_err(|e| format!("attachment: {e}"))?;
        for (i, address) in self.addresses.iter().enumerate() {
            address
                .marks
                .check(workloads)
                .map_err(|e| format!("address {}: {e}", address.ip))?;
            if address.ip != address.ip.to_canonical()
                || self.addresses[..i].iter().any(|a| a.ip == address.ip)
            {
                return Err(format!("address {} listed twice", address.ip));
            }
        }
        let newest = std::iter::once(self.attached.last())
            .chain(self.addresses.iter().map(|a| a.marks.last()))
            .flatten()
            .map(|m| m.at)
            .max();
        if newest.is_some_and(|at| at > self.named_at) {
            return Err("a mark is newer than the newest event naming it".into());
        }
        Ok(())
    }
}

/// The workload `address` adds to its interface's owners at `t`
/// ([`NO_OWNER`] if it does not count then): its holder on the interface,
/// while that is the IP's declared owner and the interface has not moved
/// from the holder to another workload since the holder's mark.
fn counted_owner(
    attached: &Timeline,
    address: &Address,
    t: u32,
    declared: &impl Fn(IpAddr, u32) -> WorkloadId,
) -> WorkloadId {
    let Some(held) = address.marks.held_at(t) else {
        return NO_OWNER;
    };
    if declared(address.ip, t) != held.owner {
        return NO_OWNER;
    }
    let moved_away = attached.held_at(t).is_some_and(|attachment| {
        attachment.owner != held.owner
            && attachment.from > held.from
            && attachment
                .from
                .checked_sub(1)
                .is_some_and(|before| attached.owner_at(before) == held.owner)
    });
    if moved_away { NO_OWNER } else { held.owner }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;
    use proptest::prelude::*;

    fn table(n: usize) -> (WorkloadTable, Vec<WorkloadId>) {
        let mut table = WorkloadTable::default();
        let ids = (0..n)
            .map(|i| {
                table
                    .intern(&Workload {
                        app: Some(format!("w{i}")),
                        ..Workload::default()
                    })
                    .unwrap()
            })
            .collect();
        (table, ids)
    }

    /// One declaration, as the naive oracle keeps it.
    #[derive(Debug, Clone)]
    enum Event {
        /// The interface is attached to workload `owner` from `at`.
        Attach { at: u32, owner: usize },
        /// Address `ip` is held by `owner` on the interface from `at`.
        Address { ip: u8, at: u32, owner: usize },
        /// The IP's own declaration: `owner` (None: released) from `at`.
        Declare {
            ip: u8,
            at: u32,
            owner: Option<usize>,
        },
    }

    fn event() -> impl Strategy<Value = Event> {
        let at = 0u32..200;
        prop_oneof![
            (at.clone(), 0usize..3).prop_map(|(at, owner)| Event::Attach { at, owner }),
            (0u8..3, at.clone(), 0usize..3).prop_map(|(ip, at, owner)| Event::Address {
                ip,
                at,
                owner
            }),
            (0u8..3, at, proptest::option::of(0usize..3))
                .prop_map(|(ip, at, owner)| Event::Declare { ip, at, owner }),
        ]
    }

    fn addr(ip: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, ip])
    }

    /// The owner of the latest assertion at or before `t` among `points`;
    /// at one instant the greatest (owners beat nobody), as the timeline does.
    fn latest(points: &[(u32, Option<usize>)], t: u32) -> Option<usize> {
        let at = points.iter().map(|p| p.0).filter(|&at| at <= t).max()?;
        points.iter().filter(|p| p.0 == at).map(|p| p.1).max()?
    }

    /// The owner at `t` and since when it has held without a break (the
    /// first instant of its run), as [`Timeline::held_at`] tells.
    fn run_at(points: &[(u32, Option<usize>)], t: u32) -> Option<(usize, u32)> {
        let owner = latest(points, t)?;
        let mut instants: Vec<u32> = points.iter().map(|p| p.0).filter(|&at| at <= t).collect();
        instants.sort();
        instants.dedup();
        let from = instants
            .iter()
            .rev()
            .take_while(|&&at| latest(points, at) == Some(owner))
            .last()
            .copied()?;
        Some((owner, from))
    }

    /// The naive answer: scan every event for the attachment and each
    /// address. After pruning at `cutoff` (for `t >= cutoff`), an address
    /// that did not count at the cutoff and has no later mark is gone.
    fn naive(events: &[Event], t: u32, cutoff: Option<u32>) -> Vec<usize> {
        let attach: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Attach { at, owner } => Some((*at, Some(*owner))),
                _ => None,
            })
            .collect();
        let mut owners: Vec<usize> = latest(&attach, t).into_iter().collect();
        for ip in 0..3 {
            let on: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Address { ip: i, at, owner } if *i == ip => Some((*at, Some(*owner))),
                    _ => None,
                })
                .collect();
            // Addresses declare the IP too (an assign with the interface).
            let declared: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Address { ip: i, at, owner } if *i == ip => Some((*at, Some(*owner))),
                    Event::Declare { ip: i, at, owner } if *i == ip => Some((*at, *owner)),
                    _ => None,
                })
                .collect();
            // The ENI's move from the holder to another workload after the
            // holder's mark ends it.
            let counts = |t: u32| {
                let (owner, from) = run_at(&on, t)?;
                let moved = run_at(&attach, t).is_some_and(|(w, since)| {
                    w != owner
                        && since > from
                        && since > 0
                        && latest(&attach, since - 1) == Some(owner)
                });
                (latest(&declared, t) == Some(owner) && !moved).then_some(owner)
            };
            let held_at_cutoff =
                |cutoff: u32| latest(&on, cutoff).filter(|o| latest(&declared, cutoff) == Some(*o));
            let kept = cutoff.is_none_or(|cutoff| {
                held_at_cutoff(cutoff).is_some() || on.iter().any(|(at, _)| *at >= cutoff)
            });
            if let Some(owner) = counts(t).filter(|_| kept) {
                owners.push(owner);
            }
        }
        owners.sort();
        owners.dedup();
        owners
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// In any order, the interface's owners at every time are those of
        /// a naive scan of the events; pruning keeps the answers after the cutoff.
        #[test]
        fn owner_at_equals_a_naive_scan_of_the_events(
            events in proptest::collection::vec(event(), 0..24).prop_shuffle(),
            cutoff in 0u32..220,
        ) {
            let (workloads, ids) = table(3);
            let mut record = InterfaceRecord::default();
            let mut declared: Vec<Timeline> = vec![Timeline::default(); 3];
            for event in &events {
                match *event {
                    Event::Attach { at, owner } => record.attach(at, ids[owner], &workloads),
                    Event::Address { ip, at, owner } => {
                        record.add_address(addr(ip), at, ids[owner], &workloads);
                        declared[usize::from(ip)].insert(Mark { at, owner: ids[owner] }, &workloads);
                    }
                    Event::Declare { ip, at, owner } => {
                        let owner = owner.map_or(NO_OWNER, |o| ids[o]);
                        declared[usize::from(ip)].insert(Mark { at, owner }, &workloads);
                    }
                }
            }
            record.check(workloads.len()).map_err(TestCaseError::fail)?;
            let lookup = |declared: &[Timeline], ip: IpAddr, t: u32| match ip {
                IpAddr::V4(v4) => declared[usize::from(v4.octets()[3])].owner_at(t),
                IpAddr::V6(_) => NO_OWNER,
            };
            let expect = |t: u32, cutoff: Option<u32>| match naive(&events, t, cutoff).as_slice() {
                [] => InterfaceOwner::Unknown,
                [one] => InterfaceOwner::One(ids[*one]),
                _ => InterfaceOwner::Shared,
            };
            for t in 0..210 {
                prop_assert_eq!(record.owner_at(t, |ip, t| lookup(&declared, ip, t)), expect(t, None), "at {}", t);
            }
            record.compact_before(cutoff);
            for line in &mut declared {
                line.compact_before(cutoff);
                line.prune_before(cutoff);
            }
            record.prune_before(cutoff, |ip, t| lookup(&declared, ip, t));
            record.check(workloads.len()).map_err(TestCaseError::fail)?;
            for t in cutoff..210 {
                prop_assert_eq!(record.owner_at(t, |ip, t| lookup(&declared, ip, t)), expect(t, Some(cutoff)), "after pruning, at {}", t);
            }
        }
    }
}
