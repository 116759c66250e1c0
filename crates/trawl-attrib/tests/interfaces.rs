//! Shared and moving interfaces (issue 13 #4): an interface's owners are
//! looked up at the flow's time, an interface with several declared owners
//! teaches nothing, and a learned span overrides a declaration only when
//! the flow contradicts where the declaration placed the IP. The first
//! three tests are the review's (durability-2026-12, section 3).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{app, app_at, assign, attach, ip, learn};
use trawl_attrib::{
    AttributionIndex, IndexConfig, InterfaceOwner, MetadataEvent, PersistError, Rule, Workload,
};

/// EKS-style: pod IPs are secondary IPs on the node's ENI. The node is
/// declared with its ENI; the pod is declared without one. A flow of the pod
/// (egress, src = pod IP, interface = node ENI) must not teach that the node
/// owns the pod's IP.
#[test]
fn shared_eni_pod_ip_learned_as_the_node() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.10", 1000, "node", Some("eni-node")))
        .unwrap();
    index
        .apply(&assign("10.0.0.50", 1000, "pod-a", None))
        .unwrap();
    assert_eq!(
        app_at(&index, "10.0.0.50", 1130),
        (Rule::Declared, Some("pod-a".into()))
    );
    learn(
        &mut index,
        "5 eni-node 10.0.0.50 10.9.9.9 1100 1160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.50", 1130),
        (Rule::Declared, Some("pod-a".into())),
        "the pod's own declaration should still answer"
    );
    assert_eq!(index.stats().learned_conflicts, 1);
}

/// Two pods on one node ENI, both declared with the ENI: the interface has
/// two owners, so the flow teaches nothing.
#[test]
fn shared_eni_last_assigned_pod_takes_the_other_pods_ip() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.50", 1000, "pod-a", Some("eni-node")))
        .unwrap();
    index
        .apply(&assign("10.0.0.51", 1050, "pod-b", Some("eni-node")))
        .unwrap();
    learn(
        &mut index,
        "5 eni-node 10.0.0.50 10.9.9.9 1100 1160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.50", 1130),
        (Rule::Declared, Some("pod-a".into())),
    );
}

/// A flow processed after its ENI moved (late file, replay after a crash)
/// is learned as the ENI's owner at the flow's time.
#[test]
fn late_flow_after_eni_moved_is_learned_as_the_new_owner() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.5", 1000, "a", Some("eni-1")))
        .unwrap();
    index
        .apply(&assign("10.0.0.5", 2000, "b", Some("eni-1")))
        .unwrap();
    // A's flow at 1100..1160 arrives after the move.
    learn(&mut index, "5 eni-1 10.0.0.5 10.9.9.9 1100 1160 egress OK");
    assert_eq!(
        app_at(&index, "10.0.0.5", 1130),
        (Rule::Declared, Some("a".into()))
    );
}

fn owner_name(index: &AttributionIndex, eni: &str, t: i64) -> Option<String> {
    match index.interface_owner_at(eni, t) {
        InterfaceOwner::One(id) => index.workload(id).and_then(|w| w.app.clone()),
        InterfaceOwner::Shared => Some("shared".into()),
        InterfaceOwner::Unknown => None,
    }
}

/// An ENI moved between instances (only `interface` events known): each
/// holder is learned for its own time, whenever the flow is processed, and
/// a flow spanning the move teaches nothing.
#[test]
fn moved_eni_teaches_each_holder_at_its_time() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-m", 2000, "b");
    learn(&mut index, "5 eni-m 10.0.0.5 10.9.9.9 2100 2160 egress OK");
    attach(&mut index, "eni-m", 1000, "a"); // arrives late
    learn(&mut index, "5 eni-m 10.0.0.5 10.9.9.9 1100 1160 egress OK");
    learn(&mut index, "5 eni-m 10.0.0.5 10.9.9.9 1990 2010 egress OK");
    learn(&mut index, "5 eni-m 10.0.0.5 10.9.9.9 900 960 egress OK");
    assert_eq!(
        app_at(&index, "10.0.0.5", 1130),
        (Rule::Learned, Some("a".into()))
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2130),
        (Rule::Learned, Some("b".into()))
    );
    assert_eq!(index.owner_at(ip("10.0.0.5"), 2000).rule, Rule::Unknown);
    let stats = index.stats();
    assert_eq!(
        (
            stats.heartbeats,
            stats.heartbeats_shared,
            stats.heartbeats_unmapped
        ),
        (2, 1, 1)
    );
}

