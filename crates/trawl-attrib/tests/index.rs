//! The index's rules one by one: declared, learned (from flows), user
//! networks, AWS ranges (from a file shaped like AWS's `ip-ranges.json`),
//! internet and unknown; the horizon; pruning and the mark bound; saving and
//! loading, and refusing a damaged file.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{app, app_at, assign, ip};
use trawl_attrib::{
    ApplyError, AttributionIndex, IndexConfig, InterfaceOwner, MetadataEvent, NetworkEntry,
    PersistError, Rule,
};
use trawl_flowlog::{LineDecoder, LogFormat};

#[test]
fn fallbacks_in_order_declared_network_aws_internet_unknown() {
    let mut index = AttributionIndex::default();
    index.apply(&assign("10.1.2.3", 1000, "api", None)).unwrap();
    index.add_networks(&[NetworkEntry {
        cidr: "10.1.0.0/16".parse().unwrap(),
        name: Some("prod-east".into()),
        region: Some("us-east-1".into()),
        ..NetworkEntry::default()
    }]);
    let json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ip-ranges.json"
    ))
    .unwrap();
    assert_eq!(index.add_aws_ip_ranges(&json, "ip-ranges.json").unwrap(), 7);

    assert_eq!(
        app_at(&index, "10.1.2.3", 1500),
        (Rule::Declared, Some("api".into()))
    );
    let before = index.owner_at(ip("10.1.2.3"), 999);
    assert_eq!(before.rule, Rule::Network);
    assert_eq!(
        index.workload(before.owner).unwrap().labels["network"],
        "prod-east"
    );
    assert_eq!(before.prefix.unwrap().to_string(), "10.1.0.0/16");
    assert_eq!(
        app_at(&index, "52.94.1.7", 0),
        (Rule::AwsIpRanges, Some("DYNAMODB".into()))
    );
    assert_eq!(
        app_at(&index, "52.94.200.1", 0),
        (Rule::AwsIpRanges, Some("AMAZON".into()))
    );
    assert_eq!(
        app_at(&index, "3.5.1.1", 0),
        (Rule::AwsIpRanges, Some("S3".into()))
    );
    assert_eq!(
        app_at(&index, "2600:1f18::5", 0),
        (Rule::AwsIpRanges, Some("EC2".into()))
    );
    let s3 = index.owner_at(ip("3.5.1.1"), 0);
    assert_eq!(
        index.workload(s3.owner).unwrap().kind.as_deref(),
        Some("aws_service")
    );
    assert_eq!(
        index.workload(s3.owner).unwrap().region.as_deref(),
        Some("us-east-1")
    );
    let public = index.owner_at(ip("8.8.8.8"), 0);
    assert_eq!(public.rule, Rule::Internet);
    assert_eq!(
        index.workload(public.owner).unwrap().kind.as_deref(),
        Some("internet")
    );
    assert_eq!(index.workload(public.owner).unwrap().app, None);
    assert_eq!(index.owner_at(ip("192.168.7.7"), 0).rule, Rule::Unknown);
}

