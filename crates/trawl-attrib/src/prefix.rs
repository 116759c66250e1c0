//! Fallbacks by prefix, for IPs no interval covers: the user's CIDR table
//! (VPCs, subnets, on-premises ranges; the config file's `[[networks]]`),
//! then AWS's published `ip-ranges.json`, then a final class — `internet`
//! for public addresses, `unknown` for private ones. Longest prefix wins
//! within each table; IPv4 and IPv6.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use serde::Deserialize;

use crate::workload::{Workload, WorkloadId, WorkloadTable};

/// One user prefix (`[[networks]]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkEntry {
    /// The prefix (`10.1.0.0/16`).
    pub cidr: IpNet,
    /// A name (`prod-east`), kept as the label `network`.
    #[serde(default)]
    pub name: Option<String>,
    /// The kind attributed (default `network`).
    #[serde(default)]
    pub kind: Option<String>,
    /// An application name to attribute, if the range is one application's.
    #[serde(default)]
    pub app: Option<String>,
    /// AWS account.
    #[serde(default)]
    pub account: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Availability Zone id.
    #[serde(default)]
    pub az: Option<String>,
    /// VPC id, kept as the label `vpc`.
    #[serde(default)]
    pub vpc: Option<String>,
    /// Subnet id, kept as the label `subnet`.
    #[serde(default)]
    pub subnet: Option<String>,
}

impl NetworkEntry {
    /// The workload attributed to addresses in this prefix.
    pub fn workload(&self) -> Workload {
        let mut labels = BTreeMap::new();
        for (key, value) in [
            ("network", &self.name),
            ("vpc", &self.vpc),
            ("subnet", &self.subnet),
        ] {
            if let Some(value) = value {
                labels.insert(key.to_string(), value.clone());
            }
        }
        Workload {
            app: self.app.clone(),
            cluster: None,
            account: self.account.clone(),
            region: self.region.clone(),
            az: self.az.clone(),
            kind: Some(self.kind.clone().unwrap_or_else(|| "network".into())),
            labels,
        }
    }
}

/// Why an `ip-ranges.json` file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct IpRangesError {
    /// The input's name.
    pub source_name: String,
    /// What serde said (names the field and position).
    pub message: String,
}

#[derive(Deserialize)]
struct IpRanges {
    prefixes: Vec<IpRange<Ipv4Net>>,
    #[serde(default)]
    ipv6_prefixes: Vec<IpRange<Ipv6Net>>,
}

#[derive(Deserialize)]
struct IpRange<P> {
    #[serde(alias = "ip_prefix", alias = "ipv6_prefix")]
    prefix: P,
    region: String,
    service: String,
    #[serde(default)]
    network_border_group: Option<String>,
}

/// Longest-prefix match over IPv4 and IPv6 prefixes.
#[derive(Clone, Default)]
struct Lpm {
    v4: PrefixMap<Ipv4Net, WorkloadId>,
    v6: PrefixMap<Ipv6Net, WorkloadId>,
}

impl Lpm {
    fn insert(&mut self, net: IpNet, id: WorkloadId) {
        match net.trunc() {
            IpNet::V4(net) => {
                self.v4.insert(net, id);
            }
            IpNet::V6(net) => {
                self.v6.insert(net, id);
            }
        }
    }

    fn get(&self, net: IpNet) -> Option<WorkloadId> {
        match net.trunc() {
            IpNet::V4(net) => self.v4.get(&net).copied(),
            IpNet::V6(net) => self.v6.get(&net).copied(),
        }
    }

    fn longest_match(&self, ip: IpAddr) -> Option<(IpNet, WorkloadId)> {
        match ip {
            IpAddr::V4(ip) => self
                .v4
                .get_lpm(&Ipv4Net::from(ip))
                .map(|(net, id)| (IpNet::V4(net), *id)),
            IpAddr::V6(ip) => self
                .v6
                .get_lpm(&Ipv6Net::from(ip))
                .map(|(net, id)| (IpNet::V6(net), *id)),
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// Which prefix table answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixSource {
    /// The user's CIDR table.
    Network,
    /// AWS's `ip-ranges.json`.
    AwsIpRanges,
}

/// The user's networks and AWS's ranges.
#[derive(Clone, Default)]
pub struct PrefixTables {
    networks: Lpm,
    aws: Lpm,
}

impl std::fmt::Debug for PrefixTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixTables")
            .field("networks", &self.networks.len())
            .field("aws", &self.aws.len())
            .finish()
    }
}

