//! The index against a naive oracle. Random assign / release / snapshot
//! events for a few IPs are delivered out of order (each at most the reorder
//! window behind the newest) and some twice; every answer of the index must
//! equal the oracle's, which rebuilds each IP's intervals from the whole
//! event set and scans them linearly.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use trawl_attrib::{AttributionIndex, IndexConfig, MetadataEvent, Rule, SnapshotOwner, Workload};

const WINDOW: u32 = 300;
const IPS: [&str; 5] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "2001:db8::1",
    "::ffff:10.0.0.9",
];

/// The networks a snapshot may cover: every IP, some of the v4 ones (the
/// mapped one among them), the v6 one, all of v4 but two addresses.
const SCOPES: [&[&str]; 4] = [
    &[],
    &["10.0.0.0/31", "10.0.0.8/29"],
    &["2001:db8::/64"],
    &["10.0.0.0/24"],
];

/// What the scopes leave out (`except`): for the last, one address given
/// as a host and one (the mapped one) inside a network.
const EXCEPTS: [&[&str]; 4] = [&[], &[], &[], &["10.0.0.2/32", "10.0.0.8/30"]];

fn workload(n: u8) -> Workload {
    Workload {
        app: Some(format!("app{n}")),
        ..Workload::default()
    }
}

fn ip(i: usize) -> IpAddr {
    IPS[i].parse().unwrap()
}

fn event_strategy() -> impl Strategy<Value = MetadataEvent> {
    let at = 1000i64..3000;
    prop_oneof![
        5 => (0..IPS.len(), at.clone(), 0u8..3).prop_map(|(i, at, w)| MetadataEvent::Assign {
            ip: ip(i), at, workload: workload(w), interface_id: None,
        }),
        3 => (0..IPS.len(), at.clone()).prop_map(|(i, at)| MetadataEvent::Release { ip: ip(i), at }),
        1 => (at, proptest::collection::vec((0..IPS.len(), 0u8..3), 0..4), 0..SCOPES.len()).prop_map(|(at, owners, scope)| {
            let mut seen = Vec::new();
            let owners = owners.into_iter().filter(|(i, _)| {
                let new = !seen.contains(i);
                seen.push(*i);
                new
            }).map(|(i, w)| SnapshotOwner { ip: ip(i), workload: workload(w), interface_id: None }).collect();
            let within = SCOPES[scope].iter().map(|n| n.parse().unwrap()).collect();
            let except = EXCEPTS[scope].iter().map(|n| n.parse().unwrap()).collect();
            MetadataEvent::Snapshot { at, owners, within, except }
        }),
    ]
}

/// A point assertion: from `at` on, `owner` (None: nobody).
type Point = (i64, Option<Workload>);

fn points_of(events: &[MetadataEvent], target: IpAddr) -> Vec<Point> {
    let target = target.to_canonical();
    let mut points = Vec::new();
    for event in events {
        match event {
            MetadataEvent::Assign {
                ip, at, workload, ..
            } if ip.to_canonical() == target => {
                points.push((*at, Some(workload.clone())));
            }
            MetadataEvent::Release { ip, at } if ip.to_canonical() == target => {
                points.push((*at, None))
            }
            MetadataEvent::Snapshot {
                at,
                owners,
                within,
                except,
            } => {
                let listed = owners.iter().find(|o| o.ip.to_canonical() == target);
                let covered = (within.is_empty()
                    || within.iter().any(|n: &ipnet::IpNet| n.contains(&target)))
                    && !except.iter().any(|n: &ipnet::IpNet| n.contains(&target));
                if listed.is_some() || covered {
                    points.push((*at, listed.map(|o| o.workload.clone())));
                }
            }
            _ => {}
        }
    }
    points
}

