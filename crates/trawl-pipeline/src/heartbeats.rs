//! Heartbeats learned from this process's flows, waiting to be shared
//! with the other processes (`[sources.kafka_metadata]` with
//! `publish_learned`).
//!
//! ```text
//! worker: learn_from_flow ─► (ip, interface, from, to) learned ─► outbox (joined per ip+interface)
//! metadata thread, every publish_interval_secs: outbox drained ─► heartbeat events to the topic
//! ```
//!
//! Flows are split between the processes of a group, so each one learns
//! only from its own partitions; sharing what each learned lets the others
//! attribute the same addresses. The outbox joins the spans of one address
//! at one interface, so it holds one entry per pair whatever the flow rate,
//! and at most [`OUTBOX_ENTRIES_MAX`]: past it new pairs are dropped
//! (counted) until the next drain.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use trawl_attrib::Secs;

/// Most (address, interface) pairs held between two publications.
pub const OUTBOX_ENTRIES_MAX: usize = 100_000;

/// One learned heartbeat: an address seen as its interface's own over a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The address.
    pub ip: IpAddr,
    /// The interface whose flows showed it.
    pub interface_id: String,
    /// First flow start.
    pub from: Secs,
    /// Last flow end.
    pub to: Secs,
}

/// Learned heartbeats waiting to be published.
#[derive(Debug, Default)]
pub struct HeartbeatOutbox {
    spans: Mutex<HashMap<(IpAddr, String), (Secs, Secs)>>,
    /// Pairs dropped because the outbox was full.
    pub dropped: AtomicU64,
}

impl HeartbeatOutbox {
    /// Adds learned heartbeats, joining spans of the same pair.
    pub fn add(&self, learned: impl IntoIterator<Item = Heartbeat>) {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        for heartbeat in learned {
            let full = spans.len() >= OUTBOX_ENTRIES_MAX;
            match spans.get_mut(&(heartbeat.ip, heartbeat.interface_id.clone())) {
                Some((from, to)) => {
                    *from = (*from).min(heartbeat.from);
                    *to = (*to).max(heartbeat.to);
                }
                None if full => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    spans.insert(
                        (heartbeat.ip, heartbeat.interface_id),
                        (heartbeat.from, heartbeat.to),
                    );
                }
            }
        }
    }

    /// Takes every held heartbeat.
    pub fn drain(&self) -> Vec<Heartbeat> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans
            .drain()
            .map(|((ip, interface_id), (from, to))| Heartbeat {
                ip,
                interface_id,
                from,
                to,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(ip: &str, interface: &str, from: Secs, to: Secs) -> Heartbeat {
        Heartbeat {
            ip: ip.parse().unwrap(),
            interface_id: interface.to_string(),
            from,
            to,
        }
    }

    #[test]
    fn spans_of_one_pair_join_and_a_drain_empties_the_outbox() {
        let outbox = HeartbeatOutbox::default();
        outbox.add([
            beat("10.0.0.1", "eni-a", 100, 160),
            beat("10.0.0.1", "eni-a", 50, 120),
            beat("10.0.0.1", "eni-b", 100, 160),
        ]);
        let mut drained = outbox.drain();
        drained.sort_by(|a, b| a.interface_id.cmp(&b.interface_id));
        assert_eq!(
            drained,
            vec![
                beat("10.0.0.1", "eni-a", 50, 160),
                beat("10.0.0.1", "eni-b", 100, 160)
            ]
        );
        assert!(outbox.drain().is_empty());
    }

    #[test]
    fn a_full_outbox_drops_new_pairs_and_counts_them() {
        let outbox = HeartbeatOutbox::default();
        let many = (0..OUTBOX_ENTRIES_MAX as u32 + 5).map(|i| Heartbeat {
            ip: IpAddr::from(i.to_be_bytes()),
            interface_id: "eni-a".into(),
            from: 1,
            to: 2,
        });
        outbox.add(many);
        assert_eq!(outbox.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(outbox.drain().len(), OUTBOX_ENTRIES_MAX);
    }
}