#[test]
fn malformed_ip_ranges_names_the_file() {
    let mut index = AttributionIndex::default();
    let error = index
        .add_aws_ip_ranges(br#"{"prefixes":[{"ip_prefix":"nope"}]}"#, "ranges.json")
        .unwrap_err();
    assert!(error.to_string().starts_with("ranges.json: "), "{error}");
}

fn v5_flow(line: &str) -> (LineDecoder, String) {
    let format = LogFormat::parse(
        "version interface-id srcaddr dstaddr start end flow-direction log-status",
    )
    .unwrap();
    (LineDecoder::new(format), line.to_string())
}

#[test]
fn flows_at_a_known_interface_teach_its_owner() {
    let mut index = AttributionIndex::default();
    index
        .apply(&MetadataEvent::Interface {
            interface_id: "eni-b".into(),
            at: 900,
            workload: app("billing"),
        })
        .unwrap();
    let (decoder, line) = v5_flow("5 eni-b 10.0.0.7 10.9.9.9 1000 1060 egress OK");
    index.learn_from_flow(&decoder.decode(line.as_bytes()).unwrap());
    let (decoder, line) = v5_flow("5 eni-b 10.9.9.9 10.0.0.7 1100 1160 ingress OK");
    index.learn_from_flow(&decoder.decode(line.as_bytes()).unwrap());
    let (decoder, line) = v5_flow("5 eni-unknown 10.0.0.8 10.9.9.9 1000 1060 egress OK");
    index.learn_from_flow(&decoder.decode(line.as_bytes()).unwrap());
    assert_eq!(
        app_at(&index, "10.0.0.7", 1130),
        (Rule::Learned, Some("billing".into()))
    );
    let span = index.owner_at(ip("10.0.0.7"), 1000);
    assert_eq!((span.from, span.to), (Some(1000), Some(1160)));
    assert_eq!(index.owner_at(ip("10.0.0.7"), 1200).rule, Rule::Unknown);
    assert_eq!(index.owner_at(ip("10.9.9.9"), 1000).rule, Rule::Unknown);
    assert_eq!(index.stats().heartbeats, 2);
    assert_eq!(index.stats().heartbeats_unmapped, 1);
}

/// A declaration that does not say where the IP is wins over what flows
/// teach: the flow of `new`'s interface teaches nothing for an address
/// declared to `old` then (issue 13 #4: on a shared or moved interface that
/// evidence names the wrong owner), and teaches where nothing is declared.
/// (A declaration placing the IP on another interface is contradicted by
/// such a flow: `tests/interfaces.rs`.)
#[test]
fn learned_evidence_never_overrides_a_declaration_without_an_interface() {
    let mut index = AttributionIndex::default();
    index.apply(&assign("10.0.0.5", 1000, "old", None)).unwrap();
    index
        .apply(&MetadataEvent::Release {
            ip: ip("10.0.0.5"),
            at: 3000,
        })
        .unwrap();
    index
        .apply(&MetadataEvent::Interface {
            interface_id: "eni-new".into(),
            at: 2000,
            workload: app("new"),
        })
        .unwrap();
    index.learn(ip("10.0.0.5"), "eni-new", 2100, 2200);
    index.learn(ip("10.0.0.5"), "eni-new", 3100, 3200);
    assert_eq!(
        app_at(&index, "10.0.0.5", 1500),
        (Rule::Declared, Some("old".into()))
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 2150),
        (Rule::Declared, Some("old".into()))
    );
    assert_eq!(
        app_at(&index, "10.0.0.5", 3150),
        (Rule::Learned, Some("new".into()))
    );
    assert_eq!(index.stats().learned_conflicts, 1);
    assert_eq!(index.stats().heartbeats, 1);
}

#[test]
fn without_flow_direction_the_side_declared_to_the_interface_is_local() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.5", 1000, "api", Some("eni-api")))
        .unwrap();
    let format = LogFormat::default();
    let decoder = LineDecoder::new(format);
    let line = "2 123456789010 eni-api 10.0.0.5 203.0.113.9 443 51000 6 10 840 1100 1160 ACCEPT OK";
    index.learn_from_flow(&decoder.decode(line.as_bytes()).unwrap());
    assert_eq!(index.stats().heartbeats, 1);
    assert_eq!(index.owner_at(ip("10.0.0.5"), 1130).rule, Rule::Declared);
}

#[test]
fn horizon_follows_the_newest_event_and_what_sources_vouch_for() {
    let config = IndexConfig {
        reorder_window_secs: 60,
        ..IndexConfig::default()
    };
    let mut index = AttributionIndex::new(config);
    index.apply(&assign("10.0.0.1", 1000, "a", None)).unwrap();
    assert_eq!(index.horizon(), 940);
    assert!(index.owner_at(ip("10.0.0.1"), 940).settled);
    assert!(!index.owner_at(ip("10.0.0.1"), 941).settled);
    index.advance_horizon(5000);
    assert!(index.owner_at(ip("10.0.0.1"), 4000).settled);
    // A source that has not looked past 3000 (a cloud inventory) caps it.
    index.cap_horizon(Some(3000));
    assert_eq!(index.horizon(), 3000);
    assert!(!index.owner_at(ip("10.0.0.1"), 4000).settled);
    index.cap_horizon(None);
    assert_eq!(index.horizon(), 5000);
}

