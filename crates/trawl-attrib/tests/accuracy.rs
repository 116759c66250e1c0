//! Accuracy on a churning estate, against ground truth.
//!
//! A seeded simulation: ~300 instances of 40 applications, each living 2–10
//! minutes on an IP from a shared pool, so IPs pass between applications
//! every few minutes. Beside them:
//!
//! - **shared ENIs**: EKS-like nodes (running all along, their own IP and
//!   ENI) each with a few pods living 2–10 minutes; a pod's IP comes from
//!   the pool and is a secondary IP on its node's ENI, so the pod's records
//!   carry the node's interface id and its `assign` names the node's ENI;
//! - **moving ENIs**: floating ENIs, each with one fixed IP, detached from
//!   one instance when it ends and attached to an instance of another app
//!   (an `interface` event and an `assign` naming the ENI); their records
//!   arrive 2–7 minutes late, often after the ENI has moved on.
//!
//! Metadata events (assign with the interface id, an `interface` mapping,
//! release, and a snapshot every 5 minutes) reach trawl 0–120 s late, out
//! of order, and 1% of them never arrive. Every 30 s each instance talks to
//! another; each flow is logged at both interfaces (egress and ingress
//! records, v5 fields) and delivered 30–90 s after it ends.
//!
//! trawl learns from every record as it arrives and attributes a flow once
//! both sides are settled and attributed, or when the hold-back (180 s)
//! expires. The standard: under 0.5% unattributed, and no side
//! misattributed, also where an IP's previous owner's release *and* its new
//! owner's assign were both lost (the new owner's flows contradict the
//! stale declaration: rule 2a of `index.rs`; the run must contain such
//! cases). The same flows attributed by each IP's *current* owner (what a
//! static enrichment table does) are the comparison.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use trawl_attrib::{AttributionIndex, IndexConfig, MetadataEvent, SnapshotOwner, Workload};

const SECONDS: i64 = 2 * 3600;
const BASE: i64 = 1_795_305_600;
const POOL: u32 = 600;
const LIVE_TARGET: usize = 300;
const APPS: usize = 40;
const DELAY_MAX: i64 = 120;
const LOSS_PER_MILLE: u64 = 10;
const HOLD: i64 = 180;
/// EKS-like nodes, and pods kept live on each.
const NODES: u32 = 8;
const PODS_PER_NODE: usize = 4;
/// Floating ENIs, and how late their records arrive (seconds).
const FLOATS: u32 = 6;
const FLOAT_DELAY: (i64, i64) = (120, 420);

type Rng = trawl_flowlog::sample::SplitMix64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An instance with its own ENI and a pool IP.
    Plain,
    /// An EKS-like node: its own ENI, shared with its pods.
    Node,
    /// A pod: a pool IP on its node's ENI.
    Pod { node: usize },
    /// The holder of floating ENI `float` (and its fixed IP).
    Float { float: usize },
}

#[derive(Clone)]
struct Instance {
    ip: IpAddr,
    eni: String,
    workload: Workload,
    kind: Kind,
    to: i64,
    /// Indexes into `Estate::events`.
    assign_event: usize,
    release_event: Option<usize>,
    /// The instance that held the IP before (pool IPs and floating ENIs).
    previous: Option<usize>,
}

struct Flow {
    t: i64,
    src: usize,
    dst: usize,
}

enum Arrival {
    Meta(Box<MetadataEvent>),
    Record { flow: usize, egress: bool },
}

struct Estate {
    instances: Vec<Instance>,
    /// Floating ENIs attached to a new holder.
    moves: usize,
    events: Vec<MetadataEvent>,
    flows: Vec<Flow>,
}

fn workload(app: usize, generation: u64) -> Workload {
    Workload {
        app: Some(format!("app-{app:02}")),
        cluster: Some(format!("app-{app:02}-v{generation}")),
        account: Some("123456789012".into()),
        region: Some(["us-east-1", "eu-west-1", "ap-south-1"][app % 3].into()),
        az: Some(format!("az{}", app % 9)),
        kind: Some("instance".into()),
        labels: Default::default(),
    }
}

fn of_kind(mut workload: Workload, kind: &str) -> Workload {
    workload.kind = Some(kind.into());
    workload
}

