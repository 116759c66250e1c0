//! Cold review of b24a1e3 (rule 2a: a flow that contradicts where a
//! declaration placed an IP is learned over it). Each test asserts the
//! behaviour the rule promises (or that a restart or maintenance must not
//! change); the first eight failed on b24a1e3, the rest are checks that
//! passed there.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{app, app_at, assign, attach, ip, learn};
use trawl_attrib::{
    AttributionIndex, IndexConfig, InterfaceOwner, MetadataEvent, Rule, SnapshotOwner,
};

/// The commit's own double-loss setup: `old` declared 10.0.0.5 on eni-old,
/// eni-new attached to `new`, a flow at eni-new over 2100..2160 learned as
/// an overriding span.
fn double_loss(eni_new: &str, new: &str) -> AttributionIndex {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    attach(&mut index, eni_new, 2000, new);
    learn(
        &mut index,
        &format!("5 {eni_new} 10.0.0.5 10.9.9.9 2100 2160 egress OK"),
    );
    assert_eq!(index.stats().learned_overrides, 1);
    index
}

// ---------------------------------------------------------------------------
// 1. The override is decided against the declaration in force when the flow
//    was learned, but applied against whatever declaration is in force when
//    asked: a late-arriving declaration that names no interface (a pod) and
//    that began before the span is overridden, against the rule "a
//    declaration that names no interface is never overridden".
// ---------------------------------------------------------------------------

/// `old` lost 10.0.0.5; a pod got it at 2050 on its node's ENI (pods are
/// declared without the ENI). The flow at the node's ENI is learned before
/// the pod's assign arrives (within the reorder window). Once it has
/// arrived the pod's declaration must answer, as it would had it arrived
/// before the flow.
#[test]
fn late_pod_assign_without_interface_is_not_overridden_by_an_earlier_learned_span() {
    let mut index = double_loss("eni-node", "node");
    index.apply(&assign("10.0.0.5", 2050, "pod", None)).unwrap();
    // Had the pod's assign arrived first, the flow would be a conflict.
    let mut ordered = AttributionIndex::default();
    ordered
        .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    attach(&mut ordered, "eni-node", 2000, "node");
    ordered
        .apply(&assign("10.0.0.5", 2050, "pod", None))
        .unwrap();
    learn(
        &mut ordered,
        "5 eni-node 10.0.0.5 10.9.9.9 2100 2160 egress OK",
    );
    assert_eq!(
        app_at(&ordered, "10.0.0.5", 2130),
        (Rule::Declared, Some("pod".into()))
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2130),
        (Rule::Declared, Some("pod".into())),
        "arrival order of metadata vs flows changed the answer"
    );
}

/// The same with a snapshot (no interface_id column, as CSV snapshots
/// often have) taken at 2050 that lists the pod.
#[test]
fn late_snapshot_without_interface_is_not_overridden_by_an_earlier_learned_span() {
    let mut index = double_loss("eni-node", "node");
    index
        .apply(&MetadataEvent::Snapshot {
            at: 2050,
            owners: vec![SnapshotOwner {
                ip: ip("10.0.0.5"),
                workload: app("pod"),
                interface_id: None,
            }],
            within: Vec::new(),
            except: Vec::new(),
        })
        .unwrap();
    assert_eq!(
        app_at(&index, "10.0.0.5", 2130),
        (Rule::Declared, Some("pod".into()))
    );
}

// ---------------------------------------------------------------------------
// 2. "A declaration that began inside the span wins" is checked against the
//    start of the owner's run of marks, not of the declaration: the old
//    holder re-acquiring the IP inside the span loses, where any third
//    workload (the commit's test) wins.
// ---------------------------------------------------------------------------

#[test]
fn old_holder_reassigned_inside_the_span_wins_like_a_third_workload() {
    // Control: a third workload declared at 2130 answers at 2140.
    let mut third = double_loss("eni-new", "new");
    third
        .apply(&assign("10.0.0.5", 2130, "third", Some("eni-third")))
        .unwrap();
    assert_eq!(
        app_at(&third, "10.0.0.5", 2140),
        (Rule::Declared, Some("third".into()))
    );
    // The old holder re-assigned at 2130 (its ENI named) must answer too.
    let mut index = double_loss("eni-new", "new");
    index
        .apply(&assign("10.0.0.5", 2130, "old", Some("eni-old")))
        .unwrap();
    assert_eq!(
        app_at(&index, "10.0.0.5", 2140),
        (Rule::Declared, Some("old".into()))
    );
}

// ---------------------------------------------------------------------------
// 3. EKS: pods declared WITH their node's ENI make it shared, so its flows
//    teach nothing. The new "an ENI moves with its addresses" rule ends
//    every pod address whose mark predates an attachment mark of the node,
//    so a node whose `interface` event is stamped after its pods (an ENI
//    poller's first sighting, a restart of that source, a relabelled node)
//    makes the ENI single-owner, and the pods' flows override the pods'
//    own declarations with the node.
// ---------------------------------------------------------------------------

