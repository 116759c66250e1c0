//! Cloud inventories as metadata sources: `[[metadata.aws]]` (EC2
//! network interfaces and instances, ECS tasks, polled) and
//! `[[metadata.kubernetes]]` (pods, watched), applied to the index with no
//! code written by the user.
//!
//! ```text
//!  aws thread (one per [[metadata.aws]]) ─ every poll_secs, per region × account:
//!     trawl_cloud::aws poll ─► snapshot at the poll's time (scoped to the VPCs' CIDRs)
//!        + assigns dated earlier by trawl_cloud::settle (attach time, or just after the
//!          poll that saw the address free) ─► index, position cloud:aws:ACCOUNT/REGION = at
//!  kubernetes thread (one per [[metadata.kubernetes]]) ─ list + watch pods:
//!     assign / release at the time each event is seen ─► index
//!  every source vouches for the time it has seen everything up to; the horizon moves to
//!  the oldest of them (CloudHorizon), so a flow whose address is unknown past it is held
//! ```
//!
//! Observation time: a change is applied at the time a poll (or a watch
//! event) saw it, so attribution can be wrong for up to one poll interval
//! after a change (see `trawl_cloud::settle` for what is dated earlier).
//! A failed poll applies nothing and releases nothing; it is counted and
//! retried after a back-off (doubling up to [`BACKOFF_MAX`]). The start
//! waits for every source's first poll (at most `first_poll_wait_secs`)
//! before flows are consumed, as for the metadata topic.

pub mod aws;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use trawl_attrib::{AttributionIndex, Rule, Secs, Workload};

pub use aws::AwsMetadataSource;
pub use kubernetes::KubernetesMetadataSource;

/// Longest wait between two polls of a failing target.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// The times every cloud source has seen everything up to; the index's
/// horizon moves to the oldest of them.
#[derive(Debug, Default)]
pub struct CloudHorizon {
    seen: Mutex<BTreeMap<String, Option<Secs>>>,
    changed: Condvar,
}

impl CloudHorizon {
    /// Adds a source that has seen nothing yet (it holds the horizon).
    pub fn register(&self, source: &str) {
        self.lock().entry(source.to_string()).or_insert(None);
    }

    /// Records that `source` has seen everything up to `at`; returns the
    /// time every source has seen up to, once every one has.
    pub fn seen(&self, source: &str, at: Secs) -> Option<Secs> {
        let mut seen = self.lock();
        let entry = seen.entry(source.to_string()).or_insert(None);
        *entry = Some(entry.map_or(at, |t| t.max(at)));
        let oldest = seen
            .values()
            .copied()
            .try_fold(Secs::MAX, |m, t| Some(m.min(t?)));
        self.changed.notify_all();
        oldest
    }

