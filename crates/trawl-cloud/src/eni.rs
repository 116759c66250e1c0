//! EC2 network interfaces (ENIs) to owners.
//!
//! Every address in a VPC is on an ENI, and the ENI says what it belongs
//! to: an instance (whose tags name the application), or a service AWS
//! manages for the account, told apart by the interface's type and its
//! description (AWS writes them in a fixed shape):
//!
//! | interface | kind | app |
//! |---|---|---|
//! | attached to an instance | `instance` | the first of the [`TagKeys`] `app` tags the instance (or ENI) has, else the instance id |
//! | `ELB app/NAME/ID`, `ELB net/NAME/ID`, `ELB gwy/NAME/ID` (ALB, NLB, GWLB) | `load_balancer` | `NAME` (cluster: `app/NAME/ID`) |
//! | `ELB NAME` (classic) | `load_balancer` | `NAME` |
//! | type `nat_gateway` (`Interface for NAT Gateway nat-…`) | `nat_gateway` | the gateway id |
//! | type `vpc_endpoint` (`VPC Endpoint Interface vpce-…`) | `vpc_endpoint` | the endpoint id |
//! | `AWS Lambda VPC ENI-FUNCTION-UUID` | `lambda` | `FUNCTION` |
//! | `RDSNetworkInterface` | `rds` | `rds` (the database is not on the ENI) |
//! | an ECS task's (`awsvpc`; the task from `DescribeTasks`, see [`crate::ecs`]) | `ecs_task` | the service, else the task definition's family |
//! | `arn:aws:ecs:…` with no task known | `ecs_task` | the ENI's `aws:ecs:serviceName` tag, else `ecs` |
//! | `aws-K8S-i-…` (the VPC CNI's extra ENI of an EKS node) | `eks_node` | as for its instance |
//! | anything else | the interface type | the description, else the ENI id |
//!
//! Account, region and AZ id come from the API (the ENI's owner, the
//! polled region, the ENI's zone id). An interface still attached to a
//! terminated or terminating instance owns nothing. With
//! `leave_pod_addresses`, an EKS node's interfaces keep only their primary
//! address: the others (and delegated prefixes) are the VPC CNI's for
//! pods, left to the Kubernetes watcher (not listed, so never released). Addresses: the private IPv4
//! addresses (primary and secondary), the public ones associated with
//! them, IPv6 addresses, and IPv4 prefixes delegated to the ENI (each
//! address of a prefix of at most [`PREFIX_ADDRESSES_MAX`]); IPv6 prefixes
//! (a /80 each) are not listed one address at a time.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use trawl_attrib::{MetadataEvent, Secs, SnapshotOwner, Workload};

use crate::ecs::EcsTask;

/// Most addresses of one delegated IPv4 prefix listed (a /28 holds 16).
pub const PREFIX_ADDRESSES_MAX: usize = 256;

/// The fields of `DescribeNetworkInterfaces` an ENI's owner is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInterface {
    /// `eni-…`.
    pub id: String,
    /// `InterfaceType`: `interface`, `nat_gateway`, `vpc_endpoint`,
    /// `network_load_balancer`, `lambda`, …
    pub interface_type: String,
    /// `Description`.
    pub description: String,
    /// `OwnerId`: the account.
    pub owner_id: Option<String>,
    /// `AvailabilityZoneId` (`use1-az2`), else the zone's name.
    pub availability_zone: Option<String>,
    /// `Attachment.InstanceId`.
    pub instance_id: Option<String>,
    /// `Attachment.AttachTime` (epoch seconds): when the interface joined
    /// its instance (or service), which dates a new owner exactly.
    pub attached_at: Option<Secs>,
    /// `PrivateIpAddresses`, the primary first.
    pub private_ips: Vec<IpAddr>,
    /// Public addresses associated with them.
    pub public_ips: Vec<IpAddr>,
    /// `Ipv6Addresses`.
    pub ipv6: Vec<IpAddr>,
    /// `Ipv4Prefixes` delegated to the ENI.
    pub ipv4_prefixes: Vec<IpNet>,
    /// `TagSet`.
    pub tags: BTreeMap<String, String>,
}

/// The fields of `DescribeInstances` an instance's workload is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// `State.Name`: an interface still attached to a `terminated` or
    /// `shutting-down` instance is on its way out and owns nothing.
    pub state: String,
}