#[test]
fn retention_prunes_old_history_but_keeps_the_current_owner() {
    let config = IndexConfig {
        reorder_window_secs: 10,
        retention_secs: 1000,
        ..IndexConfig::default()
    };
    let mut index = AttributionIndex::new(config);
    for i in 0..50 {
        index
            .apply(&assign("10.0.0.1", 100 * i, &format!("app{}", i % 3), None))
            .unwrap();
    }
    index
        .apply(&MetadataEvent::Release {
            ip: ip("10.0.0.2"),
            at: 10,
        })
        .unwrap();
    let marks_before = index.mark_count();
    index.maintain();
    assert!(
        index.mark_count() < marks_before / 3,
        "{} of {marks_before}",
        index.mark_count()
    );
    assert_eq!(
        app_at(&index, "10.0.0.1", 4950),
        (Rule::Declared, Some("app1".into()))
    );
    assert_eq!(index.owner_at(ip("10.0.0.1"), 100).rule, Rule::Unknown);
    assert_eq!(
        index.ip_count(),
        1,
        "an IP with only old history is forgotten"
    );
}

#[test]
fn mark_bound_prunes_further() {
    let config = IndexConfig {
        reorder_window_secs: 10,
        marks_max: 20,
        ..IndexConfig::default()
    };
    let mut index = AttributionIndex::new(config);
    for i in 0..200 {
        index
            .apply(&assign("10.0.0.1", 100 * i, &format!("app{}", i % 2), None))
            .unwrap();
    }
    index.maintain();
    assert!(index.mark_count() <= 20, "{}", index.mark_count());
    assert!(index.stats().pruned_marks >= 180);
}