/// A node's ENI carrying pods has several owners while a pod's address is
/// declared on it, and the node alone once the pod's IP is released.
#[test]
fn node_eni_is_shared_while_a_pod_is_on_it() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-node", 1000, "node");
    index
        .apply(&assign("10.0.0.10", 1000, "node", Some("eni-node")))
        .unwrap();
    index
        .apply(&assign("10.0.0.50", 1100, "pod-a", Some("eni-node")))
        .unwrap();
    index
        .apply(&MetadataEvent::Release {
            ip: ip("10.0.0.50"),
            at: 1500,
        })
        .unwrap();
    assert_eq!(
        owner_name(&index, "eni-node", 1050).as_deref(),
        Some("node")
    );
    assert_eq!(
        owner_name(&index, "eni-node", 1200).as_deref(),
        Some("shared")
    );
    assert_eq!(
        owner_name(&index, "eni-node", 1500).as_deref(),
        Some("node")
    );
    // A pod whose assign was lost: its flow at the shared ENI teaches nothing.
    learn(
        &mut index,
        "5 eni-node 10.0.0.51 10.9.9.9 1200 1260 egress OK",
    );
    assert_eq!(index.owner_at(ip("10.0.0.51"), 1230).rule, Rule::Unknown);
    assert_eq!(index.stats().heartbeats_shared, 1);
    // The pod's address passes to another workload on another ENI: it no
    // longer counts on the node's.
    index
        .apply(&assign("10.0.0.50", 1400, "other", Some("eni-other")))
        .unwrap();
    assert_eq!(
        owner_name(&index, "eni-node", 1450).as_deref(),
        Some("node")
    );
    assert_eq!(
        owner_name(&index, "eni-other", 1450).as_deref(),
        Some("other")
    );
}

/// Interfaces no event names within the retention, with no address still
/// declared, are forgotten; a live one stays.
#[test]
fn interfaces_are_pruned_with_the_ip_retention() {
    let config = IndexConfig {
        retention_secs: 3600,
        reorder_window_secs: 60,
        ..IndexConfig::default()
    };
    let mut index = AttributionIndex::new(config);
    for n in 0..100 {
        let addr = format!("10.0.1.{n}");
        let eni = format!("eni-{n}");
        index
            .apply(&assign(&addr, 1000 + n, "old", Some(&eni)))
            .unwrap();
        index
            .apply(&MetadataEvent::Release {
                ip: ip(&addr),
                at: 2000 + n,
            })
            .unwrap();
        attach(&mut index, &format!("eni-attached-{n}"), 1000 + n, "old");
    }
    index
        .apply(&assign("10.0.2.1", 1000, "live", Some("eni-live")))
        .unwrap();
    assert_eq!(index.interface_count(), 201);
    // Time moves on (in steps the newest-time bound believes).
    for k in 1..=3 {
        index
            .apply(&assign("10.0.2.2", 2100 + 3000 * k, "new", None))
            .unwrap();
    }
    index.maintain();
    assert_eq!(index.interface_count(), 1);
    assert_eq!(
        owner_name(&index, "eni-live", 11_100).as_deref(),
        Some("live")
    );
}

