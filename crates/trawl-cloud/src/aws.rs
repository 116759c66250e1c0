//! The AWS poller of `[[metadata.aws]]`: one poll of a region (of an
//! account) lists its VPCs, network interfaces, instances and ECS tasks
//! and returns them as an [`Inventory`], with the networks the poll speaks
//! for.
//!
//! ```text
//!  target (region × account; an account is a role assumed through STS, or the default credentials)
//!     DescribeNetworkInterfaces (1,000 a page, vpc-id filter) ─► NetworkInterface values
//!     DescribeInstances (1,000 a page) ─► Instance tags
//!     ECS ListClusters ─► ListTasks (100 a page) ─► DescribeTasks (100 a call) ─► EcsTask values
//! ```
//!
//! A poll is all or nothing: any call that fails (after the SDK's own
//! retries, which back off on throttling) fails the poll, which then
//! releases nothing; the caller backs off. A listing past
//! `interfaces_max` fails too (a truncated snapshot would release the
//! rest). Calls are counted per operation ([`Calls`]): at 10,000
//! interfaces, 5,000 instances and 2,000 tasks in one cluster a poll makes
//! 10 + 5 + 1 + 20 + 20 = 56 calls (plus one `DescribeAvailabilityZones`
//! when interfaces lack their zone ids).
//!
//! Every call is bounded in time (5 s to connect, 10 s an attempt, 30 s an
//! operation), as for the Kinesis source.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::Filter;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use serde::Deserialize;
use tokio::runtime::Runtime;
use trawl_attrib::Secs;

use crate::ecs::{EcsTask, arn_name};
use crate::eni::{Instance, Inventory, NetworkInterface, TagKeys};

/// Most VPC ids, clusters or accounts one source names.
pub const NAMES_MAX: usize = 1_000;

/// An account reached by assuming a role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    /// The role to assume (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub role_arn: String,
    /// The external id the role's trust policy asks for, if any.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// Tag keys naming applications and clusters (`[metadata.aws.tag_keys]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagKeysConfig {
    /// Tags naming the application, first found wins.
    pub app: Vec<String>,
    /// Tags naming the cluster, first found wins.
    pub cluster: Vec<String>,
}

impl Default for TagKeysConfig {
    fn default() -> Self {
        let keys = TagKeys::default();
        TagKeysConfig {
            app: keys.app,
            cluster: keys.cluster,
        }
    }
}

/// One `[[metadata.aws]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSourceConfig {
    /// Regions polled.
    pub regions: Vec<String>,
    /// Accounts polled, each through a role (none: the account of the
    /// default credentials).
    pub accounts: Vec<AwsAccount>,
    /// Another endpoint for every service (tests, compatible services).
    pub endpoint_url: Option<String>,
    /// How often each region is polled (seconds).
    pub poll_secs: u64,
    /// Only these VPCs (none: every VPC of the region).
    pub vpc_ids: Vec<String>,
    /// Also list ECS tasks (`awsvpc` mode) for their service names.
    pub ecs: bool,
    /// Only these ECS clusters (none: every cluster).
    pub ecs_clusters: Vec<String>,
    /// Tags naming applications and clusters.
    pub tag_keys: TagKeysConfig,
    /// Leave EKS nodes' secondary addresses to the Kubernetes watcher
    /// (none: when a `[[metadata.kubernetes]]` is configured).
    pub leave_pod_addresses: Option<bool>,
    /// Most interfaces of one poll; a poll with more fails.
    pub interfaces_max: usize,
}

impl Default for AwsSourceConfig {
    fn default() -> Self {
        AwsSourceConfig {
            regions: Vec::new(),
            accounts: Vec::new(),
            endpoint_url: None,
            poll_secs: 60,
            vpc_ids: Vec::new(),
            ecs: true,
            ecs_clusters: Vec::new(),
            tag_keys: TagKeysConfig::default(),
            leave_pod_addresses: None,
            interfaces_max: 500_000,
        }
    }
}