#[test]
fn saved_index_loads_with_the_same_answers_and_damage_is_refused() {
    let mut index = AttributionIndex::default();
    index
        .apply(&assign("10.0.0.1", 1000, "a", Some("eni-a")))
        .unwrap();
    index.apply(&assign("10.0.0.1", 2000, "b", None)).unwrap();
    index
        .apply(&MetadataEvent::Release {
            ip: ip("2001:db8::7"),
            at: 1500,
        })
        .unwrap();
    index
        .apply(&assign("2001:db8::7", 1200, "c", None))
        .unwrap();
    index.learn(ip("10.0.0.9"), "eni-a", 1000, 1100);
    index.advance_horizon(2500);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrib.idx");
    index.save(&path).unwrap();
    let loaded = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    for addr in ["10.0.0.1", "10.0.0.9", "2001:db8::7", "8.8.8.8"] {
        for t in [999, 1000, 1050, 1499, 1500, 2000, 3000] {
            let (a, b) = (index.owner_at(ip(addr), t), loaded.owner_at(ip(addr), t));
            assert_eq!(a.rule, b.rule, "{addr} at {t}");
            assert_eq!(
                index.workload(a.owner),
                loaded.workload(b.owner),
                "{addr} at {t}"
            );
            assert_eq!(
                (a.from, a.to, a.settled),
                (b.from, b.to, b.settled),
                "{addr} at {t}"
            );
        }
    }
    // eni-a carried a's address until it passed to b (not on eni-a).
    for t in [999, 1000, 1500, 1999, 2000, 3000] {
        assert_eq!(
            index.interface_owner_at("eni-a", t),
            loaded.interface_owner_at("eni-a", t),
            "eni-a at {t}"
        );
    }
    let InterfaceOwner::One(owner) = loaded.interface_owner_at("eni-a", 1500) else {
        panic!("eni-a has one owner at 1500");
    };
    assert_eq!(loaded.workload(owner), Some(&app("a")));
    assert_eq!(
        loaded.interface_owner_at("eni-a", 2000),
        InterfaceOwner::Unknown
    );

    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let error = AttributionIndex::load(&path, IndexConfig::default()).unwrap_err();
    assert!(matches!(error, PersistError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    std::fs::write(&path, b"TRWLIDX1").unwrap();
    assert!(AttributionIndex::load(&path, IndexConfig::default()).is_err());
}

#[test]
fn duplicate_and_overlapping_events_are_counted() {
    let mut index = AttributionIndex::default();
    index.apply(&assign("10.0.0.1", 1000, "a", None)).unwrap();
    index.apply(&assign("10.0.0.1", 1000, "a", None)).unwrap();
    index.apply(&assign("10.0.0.1", 1100, "b", None)).unwrap();
    index.apply(&assign("10.0.0.1", 1100, "c", None)).unwrap();
    let stats = index.stats();
    assert_eq!(
        (
            stats.events,
            stats.unchanged_marks,
            stats.overlaps,
            stats.conflicts
        ),
        (4, 1, 1, 1)
    );
    assert_eq!(app_at(&index, "10.0.0.1", 1200).1, Some("c".into()));
    let refused = index.apply(&assign("10.0.0.1", -5, "a", None));
    assert!(refused.is_err());
    assert_eq!(index.stats().refused_events, 1);
}

/// Regression: a learned span joined by an earlier heartbeat moved its
/// start before the span listed ahead of it, and saving the index then
/// failed its own check ("learned spans out of order").
#[test]
fn learned_span_extended_backwards_stays_in_order_and_saves() {
    let mut index = AttributionIndex::default();
    for (eni, name) in [("eni-a", "a"), ("eni-b", "b")] {
        index
            .apply(&MetadataEvent::Interface {
                interface_id: eni.into(),
                at: 0,
                workload: app(name),
            })
            .unwrap();
    }
    index.learn(ip("10.0.0.5"), "eni-a", 1000, 1010);
    index.learn(ip("10.0.0.5"), "eni-b", 1200, 1210);
    // Joins b's span (within the gap) and extends it to start before a's.
    index.learn(ip("10.0.0.5"), "eni-b", 900, 1100);
    let spans = &index.records().next().unwrap().1.learned;
    assert!(
        spans.windows(2).all(|w| w[0].from <= w[1].from),
        "{spans:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    index.save(&dir.path().join("index")).unwrap();
}

/// Issue 13 #2 (review: one_future_metadata_event_prunes_history_and_disables_holding):
/// one event stamped ten years ahead moved the newest event time there, so
/// maintenance pruned every IP's history, the horizon passed every flow
/// (nothing was held for lagging metadata), and the state was saved.
#[test]
fn one_future_metadata_event_prunes_history_and_disables_holding() {
    for stray_at in [1_000_000 + 3650 * 86_400, 4_000_000_000] {
        let mut index = AttributionIndex::default();
        index
            .apply(&assign("10.0.0.5", 1_000_000, "a", None))
            .unwrap();
        index
            .apply(&assign("10.0.0.5", 1_000_600, "b", None))
            .unwrap();
        index
            .apply(&assign("10.0.0.6", 1_000_900, "c", None))
            .unwrap();
        let settled_before = index.owner_at(ip("10.0.0.8"), 1_001_000).settled;
        index
            .apply(&assign("10.0.0.250", stray_at, "typo", None))
            .unwrap();
        index.maintain();
        assert_eq!(
            app_at(&index, "10.0.0.5", 1_000_100).1.as_deref(),
            Some("a"),
            "{stray_at}"
        );
        assert_eq!(
            index.owner_at(ip("10.0.0.8"), 1_001_000).settled,
            settled_before,
            "{stray_at}"
        );
        assert_eq!(index.newest_event_at(), 1_000_900, "{stray_at}");
        assert_eq!(index.stats().future_events, 1);
        // The stray event was applied all the same.
        assert_eq!(
            app_at(&index, "10.0.0.250", stray_at.min(4_000_000_000))
                .1
                .as_deref(),
            Some("typo")
        );
        // A vouched horizon past the wall clock is not believed either.
        index.advance_horizon(4_100_000_000);
        assert!(index.horizon() < 4_000_000_000);
    }
}

/// Issue 13 #13. A metadata file applied again at start: an assignment whose
/// release came from another source was resurrected once retention had
/// pruned both marks (the IP was owned again, open-ended). Events before
/// the pruned history are now refused, and that point is saved.
#[test]
fn reapplied_metadata_file_resurrects_a_pruned_assignment() {
    let mut index = AttributionIndex::default();
    let day = 86_400;
    index
        .apply(&assign("10.0.0.7", 1_000_000, "old-app", None))
        .unwrap();
    let release = MetadataEvent::Release {
        ip: ip("10.0.0.7"),
        at: 1_000_000 + day,
    };
    index.apply(&release).unwrap();
    // Time passes (other events, half an hour apart), retention prunes
    // the IP's history.
    for step in 1..=10 * 48 {
        let at = 1_000_000 + day + step * 1_800;
        index
            .apply(&assign("10.0.0.99", at, "other", None))
            .unwrap();
    }
    index.maintain();
    let now = 1_000_000 + 10 * day;
    assert_eq!(app_at(&index, "10.0.0.7", now).1, None);
    assert!(index.pruned_before() > 1_000_000 + day);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.snapshot");
    index.save(&path).unwrap();
    let mut index = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    // Restart: the file is applied again.
    let again = index.apply(&assign("10.0.0.7", 1_000_000, "old-app", None));
    assert!(
        matches!(again, Err(ApplyError::BeforePrunedHistory { .. })),
        "{again:?}"
    );
    index.maintain();
    assert_eq!(
        app_at(&index, "10.0.0.7", now).1,
        None,
        "a released IP is owned again after a restart"
    );
    assert_eq!(index.stats().before_pruned_events, 1);
}

#[test]
fn source_positions_are_saved_with_the_index_and_bounded() {
    let mut index = AttributionIndex::default();
    assert!(index.set_source_position("metadata-file:/etc/trawl/a.jsonl", r#"{"offset":10}"#));
    assert!(!index.set_source_position("big", &"x".repeat(5000)));
    // Past the bound, the position set longest ago is forgotten.
    let mut full = AttributionIndex::default();
    for i in 0..trawl_attrib::SOURCE_POSITIONS_MAX {
        full.set_source_position(&format!("f{i}"), "{}");
    }
    full.set_source_position("f0", "{}");
    assert!(full.set_source_position("new", "{}"));
    assert!(full.source_position("new").is_some() && full.source_position("f0").is_some());
    assert!(full.source_position("f1").is_none(), "the stalest went");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.snapshot");
    index.save(&path).unwrap();
    let loaded = AttributionIndex::load(&path, IndexConfig::default()).unwrap();
    assert_eq!(
        loaded.source_position("metadata-file:/etc/trawl/a.jsonl"),
        Some(r#"{"offset":10}"#)
    );
    assert_eq!(loaded.source_positions().len(), 1);
}

/// A snapshot scoped to some networks (`within`) releases the unlisted IPs
/// in them only: a poller of one region's VPCs leaves another's alone.
#[test]
fn a_snapshot_within_networks_releases_only_their_unlisted_ips() {
    let mut index = AttributionIndex::default();
    for line in [
        r#"{"type":"assign","ip":"10.1.0.5","at":1000,"workload":{"app":"a"}}"#,
        r#"{"type":"assign","ip":"10.2.0.5","at":1000,"workload":{"app":"b"}}"#,
        r#"{"type":"snapshot","at":2000,"within":["10.1.0.0/16"],"owners":[]}"#,
    ] {
        let event: MetadataEvent = serde_json::from_str(line).unwrap();
        index.apply(&event).unwrap();
    }
    let app = |index: &AttributionIndex, ip: &str| {
        let answer = index.owner_at(ip.parse().unwrap(), 2500);
        index.workload(answer.owner).and_then(|w| w.app.clone())
    };
    assert_eq!(
        app(&index, "10.1.0.5"),
        None,
        "in the snapshot's network, unlisted: released"
    );
    assert_eq!(
        app(&index, "10.2.0.5"),
        Some("b".into()),
        "outside it: kept"
    );
    // An assign arriving late (within the window) in the network is
    // released by the snapshot after it; one outside is not.
    for line in [
        r#"{"type":"assign","ip":"10.1.0.6","at":1500,"workload":{"app":"c"}}"#,
        r#"{"type":"assign","ip":"10.3.0.6","at":1500,"workload":{"app":"d"}}"#,
    ] {
        index.apply(&serde_json::from_str(line).unwrap()).unwrap();
    }
    assert_eq!(app(&index, "10.1.0.6"), None);
    assert_eq!(app(&index, "10.3.0.6"), Some("d".into()));
}
