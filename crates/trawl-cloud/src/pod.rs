//! Kubernetes pods to owners.
//!
//! A pod's IP belongs to its workload: the top of its owner references,
//! climbed through the ReplicaSet a Deployment made (and the Job a
//! CronJob made) to the Deployment, StatefulSet, DaemonSet, Job or
//! CronJob; a pod no controller owns is its own workload. Pods on the
//! host's network are left out (their IP is the node's). A pod's IP is
//! owned while the pod is running or pending with an IP; it is released
//! when the pod ends (succeeded, failed, deleted) or vanishes between two
//! lists (a watch that missed the deletion: [`PodTracker::relist`]).
//!
//! Only the pod that holds an IP releases it: a pod that ended keeps its
//! IP in its status, and its later updates (a finalizer removed, the
//! deletion) arrive after the IP went to another pod ([`PodTracker`]
//! remembers each IP's holder).
//!
//! A pod's zone and region are its node's (`topology.k8s.aws/zone-id`,
//! else `topology.kubernetes.io/zone`; `topology.kubernetes.io/region`).
//!
//! With the AWS VPC CNI, pod IPs are VPC addresses on the node's ENIs.
//! These events name no interface, so flows learned at the node's ENI
//! never override them (`trawl_attrib`'s rule 2a), and the EC2 poller
//! leaves EKS nodes' secondary addresses out of its snapshots when pods
//! are watched (`leave_pod_addresses`).

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
    /// `spec.nodeName`.
    pub node_name: Option<String>,
}

/// Where a node is (its labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlace {
    /// The zone id (`use1-az1`), else the zone's name.
    pub zone: Option<String>,
    /// The region.
    pub region: Option<String>,
}