impl Instance {
    /// Whether the instance is gone or going.
    pub fn is_ending(&self) -> bool {
        matches!(self.state.as_str(), "terminated" | "shutting-down")
    }
}

/// Which tags name an instance's application and cluster, first found wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagKeys {
    /// Tags naming the application.
    pub app: Vec<String>,
    /// Tags naming the cluster (auto-scaling group, node group, service).
    pub cluster: Vec<String>,
}

impl Default for TagKeys {
    fn default() -> Self {
        let keys = |list: &[&str]| list.iter().map(|k| (*k).to_string()).collect();
        TagKeys {
            app: keys(&[
                "app",
                "Name",
                "aws:autoscaling:groupName",
                "eks:nodegroup-name",
                "aws:ecs:serviceName",
            ]),
            cluster: keys(&[
                "aws:autoscaling:groupName",
                "eks:nodegroup-name",
                "aws:eks:cluster-name",
                "aws:ecs:clusterName",
            ]),
        }
    }
}

/// The first of `keys` that `tags` has (non-empty).
fn first_tag(tags: &BTreeMap<String, String>, keys: &[String]) -> Option<String> {
    keys.iter()
        .filter_map(|k| tags.get(k))
        .find(|v| !v.trim().is_empty())
        .cloned()
}

/// What the interface's description says it is: (kind, app, cluster).
fn managed_by_aws(
    eni: &NetworkInterface,
    task: Option<&EcsTask>,
) -> Option<(&'static str, String, Option<String>)> {
    if let Some(task) = task {
        return Some(("ecs_task", task.app(), Some(task.cluster.clone())));
    }
    let description = eni.description.trim();
    if let Some(rest) = description.strip_prefix("ELB ") {
        let mut parts = rest.split('/');
        return Some(match (parts.next(), parts.next(), parts.next()) {
            (Some("app" | "net" | "gwy"), Some(name), Some(_)) => {
                ("load_balancer", name.to_string(), Some(rest.to_string()))
            }
            _ => ("load_balancer", rest.to_string(), None),
        });
    }
    if eni.interface_type == "nat_gateway" || description.starts_with("Interface for NAT Gateway") {
        let id = description
            .split_whitespace()
            .find(|w| w.starts_with("nat-"))
            .map_or_else(|| eni.id.clone(), str::to_string);
        return Some(("nat_gateway", id, None));
    }
    if eni.interface_type == "vpc_endpoint" || description.starts_with("VPC Endpoint Interface") {
        let id = description
            .split_whitespace()
            .find(|w| w.starts_with("vpce-"))
            .map_or_else(|| eni.id.clone(), str::to_string);
        return Some(("vpc_endpoint", id, None));
    }
    if let Some(rest) = description.strip_prefix("AWS Lambda VPC ENI-") {
        return Some(("lambda", lambda_function(rest), None));
    }
    if description == "RDSNetworkInterface" {
        return Some(("rds", "rds".to_string(), None));
    }
    if description.starts_with("arn:aws:ecs:") {
        let service = eni.tags.get("aws:ecs:serviceName").cloned();
        let cluster = eni.tags.get("aws:ecs:clusterName").cloned();
        return Some(("ecs_task", service.unwrap_or_else(|| "ecs".into()), cluster));
    }
    None
}

/// The function's name in `NAME-UUID` (a UUID is 36 characters).
fn lambda_function(rest: &str) -> String {
    let uuid_like = |s: &str| {
        s.len() == 36
            && s.chars().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    match rest.len().checked_sub(37) {
        Some(cut)
            if rest.is_char_boundary(cut)
                && rest[cut..].starts_with('-')
                && uuid_like(&rest[cut + 1..]) =>
        {
            rest[..cut].to_string()
        }
        _ => rest.to_string(),
    }
}

/// What an interface is attached to, as the other inventories say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attached<'a> {
    /// The instance of `Attachment.InstanceId`.
    pub instance: Option<&'a Instance>,
    /// The ECS task whose attachment names the interface.
    pub task: Option<&'a EcsTask>,
}

