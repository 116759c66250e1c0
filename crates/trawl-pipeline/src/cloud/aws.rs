//! The thread of one `[[metadata.aws]]`: polls each region × account in
//! turn every `poll_secs`, and applies each successful poll to the index
//! (see the module header of `cloud`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trawl_attrib::{AttributionIndex, MetadataEvent, Secs, Workload};
use trawl_cloud::aws::{AwsPoller, AwsSourceConfig, PollError, Polled};
use trawl_cloud::{
    Dates, PollOptions, TagKeys, Window, dated_assigns, keep_own_releases, poll_events,
};

use super::{BACKOFF_MAX, CloudHorizon, declared_at, register, vouch};
use crate::metadata_log::apply_events;
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
    /// The region.
    region: String,
    /// The account of its role, if any.
    account: Option<String>,
    /// The addresses its last poll listed (none before this run's first:
    /// the index says which addresses it declared).
    listed: Option<BTreeSet<IpAddr>>,
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
                region: t.region.clone(),
                account: t.account_id().map(str::to_string),
                listed: None,
                failures: 0,
                next_poll: Instant::now(),
            })
            .collect();
        for target in &targets {
            register(&mut cx.index_write(), &horizon, &target.name);
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

    /// Applies target `i`'s poll at the time its listing began: the dated
    /// assigns, an assign per listed address, the interfaces, and a
    /// release of each address the target's previous poll listed and this
    /// one does not (if it is still the target's: another source may have
    /// given it to a pod since). Addresses it never listed are never
    /// released (another region's in the same CIDR, another source's).
    fn apply(&mut self, i: usize, polled: &Polled) {
        let at = polled.started_at;
        let target = &self.targets[i];
        let name = target.name.clone();
        let key = format!("cloud:{name}");
        let options = PollOptions {
            keys: &self.keys,
            leave_pod_addresses: self.leave_pod_addresses,
        };
        let poll = poll_events(&polled.inventory, at, options);
        let listed = poll.listed();
        let mut events = poll.events(at);
        let dates = Dates::of(&polled.inventory);
        let applied = {
            let mut index = self.cx.index_write();
            let saved = Position::decode(index.source_position(&key));
            // The accounts whose addresses this target declares: its
            // role's, those its interfaces name, those it named before.
            let listed_owners = polled
                .inventory
                .interfaces
                .iter()
                .map(|e| e.owner_id.clone());
            let accounts = accounts_of(target.account.clone(), saved.accounts, listed_owners);
            let own = |w: &Workload| is_own(w, &target.region, &accounts);
            let previous = match &target.listed {
                Some(previous) => previous.clone(),
                None => declared_by(&index, at, &own),
            };
            let releases = previous
                .difference(&listed)
                .map(|ip| MetadataEvent::Release { ip: *ip, at })
                .collect();
            let releases = keep_own_releases(releases, |ip, t| declared_at(&index, ip, t), own);
            let window = Window {
                previous_at: saved.at,
                at,
                backdate_secs_max: self.config.poll_secs.saturating_mul(2),
            };
            let mut dated =
                dated_assigns(&events, &dates, window, |ip, t| declared_at(&index, ip, t));
            self.cx
                .stats
                .cloud
                .add(&name, "dated_assigns", dated.len() as u64);
            dated.append(&mut events);
            dated.extend(releases);
            let n = apply_events(&self.cx, &mut index, &dated, None);
            let position = Position {
                at: Some(at),
                accounts: accounts.into_iter().collect(),
            };
            index.set_source_position(&key, &position.encode());
            // The listing's own second is not over: what happened in it
            // after the listing began is for the next poll.
            vouch(&mut index, &self.horizon, &name, at - 1);
            n
        };
        let stats = &self.cx.stats.cloud;
        stats.add(&name, "polls", 1);
        stats.add(&name, "events", applied as u64);
        stats.add(&name, "api_calls", polled.calls.values().sum());
        stats.set(&name, "addresses", listed.len() as u64);
        stats.set(&name, "seen_at_seconds", u64::try_from(at).unwrap_or(0));
        self.targets[i].listed = Some(listed);
    }
}

/// Most accounts a target's position remembers.
const ACCOUNTS_MAX: usize = 64;

/// The accounts whose addresses a target declares: its role's and those it
/// named before first (they are kept when the bound is reached), then those
/// its interfaces name; at most [`ACCOUNTS_MAX`] distinct ones.
fn accounts_of(
    role: Option<String>,
    saved: Vec<String>,
    listed: impl Iterator<Item = Option<String>>,
) -> BTreeSet<String> {
    let mut accounts = BTreeSet::new();
    for account in role.into_iter().chain(saved).chain(listed.flatten()) {
        if accounts.len() >= ACCOUNTS_MAX {
            break;
        }
        accounts.insert(account);
    }
    accounts
}

