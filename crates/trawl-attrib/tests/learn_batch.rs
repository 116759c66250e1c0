//! Learning from a batch of flows (`AttributionIndex::learn_from_flows`,
//! which repeats the outcome of a record that only repeats the one before
//! it) against learning from each flow in turn (`learn_from_flow`): same
//! spans taught, same counters, same answers afterwards. The flows mix
//! known, unknown and shared interfaces, declared and undeclared
//! addresses, both directions and none, and records repeated back to back.

mod common;

use common::{app, assign, attach, ip};
use proptest::prelude::*;
use trawl_attrib::{AttributionIndex, MetadataEvent};
use trawl_flowlog::{FlowRecord, LineDecoder, LogFormat};

const ADDRESSES: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.9.9", "52.1.1.1"];
const INTERFACES: [&str; 5] = ["eni-a", "eni-b", "eni-c", "eni-shared", "eni-unknown"];

/// Interfaces of apps a, b and c (c's moves to d at 400), a shared one,
/// and declarations that place some addresses on them.
fn index() -> AttributionIndex {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-a", 0, "a");
    attach(&mut index, "eni-b", 0, "b");
    attach(&mut index, "eni-c", 0, "c");
    attach(&mut index, "eni-c", 400, "d");
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
    ] {
        index.apply(&event).expect("assign");
    }
    index
}

/// A flow line: interface, source, destination, start, length, direction
/// (`-` for none), status.
type Flow = (usize, usize, usize, i64, i64, usize, bool);

fn line(flow: &Flow) -> String {
    let (interface, src, dst, start, secs, direction, ok) = *flow;
    format!(
        "5 {} {} {} {} {} {} {}",
        INTERFACES[interface],
        ADDRESSES[src],
        ADDRESSES[dst],
        start,
        start + secs,
        ["egress", "ingress", "-"][direction],
        if ok { "OK" } else { "NODATA" }
    )
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        0..5usize,
        0..5usize,
        0..5usize,
        0..10i64,
        0..3i64,
        0..3usize,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(i, s, d, start, secs, dir, ok)| (i, s, d, start * 60, secs * 45, dir, ok))
}

proptest! {
    #[test]
    fn a_batch_learns_what_one_flow_at_a_time_does(
        flows in prop::collection::vec((flow(), prop::bool::ANY), 1..60),
    ) {
        // Each flow, then (if asked) its connection's other record: same
        // interface and times, the sides and direction swapped.
        let mut lines = Vec::new();
        for (flow, pair) in &flows {
            lines.push(line(flow));
            if *pair {
                let (i, s, d, start, secs, direction, ok) = *flow;
                lines.push(line(&(i, d, s, start, secs, [1, 0, 2][direction], ok)));
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

        let mut one_by_one = index();
        let taught: Vec<_> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| one_by_one.learn_from_flow(r).map(|span| (i, span)))
            .collect();
        let mut batch = index();
        let mut batch_taught = Vec::new();
        batch.learn_from_flows(&records, |record, span| {
            let i = records.iter().position(|r| std::ptr::eq(r, record)).expect("record");
            batch_taught.push((i, span));
        });

        prop_assert_eq!(&batch_taught, &taught);
        prop_assert_eq!(batch.stats(), one_by_one.stats());
        for address in ADDRESSES {
            for t in (0..800).step_by(20) {
                prop_assert_eq!(batch.owner_at(ip(address), t), one_by_one.owner_at(ip(address), t));
            }
        }
    }
}