#[test]
fn node_eni_attachment_stamped_after_its_pods_keeps_the_eni_shared() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.10", 1000, "node", Some("eni-node")))
        .unwrap();
    index
        .apply(&assign("10.0.0.50", 1100, "pod-a", Some("eni-node")))
        .unwrap();
    // The ENI poller first reports the node's ENI at 1200.
    attach(&mut index, "eni-node", 1200, "node");
    learn(
        &mut index,
        "5 eni-node 10.0.0.50 10.9.9.9 1300 1360 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.50", 1330),
        (Rule::Declared, Some("pod-a".into())),
        "the pod's own declaration (on the node's ENI) was overridden by the node"
    );
    assert_eq!(
        index.interface_owner_at("eni-node", 1330),
        InterfaceOwner::Shared
    );
}

/// The node's workload changes (a label) and its ENI's attachment is
/// re-declared: the node did not move, its pods are still on the ENI.
#[test]
fn relabelled_node_does_not_take_its_pods_ips() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-node", 1000, "node");
    index
        .apply(&assign("10.0.0.50", 1100, "pod-a", Some("eni-node")))
        .unwrap();
    attach(&mut index, "eni-node", 2000, "node-relabelled");
    learn(
        &mut index,
        "5 eni-node 10.0.0.50 10.9.9.9 2100 2160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.50", 2130),
        (Rule::Declared, Some("pod-a".into()))
    );
}

// ---------------------------------------------------------------------------
// 4. Maintenance forgets the placement the moved-ENI override depends on:
//    `prune_before` drops an address that does not count at the cutoff
//    (the attachment moved) and `forget_placements` follows, so after
//    maintenance the same flows are conflicts and the stale declaration
//    answers again.
// ---------------------------------------------------------------------------

#[test]
fn maintenance_keeps_a_moved_eni_overriding() {
    let config = IndexConfig {
        retention_secs: 3600,
        reorder_window_secs: 60,
        ..IndexConfig::default()
    };
    let mut index = AttributionIndex::new(config);
    attach(&mut index, "eni-float", 1000, "a");
    index
        .apply(&assign("10.0.0.7", 1000, "a", Some("eni-float")))
        .unwrap();
    attach(&mut index, "eni-float", 2000, "b");
    learn(
        &mut index,
        "5 eni-float 10.0.0.7 10.9.9.9 2100 2160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.7", 2130),
        (Rule::Learned, Some("b".into()))
    );
    // Time moves on (believed steps); the floating ENI is re-reported.
    for k in 1..=3 {
        index
            .apply(&assign("10.0.9.9", 2000 + 3000 * k, "other", None))
            .unwrap();
    }
    attach(&mut index, "eni-float", 11_000, "b");
    // Control: without maintenance the flows below override.
    let mut unmaintained = index.clone();
    learn(
        &mut unmaintained,
        "5 eni-float 10.0.0.7 10.9.9.9 11100 11160 egress OK",
    );
    assert_eq!(
        app_at(&unmaintained, "10.0.0.7", 11_130),
        (Rule::Learned, Some("b".into()))
    );
    index.maintain();
    // 10.0.0.7 is still declared to `a` (its release was lost) ...
    assert_eq!(index.history(ip("10.0.0.7")).len(), 1);
    // ... and b's flows keep contradicting it, as they did before maintenance.
    learn(
        &mut index,
        "5 eni-float 10.0.0.7 10.9.9.9 11100 11160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.7", 11_130),
        (Rule::Learned, Some("b".into())),
        "after maintain the same flows no longer override"
    );
}

// ---------------------------------------------------------------------------
// 5. Restart: placements are rebuilt from the interfaces in hash order and
//    capped at 16 per IP, so for an IP that more than 16 ENIs held within
//    the retention (churn), which placement survives a load is arbitrary:
//    the current holder's may go, and a loaded index stops overriding.
// ---------------------------------------------------------------------------