impl AwsSourceConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("metadata.aws.regions is empty: name the regions to poll".into());
        }
        let region_like = |r: &str| {
            !r.is_empty()
                && r.len() <= 32
                && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if let Some(bad) = self.regions.iter().find(|r| !region_like(r)) {
            return Err(format!(
                "metadata.aws.regions: {bad:?} is not a region name"
            ));
        }
        if !(1..=86_400).contains(&self.poll_secs) {
            return Err(format!(
                "metadata.aws.poll_secs = {}: must be between 1 and 86400",
                self.poll_secs
            ));
        }
        for (name, count) in [
            ("accounts", self.accounts.len()),
            ("vpc_ids", self.vpc_ids.len()),
            ("ecs_clusters", self.ecs_clusters.len()),
            ("regions", self.regions.len()),
        ] {
            if count > NAMES_MAX {
                return Err(format!("metadata.aws.{name}: at most {NAMES_MAX}"));
            }
        }
        if let Some(bad) = self
            .accounts
            .iter()
            .find(|a| account_of_role(&a.role_arn).is_none())
        {
            return Err(format!(
                "metadata.aws.accounts: role_arn {:?} is not arn:aws:iam::ACCOUNT:role/NAME",
                bad.role_arn
            ));
        }
        if self.interfaces_max == 0 {
            return Err("metadata.aws.interfaces_max is 0".into());
        }
        Ok(())
    }

    /// Every (region, account) this source polls, in order.
    pub fn targets(&self) -> Vec<Target> {
        let accounts: Vec<Option<&AwsAccount>> = if self.accounts.is_empty() {
            vec![None]
        } else {
            self.accounts.iter().map(Some).collect()
        };
        accounts
            .into_iter()
            .flat_map(|account| {
                self.regions.iter().map(move |region| Target {
                    region: region.clone(),
                    account: account.cloned(),
                })
            })
            .collect()
    }

    /// The tag keys as the conversion takes them.
    pub fn keys(&self) -> TagKeys {
        TagKeys {
            app: self.tag_keys.app.clone(),
            cluster: self.tag_keys.cluster.clone(),
        }
    }
}

/// The account id of a role ARN.
fn account_of_role(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some(_partition), Some("iam"), Some(""), Some(account), Some(role)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && role.starts_with("role/"))
    .then_some(account)
}

/// One region of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The region.
    pub region: String,
    /// The account's role (none: the default credentials).
    pub account: Option<AwsAccount>,
}

impl Target {
    /// The account of its role (none: the default credentials').
    pub fn account_id(&self) -> Option<&str> {
        self.account
            .as_ref()
            .and_then(|a| account_of_role(&a.role_arn))
    }

    /// Its name in positions, metrics and messages: `aws:ACCOUNT/REGION`
    /// (`default` for the default credentials' account).
    pub fn name(&self) -> String {
        let account = self.account_id().unwrap_or("default");
        format!("aws:{account}/{}", self.region)
    }
}

/// API calls made by one poll, per operation.
pub type Calls = BTreeMap<&'static str, u64>;

/// What one poll found.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// The inventory.
    pub inventory: Inventory,
    /// When the listing began (epoch seconds): what it lists was so at
    /// some moment from then on, and nothing earlier is vouched for.
    pub started_at: Secs,
    /// Calls made.
    pub calls: Calls,
}

/// Why a poll failed (nothing of it is applied).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// A call failed after the SDK's retries.
    #[error("{target}: {operation}: {message}")]
    Call {
        /// The target polled.
        target: String,
        /// The operation.
        operation: &'static str,
        /// Whether AWS said the caller is throttled.
        throttled: bool,
        /// What failed, with the service's error code.
        message: String,
    },
    /// More interfaces than `interfaces_max`.
    #[error("{target}: more than {max} network interfaces (metadata.aws.interfaces_max)")]
    TooMany {
        /// The target polled.
        target: String,
        /// The limit.
        max: usize,
    },
}