    /// Waits until every registered source has been seen once, at most
    /// `wait`; returns the sources still unseen.
    pub fn wait_first(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut seen = self.lock();
        loop {
            let unseen: Vec<String> = seen
                .iter()
                .filter(|(_, t)| t.is_none())
                .map(|(name, _)| name.clone())
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if unseen.is_empty() || left.is_zero() {
                return unseen;
            }
            seen = self
                .changed
                .wait_timeout(seen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Secs>>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The owner metadata declared for `ip` at `t` (not learned, not a prefix).
pub fn declared_at(index: &AttributionIndex, ip: std::net::IpAddr, t: Secs) -> Option<Workload> {
    let answer = index.owner_at(ip, t);
    (answer.rule == Rule::Declared)
        .then(|| index.workload(answer.owner).cloned())
        .flatten()
}

/// What the cloud sources did, per source (`aws:ACCOUNT/REGION`,
/// `kubernetes:NAME`).
#[derive(Debug, Default)]
pub struct CloudStats {
    counters: Mutex<BTreeMap<(String, &'static str), u64>>,
    gauges: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// The counters, with their help text (`trawl_cloud_NAME_total{source}`).
const COUNTERS: [(&str, &str); 8] = [
    ("polls", "Successful polls (or lists) of a cloud inventory."),
    (
        "poll_errors",
        "Polls that failed (nothing applied, nothing released; retried after a back-off).",
    ),
    (
        "throttles",
        "Polls that failed because AWS throttled a call.",
    ),
    ("api_calls", "API calls made (all operations)."),
    (
        "events",
        "Ownership events applied (assigns, releases, snapshots, interfaces).",
    ),
    (
        "dated_assigns",
        "New owners dated before the poll that saw them (attach time, or just after the poll that saw the address free).",
    ),
    (
        "relists",
        "Full lists after a watch expired (410 Gone) or failed.",
    ),
    ("watch_events", "Watch events received."),
];

/// The gauges (`trawl_cloud_NAME{source}`).
const GAUGES: [(&str, &str); 3] = [
    ("addresses", "Addresses the last poll listed."),
    (
        "seen_at_seconds",
        "When the source last saw its whole inventory (epoch seconds): attribution after it is not settled.",
    ),
    (
        "poll_interval_seconds",
        "The source's poll interval: how late a change can be seen.",
    ),
];

impl CloudStats {
    /// Adds `n` to `source`'s counter `name` (one of [`COUNTERS`]).
    pub fn add(&self, source: &str, name: &'static str, n: u64) {
        debug_assert!(COUNTERS.iter().any(|(c, _)| *c == name), "{name}");
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        *counters.entry((source.to_string(), name)).or_default() += n;
    }

    /// Sets `source`'s gauge `name` (one of [`GAUGES`]).
    pub fn set(&self, source: &str, name: &'static str, value: u64) {
        debug_assert!(GAUGES.iter().any(|(g, _)| *g == name), "{name}");
        let mut gauges = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        gauges.insert((source.to_string(), name), value);
    }

    /// `source`'s counter `name`.
    pub fn get(&self, source: &str, name: &'static str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .get(&(source.to_string(), name))
            .copied()
            .unwrap_or(0)
    }

    /// Appends the Prometheus text of every counter and gauge.
    pub(crate) fn render(&self, m: &mut String) {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, help) in COUNTERS {
            let metric = format!("trawl_cloud_{name}_total");
            render_one(m, &metric, "counter", help, &counters, name);
        }
        drop(counters);
        let gauges = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, help) in GAUGES {
            let metric = format!("trawl_cloud_{name}");
            render_one(m, &metric, "gauge", help, &gauges, name);
        }
    }
}

fn render_one(
    m: &mut String,
    metric: &str,
    kind: &str,
    help: &str,
    values: &BTreeMap<(String, &'static str), u64>,
    name: &str,
) {
    let samples: Vec<(String, u64)> = values
        .iter()
        .filter(|((_, n), _)| *n == name)
        .map(|((source, _), v)| {
            (
                format!("{{source=\"{}\"}}", crate::stats::escape_label(source)),
                *v,
            )
        })
        .collect();
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(m, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(m, "{metric}{labels} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_is_the_oldest_time_every_source_has_seen() {
        let horizon = CloudHorizon::default();
        horizon.register("aws:default/us-east-1");
        horizon.register("aws:default/eu-west-1");
        assert_eq!(horizon.seen("aws:default/us-east-1", 100), None);
        assert_eq!(
            horizon.wait_first(Duration::ZERO),
            vec!["aws:default/eu-west-1".to_string()]
        );
        assert_eq!(horizon.seen("aws:default/eu-west-1", 90), Some(90));
        assert_eq!(horizon.seen("aws:default/eu-west-1", 130), Some(100));
        assert_eq!(
            horizon.seen("aws:default/us-east-1", 80),
            Some(100),
            "never back"
        );
        assert!(horizon.wait_first(Duration::ZERO).is_empty());
    }

    #[test]
    fn metrics_name_their_source() {
        let stats = CloudStats::default();
        stats.add("aws:default/us-east-1", "polls", 2);
        stats.set("aws:default/us-east-1", "addresses", 7);
        let mut m = String::new();
        stats.render(&mut m);
        assert!(
            m.contains("trawl_cloud_polls_total{source=\"aws:default/us-east-1\"} 2"),
            "{m}"
        );
        assert!(
            m.contains("trawl_cloud_addresses{source=\"aws:default/us-east-1\"} 7"),
            "{m}"
        );
        assert!(
            !m.contains("trawl_cloud_relists_total"),
            "no sample, no metric"
        );
    }
}