#[test]
fn a_loaded_index_overrides_like_the_one_saved_when_an_ip_had_many_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrib.idx");
    let mut differing = Vec::new();
    for variant in 0..12 {
        let mut index = AttributionIndex::default();
        // 10.0.0.5 passed through 20 ENIs (each release received).
        for n in 0..20i64 {
            let at = 1000 + 100 * n;
            index
                .apply(&assign(
                    "10.0.0.5",
                    at,
                    &format!("w{n}"),
                    Some(&format!("eni-{variant}-{n}")),
                ))
                .unwrap();
            index
                .apply(&MetadataEvent::Release {
                    ip: ip("10.0.0.5"),
                    at: at + 90,
                })
                .unwrap();
        }
        // The last holder's release and the new holder's assign are lost.
        index
            .apply(&assign(
                "10.0.0.5",
                3000,
                "cur",
                Some(&format!("eni-{variant}-cur")),
            ))
            .unwrap();
        attach(&mut index, "eni-new", 3500, "new");
        learn(
            &mut index,
            "5 eni-new 10.0.0.5 10.9.9.9 3600 3660 egress OK",
        );
        assert_eq!(
            app_at(&index, "10.0.0.5", 3630),
            (Rule::Learned, Some("new".into()))
        );
        index.save(&path).unwrap();
        let mut loaded = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
        learn(
            &mut index,
            "5 eni-new 10.0.0.5 10.9.9.9 4000 4060 egress OK",
        );
        learn(
            &mut loaded,
            "5 eni-new 10.0.0.5 10.9.9.9 4000 4060 egress OK",
        );
        if app_at(&index, "10.0.0.5", 4030) != app_at(&loaded, "10.0.0.5", 4030) {
            differing.push((
                variant,
                app_at(&index, "10.0.0.5", 4030),
                app_at(&loaded, "10.0.0.5", 4030),
            ));
        }
    }
    assert!(
        differing.is_empty(),
        "live and loaded indexes answer differently: {differing:?}"
    );
}

// ---------------------------------------------------------------------------
// 6. Gap-joining: a flow that overrides a declaration begun before it is
//    joined to an earlier overriding span of the same owner; the joined span
//    starts before that declaration, so the later flow's override is lost
//    (the answer for its time depends on whether an unrelated earlier flow
//    existed).
// ---------------------------------------------------------------------------

#[test]
fn joining_an_earlier_overriding_span_does_not_undo_a_later_override() {
    let scenario = |with_earlier_flow: bool| {
        let mut index = AttributionIndex::default();
        index
            .apply(&assign("10.0.0.5", 1000, "old", Some("eni-old")))
            .unwrap();
        attach(&mut index, "eni-new", 2000, "new");
        if with_earlier_flow {
            learn(
                &mut index,
                "5 eni-new 10.0.0.5 10.9.9.9 2100 2160 egress OK",
            );
        }
        index
            .apply(&assign("10.0.0.5", 2170, "third", Some("eni-third")))
            .unwrap();
        learn(
            &mut index,
            "5 eni-new 10.0.0.5 10.9.9.9 2200 2260 egress OK",
        );
        app_at(&index, "10.0.0.5", 2230)
    };
    assert_eq!(scenario(false), (Rule::Learned, Some("new".into())));
    assert_eq!(
        scenario(true),
        scenario(false),
        "an earlier flow changed the answer for a later one"
    );
}

// ---------------------------------------------------------------------------
// Checks that passed (kept as regression tests).
// ---------------------------------------------------------------------------

/// IPv4-mapped IPv6 on either side (flow or declaration) is the same IP.
#[test]
fn ipv4_mapped_addresses_override_like_ipv4() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("::ffff:10.0.0.5", 1000, "old", Some("eni-old")))
        .unwrap();
    attach(&mut index, "eni-new", 2000, "new");
    learn(
        &mut index,
        "5 eni-new ::ffff:10.0.0.5 10.9.9.9 2100 2160 egress OK",
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2130),
        (Rule::Learned, Some("new".into()))
    );
    assert_eq!(index.stats().learned_overrides, 1);
}

/// A save and load keeps answers, and a version 3 file whose span
/// overrides an unknown workload, or its own owner, is refused.
#[test]
fn overriding_span_round_trips_and_bad_overridden_owners_are_refused() {
    let index = double_loss("eni-new", "new");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrib.idx");
    index.save(&path).unwrap();
    let loaded = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    for t in [999, 1500, 2099, 2100, 2130, 2160, 2161] {
        assert_eq!(
            app_at(&index, "10.0.0.5", t),
            app_at(&loaded, "10.0.0.5", t)
        );
    }
    let bytes = std::fs::read(&path).unwrap();
    let body = &bytes[8..bytes.len() - 4];
    // The span's last field (the owner it overrides), then the extras (8 bytes).
    let at = body.len() - 8 - 4;
    let overridden = u32::from_le_bytes(body[at..at + 4].try_into().unwrap());
    let owner = u32::from_le_bytes(body[at - 4..at].try_into().unwrap());
    assert_ne!(overridden, 0);
    for bad_value in [9999u32, owner] {
        let mut bad = body.to_vec();
        bad[at..at + 4].copy_from_slice(&bad_value.to_le_bytes());
        let mut file = b"TRWLIDX3".to_vec();
        file.extend_from_slice(&bad);
        file.extend_from_slice(&crc32fast::hash(&bad).to_le_bytes());
        std::fs::write(&path, &file).unwrap();
        assert!(AttributionIndex::load(&path, IndexConfig::default()).is_err());
    }
}
