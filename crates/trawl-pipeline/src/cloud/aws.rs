//! The thread of one `[[metadata.aws]]`: polls each region × account in
//! turn every `poll_secs`, and applies each successful poll to the index
//! (see the module header of `cloud`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use trawl_attrib::{MetadataEvent, Secs};
use trawl_cloud::aws::{AwsPoller, AwsSourceConfig, PollError, Polled};
use trawl_cloud::{PollOptions, TagKeys, Window, dated_assigns, snapshot};

use super::{BACKOFF_MAX, CloudHorizon, declared_at};
use crate::metadata_log::apply_events;
use crate::now_secs;
use crate::worker::Context;

/// Errors printed per target before only every 100th is.
const PRINTED_MAX: u64 = 10;

/// A running `[[metadata.aws]]`: its thread.
#[derive(Debug)]
pub struct AwsMetadataSource {
    handle: JoinHandle<()>,
}

/// One region × account.
struct TargetState {
    name: String,
    /// Public addresses the last poll listed (they are outside the VPCs'
    /// CIDR blocks: the next poll speaks for them too, to release them).
    public: Vec<IpNet>,
    failures: u32,
    next_poll: Instant,
}

impl AwsMetadataSource {
    /// Starts polling: registers every target with `horizon` (so the
    /// horizon waits for its first poll) and returns at once.
    pub fn start(
        cx: Arc<Context>,
        config: AwsSourceConfig,
        leave_pod_addresses: bool,
        horizon: Arc<CloudHorizon>,
        stop: Arc<AtomicBool>,
    ) -> Result<AwsMetadataSource, String> {
        let poller = AwsPoller::new(config.clone())?;
        let targets: Vec<TargetState> = poller
            .targets()
            .map(|t| TargetState {
                name: t.name(),
                public: Vec::new(),
                failures: 0,
                next_poll: Instant::now(),
            })
            .collect();
        for target in &targets {
            horizon.register(&target.name);
        }
        let thread = Poller {
            cx,
            keys: config.keys(),
            config,
            leave_pod_addresses,
            horizon,
            poller,
            targets,
        };
        let handle = std::thread::Builder::new()
            .name("trawl-aws-metadata".into())
            .spawn(move || thread.run_until(&stop))
            .map_err(|e| format!("metadata.aws: starting its thread: {e}"))?;
        Ok(AwsMetadataSource { handle })
    }

    /// The thread (it ends once `stop` is set).
    pub fn into_thread(self) -> JoinHandle<()> {
        self.handle
    }
}

struct Poller {
    cx: Arc<Context>,
    config: AwsSourceConfig,
    keys: TagKeys,
    leave_pod_addresses: bool,
    horizon: Arc<CloudHorizon>,
    poller: AwsPoller,
    targets: Vec<TargetState>,
}