/// Whether `eni` belongs to an EKS node: the VPC CNI's extra interfaces
/// (`aws-K8S-…`, or its `node.k8s.amazonaws.com/instance_id` tag) and
/// every interface of an instance tagged as a cluster's node.
pub fn is_eks_node(eni: &NetworkInterface, instance: Option<&Instance>) -> bool {
    let cluster_tag = |tags: &BTreeMap<String, String>| {
        tags.keys().any(|k| {
            k == "eks:cluster-name"
                || k == "aws:eks:cluster-name"
                || k == "node.k8s.amazonaws.com/instance_id"
                || k.starts_with("kubernetes.io/cluster/")
        })
    };
    eni.description.starts_with("aws-K8S-")
        || cluster_tag(&eni.tags)
        || instance.is_some_and(|i| cluster_tag(&i.tags))
}

/// The workload that owns `eni`'s addresses (see the module header).
pub fn workload_of(
    eni: &NetworkInterface,
    owner: Attached<'_>,
    region: &str,
    keys: &TagKeys,
) -> Workload {
    let Attached { instance, task } = owner;
    let (kind, app, cluster) = match managed_by_aws(eni, task) {
        Some(found) => found,
        None => match instance {
            Some(instance) => {
                let kind = if eni.description.starts_with("aws-K8S-") {
                    "eks_node"
                } else {
                    "instance"
                };
                let app = first_tag(&instance.tags, &keys.app)
                    .or_else(|| first_tag(&eni.tags, &keys.app))
                    .unwrap_or_else(|| instance.id.clone());
                (kind, app, first_tag(&instance.tags, &keys.cluster))
            }
            None => {
                let kind = match eni.interface_type.as_str() {
                    "" | "interface" => "interface",
                    _ => "aws_service",
                };
                let app = first_tag(&eni.tags, &keys.app).unwrap_or_else(|| {
                    if eni.description.trim().is_empty() {
                        eni.id.clone()
                    } else {
                        eni.description.trim().to_string()
                    }
                });
                (kind, app, first_tag(&eni.tags, &keys.cluster))
            }
        },
    };
    Workload {
        app: Some(app),
        cluster,
        account: eni.owner_id.clone(),
        region: Some(region.to_string()),
        az: eni.availability_zone.clone(),
        kind: Some(kind.to_string()),
        labels: BTreeMap::new(),
    }
}

/// The addresses of a delegated prefix (each address of one of at most
/// [`PREFIX_ADDRESSES_MAX`]; a wider one is no ENI's and is not walked).
fn prefix_addresses(net: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
    let small = net.prefix_len() >= net.max_prefix_len().saturating_sub(8);
    net.hosts()
        .chain([net.network(), net.broadcast()])
        .take(PREFIX_ADDRESSES_MAX + 2)
        .filter(move |_| small)
}

/// Every address of `eni`, owned by `workload`, on the interface.
pub fn owners_of(eni: &NetworkInterface, workload: &Workload) -> Vec<SnapshotOwner> {
    let prefixed = eni.ipv4_prefixes.iter().flat_map(prefix_addresses);
    let mut seen = std::collections::BTreeSet::new();
    eni.private_ips
        .iter()
        .chain(&eni.public_ips)
        .chain(&eni.ipv6)
        .copied()
        .chain(prefixed)
        .filter(|ip| seen.insert(*ip))
        .map(|ip| SnapshotOwner {
            ip,
            workload: workload.clone(),
            interface_id: Some(eni.id.clone()),
        })
        .collect()
}

/// One poll of one region (of one account): what the APIs listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The region polled.
    pub region: String,
    /// `DescribeNetworkInterfaces`.
    pub interfaces: Vec<NetworkInterface>,
    /// `DescribeInstances`.
    pub instances: Vec<Instance>,
    /// `DescribeTasks` of every ECS cluster polled.
    pub tasks: Vec<EcsTask>,
}

/// How a poll becomes events.
#[derive(Debug, Clone, Copy)]
pub struct PollOptions<'a> {
    /// Tags naming applications and clusters.
    pub keys: &'a TagKeys,
    /// Leave the addresses the VPC CNI gives pods to the Kubernetes
    /// watcher: EKS nodes' secondary addresses and prefixes, and every
    /// address of a branch interface (security groups for pods). They are
    /// neither listed nor, so, ever released by a poll.
    pub leave_pod_addresses: bool,
}

/// What one poll at `at` says: every listed address's owner, and each
/// interface's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollEvents {
    /// Every address listed, with its owner and interface.
    pub owners: Vec<SnapshotOwner>,
    /// An `interface` event per interface (for learning from flows).
    pub interfaces: Vec<MetadataEvent>,
}