/// The oracle's intervals: at each instant the greatest assertion wins
/// (an owner beats nobody; between owners, the greater workload); runs of
/// one owner are one interval.
fn oracle_intervals(points: &[Point]) -> Vec<(Workload, i64, Option<i64>)> {
    let mut instants: Vec<i64> = points.iter().map(|p| p.0).collect();
    instants.sort();
    instants.dedup();
    let winners: Vec<(i64, Option<Workload>)> = instants
        .iter()
        .map(|t| {
            (
                *t,
                points
                    .iter()
                    .filter(|p| p.0 == *t)
                    .map(|p| p.1.clone())
                    .max()
                    .unwrap(),
            )
        })
        .collect();
    let mut intervals: Vec<(Workload, i64, Option<i64>)> = Vec::new();
    for (i, (at, owner)) in winners.iter().enumerate() {
        let continues = i > 0 && winners[i - 1].1 == *owner;
        if continues {
            continue;
        }
        if let Some(last) = intervals.last_mut().filter(|l| l.2.is_none()) {
            last.2 = Some(*at);
        }
        if let Some(owner) = owner {
            intervals.push((owner.clone(), *at, None));
        }
    }
    intervals
}

fn oracle_owner_at(
    intervals: &[(Workload, i64, Option<i64>)],
    t: i64,
) -> Option<(Workload, i64, Option<i64>)> {
    intervals
        .iter()
        .find(|(_, from, to)| *from <= t && to.is_none_or(|to| t < to))
        .cloned()
}

fn delivery() -> impl Strategy<Value = (Vec<MetadataEvent>, Vec<(usize, u32)>)> {
    proptest::collection::vec(event_strategy(), 1..40).prop_flat_map(|events| {
        let n = events.len();
        let deliveries = proptest::collection::vec((0..n, 0..WINDOW), n..n * 2);
        (Just(events), deliveries)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn index_equals_the_oracle_under_reordering_and_duplicates((events, extra) in delivery()) {
        // Every event once, a third of them again; each delivered at `at + jitter`.
        let n = events.len();
        let mut order: Vec<(i64, usize)> = (0..n)
            .map(|i| (events[i].at() + i64::from(extra[i].1), i))
            .collect();
        order.extend(extra[n..].iter().take(n / 3 + 1).map(|(i, jitter)| (events[*i].at() + i64::from(*jitter), *i)));
        order.sort();
        let config = IndexConfig { reorder_window_secs: WINDOW, ..IndexConfig::default() };
        let mut index = AttributionIndex::new(config);
        for (_, i) in &order {
            index.apply(&events[*i]).unwrap();
        }
        prop_assert_eq!(index.stats().late_beyond_window, 0);
        for (n, _) in IPS.iter().enumerate() {
            let target = ip(n);
            let intervals = oracle_intervals(&points_of(&events, target));
            for t in (990..3100).step_by(7) {
                let got = index.owner_at(target, t);
                let expected = oracle_owner_at(&intervals, t);
                match expected {
                    Some((workload, from, to)) => {
                        prop_assert_eq!(got.rule, Rule::Declared, "{} at {}", target, t);
                        prop_assert_eq!(index.workload(got.owner), Some(&workload), "{} at {}", target, t);
                        prop_assert_eq!((got.from, got.to), (Some(from), to), "{} at {}", target, t);
                    }
                    None => prop_assert!(!got.rule.is_interval(), "{} at {}: {:?}", target, t, got),
                }
            }
            let history: Vec<_> = index.history(target).iter()
                .map(|h| (index.workload(h.owner).cloned().unwrap(), i64::from(h.from), h.to.map(i64::from)))
                .collect();
            prop_assert_eq!(history, intervals);
        }
        // The batched lookup (records prefetched ahead, kept in a ring)
        // answers every query as the single one does, in query order.
        let queries: Vec<(IpAddr, i64)> = (990..3100)
            .step_by(13)
            .enumerate()
            .map(|(k, t)| (if k % 7 == 6 { "8.8.8.8".parse().unwrap() } else { ip(k % IPS.len()) }, t))
            .collect();
        let mut batched = Vec::new();
        index.owner_at_many(&queries, &mut batched);
        let single: Vec<_> = queries.iter().map(|(ip, t)| index.owner_at(*ip, *t)).collect();
        prop_assert_eq!(batched, single);
    }
}