/// A target's position in the index (`cloud:aws:ACCOUNT/REGION`), saved
/// with the ownership it declared: when its last poll's listing began,
/// and the accounts whose addresses it declared (`AT ACCOUNT,ACCOUNT`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Position {
    at: Option<Secs>,
    accounts: Vec<String>,
}

impl Position {
    fn decode(text: Option<&str>) -> Position {
        let mut parts = text.unwrap_or_default().split(' ');
        Position {
            at: parts.next().and_then(|t| t.parse().ok()),
            accounts: parts
                .next()
                .map(|a| {
                    a.split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn encode(&self) -> String {
        format!("{} {}", self.at.unwrap_or(0), self.accounts.join(","))
    }
}

/// Whether `workload` is one an EC2 poll of `region` declared (for the
/// accounts it listed): so that it may release it.
fn is_own(workload: &Workload, region: &str, accounts: &BTreeSet<String>) -> bool {
    workload.region.as_deref() == Some(region)
        && workload.kind.as_deref() != Some("pod")
        && workload
            .account
            .as_ref()
            .is_some_and(|a| accounts.contains(a))
}

/// The addresses whose owner at `at` is one `own` says this target
/// declared (what its last poll before a restart listed, as the saved
/// index remembers it).
fn declared_by(
    index: &AttributionIndex,
    at: Secs,
    own: &impl Fn(&Workload) -> bool,
) -> BTreeSet<IpAddr> {
    index
        .records()
        .filter(|(ip, _)| declared_at(index, *ip, at).is_some_and(|w| own(&w)))
        .map(|(ip, _)| ip)
        .collect()
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

#[cfg(test)]
mod tests {
    //! Cold review (issue 17): the poll's application to the index, with
    //! polls built by hand (what `AwsPoller::poll` would have returned).
    use super::*;
    use std::collections::BTreeMap;
    use trawl_attrib::Rule;
    use trawl_cloud::{Instance, Inventory, NetworkInterface};

    use crate::now_secs;

    fn context(dir: &std::path::Path) -> Arc<Context> {
        let store = trawl_store::Store::open(trawl_store::StoreConfig::new(dir)).unwrap();
        Arc::new(Context::new(
            crate::config::PipelineConfig::default(),
            store,
            AttributionIndex::default(),
            None,
            None,
        ))
    }

    /// The thread's state for one target (the SDK clients point nowhere:
    /// they are never called, polls are handed to `apply`).
    fn poller(cx: &Arc<Context>, leave_pod_addresses: bool) -> Poller {
        poller_of(cx, leave_pod_addresses, "us-east-1")
    }

    fn poller_of(cx: &Arc<Context>, leave_pod_addresses: bool, region: &str) -> Poller {
        let config = AwsSourceConfig {
            regions: vec![region.into()],
            endpoint_url: Some("http://127.0.0.1:9".into()),
            ..AwsSourceConfig::default()
        };
        Poller {
            cx: cx.clone(),
            keys: config.keys(),
            poller: AwsPoller::new(config.clone()).unwrap(),
            config,
            leave_pod_addresses,
            horizon: Arc::new(CloudHorizon::default()),
            targets: vec![TargetState {
                name: format!("aws:default/{region}"),
                region: region.into(),
                account: None,
                listed: None,
                failures: 0,
                next_poll: Instant::now(),
            }],
        }
    }

    fn instance(
        eni: &str,
        ips: &[&str],
        public: &[&str],
        app: &str,
    ) -> (NetworkInterface, Instance) {
        let interface = NetworkInterface {
            id: eni.into(),
            interface_type: "interface".into(),
            description: "Primary network interface".into(),
            owner_id: Some("123456789012".into()),
            availability_zone: Some("use1-az1".into()),
            instance_id: Some(format!("i-{eni}")),
            private_ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            public_ips: public.iter().map(|ip| ip.parse().unwrap()).collect(),
            ..NetworkInterface::default()
        };
        let instance = Instance {
            id: format!("i-{eni}"),
            tags: BTreeMap::from([("app".to_string(), app.to_string())]),
            state: "running".into(),
        };
        (interface, instance)
    }

    /// A poll whose listing began now (`_vpcs`: what DescribeVpcs said,
    /// no longer asked: a poll releases what it listed before).
    fn polled(_vpcs: &[&str], owned: Vec<(NetworkInterface, Instance)>) -> Polled {
        polled_in("us-east-1", owned)
    }

    fn polled_in(region: &str, owned: Vec<(NetworkInterface, Instance)>) -> Polled {
        let (interfaces, instances) = owned.into_iter().unzip();
        Polled {
            inventory: Inventory {
                region: region.into(),
                interfaces,
                instances,
                tasks: Vec::new(),
            },
            started_at: now(),
            calls: Default::default(),
        }
    }

    fn declared(cx: &Context, ip: &str, t: Secs) -> Option<String> {
        let index = cx.index_read();
        super::super::declared_at(&index, ip.parse().unwrap(), t).and_then(|w| w.app)
    }

    fn now() -> Secs {
        Secs::try_from(now_secs()).unwrap()
    }

    /// Two polls must not share a second (a release and an assignment at
    /// one instant: the assignment wins).
    fn next_second() {
        std::thread::sleep(Duration::from_millis(1_100));
    }

    // Found by a cold review (issue 17).
    /// The public addresses a poll speaks for are the ones the previous
    /// poll listed, kept in the thread only. After a restart the first
    /// poll does not speak for them: a public address released while
    /// trawl was down (or at the first poll after it) is outside every
    /// scope from then on, and stays its last owner's forever (an AWS
    /// public address goes back to the pool and on to another customer).
    #[test]
    fn review_a_public_address_released_across_a_restart_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let mut before = poller(&cx, false);
        before.apply(
            0,
            &polled(
                &["10.0.0.0/16"],
                vec![instance("eni-1", &["10.0.0.5"], &["54.1.2.3"], "web")],
            ),
        );
        assert_eq!(declared(&cx, "54.1.2.3", now()).as_deref(), Some("web"));
        drop(before);
        // Restart (the index and its source positions are what was saved).
        next_second();
        let mut after = poller(&cx, false);
        after.apply(0, &polled(&["10.0.0.0/16"], Vec::new()));
        let t = now() + 1;
        assert_eq!(
            declared(&cx, "10.0.0.5", t),
            None,
            "the private one is released"
        );
        assert_eq!(
            declared(&cx, "54.1.2.3", t),
            None,
            "the instance is gone, its public address is still web's"
        );
    }

    // Found by a cold review (issue 17).
    /// The scope was the VPCs DescribeVpcs listed *then*: a VPC torn down
    /// with its instances between two polls (terraform destroy) is no
    /// longer in the scope of the next poll, so its addresses are never
    /// released: the last owners keep them forever.
    #[test]
    fn review_the_addresses_of_a_vpc_deleted_between_polls_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let mut source = poller(&cx, false);
        source.apply(
            0,
            &polled(
                &["10.1.0.0/16", "10.2.0.0/16"],
                vec![
                    instance("eni-1", &["10.1.0.5"], &[], "doomed"),
                    instance("eni-2", &["10.2.0.5"], &[], "kept"),
                ],
            ),
        );
        next_second();
        source.apply(
            0,
            &polled(
                &["10.2.0.0/16"],
                vec![instance("eni-2", &["10.2.0.5"], &[], "kept")],
            ),
        );
        let t = now() + 1;
        assert_eq!(declared(&cx, "10.2.0.5", t).as_deref(), Some("kept"));
        assert_eq!(
            declared(&cx, "10.1.0.5", t),
            None,
            "the deleted VPC's instance still owns its address"
        );
    }

    // Found by a cold review (issue 17).
    /// A poll is stamped when it returns, not when its listing was taken:
    /// DescribeNetworkInterfaces runs first, then DescribeInstances and
    /// every ECS call (a poll takes seconds to minutes). A pod that the
    /// VPC CNI starts on a fresh secondary address after the listing is
    /// assigned by the watcher, then released by the snapshot stamped
    /// after it (the address was neither listed nor left out): the pod
    /// owns nothing until its next update, for good if it has none.
    #[test]
    fn review_a_pod_started_while_the_poll_ran_keeps_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let mut source = poller(&cx, true);
        // The listing, taken now: the node's ENI has one pod address.
        let mut node = instance("eni-n", &["10.0.1.10", "10.0.1.11"], &[], "ng-1");
        node.0.description = "aws-K8S-i-0node".into();
        node.1.tags.insert("eks:cluster-name".into(), "prod".into());
        let listing = polled(&["10.0.0.0/16"], vec![node]);
        next_second();
        // Meanwhile the CNI adds 10.0.1.12 to the ENI and a pod takes it.
        cx.index_write()
            .apply(&MetadataEvent::Assign {
                ip: "10.0.1.12".parse().unwrap(),
                at: now(),
                workload: Workload {
                    app: Some("payments".into()),
                    kind: Some("pod".into()),
                    ..Workload::default()
                },
                interface_id: None,
            })
            .unwrap();
        next_second();
        // The poll returns.
        source.apply(0, &listing);
        assert_eq!(
            declared(&cx, "10.0.1.12", now() + 1).as_deref(),
            Some("payments"),
            "the poll released a pod that started after its listing"
        );
    }

    // Found by a cold review (issue 17).
    /// The same stamp moves the horizon: the poll vouches for everything
    /// up to its return, but its listing predates that. An instance
    /// launched after the listing is not in it, its first flows are
    /// settled (and stored) as unknown, and the next poll dates it no
    /// earlier than just after this one (its attach time falls before
    /// the window): those flows are never attributed.
    #[test]
    fn review_a_flow_is_not_settled_before_a_poll_whose_listing_could_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let mut source = poller(&cx, false);
        source.apply(0, &polled(&["10.0.0.0/16"], Vec::new()));
        next_second();
        let listing = polled(&["10.0.0.0/16"], Vec::new());
        next_second();
        let launched = now();
        next_second();
        source.apply(0, &listing);
        let answer = cx
            .index_read()
            .owner_at("10.0.0.77".parse().unwrap(), launched);
        next_second();
        let mut found = instance("eni-new", &["10.0.0.77"], &[], "new");
        found.0.attached_at = Some(launched);
        source.apply(0, &polled(&["10.0.0.0/16"], vec![found]));
        let later = declared(&cx, "10.0.0.77", launched);
        assert!(
            !answer.settled || later.is_some(),
            "a flow at {launched} was settled as {:?} before any listing could name 10.0.0.77, \
             and the next poll never dated it back: {later:?}",
            answer.rule
        );
    }

    // Found by a cold review (issue 17).
    /// Nothing bounded the scope an API gave: a DescribeVpcs answering
    /// 0.0.0.0/0 (a broken compatible endpoint, a hostile one) makes the
    /// poll's snapshot release every address of every other source (pods,
    /// other regions, metadata files), at every poll.
    #[test]
    fn review_a_vpc_cidr_of_everything_does_not_release_other_sources_owners() {
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        cx.index_write()
            .apply(&MetadataEvent::Assign {
                ip: "10.50.0.7".parse().unwrap(),
                at: now(),
                workload: Workload {
                    app: Some("from-a-file".into()),
                    ..Workload::default()
                },
                interface_id: None,
            })
            .unwrap();
        next_second();
        let mut source = poller(&cx, false);
        source.apply(0, &polled(&["0.0.0.0/0"], Vec::new()));
        let answer = cx
            .index_read()
            .owner_at("10.50.0.7".parse().unwrap(), now() + 1);
        assert_eq!(
            answer.rule,
            Rule::Declared,
            "one region's poll released an address it never had"
        );
    }

    // Found by a cold review (issue 17).
    /// Every region's default VPC is 172.31.0.0/16: a poll scoped by CIDR
    /// released the other region's instances at every poll.
    #[test]
    fn a_poll_releases_nothing_another_region_owns_in_the_same_cidr() {
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let mut east = poller_of(&cx, false, "us-east-1");
        let mut west = poller_of(&cx, false, "eu-west-1");
        let in_east = vec![instance("eni-e", &["172.31.1.10"], &[], "east-api")];
        let in_west = vec![instance("eni-w", &["172.31.2.20"], &[], "west-api")];
        east.apply(0, &polled_in("us-east-1", in_east.clone()));
        west.apply(0, &polled_in("eu-west-1", in_west.clone()));
        next_second();
        east.apply(0, &polled_in("us-east-1", in_east));
        west.apply(0, &polled_in("eu-west-1", in_west));
        // A restarted poller of the west knows its own from the index only.
        next_second();
        let mut restarted = poller_of(&cx, false, "eu-west-1");
        restarted.apply(0, &polled_in("eu-west-1", Vec::new()));
        let t = now() + 1;
        assert_eq!(declared(&cx, "172.31.1.10", t).as_deref(), Some("east-api"));
        assert_eq!(
            declared(&cx, "172.31.2.20", t),
            None,
            "the west's own is released"
        );
    }

    #[test]
    fn a_position_keeps_the_time_and_the_accounts() {
        let position = Position {
            at: Some(1_900_000_000),
            accounts: vec!["111111111111".into(), "222222222222".into()],
        };
        assert_eq!(Position::decode(Some(&position.encode())), position);
        // The form before accounts were kept: the time alone.
        assert_eq!(Position::decode(Some("1900000000")).at, Some(1_900_000_000));
        assert_eq!(Position::decode(None), Position::default());
    }

    /// The bound counted interfaces, not accounts: with 64 interfaces or
    /// more, the role's account and those saved were cut off.
    #[test]
    fn the_role_and_saved_accounts_are_kept_past_many_interfaces() {
        let listed = (0..10_000).map(|_| Some("111111111111".to_string()));
        let accounts = accounts_of(
            Some("222222222222".into()),
            vec!["333333333333".into()],
            listed,
        );
        let want: BTreeSet<String> = ["111111111111", "222222222222", "333333333333"]
            .into_iter()
            .map(str::to_string)
            .collect();
        assert_eq!(accounts, want);
        let many = (0..100).map(|n| Some(format!("{n:012}")));
        assert_eq!(accounts_of(None, Vec::new(), many).len(), ACCOUNTS_MAX);
    }
}