impl PollEvents {
    /// The addresses listed.
    pub fn listed(&self) -> std::collections::BTreeSet<IpAddr> {
        self.owners.iter().map(|o| o.ip).collect()
    }

    /// The events at `at`: an assign per address, then the interfaces'.
    pub fn events(&self, at: Secs) -> Vec<MetadataEvent> {
        self.owners
            .iter()
            .map(|o| MetadataEvent::Assign {
                ip: o.ip,
                at,
                workload: o.workload.clone(),
                interface_id: o.interface_id.clone(),
            })
            .chain(self.interfaces.iter().cloned())
            .collect()
    }
}

/// The owners one poll at `at` lists (the caller releases what an earlier
/// poll of the same target listed and this one does not). An ECS task whose
/// interface the EC2 listing lacks still owns its addresses; an interface
/// of a terminated or terminating instance owns nothing.
pub fn poll_events(inventory: &Inventory, at: Secs, options: PollOptions<'_>) -> PollEvents {
    let instances: BTreeMap<&str, &Instance> = inventory
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i))
        .collect();
    let tasks: BTreeMap<&str, &EcsTask> = inventory
        .tasks
        .iter()
        .filter_map(|t| Some((t.interface_id.as_deref()?, t)))
        .collect();
    let mut poll = PollEvents::default();
    for eni in &inventory.interfaces {
        let instance = eni
            .instance_id
            .as_deref()
            .and_then(|id| instances.get(id).copied());
        if instance.is_some_and(Instance::is_ending) {
            continue;
        }
        let task = tasks.get(eni.id.as_str()).copied();
        let workload = workload_of(
            eni,
            Attached { instance, task },
            &inventory.region,
            options.keys,
        );
        let pods = options.leave_pod_addresses && task.is_none();
        if pods && eni.interface_type == "branch" {
            continue;
        }
        if pods && is_eks_node(eni, instance) {
            poll.owners.extend(owners_of(&primary_only(eni), &workload));
        } else {
            poll.owners.extend(owners_of(eni, &workload));
        }
        poll.interfaces.push(MetadataEvent::Interface {
            interface_id: eni.id.clone(),
            at,
            workload,
        });
    }
    let listed: std::collections::BTreeSet<&str> =
        inventory.interfaces.iter().map(|e| e.id.as_str()).collect();
    for task in &inventory.tasks {
        if task
            .interface_id
            .as_deref()
            .is_some_and(|id| listed.contains(id))
            || !task.is_running()
        {
            continue;
        }
        let workload = task.workload(&inventory.region);
        poll.owners
            .extend(task.private_ips.iter().map(|ip| SnapshotOwner {
                ip: *ip,
                workload: workload.clone(),
                interface_id: task.interface_id.clone(),
            }));
    }
    poll
}

