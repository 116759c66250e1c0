//! Helpers the attribution tests share: workloads and events by name, a
//! flow record learned from a line, and an answer as (rule, app).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::IpAddr;

use trawl_attrib::{AttributionIndex, MetadataEvent, Rule, Workload};
use trawl_flowlog::{LineDecoder, LogFormat};

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// An `instance` workload of app `name`.
pub fn app(name: &str) -> Workload {
    Workload {
        app: Some(name.into()),
        kind: Some("instance".into()),
        ..Workload::default()
    }
}

/// An `assign` of `addr` to app `name` at `at`, naming `eni` if given.
pub fn assign(addr: &str, at: i64, name: &str, eni: Option<&str>) -> MetadataEvent {
    MetadataEvent::Assign {
        ip: ip(addr),
        at,
        workload: app(name),
        interface_id: eni.map(str::to_string),
    }
}

/// Applies an `interface` event: `eni` attached to app `name` from `at`.
pub fn attach(index: &mut AttributionIndex, eni: &str, at: i64, name: &str) {
    index
        .apply(&MetadataEvent::Interface {
            interface_id: eni.into(),
            at,
            workload: app(name),
        })
        .unwrap();
}

/// Learns from one line of the format
/// `version interface-id srcaddr dstaddr start end flow-direction log-status`.
pub fn learn(index: &mut AttributionIndex, line: &str) {
    let format = LogFormat::parse(
        "version interface-id srcaddr dstaddr start end flow-direction log-status",
    )
    .unwrap();
    let decoder = LineDecoder::new(format);
    index.learn_from_flow(&decoder.decode(line.as_bytes()).unwrap());
}

/// Who holds `addr` at `t`: the rule that answered and the app.
pub fn app_at(index: &AttributionIndex, addr: &str, t: i64) -> (Rule, Option<String>) {
    let answer = index.owner_at(ip(addr), t);
    (
        answer.rule,
        index.workload(answer.owner).and_then(|w| w.app.clone()),
    )
}