impl NodePlace {
    /// A node's place from its labels.
    pub fn of_labels(labels: &BTreeMap<String, String>) -> NodePlace {
        NodePlace {
            zone: labels
                .get("topology.k8s.aws/zone-id")
                .or_else(|| labels.get("topology.kubernetes.io/zone"))
                .cloned(),
            region: labels.get("topology.kubernetes.io/region").cloned(),
        }
    }
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
pub fn workload_of_pod(
    pod: &Pod,
    controllers: &Controllers,
    node: Option<&NodePlace>,
    cluster: &str,
) -> Workload {
    let owner = pod.top_owner(controllers);
    // A workload is the controller's, not one pod's: labels that differ
    // per pod or per rollout would make every pod a workload of its own
    // (and the workload table grow forever).
    let mut labels: BTreeMap<String, String> = pod
        .labels
        .iter()
        .filter(|(k, _)| !PER_POD_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert("namespace".into(), pod.namespace.clone());
    labels.insert("workload_kind".into(), owner.kind.clone());
    Workload {
        app: Some(owner.name),
        cluster: Some(format!("{cluster}/{}", pod.namespace)),
        kind: Some("pod".into()),
        az: node.and_then(|n| n.zone.clone()),
        region: node.and_then(|n| n.region.clone()),
        labels,
        ..Workload::default()
    }
}

/// Labels Kubernetes sets per pod or per rollout, left out of workloads.
pub const PER_POD_LABELS: [&str; 8] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "controller-uid",
    "batch.kubernetes.io/job-completion-index",
];

/// Whether `workload` is a pod of the cluster named `cluster` (what its
/// watcher may release).
pub fn is_pod_of(workload: &Workload, cluster: &str) -> bool {
    workload.kind.as_deref() == Some("pod")
        && workload
            .cluster
            .as_deref()
            .and_then(|c| c.strip_prefix(cluster))
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What a cluster's watch has said: pods, the controllers above them,
/// nodes, and which pod holds each IP. Turns each watch event or list
/// into ownership events.
#[derive(Debug, Clone, Default)]
pub struct PodTracker {
    cluster: String,
    /// Pods that hold (or held, and are not gone) IPs, by uid.
    pods: BTreeMap<String, Pod>,
    /// Each held IP's pod (uid).
    holders: BTreeMap<IpAddr, String>,
    /// ReplicaSets' and Jobs' controllers.
    pub controllers: Controllers,
    /// Nodes' places, by name.
    pub nodes: BTreeMap<String, NodePlace>,
}

impl PodTracker {
    /// A tracker of the cluster named `cluster` (the workloads' cluster
    /// is `CLUSTER/NAMESPACE`).
    pub fn new(cluster: &str) -> PodTracker {
        PodTracker {
            cluster: cluster.to_string(),
            ..PodTracker::default()
        }
    }

    /// IPs held now.
    pub fn held(&self) -> usize {
        self.holders.len()
    }

    /// The IPs held now.
    pub fn held_ips(&self) -> std::collections::BTreeSet<IpAddr> {
        self.holders.keys().copied().collect()
    }

    /// The events of a watch event on `pod` seen at `at` (`gone`: deleted).
    pub fn pod(&mut self, pod: Pod, gone: bool, at: Secs) -> Vec<MetadataEvent> {
        let mut events = self.releases(&pod, gone, at);
        events.extend(self.assigns(pod, gone, at));
        events
    }

    /// The events of a full list at `at` (the start, or after `410 Gone`):
    /// the releases of pods the list no longer has (deleted while the
    /// watch was not looking) and of those that ended, then every holder's
    /// assigns (so an IP that moved between two pods ends with its new one,
    /// whatever the list's order).
    pub fn relist(&mut self, listed: Vec<Pod>, at: Secs) -> Vec<MetadataEvent> {
        let still: std::collections::BTreeSet<&str> =
            listed.iter().map(|p| p.uid.as_str()).collect();
        let vanished: Vec<Pod> = self
            .pods
            .values()
            .filter(|p| !still.contains(p.uid.as_str()))
            .cloned()
            .collect();
        let mut events = Vec::new();
        for pod in &vanished {
            events.extend(self.releases(pod, true, at));
        }
        for pod in &listed {
            events.extend(self.releases(pod, false, at));
        }
        for pod in listed {
            events.extend(self.assigns(pod, false, at));
        }
        events
    }

    /// Releases the IPs `pod` (as known before this event, and as it is
    /// now) holds and no longer will.
    fn releases(&mut self, pod: &Pod, gone: bool, at: Secs) -> Vec<MetadataEvent> {
        let keeps: &[IpAddr] = if !gone && pod.holds_ips() {
            &pod.ips
        } else {
            &[]
        };
        let before = self.pods.get(&pod.uid).map(|p| p.ips.clone());
        let mut events = Vec::new();
        for ip in before.iter().flatten().chain(&pod.ips) {
            if !keeps.contains(ip) && self.holders.get(ip) == Some(&pod.uid) {
                self.holders.remove(ip);
                events.push(MetadataEvent::Release { ip: *ip, at });
            }
        }
        if gone || !pod.holds_ips() {
            self.pods.remove(&pod.uid);
        }
        events
    }

    /// Assigns `pod`'s IPs if it holds them.
    fn assigns(&mut self, pod: Pod, gone: bool, at: Secs) -> Vec<MetadataEvent> {
        if gone || !pod.holds_ips() {
            return Vec::new();
        }
        let node = pod.node_name.as_ref().and_then(|n| self.nodes.get(n));
        let workload = workload_of_pod(&pod, &self.controllers, node, &self.cluster);
        let had = self
            .pods
            .get(&pod.uid)
            .map(|p| p.ips.clone())
            .unwrap_or_default();
        let mut events = Vec::new();
        for ip in &pod.ips {
            let taken = self.holders.get(ip).is_some_and(|uid| *uid != pod.uid);
            if taken && had.contains(ip) {
                // A newer pod took it since: an update of this one (a lost
                // node's pod still Running) does not take it back.
                continue;
            }
            self.holders.insert(*ip, pod.uid.clone());
            events.push(MetadataEvent::Assign {
                ip: *ip,
                at,
                workload: workload.clone(),
                interface_id: None,
            });
        }
        self.pods.insert(pod.uid.clone(), pod);
        events
    }
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
            node_name: Some("node-a".into()),
        }
    }

    fn app(pod: &Pod, controllers: &Controllers) -> (String, String) {
        let w = workload_of_pod(pod, controllers, None, "prod-eks");
        (w.app.unwrap(), w.labels["workload_kind"].clone())
    }

    /// (ip, at, app or None for a release) of each event.
    fn seen(events: &[MetadataEvent]) -> Vec<(String, i64, Option<String>)> {
        events
            .iter()
            .map(|e| match e {
                MetadataEvent::Assign {
                    ip, at, workload, ..
                } => (ip.to_string(), *at, workload.app.clone()),
                MetadataEvent::Release { ip, at } => (ip.to_string(), *at, None),
                other => panic!("{other:?}"),
            })
            .collect()
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
        let place = NodePlace::of_labels(&BTreeMap::from([
            (
                "topology.kubernetes.io/zone".to_string(),
                "us-east-1a".to_string(),
            ),
            (
                "topology.k8s.aws/zone-id".to_string(),
                "use1-az6".to_string(),
            ),
            (
                "topology.kubernetes.io/region".to_string(),
                "us-east-1".to_string(),
            ),
        ]));
        let w = workload_of_pod(&p, &Controllers::new(), Some(&place), "prod-eks");
        assert_eq!(
            (
                w.kind.as_deref(),
                w.cluster.as_deref(),
                w.az.as_deref(),
                w.region.as_deref()
            ),
            (
                Some("pod"),
                Some("prod-eks/shop"),
                Some("use1-az6"),
                Some("us-east-1")
            )
        );
        assert_eq!(w.labels["namespace"], "shop");
    }