impl PollError {
    /// Whether the failure was throttling.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self,
            PollError::Call {
                throttled: true,
                ..
            }
        )
    }
}

/// The clients of one target.
struct Clients {
    target: Target,
    ec2: aws_sdk_ec2::Client,
    ecs: aws_sdk_ecs::Client,
}

/// Polls the targets of one `[[metadata.aws]]` (blocking calls on its own
/// current-thread runtime).
pub struct AwsPoller {
    config: AwsSourceConfig,
    runtime: Runtime,
    clients: Vec<Clients>,
}

impl std::fmt::Debug for AwsPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsPoller")
            .field("targets", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl AwsPoller {
    /// Clients for every target of `config` (credentials are resolved at
    /// the first call, not here).
    pub fn new(config: AwsSourceConfig) -> Result<AwsPoller, String> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("metadata.aws: starting its runtime: {e}"))?;
        let clients = runtime.block_on(async {
            let mut clients = Vec::new();
            for target in config.targets() {
                clients.push(clients_of(&config, target).await);
            }
            clients
        });
        Ok(AwsPoller {
            config,
            runtime,
            clients,
        })
    }

    /// The targets, in poll order.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.clients.iter().map(|c| &c.target)
    }

    /// Polls target `i` (see the module header).
    pub fn poll(&self, i: usize) -> Result<Polled, PollError> {
        let clients = &self.clients[i.min(self.clients.len().saturating_sub(1))];
        self.runtime.block_on(poll_target(&self.config, clients))
    }
}

/// A target's clients: rustls on ring, bounded calls, the default
/// credential chain or a role assumed through it.
async fn clients_of(config: &AwsSourceConfig, target: Target) -> Clients {
    let mut shared = loader(config, &target).load().await;
    if let Some(account) = &target.account {
        let mut role = AssumeRoleProvider::builder(account.role_arn.clone())
            .session_name("trawl-metadata")
            .region(Region::new(target.region.clone()))
            .configure(&shared);
        if let Some(id) = &account.external_id {
            role = role.external_id(id.clone());
        }
        let provider = role.build().await;
        shared = loader(config, &target)
            .credentials_provider(provider)
            .load()
            .await;
    }
    Clients {
        target,
        ec2: aws_sdk_ec2::Client::new(&shared),
        ecs: aws_sdk_ecs::Client::new(&shared),
    }
}

/// The SDK settings of a target (credentials: the default chain).
fn loader(config: &AwsSourceConfig, target: &Target) -> aws_config::ConfigLoader {
    sdk_loader(&target.region, config.endpoint_url.as_deref())
}

/// trawl's settings for an AWS SDK client of `region`: rustls on ring (no
/// aws-lc C build), every call bounded (5 s to connect, 10 s an attempt,
/// 30 s an operation: an endpoint that takes the connection and never
/// answers must not hold a reader or the shutdown), the usual credential
/// chain, and another endpoint if given (tests, compatible services).
pub fn sdk_loader(region: &str, endpoint_url: Option<&str>) -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .timeout_config(timeouts)
        .http_client(http);
    match endpoint_url {
        Some(url) => loader.endpoint_url(url),
        None => loader,
    }
}

/// Turns an SDK error into a [`PollError`] naming the call.
fn call_error<E>(
    target: &Target,
    operation: &'static str,
    error: aws_sdk_ec2::error::SdkError<E>,
) -> PollError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().map(str::to_string);
    let throttled = code.as_deref().is_some_and(|c| {
        c.contains("Throttl") || c == "RequestLimitExceeded" || c == "TooManyRequestsException"
    });
    PollError::Call {
        target: target.name(),
        operation,
        throttled,
        message: format!("{}", DisplayErrorContext(&error)),
    }
}