/// Interface histories survive a save and a load; a version 1 file (one
/// newest owner per interface) still loads, and an unknown version is
/// refused by name.
#[test]
fn interface_histories_are_saved_and_version_1_files_still_load() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-m", 1000, "a");
    attach(&mut index, "eni-m", 2000, "b");
    attach(&mut index, "eni-node", 1000, "node");
    index
        .apply(&assign("10.0.0.50", 1100, "pod-a", Some("eni-node")))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrib.idx");
    index.save(&path).unwrap();
    let loaded = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    for eni in ["eni-m", "eni-node", "eni-none"] {
        for t in [999, 1000, 1100, 1999, 2000, 3000] {
            assert_eq!(
                owner_name(&index, eni, t),
                owner_name(&loaded, eni, t),
                "{eni} at {t}"
            );
        }
    }
    assert_eq!(owner_name(&loaded, "eni-m", 1500).as_deref(), Some("a"));

    // Version 1: newest 2000, vouched 0, one workload, one interface, no IPs.
    let mut body = Vec::new();
    body.extend_from_slice(&2000u32.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    // Ids 1 and 2 are the built-in `internet` and `unknown`.
    let workloads = [
        Workload::of_kind("internet"),
        Workload::of_kind("unknown"),
        app("old"),
    ];
    body.extend_from_slice(&(workloads.len() as u32).to_le_bytes());
    for workload in &workloads {
        let json = serde_json::to_vec(workload).unwrap();
        body.extend_from_slice(&(json.len() as u32).to_le_bytes());
        body.extend_from_slice(&json);
    }
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&5u32.to_le_bytes());
    body.extend_from_slice(b"eni-v");
    body.extend_from_slice(&1500u32.to_le_bytes());
    body.extend_from_slice(&3u32.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    let mut file = b"TRWLIDX1".to_vec();
    file.extend_from_slice(&body);
    file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    std::fs::write(&path, &file).unwrap();
    let old = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    assert_eq!(owner_name(&old, "eni-v", 1499), None);
    assert_eq!(owner_name(&old, "eni-v", 1500).as_deref(), Some("old"));

    file[7] = b'9';
    std::fs::write(&path, &file).unwrap();
    let error = AttributionIndex::load(&path, IndexConfig::default()).unwrap_err();
    assert!(matches!(error, PersistError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("version 9"), "{error}");
}

/// The accuracy run's last misattribution: an IP's release by its old
/// holder and its assignment to the new one were both lost. AWS writes an
/// interface's own address as the local side of its records, and a private
/// IP is on one interface at a time, so a flow at the new holder's ENI
/// showing the IP contradicts the declaration that placed it on the old
/// holder's ENI: the flow is learned over it (rule 2a of `index.rs`).
#[test]
fn ip_reassigned_with_release_and_assign_both_lost_stays_with_the_old_holder() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    // `old` released 10.0.0.5 at 1900 and `new` took it at 2000 on its own
    // ENI: both events lost; only the new ENI's attachment arrived.
    attach(&mut index, "eni-new", 2000, "new");
    learn(
        &mut index,
        "5 eni-new 10.0.0.5 10.9.9.9 2100 2160 egress OK",
    );
    learn(
        &mut index,
        "5 eni-new 10.9.9.9 10.0.0.5 2200 2260 ingress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2130),
        (Rule::Learned, Some("new".into()))
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2230),
        (Rule::Learned, Some("new".into()))
    );
    // Before the flows nothing contradicts the declaration.
    assert_eq!(
        app_at(&index, "10.0.0.5", 1500),
        (Rule::Declared, Some("old".into()))
    );
    assert_eq!(index.stats().learned_overrides, 2);
    assert_eq!(index.stats().learned_conflicts, 0);
}

/// A floating ENI with a fixed IP moves from `a` to `b`; `a`'s release and
/// `b`'s assign are lost, the `interface` event is not. The ENI moves with
/// its addresses: `a`'s address there ends at the attachment to `b`, so the
/// ENI has one owner and its flows contradict `a`'s declaration.
#[test]
fn moved_eni_with_release_and_assign_both_lost_is_learned_as_its_new_holder() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-float", 1000, "a");
    index
        .apply(&assign("10.0.0.7", 1000, "a", Some("eni-float")))
        .unwrap();
    attach(&mut index, "eni-float", 2000, "b");
    assert_eq!(
        index.interface_owner_at("eni-float", 1500),
        InterfaceOwner::One(index.owner_at(ip("10.0.0.7"), 1500).owner)
    );
    assert!(matches!(
        index.interface_owner_at("eni-float", 2100),
        InterfaceOwner::One(_)
    ));
    learn(
        &mut index,
        "5 eni-float 10.0.0.7 10.9.9.9 2100 2160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.7", 2130),
        (Rule::Learned, Some("b".into()))
    );
    // A late flow from before the move still teaches `a`, as declared.
    learn(
        &mut index,
        "5 eni-float 10.0.0.7 10.9.9.9 1100 1160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.7", 1130),
        (Rule::Declared, Some("a".into()))
    );
}

/// What overrides a declaration is bounded: one that names no interface (a
/// Kubernetes pod declared without its node's ENI) is never overridden, a
/// shared interface teaches nothing, and a declaration that began inside
/// the learned span wins over it.
#[test]
fn only_a_declaration_placed_elsewhere_and_older_than_the_flows_is_overridden() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.60", 1000, "pod", None))
        .unwrap();
    attach(&mut index, "eni-node", 1000, "node");
    learn(
        &mut index,
        "5 eni-node 10.0.0.60 10.9.9.9 1100 1160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.60", 1130),
        (Rule::Declared, Some("pod".into()))
    );
    assert_eq!(index.stats().learned_conflicts, 1);

    // A shared ENI: the node and a pod declared on it.
    index
        .apply(&assign("10.0.0.61", 1000, "pod-2", Some("eni-node")))
        .unwrap();
    index
        .apply(&assign("10.0.0.62", 900, "gone", Some("eni-gone")))
        .unwrap();
    learn(
        &mut index,
        "5 eni-node 10.0.0.62 10.9.9.9 1100 1160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.62", 1130),
        (Rule::Declared, Some("gone".into()))
    );

    // Learned over `old` from 2100; a declaration from 2130 on wins there.
    index
        .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    attach(&mut index, "eni-new", 2000, "new");
    learn(
        &mut index,
        "5 eni-new 10.0.0.5 10.9.9.9 2100 2160 egress OK",
    );
    index
        .apply(&assign("10.0.0.5", 2130, "third", Some("eni-third")))
        .unwrap();
    assert_eq!(
        app_at(&index, "10.0.0.5", 2110),
        (Rule::Learned, Some("new".into()))
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2140),
        (Rule::Declared, Some("third".into()))
    );
    assert_eq!(index.stats().learned_overrides, 1);
}