/// Pushes the events of a new instance (an `interface` event first if
/// `attach`) and the instance; returns its index.
fn start_instance(
    instances: &mut Vec<Instance>,
    events: &mut Vec<MetadataEvent>,
    mut instance: Instance,
    at: i64,
    attach: bool,
) -> usize {
    if attach {
        events.push(MetadataEvent::Interface {
            interface_id: instance.eni.clone(),
            at,
            workload: instance.workload.clone(),
        });
    }
    instance.assign_event = events.len();
    events.push(MetadataEvent::Assign {
        ip: instance.ip,
        at,
        workload: instance.workload.clone(),
        interface_id: Some(instance.eni.clone()),
    });
    instances.push(instance);
    instances.len() - 1
}

/// Instances, their events and their flows, over the whole run.
fn simulate(rng: &mut Rng) -> Estate {
    let mut instances: Vec<Instance> = Vec::new();
    // Pool IPs: since when free, and who held them last.
    let mut free_since: Vec<(u32, i64, Option<usize>)> =
        (0..POOL).map(|n| (n, BASE - 3600, None)).collect();
    // Floating ENIs: free since when, and who held them last.
    let mut floats: Vec<Option<(i64, Option<usize>)>> =
        (0..FLOATS).map(|_| Some((BASE - 3600, None))).collect();
    let mut live: Vec<usize> = Vec::new();
    let mut events = Vec::new();
    let mut flows = Vec::new();
    let mut moves = 0;
    let mut nodes = Vec::new();
    for k in 0..NODES {
        let node = Instance {
            ip: IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + k)),
            eni: format!("eni-node-{k:04x}"),
            workload: of_kind(workload(k as usize % APPS, 9), "node"),
            kind: Kind::Node,
            to: BASE + SECONDS + 3600,
            assign_event: 0,
            release_event: None,
            previous: None,
        };
        let index = start_instance(&mut instances, &mut events, node, BASE, true);
        nodes.push(index);
        live.push(index);
    }
    for t in (BASE..BASE + SECONDS).step_by(10) {
        // Instances whose time is up release their IP (or floating ENI).
        live.retain(|&i| {
            let done = instances[i].to <= t;
            if done {
                instances[i].release_event = Some(events.len());
                events.push(MetadataEvent::Release {
                    ip: instances[i].ip,
                    at: instances[i].to,
                });
                match (instances[i].kind, instances[i].ip) {
                    (Kind::Float { float }, _) => floats[float] = Some((instances[i].to, Some(i))),
                    (_, IpAddr::V4(v4)) => {
                        free_since.push((v4.to_bits() - 0x0a00_0000, instances[i].to, Some(i)))
                    }
                    (_, IpAddr::V6(_)) => unreachable!(),
                }
            }
            !done
        });
        let mut free_ip = || {
            let slot = free_since
                .iter()
                .position(|(_, since, _)| t - since >= 30)?;
            let (n, _, previous) = free_since.swap_remove(slot);
            Some((IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), previous))
        };
        // New instances take IPs idle for at least 30 s.
        let plain = live
            .iter()
            .filter(|&&i| instances[i].kind == Kind::Plain)
            .count();
        for _ in plain..LIVE_TARGET {
            let Some((ip, previous)) = free_ip() else {
                break;
            };
            let app = rng.below(APPS as u64) as usize;
            let instance = Instance {
                ip,
                eni: format!("eni-{:08x}", instances.len()),
                workload: workload(app, rng.below(5)),
                kind: Kind::Plain,
                to: t + rng.range(120, 600),
                assign_event: 0,
                release_event: None,
                previous,
            };
            live.push(start_instance(
                &mut instances,
                &mut events,
                instance,
                t,
                true,
            ));
        }
        // Pods: secondary IPs on their node's ENI, declared with it.
        for (k, &node) in nodes.iter().enumerate() {
            let pods = live
                .iter()
                .filter(|&&i| instances[i].kind == Kind::Pod { node: k })
                .count();
            for _ in pods..PODS_PER_NODE {
                let Some((ip, previous)) = free_ip() else {
                    break;
                };
                let app = rng.below(APPS as u64) as usize;
                let pod = Instance {
                    ip,
                    eni: instances[node].eni.clone(),
                    workload: of_kind(workload(app, rng.below(5)), "pod"),
                    kind: Kind::Pod { node: k },
                    to: t + rng.range(120, 600),
                    assign_event: 0,
                    release_event: None,
                    previous,
                };
                live.push(start_instance(&mut instances, &mut events, pod, t, false));
            }
        }
        // Floating ENIs free for 10 s move to an instance of another app.
        for (float, state) in floats.iter_mut().enumerate() {
            let Some((since, previous)) = *state else {
                continue;
            };
            if t - since < 10 {
                continue;
            }
            let last_app = previous.and_then(|p| instances[p].workload.app.clone());
            let app = loop {
                let app = rng.below(APPS as u64) as usize;
                if last_app != workload(app, 0).app {
                    break app;
                }
            };
            moves += usize::from(previous.is_some());
            let holder = Instance {
                ip: IpAddr::V4(Ipv4Addr::from(0x0a03_0000 + float as u32)),
                eni: format!("eni-float-{float:04x}"),
                workload: workload(app, rng.below(5)),
                kind: Kind::Float { float },
                to: t + rng.range(120, 600),
                assign_event: 0,
                release_event: None,
                previous,
            };
            live.push(start_instance(&mut instances, &mut events, holder, t, true));
            *state = None;
        }
        if (t - BASE) % 300 == 0 {
            let owners = live
                .iter()
                .map(|&i| SnapshotOwner {
                    ip: instances[i].ip,
                    workload: instances[i].workload.clone(),
                    interface_id: Some(instances[i].eni.clone()),
                })
                .collect();
            events.push(MetadataEvent::Snapshot {
                at: t,
                owners,
                within: Vec::new(),
                except: Vec::new(),
            });
        }
        if (t - BASE) % 30 == 0 {
            // Flows within [t, t + 10) between instances alive all along.
            let talkers: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| instances[i].to >= t + 10)
                .collect();
            for &src in &talkers {
                let dst = talkers[rng.below(talkers.len() as u64) as usize];
                if dst != src {
                    flows.push(Flow { t, src, dst });
                }
            }
        }
    }
    Estate {
        instances,
        moves,
        events,
        flows,
    }
}

