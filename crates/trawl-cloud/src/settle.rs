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
//! | anyone or nobody | interface attached at `t` in `(previous_at, at]` | `t` (`Attachment.AttachTime`: exact) |
//! | nobody | otherwise | `previous_at + 1`: no one else could have held it, so flows from it in the window were the new owner's |
//! | another owner | otherwise | `at` (the snapshot): the old owner is kept through the window |
//!
//! Releases are dated `at` (the old owner is kept through the window:
//! nobody else held the address). Backdating to `previous_at + 1` goes back
//! at most `backdate_secs_max` (a long gap of failed polls says little).
//! Flows in the window whose address was nobody's are held until the poll
//! that sees its owner: the poll vouches metadata complete up to `at` (the
//! horizon), and a flow past the horizon with an unknown address waits
//! (`pipeline.hold_secs`, which must exceed the poll interval).

use std::collections::BTreeMap;
use std::net::IpAddr;

use trawl_attrib::{MetadataEvent, Secs, Workload};

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
/// (one poll's, from [`crate::eni::snapshot`]) within `window`.
/// `attached_at` maps an interface to its attach time; `declared_at(ip,
/// t)` is the owner declared at `t` (the index, before this poll).
pub fn dated_assigns(
    events: &[MetadataEvent],
    attached_at: &BTreeMap<&str, Secs>,
    window: Window,
    declared_at: impl Fn(IpAddr, Secs) -> Option<Workload>,
) -> Vec<MetadataEvent> {
    let Some(previous_at) = window.previous_at.filter(|p| *p < window.at) else {
        return Vec::new();
    };
    let in_window = |t: Secs| t > previous_at && t <= window.at;
    let attach_of = |id: Option<&String>| {
        id.and_then(|id| attached_at.get(id.as_str()))
            .copied()
            .filter(|t| in_window(*t))
    };
    let earliest = (previous_at + 1).max(window.at.saturating_sub(window.backdate_secs_max as i64));
    let mut dated = Vec::new();
    for event in events {
        match event {
            MetadataEvent::Snapshot { owners, .. } => {
                for owner in owners {
                    let before = declared_at(owner.ip, previous_at);
                    if before.as_ref() == Some(&owner.workload) {
                        continue;
                    }
                    let since = match (attach_of(owner.interface_id.as_ref()), before) {
                        (Some(t), _) => t,
                        (None, None) => earliest,
                        (None, Some(_)) => continue,
                    };
                    if since < window.at {
                        dated.push(MetadataEvent::Assign {
                            ip: owner.ip,
                            at: since,
                            workload: owner.workload.clone(),
                            interface_id: owner.interface_id.clone(),
                        });
                    }
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
        vec![MetadataEvent::Snapshot {
            at: 1_000,
            owners,
            within: Vec::new(),
            except: Vec::new(),
        }]
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
        let attached = BTreeMap::from([("eni-3", 971), ("eni-5", 990), ("eni-1", 100)]);
        let before = |ip: IpAddr, t: Secs| {
            assert_eq!(t, 940, "asked about the previous poll");
            match ip.to_string().as_str() {
                "10.0.0.1" => Some(app("kept")),
                "10.0.0.4" | "10.0.0.5" => Some(app("old")),
                _ => None,
            }
        };
        let dated = dated_assigns(&events, &attached, WINDOW, before);
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
        let none = BTreeMap::new();
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
        let attached = BTreeMap::from([("eni-3", 975)]);
        let dated = dated_assigns(&events, &attached, WINDOW, |_, _| None);
        assert!(matches!(
            &dated[..],
            [MetadataEvent::Interface { at: 975, .. }]
        ));
    }
}