/// Overriding spans survive a save and a load (version 3), and a version 2
/// file (spans without the owner they override) still loads, its spans
/// overriding nothing.
#[test]
fn overriding_spans_are_saved_and_version_2_files_still_load() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    attach(&mut index, "eni-new", 2000, "new");
    learn(
        &mut index,
        "5 eni-new 10.0.0.5 10.9.9.9 2100 2160 egress OK",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrib.idx");
    index.save(&path).unwrap();
    let loaded = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    assert_eq!(
        app_at(&loaded, "10.0.0.5", 2130),
        (Rule::Learned, Some("new".into()))
    );
    // Placements are rebuilt from the interfaces: a loaded index overrides too.
    let mut loaded = loaded;
    learn(
        &mut loaded,
        "5 eni-new 10.0.0.5 10.9.9.9 3100 3160 egress OK",
    );
    assert_eq!(
        app_at(&loaded, "10.0.0.5", 3130),
        (Rule::Learned, Some("new".into()))
    );

    // Version 2: one IP with one learned span and no marks or interfaces;
    // its span is the last thing before the extras (8 bytes) and the CRC.
    let mut plain = AttributionIndex::default();
    plain.apply(&attach_event("eni-p", 1000, "p")).unwrap();
    plain.learn(ip("10.0.0.9"), "eni-p", 1100, 1160);
    plain.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"TRWLIDX3");
    let body = &bytes[8..bytes.len() - 4];
    let overrides = body.len() - 8 - 4;
    assert_eq!(
        body[overrides..overrides + 4],
        [0; 4],
        "the owner the span overrides"
    );
    let mut body_v2 = body[..overrides].to_vec();
    body_v2.extend_from_slice(&body[overrides + 4..]);
    let mut file = b"TRWLIDX2".to_vec();
    file.extend_from_slice(&body_v2);
    file.extend_from_slice(&crc32fast::hash(&body_v2).to_le_bytes());
    std::fs::write(&path, &file).unwrap();
    let old = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    assert_eq!(
        app_at(&old, "10.0.0.9", 1130),
        (Rule::Learned, Some("p".into()))
    );
}

fn attach_event(eni: &str, at: i64, name: &str) -> MetadataEvent {
    MetadataEvent::Interface {
        interface_id: eni.into(),
        at,
        workload: app(name),
    }
}

/// A forged or broken record whose `end` is far after its `start` takes
/// no declared IP over: one record overrides at most
/// `OVERRIDE_RECORD_SECS_MAX` (AWS aggregates over 600 s at most).
#[test]
fn a_record_spanning_hours_overrides_no_declaration() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    attach(&mut index, "eni-new", 2000, "new");
    let end = 2100 + i64::from(trawl_attrib::OVERRIDE_RECORD_SECS_MAX) + 1;
    learn(
        &mut index,
        &format!("5 eni-new 10.0.0.5 10.9.9.9 2100 {end} egress OK"),
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2130),
        (Rule::Declared, Some("old".into()))
    );
    assert_eq!(index.stats().learned_overrides, 0);
}

/// A heartbeat another process learned and shared (the metadata topic's
/// `heartbeat` event) teaches this index what its own flow would have, by
/// the same rules, and declares nothing: neither the newest event time
/// nor the horizon moves.
#[test]
fn a_shared_heartbeat_is_learned_here_and_moves_no_horizon() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-a", 1_000, "api");
    let (newest, horizon) = (index.newest_event_at(), index.horizon());
    let line =
        r#"{"type":"heartbeat","ip":"10.0.0.7","interface_id":"eni-a","from":5000,"to":5060}"#;
    let event: MetadataEvent = serde_json::from_str(line).unwrap();
    assert!(!event.is_declaration());
    index.apply(&event).unwrap();
    assert_eq!(
        app_at(&index, "10.0.0.7", 5030),
        (Rule::Learned, Some("api".into()))
    );
    assert_eq!(
        (index.newest_event_at(), index.horizon()),
        (newest, horizon)
    );
    // At an interface nobody declared, a heartbeat teaches nothing.
    let stray =
        r#"{"type":"heartbeat","ip":"10.0.0.8","interface_id":"eni-x","from":5000,"to":5060}"#;
    index.apply(&serde_json::from_str(stray).unwrap()).unwrap();
    assert_eq!(app_at(&index, "10.0.0.8", 5030).1, None);
}