#[derive(Default, Debug)]
struct Tally {
    sides: u64,
    misattributed: u64,
    unattributed: u64,
}

impl Tally {
    fn count(&mut self, answer: Option<&Workload>, truth: &Workload) {
        self.sides += 1;
        match answer {
            None => self.unattributed += 1,
            Some(w) if w != truth => self.misattributed += 1,
            Some(_) => {}
        }
    }
    fn share(n: u64, of: u64) -> f64 {
        100.0 * n as f64 / of as f64
    }
}

fn attributed(index: &AttributionIndex, ip: IpAddr, t: i64) -> (Option<Workload>, bool) {
    let answer = index.owner_at(ip, t);
    let owner = answer
        .rule
        .is_interval()
        .then(|| index.workload(answer.owner).cloned())
        .flatten();
    (owner, answer.settled)
}

#[test]
fn churning_estate_is_attributed_without_mistakes() {
    let mut rng = Rng::new(2026);
    let estate = simulate(&mut rng);
    let mut arrivals: Vec<(i64, Arrival)> = Vec::new();
    let mut lost = std::collections::HashSet::new();
    for (i, event) in estate.events.iter().enumerate() {
        if rng.below(1000) < LOSS_PER_MILLE {
            lost.insert(i);
            continue;
        }
        arrivals.push((
            event.at() + rng.range(0, DELAY_MAX + 1),
            Arrival::Meta(Box::new(event.clone())),
        ));
    }
    for (id, flow) in estate.flows.iter().enumerate() {
        for egress in [true, false] {
            let local = &estate.instances[if egress { flow.src } else { flow.dst }];
            let delay = match local.kind {
                Kind::Float { .. } => rng.range(FLOAT_DELAY.0, FLOAT_DELAY.1 + 1),
                _ => rng.range(30, 91),
            };
            arrivals.push((flow.t + 10 + delay, Arrival::Record { flow: id, egress }));
        }
    }
    arrivals.sort_by_key(|(at, _)| *at);

    let config = IndexConfig {
        reorder_window_secs: 150,
        ..IndexConfig::default()
    };
    let mut index = AttributionIndex::new(config);
    let mut pending: Vec<(usize, i64)> = Vec::new();
    let mut decided: HashMap<usize, (Option<Workload>, Option<Workload>)> = HashMap::new();
    let mut next_tick = BASE;
    // Flows with a side on a pod (its record at the node's ENI), and flows
    // whose record at a floating ENI was learned after the ENI moved on.
    let mut shared_flows = std::collections::HashSet::new();
    let mut moved_flows = std::collections::HashSet::new();
    let decide = |index: &AttributionIndex,
                  pending: &mut Vec<(usize, i64)>,
                  decided: &mut HashMap<_, _>,
                  now: i64,
                  all: bool| {
        pending.retain(|&(id, arrived)| {
            let flow: &Flow = &estate.flows[id];
            let (src, src_settled) = attributed(index, estate.instances[flow.src].ip, flow.t);
            let (dst, dst_settled) = attributed(index, estate.instances[flow.dst].ip, flow.t);
            let ready = src_settled && dst_settled && src.is_some() && dst.is_some();
            if ready || all || now >= arrived + HOLD {
                decided.insert(id, (src, dst));
                return false;
            }
            true
        });
    };
    for (now, arrival) in arrivals {
        while next_tick <= now {
            decide(&index, &mut pending, &mut decided, next_tick, false);
            next_tick += 10;
        }
        match arrival {
            Arrival::Meta(event) => index.apply(&event).unwrap(),
            Arrival::Record { flow: id, egress } => {
                let flow = &estate.flows[id];
                let local = if egress {
                    &estate.instances[flow.src]
                } else {
                    &estate.instances[flow.dst]
                };
                index.learn(local.ip, &local.eni, flow.t, flow.t + 9);
                if matches!(local.kind, Kind::Pod { .. }) {
                    shared_flows.insert(id);
                }
                if matches!(local.kind, Kind::Float { .. }) && now > local.to {
                    moved_flows.insert(id);
                }
                if egress {
                    pending.push((id, now));
                }
            }
        }
    }
    decide(&index, &mut pending, &mut decided, i64::MAX, true);

    // The static table: each IP's owner at the end of the run.
    let mut current: HashMap<IpAddr, &Workload> = HashMap::new();
    for instance in &estate.instances {
        current.insert(instance.ip, &instance.workload);
    }
    // Sides whose IP's release by the previous holder and assign to the
    // truth were both lost (see the module header).
    let double_loss = |truth: &Instance| {
        truth.previous.is_some_and(|p| {
            lost.contains(&truth.assign_event)
                && estate.instances[p]
                    .release_event
                    .is_some_and(|e| lost.contains(&e))
        })
    };
    let (mut trawl, mut static_table) = (Tally::default(), Tally::default());
    let mut double_loss_sides = 0;
    for (id, flow) in estate.flows.iter().enumerate() {
        let (src, dst) = &decided[&id];
        let (src_truth, dst_truth) = (&estate.instances[flow.src], &estate.instances[flow.dst]);
        for (answer, truth) in [(src, src_truth), (dst, dst_truth)] {
            double_loss_sides += u64::from(double_loss(truth));
            trawl.count(answer.as_ref(), &truth.workload);
        }
        static_table.count(current.get(&src_truth.ip).copied(), &src_truth.workload);
        static_table.count(current.get(&dst_truth.ip).copied(), &dst_truth.workload);
    }
    let lost = lost.len();
    println!(
        "{} instances, {} events ({lost} lost), {} flows, {} attributions",
        estate.instances.len(),
        estate.events.len(),
        estate.flows.len(),
        trawl.sides
    );
    println!(
        "shared-ENI flows {}, moved-ENI flows {} ({} ENI moves), sides after a double loss {double_loss_sides}",
        shared_flows.len(),
        moved_flows.len(),
        estate.moves
    );
    println!(
        "trawl:        misattributed {:.3}%, unattributed {:.3}%   ({:?})",
        Tally::share(trawl.misattributed, trawl.sides),
        Tally::share(trawl.unattributed, trawl.sides),
        index.stats()
    );
    println!(
        "static table: misattributed {:.3}%, unattributed {:.3}%",
        Tally::share(static_table.misattributed, static_table.sides),
        Tally::share(static_table.unattributed, static_table.sides)
    );
    assert!(
        lost > 0 && estate.instances.len() > 1000,
        "the run must churn and lose events"
    );
    assert!(
        shared_flows.len() > 1000 && moved_flows.len() > 100 && estate.moves > 50,
        "shared-ENI flows {}, moved-ENI flows {}, moves {}",
        shared_flows.len(),
        moved_flows.len(),
        estate.moves
    );
    assert!(index.stats().heartbeats_shared > 0, "{:?}", index.stats());
    assert!(
        double_loss_sides > 0,
        "the run must lose both events of a handover"
    );
    assert_eq!(trawl.misattributed, 0, "{trawl:?}");
    assert!(
        Tally::share(trawl.unattributed, trawl.sides) < 0.5,
        "{trawl:?}"
    );
    assert!(
        Tally::share(static_table.misattributed, static_table.sides) > 50.0,
        "{static_table:?}"
    );
}