impl PrefixTables {
    /// Adds user networks (a later entry for the same prefix replaces an earlier one).
    pub fn add_networks(&mut self, entries: &[NetworkEntry], workloads: &mut WorkloadTable) {
        for entry in entries {
            if let Some(id) = workloads.intern(&entry.workload()) {
                self.networks.insert(entry.cidr, id);
            }
        }
    }

    /// Loads AWS's `ip-ranges.json`. A prefix listed under several services
    /// is attributed to the most specific one (any service but `AMAZON`, the
    /// umbrella entry). Returns the number of prefixes loaded.
    pub fn add_aws_ip_ranges(
        &mut self,
        json: &[u8],
        source_name: &str,
        workloads: &mut WorkloadTable,
    ) -> Result<usize, IpRangesError> {
        let ranges: IpRanges = serde_json::from_slice(json).map_err(|e| IpRangesError {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        let v4 = ranges.prefixes.into_iter().map(|r| {
            (
                IpNet::V4(r.prefix),
                r.region,
                r.service,
                r.network_border_group,
            )
        });
        let v6 = ranges.ipv6_prefixes.into_iter().map(|r| {
            (
                IpNet::V6(r.prefix),
                r.region,
                r.service,
                r.network_border_group,
            )
        });
        let mut count = 0;
        for (net, region, service, border_group) in v4.chain(v6) {
            let existing = self
                .aws
                .get(net)
                .and_then(|id| workloads.get(id))
                .and_then(|w| w.app.clone());
            if existing.is_some_and(|app| app != "AMAZON") && service == "AMAZON" {
                continue;
            }
            let mut labels = BTreeMap::new();
            if let Some(group) = border_group {
                labels.insert("network_border_group".to_string(), group);
            }
            let workload = Workload {
                app: Some(service),
                region: Some(region),
                kind: Some("aws_service".into()),
                labels,
                ..Workload::default()
            };
            if let Some(id) = workloads.intern(&workload) {
                self.aws.insert(net, id);
                count += 1;
            }
        }
        Ok(count)
    }

    /// The longest matching prefix of the user's table, else of AWS's ranges.
    pub fn lookup(&self, ip: IpAddr) -> Option<(PrefixSource, IpNet, WorkloadId)> {
        if let Some((net, id)) = self.networks.longest_match(ip) {
            return Some((PrefixSource::Network, net, id));
        }
        self.aws
            .longest_match(ip)
            .map(|(net, id)| (PrefixSource::AwsIpRanges, net, id))
    }
}

/// Whether an address is private (RFC 1918, shared CGNAT space, loopback,
/// link-local, unique-local IPv6, unspecified): such an address outside
/// every table is `unknown`; any other is `internet`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn longest_user_prefix_wins_over_shorter_and_over_aws() {
        let mut workloads = WorkloadTable::default();
        let mut tables = PrefixTables::default();
        let entries: Vec<NetworkEntry> = vec![
            NetworkEntry {
                cidr: "10.1.0.0/16".parse().unwrap(),
                name: Some("prod-east".into()),
                region: Some("us-east-1".into()),
                ..NetworkEntry::default()
            },
            NetworkEntry {
                cidr: "10.1.2.0/24".parse().unwrap(),
                subnet: Some("subnet-1".into()),
                az: Some("use1-az2".into()),
                ..NetworkEntry::default()
            },
            NetworkEntry {
                cidr: "2001:db8::/32".parse().unwrap(),
                kind: Some("on_premises".into()),
                ..NetworkEntry::default()
            },
        ];
        tables.add_networks(&entries, &mut workloads);
        let (source, net, id) = tables.lookup(ip("10.1.2.3")).unwrap();
        assert_eq!(
            (source, net.to_string()),
            (PrefixSource::Network, "10.1.2.0/24".into())
        );
        assert_eq!(workloads.get(id).unwrap().labels["subnet"], "subnet-1");
        let (_, net, id) = tables.lookup(ip("10.1.9.9")).unwrap();
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert_eq!(workloads.get(id).unwrap().kind.as_deref(), Some("network"));
        assert_eq!(
            workloads
                .get(tables.lookup(ip("2001:db8::5")).unwrap().2)
                .unwrap()
                .kind
                .as_deref(),
            Some("on_premises")
        );
        assert!(tables.lookup(ip("10.2.0.1")).is_none());
    }

    #[test]
    fn private_and_public_classes() {
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip(private)), "{private}");
        }
        for public in [
            "8.8.8.8",
            "52.94.133.131",
            "100.128.0.1",
            "172.32.0.1",
            "2600:1f18::1",
        ] {
            assert!(!is_private(ip(public)), "{public}");
        }
    }
}