    #[test]
    fn ips_are_assigned_while_held_and_released_when_the_pod_ends() {
        let running = pod("a", Some(("StatefulSet", "db")));
        for (phase, deleting, gone) in [
            ("Succeeded", false, false),
            ("Failed", false, false),
            ("Running", true, false),
            ("Running", false, true),
        ] {
            let mut tracker = PodTracker::new("c");
            assert_eq!(
                seen(&tracker.pod(running.clone(), false, 100)),
                vec![("10.0.3.7".into(), 100, Some("db".into()))]
            );
            let ended = Pod {
                phase: phase.into(),
                deleting,
                ..running.clone()
            };
            assert_eq!(
                seen(&tracker.pod(ended, gone, 200)),
                vec![("10.0.3.7".into(), 200, None)],
                "{phase} {deleting} {gone}"
            );
            assert_eq!(tracker.held(), 0);
        }
        let host = Pod {
            host_network: true,
            ..running.clone()
        };
        let mut tracker = PodTracker::new("c");
        assert!(
            tracker.pod(host.clone(), false, 500).is_empty(),
            "the node's IP, not the pod's"
        );
        assert!(tracker.pod(host, true, 500).is_empty());
    }

    #[test]
    fn a_pod_that_ended_does_not_release_the_ip_another_pod_took() {
        // Found by tests/cloud/kube_scenario.json: a Succeeded pod keeps its
        // IP in its status; its finalizer update and its deletion came after
        // the IP went to a new pod, and released it from under that pod.
        let mut tracker = PodTracker::new("c");
        let report = pod("report", Some(("Job", "report-1")));
        tracker.pod(report.clone(), false, 100);
        let done = Pod {
            phase: "Succeeded".into(),
            ..report.clone()
        };
        assert_eq!(seen(&tracker.pod(done.clone(), false, 110)).len(), 1);
        let web = pod("web", Some(("StatefulSet", "web")));
        tracker.pod(web.clone(), false, 120);
        let deleting = Pod {
            deleting: true,
            ..done.clone()
        };
        assert!(tracker.pod(deleting, false, 130).is_empty());
        assert!(tracker.pod(done.clone(), true, 140).is_empty());
        // A relist that still shows the ended pod (listed first) keeps web.
        let events = tracker.relist(vec![done, web], 150);
        assert_eq!(
            seen(&events),
            vec![("10.0.3.7".into(), 150, Some("web".into()))]
        );
    }

    #[test]
    fn a_relist_releases_the_pods_the_watch_missed() {
        let mut tracker = PodTracker::new("c");
        let kept = pod("kept", Some(("StatefulSet", "db")));
        let mut missed = pod("missed", Some(("StatefulSet", "db")));
        missed.ips = vec!["10.0.3.8".parse().unwrap()];
        tracker.pod(kept.clone(), false, 100);
        tracker.pod(missed, false, 100);
        let events = tracker.relist(vec![kept], 900);
        assert_eq!(
            seen(&events),
            vec![
                ("10.0.3.8".into(), 900, None),
                ("10.0.3.7".into(), 900, Some("db".into()))
            ]
        );
        assert_eq!(tracker.held(), 1);
    }

    /// Found by a cold review: IP reuse while the old pod's object still says Running: a spot
    /// node is reclaimed, its ENI deleted, and its pod's address given to
    /// a new pod on another node, while the old pod stays `Running` in
    /// the API until the node controller evicts it. Meanwhile the node
    /// controller updates the old pod's Ready condition (a Modified event,
    /// same IP, still Running): the tracker hands the address back to the
    /// old pod, and the old pod's deletion then releases it from under
    /// the new one, which owns nothing until its next update.
    #[test]
    fn review_a_stale_update_of_the_old_pod_does_not_take_back_an_ip_a_newer_pod_holds() {
        let mut tracker = PodTracker::new("c");
        let old = pod("old", Some(("StatefulSet", "old")));
        let new = pod("new", Some(("StatefulSet", "new")));
        tracker.pod(old.clone(), false, 100);
        assert_eq!(
            seen(&tracker.pod(new.clone(), false, 200)),
            vec![("10.0.3.7".into(), 200, Some("new".into()))]
        );
        // Ready=False on the lost node's pod: an update, still Running.
        let stale = tracker.pod(old.clone(), false, 300);
        assert!(
            stale.is_empty(),
            "the old pod's update took the IP back: {:?}",
            seen(&stale)
        );
        let evicted = tracker.pod(old, true, 400);
        assert!(
            evicted.is_empty(),
            "the old pod's deletion released the new pod's IP: {:?}",
            seen(&evicted)
        );
    }