/// An EKS node interface with its primary address (and public ones)
/// only: the others (secondary private addresses, delegated prefixes) are
/// the VPC CNI's for pods.
fn primary_only(eni: &NetworkInterface) -> NetworkInterface {
    let mut primary = eni.clone();
    primary.private_ips.truncate(1);
    primary.ipv4_prefixes.clear();
    primary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eni(id: &str, kind: &str, description: &str) -> NetworkInterface {
        NetworkInterface {
            id: id.into(),
            interface_type: kind.into(),
            description: description.into(),
            owner_id: Some("123456789012".into()),
            availability_zone: Some("use1-az2".into()),
            private_ips: vec!["10.0.1.10".parse().unwrap()],
            ..NetworkInterface::default()
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn on(instance: &Instance) -> Attached<'_> {
        Attached {
            instance: Some(instance),
            task: None,
        }
    }

    fn kind_app(eni: &NetworkInterface, instance: Option<&Instance>) -> (String, String) {
        let owner = Attached {
            instance,
            task: None,
        };
        let w = workload_of(eni, owner, "us-east-1", &TagKeys::default());
        (w.kind.unwrap(), w.app.unwrap())
    }

    #[test]
    fn aws_managed_interfaces_are_told_apart_by_type_and_description() {
        let cases = [
            (
                "interface",
                "ELB app/checkout-alb/50dc6c495c0c9188",
                "load_balancer",
                "checkout-alb",
            ),
            (
                "network_load_balancer",
                "ELB net/edge-nlb/0a1b2c3d4e5f",
                "load_balancer",
                "edge-nlb",
            ),
            (
                "interface",
                "ELB legacy-classic",
                "load_balancer",
                "legacy-classic",
            ),
            (
                "nat_gateway",
                "Interface for NAT Gateway nat-0123456789abcdef0",
                "nat_gateway",
                "nat-0123456789abcdef0",
            ),
            (
                "vpc_endpoint",
                "VPC Endpoint Interface vpce-0a1b2c3d4e5f67890",
                "vpc_endpoint",
                "vpce-0a1b2c3d4e5f67890",
            ),
            (
                "lambda",
                "AWS Lambda VPC ENI-resize-images-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
                "lambda",
                "resize-images",
            ),
            ("interface", "RDSNetworkInterface", "rds", "rds"),
            ("interface", "", "interface", "eni-9"),
        ];
        for (kind, description, want_kind, want_app) in cases {
            let e = eni("eni-9", kind, description);
            assert_eq!(
                kind_app(&e, None),
                (want_kind.into(), want_app.into()),
                "{description}"
            );
        }
        let alb = workload_of(
            &eni(
                "eni-1",
                "interface",
                "ELB app/checkout-alb/50dc6c495c0c9188",
            ),
            Attached::default(),
            "us-east-1",
            &TagKeys::default(),
        );
        assert_eq!(
            alb.cluster.as_deref(),
            Some("app/checkout-alb/50dc6c495c0c9188")
        );
        assert_eq!(alb.account.as_deref(), Some("123456789012"));
        assert_eq!(alb.region.as_deref(), Some("us-east-1"));
        assert_eq!(alb.az.as_deref(), Some("use1-az2"));
    }

    #[test]
    fn an_instance_is_named_by_its_first_tag_then_its_id() {
        let mut e = eni("eni-2", "interface", "Primary network interface");
        e.instance_id = Some("i-0abc".into());
        let tagged = Instance {
            id: "i-0abc".into(),
            tags: tags(&[
                ("Name", "api-7"),
                ("app", "api"),
                ("aws:autoscaling:groupName", "api-prod-v042"),
            ]),
            state: "running".into(),
        };
        let w = workload_of(&e, on(&tagged), "eu-west-1", &TagKeys::default());
        assert_eq!(
            (w.kind.as_deref(), w.app.as_deref()),
            (Some("instance"), Some("api"))
        );
        assert_eq!(w.cluster.as_deref(), Some("api-prod-v042"));
        let bare = Instance {
            id: "i-0abc".into(),
            tags: BTreeMap::new(),
            state: "running".into(),
        };
        assert_eq!(
            kind_app(&e, Some(&bare)),
            ("instance".into(), "i-0abc".into())
        );
        let custom = TagKeys {
            app: vec!["service".into()],
            cluster: vec![],
        };
        let svc = Instance {
            id: "i-0abc".into(),
            tags: tags(&[("service", "billing"), ("app", "x")]),
            state: "running".into(),
        };
        assert_eq!(
            workload_of(&e, on(&svc), "eu-west-1", &custom)
                .app
                .as_deref(),
            Some("billing")
        );
        let mut node = e.clone();
        node.description = "aws-K8S-i-0abc".into();
        let eks = Instance {
            id: "i-0abc".into(),
            tags: tags(&[("eks:nodegroup-name", "ng-1")]),
            state: "running".into(),
        };
        assert_eq!(
            kind_app(&node, Some(&eks)),
            ("eks_node".into(), "ng-1".into())
        );
    }

    #[test]
    fn an_ecs_task_interface_is_owned_by_its_service() {
        let mut e = eni(
            "eni-3",
            "interface",
            "arn:aws:ecs:us-east-1:123456789012:attachment/6a5c1f2e-0d1b-4a4e-9f36-2c1b0e7e2d11",
        );
        e.tags = tags(&[
            ("aws:ecs:serviceName", "payments"),
            ("aws:ecs:clusterName", "prod"),
        ]);
        let w = workload_of(&e, Attached::default(), "us-east-1", &TagKeys::default());
        assert_eq!(
            (w.kind.as_deref(), w.app.as_deref(), w.cluster.as_deref()),
            (Some("ecs_task"), Some("payments"), Some("prod"))
        );
    }

    #[test]
    fn every_address_of_an_interface_is_owned_once() {
        let mut e = eni("eni-4", "interface", "");
        e.private_ips = vec!["10.0.1.10".parse().unwrap(), "10.0.1.11".parse().unwrap()];
        e.public_ips = vec!["54.1.2.3".parse().unwrap(), "10.0.1.10".parse().unwrap()];
        e.ipv6 = vec!["2600:1f18::10".parse().unwrap()];
        e.ipv4_prefixes = vec![
            "10.0.2.16/28".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let w = workload_of(&e, Attached::default(), "us-east-1", &TagKeys::default());
        let owners = owners_of(&e, &w);
        let ips: Vec<String> = owners.iter().map(|o| o.ip.to_string()).collect();
        assert_eq!(ips.len(), 4 + 16, "{ips:?}");
        assert!(ips.contains(&"10.0.2.16".to_string()) && ips.contains(&"10.0.2.31".to_string()));
        assert!(
            !ips.contains(&"10.1.0.0".to_string()),
            "a /8 is no ENI's prefix: not listed"
        );
        assert!(
            owners
                .iter()
                .all(|o| o.interface_id.as_deref() == Some("eni-4"))
        );
    }

    #[test]
    fn a_poll_is_an_assign_per_address_and_an_interface_event_per_eni() {
        let mut a = eni("eni-a", "interface", "Primary network interface");
        a.instance_id = Some("i-1".into());
        let b = eni("eni-b", "nat_gateway", "Interface for NAT Gateway nat-1");
        let mut b = b;
        b.private_ips = vec!["10.0.1.20".parse().unwrap()];
        let instances = [Instance {
            id: "i-1".into(),
            tags: tags(&[("app", "web")]),
            state: "running".into(),
        }];
        let inventory = Inventory {
            region: "us-east-1".into(),
            interfaces: vec![a, b],
            instances: instances.to_vec(),
            tasks: Vec::new(),
        };
        let options = PollOptions {
            keys: &TagKeys::default(),
            leave_pod_addresses: false,
        };
        let events = poll_events(&inventory, 1_800_000_000, options).events(1_800_000_000);
        assert_eq!(events.len(), 4);
        let apps: Vec<(String, String)> = events
            .iter()
            .filter_map(|e| match e {
                MetadataEvent::Assign {
                    ip, at, workload, ..
                } => {
                    assert_eq!(*at, 1_800_000_000);
                    Some((ip.to_string(), workload.app.clone().unwrap()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            apps,
            vec![
                ("10.0.1.10".into(), "web".into()),
                ("10.0.1.20".into(), "nat-1".into())
            ]
        );
        assert!(
            matches!(&events[2], MetadataEvent::Interface { interface_id, .. } if interface_id == "eni-a")
        );
        // The events are the public format: they round-trip through JSON.
        for event in &events {
            let line = serde_json::to_string(event).unwrap();
            assert_eq!(
                &serde_json::from_str::<MetadataEvent>(&line).unwrap(),
                event
            );
        }
    }

    fn poll_of(inventory: &Inventory, leave_pod_addresses: bool) -> Vec<SnapshotOwner> {
        let options = PollOptions {
            keys: &TagKeys::default(),
            leave_pod_addresses,
        };
        poll_events(inventory, 1_000, options).owners
    }

    #[test]
    fn pod_addresses_of_an_eks_node_are_left_to_the_kubernetes_watcher() {
        let mut node = eni("eni-n", "interface", "aws-K8S-i-0node");
        node.instance_id = Some("i-0node".into());
        node.private_ips = vec!["10.0.1.10".parse().unwrap(), "10.0.1.11".parse().unwrap()];
        node.ipv4_prefixes = vec!["10.0.7.0/28".parse().unwrap()];
        let mut plain = eni("eni-p", "interface", "Primary network interface");
        plain.private_ips = vec!["10.0.2.10".parse().unwrap(), "10.0.2.11".parse().unwrap()];
        let inventory = Inventory {
            region: "us-east-1".into(),
            interfaces: vec![node, plain],
            instances: vec![Instance {
                id: "i-0node".into(),
                tags: tags(&[("eks:nodegroup-name", "ng-1"), ("eks:cluster-name", "prod")]),
                state: "running".into(),
            }],
            tasks: Vec::new(),
        };
        let owners = poll_of(&inventory, true);
        let ips: Vec<String> = owners.iter().map(|o| o.ip.to_string()).collect();
        assert_eq!(ips, vec!["10.0.1.10", "10.0.2.10", "10.0.2.11"]);
        assert_eq!(owners[0].workload.app.as_deref(), Some("ng-1"));
        let owners = poll_of(&inventory, false);
        assert_eq!(owners.len(), 4 + 16, "without a watcher the node owns them");
    }

    #[test]
    fn an_ecs_task_names_its_interface_or_owns_its_address_without_one() {
        let task = |eni: &str, ip: &str| EcsTask {
            task_arn: format!("arn:aws:ecs:us-east-1:1:task/prod/{eni}"),
            cluster: "prod".into(),
            group: Some("service:payments".into()),
            task_definition_arn: "arn:aws:ecs:us-east-1:1:task-definition/pay:3".into(),
            last_status: "RUNNING".into(),
            availability_zone: Some("us-east-1b".into()),
            interface_id: Some(eni.into()),
            private_ips: vec![ip.parse().unwrap()],
            started_at: None,
        };
        let listed = eni("eni-t", "interface", "arn:aws:ecs:us-east-1:1:attachment/x");
        let mut stopped = task("eni-s", "10.0.4.2");
        stopped.last_status = "STOPPED".into();
        let inventory = Inventory {
            region: "us-east-1".into(),
            interfaces: vec![listed],
            instances: Vec::new(),
            tasks: vec![
                task("eni-t", "10.0.1.10"),
                task("eni-u", "10.0.4.1"),
                stopped,
            ],
        };
        let owners = poll_of(&inventory, false);
        let seen: Vec<(String, String, String)> = owners
            .iter()
            .map(|o| {
                (
                    o.ip.to_string(),
                    o.workload.app.clone().unwrap(),
                    o.workload.cluster.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("10.0.1.10".into(), "payments".into(), "prod".into()),
                ("10.0.4.1".into(), "payments".into(), "prod".into()),
            ]
        );
    }

    #[test]
    fn an_interface_of_a_terminated_instance_owns_nothing() {
        let mut e = eni("eni-x", "interface", "Primary network interface");
        e.instance_id = Some("i-gone".into());
        let inventory = Inventory {
            region: "us-east-1".into(),
            interfaces: vec![e],
            instances: vec![Instance {
                id: "i-gone".into(),
                tags: tags(&[("app", "web")]),
                state: "terminated".into(),
            }],
            tasks: Vec::new(),
        };
        let owners = poll_of(&inventory, false);
        assert!(owners.is_empty(), "{owners:?}");
    }

    /// Found by a cold review: security groups for pods. The VPC resource
    /// controller gives each such pod a branch ENI (`aws-k8s-branch-eni`,
    /// type `branch`) whose primary address *is* the pod's IP: with the
    /// watcher on, the poll declared it an `aws_service`'s at every poll.
    #[test]
    fn a_branch_eni_address_is_left_to_the_pod_watcher() {
        let mut branch = eni("eni-047ff73e04f5b733c", "branch", "aws-k8s-branch-eni");
        branch.private_ips = vec!["192.168.29.178".parse().unwrap()];
        branch.tags = tags(&[
            ("vpcresources.k8s.aws/vlan-id", "1"),
            ("vpcresources.k8s.aws/trunk-eni-id", "eni-03e61f90252a662d1"),
            ("kubernetes.io/cluster/ironman", "owned"),
        ]);
        let inventory = Inventory {
            region: "eu-west-1".into(),
            interfaces: vec![branch],
            instances: Vec::new(),
            tasks: Vec::new(),
        };
        assert!(poll_of(&inventory, true).is_empty());
        assert_eq!(poll_of(&inventory, false).len(), 1);
    }

    /// Found by a cold review: a node being terminated is skipped whole,
    /// and the addresses its pods still hold must not be listed (so never
    /// released by a poll) while the pods run out their grace period.
    #[test]
    fn pod_addresses_of_a_node_shutting_down_are_not_listed() {
        let mut node = eni("eni-n", "interface", "aws-K8S-i-0node");
        node.instance_id = Some("i-0node".into());
        node.private_ips = vec!["10.0.1.10".parse().unwrap(), "10.0.1.11".parse().unwrap()];
        let inventory = Inventory {
            region: "us-east-1".into(),
            interfaces: vec![node],
            instances: vec![Instance {
                id: "i-0node".into(),
                tags: tags(&[("eks:cluster-name", "prod")]),
                state: "shutting-down".into(),
            }],
            tasks: Vec::new(),
        };
        assert!(poll_of(&inventory, true).is_empty());
    }
}
