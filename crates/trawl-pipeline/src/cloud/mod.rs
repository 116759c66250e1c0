//! Cloud inventories as metadata sources: `[[metadata.aws]]` (EC2
//! network interfaces and instances, ECS tasks, polled) and
//! `[[metadata.kubernetes]]` (pods, watched), applied to the index with no
//! code written by the user.
//!
//! ```text
//!  aws thread (one per [[metadata.aws]]) ─ every poll_secs, per region × account:
//!     trawl_cloud::aws poll ─► an assign per listed address at the time the listing began
//!        + assigns dated earlier by trawl_cloud::settle (attach time, or just after the
//!          poll that saw the address free) + a release of what the target's previous poll
//!          listed and this one does not (still its own) ─► index,
//!          position cloud:aws:ACCOUNT/REGION = "at accounts"
//!  kubernetes thread (one per [[metadata.kubernetes]]) ─ list + watch pods:
//!     assign / release at the time each event is seen ─► index
//!  every source vouches for the time it has seen everything up to; the horizon moves to
//!  the oldest of them and no further (CloudHorizon, AttributionIndex::cap_horizon), so a
//!  flow whose address is unknown past it is held
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

    /// The oldest time every source has seen up to (0 while one has seen
    /// nothing); none without sources.
    pub fn oldest(&self) -> Option<Secs> {
        let seen = self.lock();
        (!seen.is_empty()).then(|| seen.values().map(|t| t.unwrap_or(0)).min().unwrap_or(0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Secs>>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records that `source` has seen everything up to `at`: the index's
/// horizon may move to the oldest time every cloud source has seen, and
/// no further whatever other sources vouch for (a flow past it may belong
/// to an address only the slowest source's next poll names).
pub fn vouch(index: &mut AttributionIndex, horizon: &CloudHorizon, source: &str, at: Secs) {
    if let Some(t) = horizon.seen(source, at) {
        index.advance_horizon(t);
    }
    index.cap_horizon(horizon.oldest());
}

/// Registers `source` with `horizon` and caps the index's horizon until
/// it has seen its inventory once.
pub fn register(index: &mut AttributionIndex, horizon: &CloudHorizon, source: &str) {
    horizon.register(source);
    index.cap_horizon(horizon.oldest());
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
    /// Adds `n` to `source`'s counter `name` (one of the `trawl_cloud_*_total` counters).
    pub fn add(&self, source: &str, name: &'static str, n: u64) {
        debug_assert!(COUNTERS.iter().any(|(c, _)| *c == name), "{name}");
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        *counters.entry((source.to_string(), name)).or_default() += n;
    }

    /// Sets `source`'s gauge `name` (one of the `trawl_cloud_*` gauges).
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

    /// Found by a cold review: the horizon waited for the slowest cloud source only in
    /// `CloudHorizon`: the index's own horizon is the newest event minus
    /// the reorder window (15 min), and every other source's polls move
    /// the newest event. A target whose polls fail for more than the
    /// window (its API down, throttled, backing off up to 10 min a
    /// poll), or polls less often than the window (`poll_secs` up to a
    /// day is accepted; only `hold_secs` is checked against it), has its
    /// new addresses' flows settled, and stored, as unknown before its
    /// next poll can name them.
    #[test]
    fn review_a_flow_is_not_settled_before_the_slowest_cloud_source_has_seen_it() {
        use trawl_attrib::{IndexConfig, MetadataEvent, SnapshotOwner};
        let base: Secs = 1_900_000_000;
        let mut index = AttributionIndex::new(IndexConfig {
            wall_clock_secs: Some(2_000_000_000),
            ..IndexConfig::default()
        });
        let horizon = CloudHorizon::default();
        horizon.register("aws:default/us-east-1");
        horizon.register("aws:default/eu-west-1");
        let poll = |at: Secs, net: &str, ip: &str| MetadataEvent::Snapshot {
            at,
            owners: vec![SnapshotOwner {
                ip: ip.parse().unwrap(),
                workload: Workload {
                    app: Some(net.into()),
                    ..Workload::default()
                },
                interface_id: None,
            }],
            within: vec![net.parse().unwrap()],
            except: Vec::new(),
        };
        // eu-west-1's last good poll; its API then fails for 20 minutes.
        index.apply(&poll(base, "10.2.0.0/16", "10.2.0.1")).unwrap();
        vouch(&mut index, &horizon, "aws:default/eu-west-1", base);
        // us-east-1 polls every minute meanwhile.
        for minute in 0..=20 {
            let at = base + 60 * minute;
            index.apply(&poll(at, "10.1.0.0/16", "10.1.0.1")).unwrap();
            vouch(&mut index, &horizon, "aws:default/us-east-1", at);
        }
        // A flow of an instance eu-west-1 launched at base + 100.
        let answer = index.owner_at("10.2.0.77".parse().unwrap(), base + 100);
        assert!(
            !answer.settled,
            "settled as {:?} though eu-west-1 has seen nothing after {base} (horizon {})",
            answer.rule,
            index.horizon()
        );
    }
}