    /// Found by a cold review: every pod was its own workload (its name, its template hash and
    /// every label go into the workload), and the index's workload table
    /// is never pruned: a cluster that runs pods through the same few
    /// addresses grows the table (and every saved snapshot) by one
    /// workload per pod forever, and past `WORKLOADS_MAX` every event is
    /// refused. Here 5,000 pods of one Deployment reuse 10 addresses;
    /// after maintenance with one day's retention, long past them all,
    /// 5,000 workloads are still held.
    #[test]
    fn review_pods_that_are_long_gone_do_not_stay_in_the_workload_table() {
        let mut tracker = PodTracker::new("c");
        let mut controllers = Controllers::new();
        controllers.insert(
            ("shop".into(), "ReplicaSet".into(), "web-5f7c9d".into()),
            OwnerRef {
                kind: "Deployment".into(),
                name: "web".into(),
            },
        );
        tracker.controllers = controllers;
        let mut index = trawl_attrib::AttributionIndex::new(trawl_attrib::IndexConfig {
            retention_secs: 86_400,
            wall_clock_secs: Some(2_000_000_000),
            ..trawl_attrib::IndexConfig::default()
        });
        let base = 1_800_000_000;
        for i in 0..5_000_i64 {
            let mut p = pod(
                &format!("web-5f7c9d-{i:05}"),
                Some(("ReplicaSet", "web-5f7c9d")),
            );
            p.labels.insert("pod-template-hash".into(), "5f7c9d".into());
            p.ips = vec![format!("10.0.3.{}", i % 10).parse().unwrap()];
            for event in tracker.pod(p.clone(), false, base + 10 * i) {
                index.apply(&event).unwrap();
            }
            for event in tracker.pod(p, true, base + 10 * i + 5) {
                index.apply(&event).unwrap();
            }
        }
        // A week later: the cluster's other events moved time on.
        index
            .apply(&MetadataEvent::Release {
                ip: "10.9.9.9".parse().unwrap(),
                at: base + 7 * 86_400,
            })
            .unwrap();
        index.maintain();
        assert!(
            index.workloads().len() < 100,
            "{} workloads held for one Deployment whose pods all ended a week ago",
            index.workloads().len()
        );
    }

    /// Found by a cold review: a release names only the address, so the watcher's late word on a
    /// pod wipes whoever holds the address by then. The pod's deletion is
    /// seen late (the relist after the watch expired is stamped when it
    /// runs, minutes after); meanwhile the node gave the address back to
    /// the subnet and an EC2 poll listed it as a new instance's. The
    /// relist's release ends the instance's ownership until the next poll
    /// (and that poll dates nothing: the address was its own at the poll
    /// before).
    #[test]
    fn review_a_late_pod_release_does_not_end_an_ec2_owner_that_took_the_address_since() {
        let mut index = trawl_attrib::AttributionIndex::new(trawl_attrib::IndexConfig {
            wall_clock_secs: Some(2_000_000_000),
            ..trawl_attrib::IndexConfig::default()
        });
        let base = 1_900_000_000;
        let mut tracker = PodTracker::new("c");
        for event in tracker.pod(pod("p", Some(("StatefulSet", "db"))), false, base) {
            index.apply(&event).unwrap();
        }
        // The EC2 poll at base + 200 lists 10.0.3.7 on a new instance.
        index
            .apply(&MetadataEvent::Snapshot {
                at: base + 200,
                owners: vec![trawl_attrib::SnapshotOwner {
                    ip: "10.0.3.7".parse().unwrap(),
                    workload: Workload {
                        app: Some("batch-host".into()),
                        kind: Some("instance".into()),
                        ..Workload::default()
                    },
                    interface_id: Some("eni-new".into()),
                }],
                within: vec!["10.0.0.0/16".parse().unwrap()],
                except: Vec::new(),
            })
            .unwrap();
        // The watch expired (410); the relist at base + 300 lacks the pod.
        let declared = |ip: IpAddr, t: Secs| {
            let answer = index.owner_at(ip, t);
            (answer.rule == trawl_attrib::Rule::Declared)
                .then(|| index.workload(answer.owner).cloned())
                .flatten()
        };
        let events = crate::settle::keep_own_releases(
            tracker.relist(Vec::new(), base + 300),
            declared,
            |w| is_pod_of(w, "c"),
        );
        for event in events {
            index.apply(&event).unwrap();
        }
        let answer = index.owner_at("10.0.3.7".parse().unwrap(), base + 310);
        assert_eq!(
            index
                .workload(answer.owner)
                .and_then(|w| w.app.clone())
                .as_deref(),
            Some("batch-host"),
            "the pod's late release ended the instance's ownership ({:?})",
            answer.rule
        );
    }
}