async fn poll_target(config: &AwsSourceConfig, clients: &Clients) -> Result<Polled, PollError> {
    let mut polled = Polled {
        inventory: Inventory {
            region: clients.target.region.clone(),
            ..Inventory::default()
        },
        ..Polled::default()
    };
    polled.started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| Secs::try_from(d.as_secs()).unwrap_or(Secs::MAX));
    polled.inventory.interfaces = interfaces(config, clients, &mut polled.calls).await?;
    if polled.inventory.interfaces.iter().any(|e| {
        e.availability_zone
            .as_deref()
            .is_some_and(|z| !is_zone_id(z))
    }) {
        let ids = zone_ids(clients, &mut polled.calls).await?;
        for eni in &mut polled.inventory.interfaces {
            if let Some(id) = eni.availability_zone.as_ref().and_then(|z| ids.get(z)) {
                eni.availability_zone = Some(id.clone());
            }
        }
    }
    polled.inventory.instances = instances(clients, &mut polled.calls).await?;
    if config.ecs {
        polled.inventory.tasks = tasks(config, clients, &mut polled.calls).await?;
    }
    Ok(polled)
}

/// Whether `zone` is a zone id (`use1-az2`) rather than a name (`us-east-1a`).
fn is_zone_id(zone: &str) -> bool {
    zone.contains("-az")
}

/// Zone names to zone ids (flow logs' `az-id` is the id: names are
/// shuffled per account). Only asked when an interface lacks its id.
async fn zone_ids(
    clients: &Clients,
    calls: &mut Calls,
) -> Result<BTreeMap<String, String>, PollError> {
    *calls.entry("DescribeAvailabilityZones").or_default() += 1;
    let zones = clients
        .ec2
        .describe_availability_zones()
        .send()
        .await
        .map_err(|e| call_error(&clients.target, "DescribeAvailabilityZones", e))?;
    Ok(zones
        .availability_zones()
        .iter()
        .filter_map(|z| Some((z.zone_name()?.to_string(), z.zone_id()?.to_string())))
        .collect())
}

fn vpc_filter(config: &AwsSourceConfig) -> Option<Vec<Filter>> {
    (!config.vpc_ids.is_empty()).then(|| {
        vec![
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(config.vpc_ids.clone()))
                .build(),
        ]
    })
}

/// Epoch seconds of an SDK time.
fn secs(t: &aws_sdk_ec2::primitives::DateTime) -> Secs {
    t.secs()
}

fn parse_ips<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<IpAddr> {
    texts.filter_map(|t| t.parse().ok()).collect()
}

fn interface_of(e: &aws_sdk_ec2::types::NetworkInterface) -> Option<NetworkInterface> {
    let mut privates: Vec<&aws_sdk_ec2::types::NetworkInterfacePrivateIpAddress> =
        e.private_ip_addresses().iter().collect();
    // The primary first (EKS nodes' pod addresses are the others).
    privates.sort_by_key(|p| !p.primary().unwrap_or(false));
    let publics = privates
        .iter()
        .filter_map(|p| p.association().and_then(|a| a.public_ip()))
        .chain(e.association().and_then(|a| a.public_ip()));
    Some(NetworkInterface {
        id: e.network_interface_id()?.to_string(),
        interface_type: e
            .interface_type()
            .map_or_else(String::new, |t| t.as_str().to_string()),
        description: e.description().unwrap_or_default().to_string(),
        owner_id: e.owner_id().map(str::to_string),
        availability_zone: e
            .availability_zone_id()
            .or(e.availability_zone())
            .map(str::to_string),
        instance_id: e
            .attachment()
            .and_then(|a| a.instance_id())
            .map(str::to_string),
        attached_at: e.attachment().and_then(|a| a.attach_time()).map(secs),
        private_ips: parse_ips(
            privates
                .iter()
                .filter_map(|p| p.private_ip_address())
                .chain(e.private_ip_address().filter(|_| privates.is_empty())),
        ),
        public_ips: {
            let mut ips = parse_ips(publics);
            ips.dedup();
            ips
        },
        ipv6: parse_ips(e.ipv6_addresses().iter().filter_map(|a| a.ipv6_address())),
        ipv4_prefixes: e
            .ipv4_prefixes()
            .iter()
            .filter_map(|p| p.ipv4_prefix()?.parse().ok())
            .collect(),
        tags: e
            .tag_set()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    })
}

