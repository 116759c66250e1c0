//! Dating what a poll saw: when, between two polls, a new owner began.
//!
//! A poll at `at` sees who owns each address then; the previous poll (at
//! `previous_at`) saw who owned it before. A change happened somewhere in
//! `(previous_at, at]` — the poll interval is the uncertainty. The
//! snapshot of the poll itself dates every change at `at` (observation
//! time). For a *new* owner this module dates it earlier when the APIs
//! allow, with assign events that go with the snapshot:
//!
//! | before (`previous_at`) | now (`at`) | the new owner holds the address from |
//! |---|---|---|
//! | the same owner | — | unchanged: nothing to date |
//! | nobody, or anyone for the interface's primary private address | interface attached (or ECS task started) at `t` in `[previous_at, at]` | `t` (`Attachment.AttachTime`: exact) |
//! | nobody | otherwise | `previous_at + 1`: no one else could have held it, so flows from it in the window were the new owner's |
//! | another owner | otherwise | `at` (the snapshot): the old owner is kept through the window |
//!
//! An attach time dates the interface and its primary address (given it
//! when the interface was made), not an address moved onto it later (an
//! Elastic IP, a secondary address): those another owner held are dated at
//! the poll.
//!
//! Releases are dated `at` (the old owner is kept through the window:
//! nobody else held the address). Backdating to `previous_at + 1` goes back
//! at most `backdate_secs_max` (a long gap of failed polls says little).
//! Flows in the window whose address was nobody's are held until the poll
//! that sees its owner: the poll vouches metadata complete up to `at` (the
//! horizon), and a flow past the horizon with an unknown address waits
//! (`pipeline.hold_secs`, which must exceed the poll interval).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use trawl_attrib::{MetadataEvent, Secs, Workload};

use crate::eni::Inventory;

/// What an inventory says of when its owners began.
#[derive(Debug, Clone, Default)]
pub struct Dates<'a> {
    /// Each interface's attach time, and each ECS task's start, by interface.
    pub attached_at: BTreeMap<&'a str, Secs>,
    /// Interfaces' primary private addresses (and tasks' addresses).
    pub primaries: BTreeSet<IpAddr>,
}

impl<'a> Dates<'a> {
    /// The dates an inventory gives.
    pub fn of(inventory: &'a Inventory) -> Dates<'a> {
        let mut dates = Dates::default();
        for eni in &inventory.interfaces {
            if let Some(t) = eni.attached_at {
                dates.attached_at.insert(eni.id.as_str(), t);
            }
            dates.primaries.extend(eni.private_ips.first());
        }
        for task in &inventory.tasks {
            if let (Some(id), Some(t)) = (task.interface_id.as_deref(), task.started_at) {
                dates.attached_at.insert(id, t);
            }
            dates.primaries.extend(&task.private_ips);
        }
        dates
    }
}

/// The poll being dated and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the previous successful poll saw the estate (none: the first
    /// poll since start, which dates nothing).
    pub previous_at: Option<Secs>,
    /// When this poll saw it.
    pub at: Secs,
    /// Farthest back a new owner is dated without an attach time (seconds).
    pub backdate_secs_max: u64,
}

