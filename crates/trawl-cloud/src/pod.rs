//! Kubernetes pods to owners.
//!
//! A pod's IP belongs to its workload: the top of its owner references,
//! climbed through the ReplicaSet a Deployment made (and the Job a
//! CronJob made) to the Deployment, StatefulSet, DaemonSet, Job or
//! CronJob; a pod no controller owns is its own workload. Pods on the
//! host's network are left out (their IP is the node's). A pod's IP is
//! owned while the pod is running or pending with an IP; it is released
//! when the pod ends (succeeded, failed, deleted) or vanishes between two
//! lists (a watch that missed the deletion: [`relist`]).
//!
//! With the AWS VPC CNI, pod IPs are VPC addresses on the node's ENIs.
//! These events name no interface, so flows learned at the node's ENI
//! never override them (`trawl_attrib`'s rule 2a). Not yet settled: the
//! EC2 inventory lists those addresses as the node ENI's secondary ones,
//! and a snapshot of it would declare them the node's at every poll; the
//! EC2 poller must leave EKS nodes' secondary addresses out of its
//! snapshots when pods are watched (to be built with the pollers).

use std::collections::BTreeMap;
use std::net::IpAddr;

use trawl_attrib::{MetadataEvent, Secs, Workload};

/// One owner reference (`metadata.ownerReferences[]` with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, `CronJob`, …
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// The fields of a pod its owner is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pod {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The controller among `metadata.ownerReferences`.
    pub owner: Option<OwnerRef>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `status.phase`: `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    /// `status.podIPs`.
    pub ips: Vec<IpAddr>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// Who owns the intermediate controllers (a ReplicaSet's Deployment, a
/// Job's CronJob): `(namespace, kind, name)` → its controller.
pub type Controllers = BTreeMap<(String, String, String), OwnerRef>;

impl Pod {
    /// Whether its IPs are its own and held now.
    fn holds_ips(&self) -> bool {
        !self.host_network
            && !self.deleting
            && matches!(self.phase.as_str(), "Running" | "Pending")
            && !self.ips.is_empty()
    }

    /// The workload at the top of its owner references.
    fn top_owner(&self, controllers: &Controllers) -> OwnerRef {
        let mut owner = match &self.owner {
            Some(owner) => owner.clone(),
            None => {
                return OwnerRef {
                    kind: "Pod".into(),
                    name: self.name.clone(),
                };
            }
        };
        // Two steps at most: ReplicaSet → Deployment, Job → CronJob.
        for _ in 0..2 {
            let key = (
                self.namespace.clone(),
                owner.kind.clone(),
                owner.name.clone(),
            );
            match controllers.get(&key) {
                Some(up) => owner = up.clone(),
                None => break,
            }
        }
        if owner.kind == "ReplicaSet" {
            // The Deployment's ReplicaSets are named DEPLOYMENT-HASH; without
            // the ReplicaSet's own owner (not listed), the pod's
            // pod-template-hash label says where the name ends.
            if let Some(hash) = self.labels.get("pod-template-hash")
                && let Some(name) = owner.name.strip_suffix(&format!("-{hash}"))
            {
                owner = OwnerRef {
                    kind: "Deployment".into(),
                    name: name.to_string(),
                };
            }
        }
        owner
    }
}

/// The workload that owns `pod`'s IPs, in the Kubernetes cluster `cluster`.
pub fn workload_of_pod(pod: &Pod, controllers: &Controllers, cluster: &str) -> Workload {
    let owner = pod.top_owner(controllers);
    let mut labels = pod.labels.clone();
    labels.insert("namespace".into(), pod.namespace.clone());
    labels.insert("workload_kind".into(), owner.kind.clone());
    labels.insert("pod".into(), pod.name.clone());
    Workload {
        app: Some(owner.name),
        cluster: Some(format!("{cluster}/{}", pod.namespace)),
        kind: Some("pod".into()),
        labels,
        ..Workload::default()
    }
}

/// The events of a watch event on `pod` seen at `at` (`gone`: deleted):
/// its IPs assigned while it holds them, released once it does not.
pub fn pod_events(
    pod: &Pod,
    gone: bool,
    controllers: &Controllers,
    cluster: &str,
    at: Secs,
) -> Vec<MetadataEvent> {
    if pod.host_network {
        return Vec::new();
    }
    if !gone && pod.holds_ips() {
        let workload = workload_of_pod(pod, controllers, cluster);
        return pod
            .ips
            .iter()
            .map(|ip| MetadataEvent::Assign {
                ip: *ip,
                at,
                workload: workload.clone(),
                interface_id: None,
            })
            .collect();
    }
    pod.ips
        .iter()
        .map(|ip| MetadataEvent::Release { ip: *ip, at })
        .collect()
}

/// The events of a full list at `at` (the start, or after `410 Gone`):
/// every listed pod's, and a release of the IPs of pods known before that
/// the list no longer has (deleted while the watch was not looking).
pub fn relist(
    known: &BTreeMap<String, Pod>,
    listed: &[Pod],
    controllers: &Controllers,
    cluster: &str,
    at: Secs,
) -> Vec<MetadataEvent> {
    let mut events: Vec<MetadataEvent> = listed
        .iter()
        .flat_map(|pod| pod_events(pod, false, controllers, cluster, at))
        .collect();
    let still: std::collections::BTreeSet<&str> = listed.iter().map(|p| p.uid.as_str()).collect();
    for pod in known.values().filter(|p| !still.contains(p.uid.as_str())) {
        events.extend(pod_events(pod, true, controllers, cluster, at));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<(&str, &str)>) -> Pod {
        Pod {
            uid: format!("uid-{name}"),
            name: name.into(),
            namespace: "shop".into(),
            labels: BTreeMap::new(),
            owner: owner.map(|(kind, name)| OwnerRef {
                kind: kind.into(),
                name: name.into(),
            }),
            host_network: false,
            phase: "Running".into(),
            ips: vec!["10.0.3.7".parse().unwrap()],
            deleting: false,
        }
    }

    fn app(pod: &Pod, controllers: &Controllers) -> (String, String) {
        let w = workload_of_pod(pod, controllers, "prod-eks");
        (w.app.unwrap(), w.labels["workload_kind"].clone())
    }

    #[test]
    fn a_pods_ip_belongs_to_the_top_of_its_owner_references() {
        let mut controllers = Controllers::new();
        controllers.insert(
            ("shop".into(), "ReplicaSet".into(), "cart-7d9f8b6c5".into()),
            OwnerRef {
                kind: "Deployment".into(),
                name: "cart".into(),
            },
        );
        controllers.insert(
            ("shop".into(), "Job".into(), "report-28990".into()),
            OwnerRef {
                kind: "CronJob".into(),
                name: "report".into(),
            },
        );
        let cases = [
            (
                Some(("ReplicaSet", "cart-7d9f8b6c5")),
                ("cart", "Deployment"),
            ),
            (Some(("StatefulSet", "db")), ("db", "StatefulSet")),
            (
                Some(("DaemonSet", "node-exporter")),
                ("node-exporter", "DaemonSet"),
            ),
            (Some(("Job", "report-28990")), ("report", "CronJob")),
            (Some(("Job", "migrate")), ("migrate", "Job")),
            (None, ("lonely", "Pod")),
        ];
        for (owner, (want_app, want_kind)) in cases {
            let p = pod("lonely", owner);
            assert_eq!(
                app(&p, &controllers),
                (want_app.to_string(), want_kind.to_string()),
                "{owner:?}"
            );
        }
        // A ReplicaSet whose owner is not known: the template hash says
        // where the Deployment's name ends.
        let mut p = pod("web-5f7c9d-abcde", Some(("ReplicaSet", "web-5f7c9d")));
        p.labels.insert("pod-template-hash".into(), "5f7c9d".into());
        assert_eq!(
            app(&p, &Controllers::new()),
            ("web".into(), "Deployment".into())
        );
        let w = workload_of_pod(&p, &Controllers::new(), "prod-eks");
        assert_eq!(
            (w.kind.as_deref(), w.cluster.as_deref()),
            (Some("pod"), Some("prod-eks/shop"))
        );
        assert_eq!(w.labels["namespace"], "shop");
    }

    #[test]
    fn ips_are_assigned_while_held_and_released_when_the_pod_ends() {
        let controllers = Controllers::new();
        let running = pod("a", Some(("StatefulSet", "db")));
        let events = pod_events(&running, false, &controllers, "c", 100);
        assert!(matches!(
            &events[..],
            [MetadataEvent::Assign {
                at: 100,
                interface_id: None,
                ..
            }]
        ));
        for ended in ["Succeeded", "Failed"] {
            let done = Pod {
                phase: ended.into(),
                ..running.clone()
            };
            assert!(matches!(
                &pod_events(&done, false, &controllers, "c", 200)[..],
                [MetadataEvent::Release { at: 200, .. }]
            ));
        }
        let deleting = Pod {
            deleting: true,
            ..running.clone()
        };
        assert!(matches!(
            &pod_events(&deleting, false, &controllers, "c", 300)[..],
            [MetadataEvent::Release { .. }]
        ));
        assert!(matches!(
            &pod_events(&running, true, &controllers, "c", 400)[..],
            [MetadataEvent::Release { .. }]
        ));
        let host = Pod {
            host_network: true,
            ..running.clone()
        };
        assert!(
            pod_events(&host, false, &controllers, "c", 500).is_empty(),
            "the node's IP, not the pod's"
        );
        assert!(pod_events(&host, true, &controllers, "c", 500).is_empty());
    }

    #[test]
    fn a_relist_releases_the_pods_the_watch_missed() {
        let controllers = Controllers::new();
        let kept = pod("kept", Some(("StatefulSet", "db")));
        let mut missed = pod("missed", Some(("StatefulSet", "db")));
        missed.ips = vec!["10.0.3.8".parse().unwrap()];
        let known: BTreeMap<String, Pod> = [kept.clone(), missed]
            .into_iter()
            .map(|p| (p.uid.clone(), p))
            .collect();
        let events = relist(&known, &[kept], &controllers, "c", 900);
        let released: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                MetadataEvent::Release { ip, .. } => Some(ip.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(released, vec!["10.0.3.8".to_string()]);
        assert_eq!(events.len(), 2);
    }
}