async fn interfaces(
    config: &AwsSourceConfig,
    clients: &Clients,
    calls: &mut Calls,
) -> Result<Vec<NetworkInterface>, PollError> {
    let mut pages = clients
        .ec2
        .describe_network_interfaces()
        .set_filters(vpc_filter(config))
        .max_results(1000)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        *calls.entry("DescribeNetworkInterfaces").or_default() += 1;
        let page = page.map_err(|e| call_error(&clients.target, "DescribeNetworkInterfaces", e))?;
        found.extend(page.network_interfaces().iter().filter_map(interface_of));
        if found.len() > config.interfaces_max {
            return Err(PollError::TooMany {
                target: clients.target.name(),
                max: config.interfaces_max,
            });
        }
    }
    Ok(found)
}

async fn instances(clients: &Clients, calls: &mut Calls) -> Result<Vec<Instance>, PollError> {
    let mut pages = clients
        .ec2
        .describe_instances()
        .max_results(1000)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        *calls.entry("DescribeInstances").or_default() += 1;
        let page = page.map_err(|e| call_error(&clients.target, "DescribeInstances", e))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = instance.instance_id() else {
                continue;
            };
            found.push(Instance {
                id: id.to_string(),
                state: instance
                    .state()
                    .and_then(|s| s.name())
                    .map_or_else(String::new, |n| n.as_str().to_string()),
                tags: instance
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
            });
        }
    }
    Ok(found)
}

async fn tasks(
    config: &AwsSourceConfig,
    clients: &Clients,
    calls: &mut Calls,
) -> Result<Vec<EcsTask>, PollError> {
    let clusters = if config.ecs_clusters.is_empty() {
        let mut pages = clients.ecs.list_clusters().into_paginator().send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            *calls.entry("ListClusters").or_default() += 1;
            let page = page.map_err(|e| ecs_call_error(&clients.target, "ListClusters", e))?;
            arns.extend(page.cluster_arns().iter().cloned());
        }
        arns
    } else {
        config.ecs_clusters.clone()
    };
    let mut found = Vec::new();
    for cluster in clusters.iter().take(NAMES_MAX) {
        let mut pages = clients
            .ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            *calls.entry("ListTasks").or_default() += 1;
            let page = page.map_err(|e| ecs_call_error(&clients.target, "ListTasks", e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        for chunk in arns.chunks(100) {
            *calls.entry("DescribeTasks").or_default() += 1;
            let described = clients
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| ecs_call_error(&clients.target, "DescribeTasks", e))?;
            found.extend(described.tasks().iter().map(|t| task_of(t, cluster)));
        }
    }
    Ok(found)
}

/// Turns an ECS SDK error into a [`PollError`] naming the call.
fn ecs_call_error<E>(
    target: &Target,
    operation: &'static str,
    error: aws_sdk_ecs::error::SdkError<E>,
) -> PollError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let throttled = error.code().is_some_and(|c| c.contains("Throttl"));
    PollError::Call {
        target: target.name(),
        operation,
        throttled,
        message: format!("{}", aws_sdk_ecs::error::DisplayErrorContext(&error)),
    }
}