impl Poller {
    fn run_until(mut self, stop: &AtomicBool) {
        let interval = Duration::from_secs(self.config.poll_secs);
        while !stop.load(Ordering::Relaxed) {
            for i in 0..self.targets.len() {
                if stop.load(Ordering::Relaxed) || self.targets[i].next_poll > Instant::now() {
                    continue;
                }
                let result = self.poller.poll(i);
                let target = &mut self.targets[i];
                let name = target.name.clone();
                let stats = &self.cx.stats.cloud;
                stats.set(&name, "poll_interval_seconds", interval.as_secs());
                match result {
                    Ok(polled) => {
                        target.failures = 0;
                        target.next_poll = Instant::now() + interval;
                        self.apply(i, &polled);
                    }
                    Err(error) => {
                        target.failures = target.failures.saturating_add(1);
                        let backoff = interval
                            .saturating_mul(1 << target.failures.min(10))
                            .min(BACKOFF_MAX);
                        target.next_poll = Instant::now() + backoff;
                        report(&self.cx, &name, &error, backoff);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Applies target `i`'s poll: the dated assigns, then the snapshot and
    /// interface events, with the poll's time as the target's position.
    fn apply(&mut self, i: usize, polled: &Polled) {
        let at = Secs::try_from(now_secs()).unwrap_or(Secs::MAX);
        let name = self.targets[i].name.clone();
        let key = format!("cloud:{name}");
        let mut within = polled.vpc_networks.clone();
        within.extend(self.targets[i].public.iter().copied());
        let options = PollOptions {
            within: &within,
            keys: &self.keys,
            leave_pod_addresses: self.leave_pod_addresses,
        };
        let mut events = snapshot(&polled.inventory, at, options);
        if within.is_empty() {
            // No VPC: nothing to list, and an unscoped snapshot would
            // release every address of every other source.
            events.retain(|e| !matches!(e, MetadataEvent::Snapshot { .. }));
        }
        self.targets[i].public = public_addresses(&events, &polled.vpc_networks);
        let attached = attach_times(polled);
        let dated = {
            let index = self.cx.index_read();
            let previous_at = index
                .source_position(&key)
                .and_then(|p| p.parse::<Secs>().ok());
            let window = Window {
                previous_at,
                at,
                backdate_secs_max: self.config.poll_secs.saturating_mul(2),
            };
            dated_assigns(&events, &attached, window, |ip, t| {
                declared_at(&index, ip, t)
            })
        };
        let applied = {
            let mut index = self.cx.index_write();
            let n = apply_events(&self.cx, &mut index, &dated, None)
                + apply_events(&self.cx, &mut index, &events, None);
            index.set_source_position(&key, &at.to_string());
            if let Some(t) = self.horizon.seen(&name, at) {
                index.advance_horizon(t);
            }
            n
        };
        let stats = &self.cx.stats.cloud;
        stats.add(&name, "polls", 1);
        stats.add(&name, "events", applied as u64);
        stats.add(&name, "dated_assigns", dated.len() as u64);
        stats.add(&name, "api_calls", polled.calls.values().sum());
        stats.set(&name, "addresses", listed(&events) as u64);
        stats.set(&name, "seen_at_seconds", u64::try_from(at).unwrap_or(0));
    }
}

/// Each interface's attach time and each task's start, by interface id.
fn attach_times(polled: &Polled) -> BTreeMap<&str, Secs> {
    let interfaces = polled
        .inventory
        .interfaces
        .iter()
        .filter_map(|e| Some((e.id.as_str(), e.attached_at?)));
    let tasks = polled
        .inventory
        .tasks
        .iter()
        .filter_map(|t| Some((t.interface_id.as_deref()?, t.started_at?)));
    interfaces.chain(tasks).collect()
}

/// The addresses the snapshot lists outside the VPCs' networks.
fn public_addresses(events: &[MetadataEvent], vpc_networks: &[IpNet]) -> Vec<IpNet> {
    let outside = |ip: &IpAddr| !vpc_networks.iter().any(|net| net.contains(ip));
    events
        .iter()
        .filter_map(|e| match e {
            MetadataEvent::Snapshot { owners, .. } => Some(owners),
            _ => None,
        })
        .flatten()
        .map(|o| o.ip)
        .filter(outside)
        .map(IpNet::from)
        .collect()
}

fn listed(events: &[MetadataEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            MetadataEvent::Snapshot { owners, .. } => owners.len(),
            _ => 0,
        })
        .sum()
}

fn report(cx: &Context, name: &str, error: &PollError, backoff: Duration) {
    let stats = &cx.stats.cloud;
    stats.add(name, "poll_errors", 1);
    if error.is_throttled() {
        stats.add(name, "throttles", 1);
    }
    let n = stats.get(name, "poll_errors");
    if n <= PRINTED_MAX || n.is_multiple_of(100) {
        eprintln!(
            "trawl: metadata.aws poll #{n} failed (nothing applied, next in {} s): {error}",
            backoff.as_secs()
        );
    }
}