/// The assign (and interface) events that date the new owners of `events`
/// (one poll's assigns and interfaces, from [`crate::eni::PollEvents::events`])
/// within `window`.
/// `dates` are the inventory's attach times; `declared_at(ip, t)` is the
/// owner declared at `t` (the index, before this poll).
pub fn dated_assigns(
    events: &[MetadataEvent],
    dates: &Dates<'_>,
    window: Window,
    declared_at: impl Fn(IpAddr, Secs) -> Option<Workload>,
) -> Vec<MetadataEvent> {
    let Some(previous_at) = window.previous_at.filter(|p| *p < window.at) else {
        return Vec::new();
    };
    // An attach time in the second of the previous poll may still be
    // after it: the poll did not list the interface.
    let in_window = |t: Secs| t >= previous_at && t <= window.at;
    let attach_of = |id: Option<&String>| {
        id.and_then(|id| dates.attached_at.get(id.as_str()))
            .copied()
            .filter(|t| in_window(*t))
    };
    let earliest = (previous_at + 1).max(window.at.saturating_sub(window.backdate_secs_max as i64));
    let mut dated = Vec::new();
    for event in events {
        match event {
            MetadataEvent::Assign {
                ip,
                workload,
                interface_id,
                ..
            } => {
                let before = declared_at(*ip, previous_at);
                if before.as_ref() == Some(workload) {
                    continue;
                }
                let attached = attach_of(interface_id.as_ref());
                let primary = dates.primaries.contains(ip);
                let since = match (attached, before) {
                    (Some(t), None) => t,
                    (Some(t), Some(_)) if primary => t,
                    (None, None) => earliest,
                    (_, Some(_)) => continue,
                };
                if since < window.at {
                    dated.push(MetadataEvent::Assign {
                        ip: *ip,
                        at: since,
                        workload: workload.clone(),
                        interface_id: interface_id.clone(),
                    });
                }
            }
            MetadataEvent::Interface {
                interface_id,
                workload,
                ..
            } => {
                if let Some(t) = attach_of(Some(interface_id)).filter(|t| *t < window.at) {
                    dated.push(MetadataEvent::Interface {
                        interface_id: interface_id.clone(),
                        at: t,
                        workload: workload.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    dated
}

/// `events` without the releases of addresses whose declared owner at
/// the release's time is not `own` (another source's: a pod's address an
/// instance took since, an instance's address a pod took): a source
/// releases only what it declared. `declared_at` is the index before the
/// events.
pub fn keep_own_releases(
    events: Vec<MetadataEvent>,
    declared_at: impl Fn(IpAddr, Secs) -> Option<Workload>,
    own: impl Fn(&Workload) -> bool,
) -> Vec<MetadataEvent> {
    events
        .into_iter()
        .filter(|e| match e {
            MetadataEvent::Release { ip, at } => declared_at(*ip, *at).is_some_and(|w| own(&w)),
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_attrib::SnapshotOwner;

    fn app(name: &str) -> Workload {
        Workload {
            app: Some(name.into()),
            ..Workload::default()
        }
    }

    fn owner(ip: &str, name: &str, eni: &str) -> SnapshotOwner {
        SnapshotOwner {
            ip: ip.parse().unwrap(),
            workload: app(name),
            interface_id: Some(eni.into()),
        }
    }

    fn poll(owners: Vec<SnapshotOwner>) -> Vec<MetadataEvent> {
        crate::eni::PollEvents {
            owners,
            interfaces: Vec::new(),
        }
        .events(1_000)
    }

    fn dated_at(events: &[MetadataEvent]) -> Vec<(String, i64)> {
        events
            .iter()
            .filter_map(|e| match e {
                MetadataEvent::Assign { ip, at, .. } => Some((ip.to_string(), *at)),
                _ => None,
            })
            .collect()
    }

    fn dates(attached: &[(&'static str, Secs)], primaries: &[&str]) -> Dates<'static> {
        Dates {
            attached_at: attached.iter().copied().collect(),
            primaries: primaries.iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    }

    const WINDOW: Window = Window {
        previous_at: Some(940),
        at: 1_000,
        backdate_secs_max: 120,
    };

    #[test]
    fn a_new_owner_is_dated_by_attach_time_else_after_the_poll_that_saw_it_free() {
        let events = poll(vec![
            owner("10.0.0.1", "kept", "eni-1"),
            owner("10.0.0.2", "fresh", "eni-2"),
            owner("10.0.0.3", "attached", "eni-3"),
            owner("10.0.0.4", "took-over", "eni-4"),
            owner("10.0.0.5", "took-over-attached", "eni-5"),
        ]);
        let attached = dates(
            &[("eni-3", 971), ("eni-5", 990), ("eni-1", 100)],
            &["10.0.0.5"],
        );
        let before = |ip: IpAddr, t: Secs| {
            assert_eq!(t, 940, "asked about the previous poll");
            match ip.to_string().as_str() {
                "10.0.0.1" => Some(app("kept")),
                "10.0.0.4" | "10.0.0.5" => Some(app("old")),
                _ => None,
            }
        };
        let dated = dated_assigns(&events, &attached, WINDOW, before);
        // 10.0.0.4 moved onto eni-4 (not its primary): dated at the poll.
        assert_eq!(
            dated_at(&dated),
            vec![
                ("10.0.0.2".into(), 941),
                ("10.0.0.3".into(), 971),
                ("10.0.0.5".into(), 990)
            ]
        );
    }

    #[test]
    fn the_first_poll_and_a_long_gap_date_nothing_far_back() {
        let events = poll(vec![owner("10.0.0.2", "fresh", "eni-2")]);
        let none = Dates::default();
        let first = Window {
            previous_at: None,
            ..WINDOW
        };
        assert!(dated_assigns(&events, &none, first, |_, _| None).is_empty());
        let gap = Window {
            previous_at: Some(0),
            ..WINDOW
        };
        assert_eq!(
            dated_at(&dated_assigns(&events, &none, gap, |_, _| None)),
            vec![("10.0.0.2".into(), 880)]
        );
    }

    #[test]
    fn an_interface_attached_in_the_window_is_dated_too() {
        let events = vec![MetadataEvent::Interface {
            interface_id: "eni-3".into(),
            at: 1_000,
            workload: app("attached"),
        }];
        let attached = dates(&[("eni-3", 975)], &[]);
        let dated = dated_assigns(&events, &attached, WINDOW, |_, _| None);
        assert!(matches!(
            &dated[..],
            [MetadataEvent::Interface { at: 975, .. }]
        ));
    }

    /// Found by a cold review: the attach time dates the *interface*, not each of its addresses:
    /// an Elastic IP (or a secondary address) moved onto an interface
    /// some time after it was attached. Here 54.1.2.3 was old's at the
    /// previous poll (940); new's instance was launched at 950 and the
    /// address re-associated to it at some unknown time before 1000. The
    /// module's own table says an address another owner held is dated at
    /// the poll (the old owner kept through the window); the attach time
    /// dates it 950 instead, giving old's flows of 950..1000 to new.
    #[test]
    fn review_an_address_another_owner_held_is_not_dated_by_its_new_interfaces_attach_time() {
        let mut eip = owner("54.1.2.3", "new", "eni-new");
        eip.interface_id = Some("eni-new".into());
        let events = poll(vec![owner("10.0.0.9", "new", "eni-new"), eip]);
        let attached = dates(&[("eni-new", 950)], &["10.0.0.9"]);
        let before = |ip: IpAddr, _t: Secs| match ip.to_string().as_str() {
            "54.1.2.3" => Some(app("old")),
            _ => None,
        };
        let dated = dated_assigns(&events, &attached, WINDOW, before);
        assert!(
            !dated_at(&dated).contains(&("54.1.2.3".into(), 950)),
            "54.1.2.3 dated over old's hold: {:?}",
            dated_at(&dated)
        );
    }
}