fn task_of(task: &aws_sdk_ecs::types::Task, cluster: &str) -> EcsTask {
    let eni = task
        .attachments()
        .iter()
        .find(|a| a.r#type() == Some("ElasticNetworkInterface"));
    let detail = |name: &str| -> Vec<&str> {
        eni.map(|a| {
            a.details()
                .iter()
                .filter(|d| d.name() == Some(name))
                .filter_map(|d| d.value())
                .collect()
        })
        .unwrap_or_default()
    };
    EcsTask {
        task_arn: task.task_arn().unwrap_or_default().to_string(),
        cluster: arn_name(task.cluster_arn().unwrap_or(cluster)).to_string(),
        group: task.group().map(str::to_string),
        task_definition_arn: task.task_definition_arn().unwrap_or_default().to_string(),
        last_status: task.last_status().unwrap_or_default().to_string(),
        availability_zone: task.availability_zone().map(str::to_string),
        interface_id: detail("networkInterfaceId")
            .first()
            .map(|s| (*s).to_string()),
        private_ips: parse_ips(
            detail("privateIPv4Address")
                .into_iter()
                .chain(detail("ipv6Address")),
        ),
        started_at: task.started_at().map(|t| t.secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_by_name() {
        let ok = AwsSourceConfig {
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            accounts: vec![AwsAccount {
                role_arn: "arn:aws:iam::123456789012:role/trawl-reader".into(),
                external_id: None,
            }],
            ..AwsSourceConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let names: Vec<String> = ok.targets().iter().map(Target::name).collect();
        assert_eq!(
            names,
            vec!["aws:123456789012/us-east-1", "aws:123456789012/eu-west-1"]
        );
        let cases = [
            (AwsSourceConfig::default(), "metadata.aws.regions"),
            (
                AwsSourceConfig {
                    poll_secs: 0,
                    ..ok.clone()
                },
                "metadata.aws.poll_secs",
            ),
            (
                AwsSourceConfig {
                    regions: vec!["us east".into()],
                    ..ok.clone()
                },
                "metadata.aws.regions",
            ),
            (
                AwsSourceConfig {
                    accounts: vec![AwsAccount {
                        role_arn: "arn:aws:iam::12:user/x".into(),
                        external_id: None,
                    }],
                    ..ok.clone()
                },
                "metadata.aws.accounts",
            ),
        ];
        for (config, name) in cases {
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(name), "{error}");
        }
        let default = AwsSourceConfig {
            regions: vec!["us-east-1".into()],
            ..AwsSourceConfig::default()
        };
        assert_eq!(default.targets()[0].name(), "aws:default/us-east-1");
    }

    /// Found by a cold review: EKS in IPv6 mode delegates a /80 prefix to
    /// the node's ENI (`Ipv6Prefixes`) and gives pods addresses from it;
    /// the poll must neither list them nor (so) ever release them.
    #[test]
    fn an_eks_nodes_ipv6_pod_addresses_are_left_to_the_pod_watcher() {
        use aws_sdk_ec2::types as ec2;
        let sdk = ec2::NetworkInterface::builder()
            .network_interface_id("eni-node")
            .interface_type(ec2::NetworkInterfaceType::Interface)
            .description("")
            .owner_id("123456789012")
            .availability_zone_id("use1-az1")
            .attachment(
                ec2::NetworkInterfaceAttachment::builder()
                    .instance_id("i-node")
                    .build(),
            )
            .private_ip_addresses(
                ec2::NetworkInterfacePrivateIpAddress::builder()
                    .primary(true)
                    .private_ip_address("10.0.1.10")
                    .build(),
            )
            .ipv6_prefixes(
                ec2::Ipv6PrefixSpecification::builder()
                    .ipv6_prefix("2600:1f18:aaaa:bb00:1234::/80")
                    .build(),
            )
            .build();
        let inventory = crate::eni::Inventory {
            region: "us-east-1".into(),
            interfaces: vec![interface_of(&sdk).unwrap()],
            instances: vec![Instance {
                id: "i-node".into(),
                tags: BTreeMap::from([("eks:cluster-name".to_string(), "prod".to_string())]),
                state: "running".into(),
            }],
            tasks: Vec::new(),
        };
        let keys = TagKeys::default();
        let options = crate::eni::PollOptions {
            keys: &keys,
            leave_pod_addresses: true,
        };
        let listed = crate::eni::poll_events(&inventory, 1_900_000_000, options).listed();
        let want: Vec<IpAddr> = vec!["10.0.1.10".parse().unwrap()];
        assert_eq!(listed.into_iter().collect::<Vec<_>>(), want);
    }
}
