//! Learning from a batch of flows (`learn_from_flows`, which joins a
//! repeated record's span again without its lookups) against
//! `learn_from_flow` one record at a time: same spans taught, counters,
//! span lists and answers. From the cold review of the change; it also
//! reaches tiny `learned_spans_per_ip_max` (the eviction path of
//! `join_or_insert`), gap 0, wide times, records with missing times,
//! non-OK status and no direction between repeats, and overriding spans
//! interleaved with plain ones of other owners.

mod common;

use common::{app, assign, attach, ip};
use proptest::prelude::*;
use trawl_attrib::{AttributionIndex, IndexConfig, MetadataEvent};
use trawl_flowlog::{FlowRecord, LineDecoder, LogFormat};

const ADDRESSES: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.9.9", "52.1.1.1"];
const INTERFACES: [&str; 6] = [
    "eni-a",
    "eni-b",
    "eni-c",
    "eni-shared",
    "eni-unknown",
    "eni-d",
];

fn index(spans_max: usize, gap: u32) -> AttributionIndex {
    let mut index = AttributionIndex::new(IndexConfig {
        learned_spans_per_ip_max: spans_max,
        learned_gap_secs: gap,
        wall_clock_secs: Some(2_000_000_000),
        ..IndexConfig::default()
    });
    attach(&mut index, "eni-a", 0, "a");
    attach(&mut index, "eni-b", 0, "b");
    attach(&mut index, "eni-c", 0, "c");
    attach(&mut index, "eni-c", 1200, "d");
    attach(&mut index, "eni-d", 0, "d");
    attach(&mut index, "eni-shared", 0, "a");
    index
        .apply(&MetadataEvent::Interface {
            interface_id: "eni-shared".into(),
            at: 0,
            workload: app("b"),
        })
        .expect("attach");
    for event in [
        assign("10.0.0.1", 0, "a", Some("eni-a")),
        assign("10.0.0.2", 100, "b", Some("eni-b")),
        assign("10.0.0.3", 200, "a", None),
        assign("10.0.0.1", 900, "a", Some("eni-a")),
        assign("10.0.0.2", 1500, "c", Some("eni-c")),
    ] {
        index.apply(&event).expect("assign");
    }
    index
}

/// interface, src, dst, start (None: `-`), secs, direction, status.
type Flow = (usize, usize, usize, Option<i64>, i64, usize, usize);

fn line(flow: &Flow) -> String {
    let (interface, src, dst, start, secs, direction, status) = *flow;
    let (start, end) = match start {
        Some(s) => (s.to_string(), (s + secs).to_string()),
        None => ("-".to_string(), "-".to_string()),
    };
    format!(
        "5 {} {} {} {} {} {} {}",
        INTERFACES[interface],
        ADDRESSES[src],
        ADDRESSES[dst],
        start,
        end,
        ["egress", "ingress", "-"][direction],
        ["OK", "NODATA", "SKIPDATA"][status]
    )
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        0..6usize,
        0..5usize,
        0..5usize,
        prop::option::weighted(0.9, 0..40i64),
        0..4i64,
        0..3usize,
        prop::sample::select(vec![0usize, 0, 0, 0, 1, 2]),
    )
        .prop_map(|(i, s, d, start, secs, dir, st)| {
            (i, s, d, start.map(|s| s * 50), secs * 300, dir, st)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn batch_equals_one_at_a_time_with_eviction_and_interleavings(
        flows in prop::collection::vec((flow(), 0..4usize), 1..80),
        spans_max in 1usize..4,
        gap in prop::sample::select(vec![0u32, 30, 120]),
    ) {
        // Each flow, then (kind 1) its connection's other record, (kind 2)
        // a non-OK / time-less / direction-less record and then the repeat,
        // (kind 3) the same record again.
        let mut lines = Vec::new();
        for (flow, kind) in &flows {
            lines.push(line(flow));
            let (i, s, d, start, secs, direction, status) = *flow;
            match kind {
                1 => lines.push(line(&(i, d, s, start, secs, [1, 0, 2][direction], status))),
                2 => {
                    lines.push(line(&(i, s, d, start, secs, direction, 1)));
                    lines.push(line(&(i, s, d, None, secs, direction, 0)));
                    lines.push(line(&((i + 1) % 6, s, d, start, secs, 2, 0)));
                    lines.push(line(&(i, d, s, start, secs, [1, 0, 2][direction], status)));
                }
                3 => lines.push(line(flow)),
                _ => {}
            }
        }
        let format = LogFormat::parse(
            "version interface-id srcaddr dstaddr start end flow-direction log-status",
        )
        .expect("format");
        let decoder = LineDecoder::new(format);
        let records: Vec<FlowRecord<'_>> = lines
            .iter()
            .map(|l| decoder.decode(l.as_bytes()).expect("line"))
            .collect();

        let mut one_by_one = index(spans_max, gap);
        let taught: Vec<_> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| one_by_one.learn_from_flow(r).map(|span| (i, span)))
            .collect();
        let mut batch = index(spans_max, gap);
        let mut batch_taught = Vec::new();
        batch.learn_from_flows(&records, |record, span| {
            let i = records.iter().position(|r| std::ptr::eq(r, record)).expect("record");
            batch_taught.push((i, span));
        });

        prop_assert_eq!(&batch_taught, &taught);
        prop_assert_eq!(batch.stats(), one_by_one.stats());
        let spans = |index: &AttributionIndex| {
            let mut all: Vec<_> = index
                .records()
                .map(|(ip, r)| (ip, r.learned.to_vec()))
                .collect();
            all.sort_by_key(|(ip, _)| *ip);
            all
        };
        prop_assert_eq!(spans(&batch), spans(&one_by_one));
        for address in ADDRESSES {
            for t in (0..2400).step_by(25) {
                prop_assert_eq!(batch.owner_at(ip(address), t), one_by_one.owner_at(ip(address), t));
            }
        }
    }
}
