//! The thread of one `[[metadata.kubernetes]]`: runs the watcher of
//! `trawl_cloud::kubernetes` and applies what it reports to the index
//! (see the module header of `cloud`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use trawl_attrib::{MetadataEvent, Secs};
use trawl_cloud::keep_own_releases;
use trawl_cloud::kubernetes::{KubernetesSourceConfig, Report, watch_until};
use trawl_cloud::pod::is_pod_of;

use super::{CloudHorizon, declared_at, register, vouch};
use crate::metadata_log::apply_events;
use crate::worker::Context;

/// Errors printed before only every 100th is.
const PRINTED_MAX: u64 = 10;

/// A running `[[metadata.kubernetes]]`: its thread.
#[derive(Debug)]
pub struct KubernetesMetadataSource {
    handle: JoinHandle<()>,
}

impl KubernetesMetadataSource {
    /// Starts watching: registers the cluster with `horizon` (so the
    /// horizon waits for its first complete list) and returns at once.
    pub fn start(
        cx: Arc<Context>,
        config: KubernetesSourceConfig,
        horizon: Arc<CloudHorizon>,
        stop: Arc<AtomicBool>,
    ) -> Result<KubernetesMetadataSource, String> {
        config.validate()?;
        let name = config.name();
        register(&mut cx.index_write(), &horizon, &name);
        let handle = std::thread::Builder::new()
            .name("trawl-kubernetes".into())
            .spawn(move || {
                let cluster = config.cluster.clone();
                let result = watch_until(&config, &stop, |report| {
                    take(&cx, &horizon, &name, &cluster, report);
                });
                if let Err(error) = result {
                    eprintln!("trawl: {error}: the cluster's pods are not watched");
                }
            })
            .map_err(|e| format!("metadata.kubernetes: starting its thread: {e}"))?;
        Ok(KubernetesMetadataSource { handle })
    }

    /// The thread (it ends once `stop` is set).
    pub fn into_thread(self) -> JoinHandle<()> {
        self.handle
    }
}

/// Applies or counts one report of the watcher of `cluster`. Releases
/// apply only to addresses a pod of the cluster still holds (another
/// source may have given the address to an instance since).
fn take(cx: &Context, horizon: &CloudHorizon, name: &str, cluster: &str, report: Report) {
    let stats = &cx.stats.cloud;
    let own = |w: &trawl_attrib::Workload| is_pod_of(w, cluster);
    match report {
        Report::Events(events) => {
            let mut index = cx.index_write();
            let events = keep_own_releases(events, |ip, t| declared_at(&index, ip, t), own);
            let applied = apply_events(cx, &mut index, &events, None);
            stats.add(name, "events", applied as u64);
        }
        Report::PodsListed { held, at } => {
            let mut index = cx.index_write();
            let gone = gone_pods(&index, &held, at, &own);
            let applied = apply_events(cx, &mut index, &gone, None);
            stats.add(name, "events", applied as u64);
        }
        Report::Seen(at) => {
            vouch(&mut cx.index_write(), horizon, name, at);
            stats.set(name, "seen_at_seconds", u64::try_from(at).unwrap_or(0));
        }
        Report::Relisted => stats.add(name, "relists", 1),
        Report::WatchEvents(n) => stats.add(name, "watch_events", n),
        Report::Error(message) => {
            stats.add(name, "poll_errors", 1);
            let n = stats.get(name, "poll_errors");
            if n <= PRINTED_MAX || n.is_multiple_of(100) {
                eprintln!("trawl: {name}: {message} (retried)");
            }
        }
    }
}

/// Releases at `at` of the addresses the index gives a pod of this
/// cluster that a whole list of its pods does not hold (deleted while
/// trawl was down: only the saved index remembers them).
fn gone_pods(
    index: &trawl_attrib::AttributionIndex,
    held: &std::collections::BTreeSet<std::net::IpAddr>,
    at: Secs,
    own: &impl Fn(&trawl_attrib::Workload) -> bool,
) -> Vec<MetadataEvent> {
    index
        .records()
        .map(|(ip, _)| ip)
        .filter(|ip| !held.contains(ip))
        .filter(|ip| declared_at(index, *ip, at).is_some_and(|w| own(&w)))
        .map(|ip| MetadataEvent::Release { ip, at })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_attrib::{AttributionIndex, Workload};

    /// Found by a cold review: after a restart the tracker starts empty,
    /// and a pod deleted while trawl was down kept its address for good.
    #[test]
    fn a_pod_deleted_while_trawl_was_down_is_released_by_the_first_list() {
        let ip: std::net::IpAddr = "10.30.1.23".parse().unwrap();
        let other: std::net::IpAddr = "10.30.1.24".parse().unwrap();
        let mut index = AttributionIndex::default();
        let pod = |app: &str, cluster: &str| Workload {
            app: Some(app.into()),
            cluster: Some(cluster.into()),
            kind: Some("pod".into()),
            ..Workload::default()
        };
        let at = 1_900_000_000;
        for (ip, workload) in [
            (ip, pod("web", "prod-eks/shop")),
            (other, pod("x", "staging/shop")),
        ] {
            index
                .apply(&MetadataEvent::Assign {
                    ip,
                    at: at - 3600,
                    workload,
                    interface_id: None,
                })
                .unwrap();
        }
        let own = |w: &Workload| is_pod_of(w, "prod-eks");
        let gone = gone_pods(&index, &Default::default(), at, &own);
        assert_eq!(
            gone,
            vec![MetadataEvent::Release { ip, at }],
            "another cluster's pod kept"
        );
        let held = std::collections::BTreeSet::from([ip]);
        assert!(gone_pods(&index, &held, at, &own).is_empty());
    }
}
