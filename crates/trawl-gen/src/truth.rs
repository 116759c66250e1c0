//! What the generator knows it wrote: totals, and bytes / packets / records
//! per (source app, destination app) as the *true* owners at the time —
//! the answer an exact attribution must reproduce.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Totals for one (src app, dst app) pair. `None` is a side outside the
/// estate that no table names (the internet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPair {
    /// App of the source address.
    pub src_app: Option<String>,
    /// App of the destination address.
    pub dst_app: Option<String>,
    /// Sum of `bytes`.
    pub bytes: u64,
    /// Sum of `packets`.
    pub packets: u64,
    /// Records.
    pub flows: u64,
}

/// Everything written so far, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// Flow records written.
    pub records: u64,
    /// Sum of `bytes`.
    pub bytes: u64,
    /// Sum of `packets`.
    pub packets: u64,
    /// REJECT records.
    pub rejected_records: u64,
    /// Metadata events written.
    pub events: u64,
    /// Earliest and latest record `start` (epoch seconds).
    pub start_range: Option<(i64, i64)>,
    /// Records logged at a node's ENI for one of its pods (counted for the
    /// pod's app, never the node).
    #[serde(default)]
    pub shared_eni_records: u64,
    /// Records logged at an ENI that had moved from an earlier instance.
    #[serde(default)]
    pub moved_eni_records: u64,
    /// Per app pair, sorted by (src, dst).
    pub app_pairs: Vec<AppPair>,
}

/// Running sums, keyed by app ids (see [`crate::estate`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub records: u64,
    pub bytes: u64,
    pub packets: u64,
    pub rejected_records: u64,
    pub events: u64,
    pub start_range: Option<(i64, i64)>,
    pub shared_eni_records: u64,
    pub moved_eni_records: u64,
    pub pairs: HashMap<(u32, u32), [u64; 3]>,
}

impl Tally {
    pub fn add(&mut self, pair: (u32, u32), start: i64, bytes: u64, packets: u64, rejected: bool) {
        self.records += 1;
        self.bytes += bytes;
        self.packets += packets;
        self.rejected_records += u64::from(rejected);
        self.start_range = Some(match self.start_range {
            Some((low, high)) => (low.min(start), high.max(start)),
            None => (start, start),
        });
        let sums = self.pairs.entry(pair).or_default();
        sums[0] += bytes;
        sums[1] += packets;
        sums[2] += 1;
    }

    /// The tally with app ids turned into names by `name`.
    pub fn to_truth(&self, name: impl Fn(u32) -> Option<String>) -> Truth {
        let mut app_pairs: Vec<AppPair> = self
            .pairs
            .iter()
            .map(|(&(src, dst), sums)| AppPair {
                src_app: name(src),
                dst_app: name(dst),
                bytes: sums[0],
                packets: sums[1],
                flows: sums[2],
            })
            .collect();
        app_pairs.sort_by(|a, b| (&a.src_app, &a.dst_app).cmp(&(&b.src_app, &b.dst_app)));
        Truth {
            records: self.records,
            bytes: self.bytes,
            packets: self.packets,
            rejected_records: self.rejected_records,
            events: self.events,
            start_range: self.start_range,
            shared_eni_records: self.shared_eni_records,
            moved_eni_records: self.moved_eni_records,
            app_pairs,
        }
    }
}
