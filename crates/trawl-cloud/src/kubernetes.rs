//! The Kubernetes watcher of `[[metadata.kubernetes]]`: lists and
//! watches nodes, ReplicaSets, Jobs and pods (cluster-wide) with `kube`,
//! and turns what it sees into ownership events through [`PodTracker`].
//!
//! ```text
//!  one task per kind ─ list (pages of page_size) ─► watch from the list's resourceVersion
//!     (bookmarks on; each event or bookmark moves the version) ─► stream ends: watch again
//!     from the last version ─► 410 Gone (the version expired): list again ─► error: back off
//!  consumer ─ nodes and controllers first (a pod's zone and Deployment), then pods:
//!     list ─► PodTracker::relist · event ─► PodTracker::pod ─► Report::Events
//!     every kind listed and watching ─► Report::Seen(now) (the horizon may pass it)
//! ```
//!
//! Events are timestamped when they are seen (observation time). Every
//! call is bounded: connecting, each list page, and a watch with no event
//! or bookmark for `watch_timeout_secs` + 30 s is dropped and resumed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod as K8sPod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use trawl_attrib::{MetadataEvent, Secs};

use crate::pod::{NodePlace, OwnerRef, Pod, PodTracker};

/// Updates queued between the kinds' tasks and the consumer.
const QUEUE_MAX: usize = 1024;
/// Longest back-off after a failed list or watch.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A watch that ends sooner than this without an event is retried after
/// a back-off (a server or proxy that closes every stream at once).
const WATCH_SHORT: Duration = Duration::from_secs(1);

/// One `[[metadata.kubernetes]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSourceConfig {
    /// The cluster's name (workloads' cluster is `NAME/NAMESPACE`).
    pub cluster: String,
    /// A kubeconfig file (none: `KUBECONFIG`, `~/.kube/config`, then the
    /// in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context (none: its current one).
    pub context: Option<String>,
    /// Objects per list page.
    pub page_size: u32,
    /// How long one watch call may last before it is made again (seconds).
    pub watch_timeout_secs: u32,
    /// Most objects of one kind a list may hold; a longer list fails.
    pub objects_max: usize,
}

impl Default for KubernetesSourceConfig {
    fn default() -> Self {
        KubernetesSourceConfig {
            cluster: String::new(),
            kubeconfig: None,
            context: None,
            page_size: 500,
            watch_timeout_secs: 290,
            objects_max: 1_000_000,
        }
    }
}

impl KubernetesSourceConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster.trim().is_empty() || self.cluster.len() > 253 {
            return Err(
                "metadata.kubernetes.cluster: name the cluster (1 to 253 characters)".into(),
            );
        }
        if !(1..=5000).contains(&self.page_size) {
            return Err(format!(
                "metadata.kubernetes.page_size = {}: must be between 1 and 5000",
                self.page_size
            ));
        }
        if self.objects_max == 0 {
            return Err("metadata.kubernetes.objects_max is 0".into());
        }
        if !(1..=3600).contains(&self.watch_timeout_secs) {
            return Err(format!(
                "metadata.kubernetes.watch_timeout_secs = {}: must be between 1 and 3600",
                self.watch_timeout_secs
            ));
        }
        Ok(())
    }

    /// The source's name in metrics and messages.
    pub fn name(&self) -> String {
        format!("kubernetes:{}", self.cluster)
    }
}

/// What the watcher tells its caller.
#[derive(Debug)]
pub enum Report {
    /// Ownership events to apply.
    Events(Vec<MetadataEvent>),
    /// Pods were listed whole at `at`: every pod address of this cluster
    /// not in `held` is nobody's now (a pod deleted while trawl was down is
    /// in no list; only the index remembers it).
    PodsListed {
        /// The addresses the list's pods hold.
        held: std::collections::BTreeSet<std::net::IpAddr>,
        /// When.
        at: Secs,
    },
    /// Every kind is listed and watched: everything up to this time is seen.
    Seen(Secs),
    /// A kind was listed again (after 410 Gone or an error).
    Relisted,
    /// Watch events received (of any kind).
    WatchEvents(u64),
    /// A list or watch failed (retried after a back-off).
    Error(String),
}

/// The kinds watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    ReplicaSet,
    Job,
    Pod,
}

const KINDS: [Kind; 4] = [Kind::Node, Kind::ReplicaSet, Kind::Job, Kind::Pod];

/// One object, as the tracker takes it.
#[derive(Debug, Clone)]
enum Object {
    Node(String, NodePlace),
    Controller(String, &'static str, String, Option<OwnerRef>),
    Pod(Box<Pod>),
}

/// What a kind's task sends.
#[derive(Debug)]
enum Update {
    Listed(Kind, Vec<Object>, bool),
    Event(Object, bool),
    Watching(Kind),
    Broken(Kind, String),
    Bookmark,
}

/// The controller among the owner references.
fn controller_of(meta: &ObjectMeta) -> Option<OwnerRef> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| OwnerRef {
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}

/// A pod's fields (see [`Pod`]).
pub fn pod_of(pod: &K8sPod) -> Pod {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let listed = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().map(|i| i.ip.as_str()).collect::<Vec<_>>())
        .filter(|ips| !ips.is_empty())
        .or_else(|| status.and_then(|s| s.pod_ip.as_deref()).map(|ip| vec![ip]))
        .unwrap_or_default();
    Pod {
        uid: meta.uid.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        owner: controller_of(meta),
        host_network: pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        ips: listed
            .into_iter()
            .filter_map(|ip| ip.parse().ok())
            .collect(),
        deleting: meta.deletion_timestamp.is_some(),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
    }
}

trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + 'static
{
    fn object(&self) -> Object;
}

impl Watched for Node {
    fn object(&self) -> Object {
        let labels = self.metadata.labels.clone().unwrap_or_default();
        Object::Node(self.name_any(), NodePlace::of_labels(&labels))
    }
}

impl Watched for ReplicaSet {
    fn object(&self) -> Object {
        let ns = self.metadata.namespace.clone().unwrap_or_default();
        Object::Controller(
            ns,
            "ReplicaSet",
            self.name_any(),
            controller_of(&self.metadata),
        )
    }
}

impl Watched for Job {
    fn object(&self) -> Object {
        let ns = self.metadata.namespace.clone().unwrap_or_default();
        Object::Controller(ns, "Job", self.name_any(), controller_of(&self.metadata))
    }
}

impl Watched for K8sPod {
    fn object(&self) -> Object {
        Object::Pod(Box::new(pod_of(self)))
    }
}

/// A client from the kubeconfig (or the usual inference).
async fn client_of(config: &KubernetesSourceConfig) -> Result<Client, String> {
    let name = config.name();
    let mut kube_config = match &config.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| format!("{name}: kubeconfig {}: {e}", path.display()))?;
            let options = KubeConfigOptions {
                context: config.context.clone(),
                ..KubeConfigOptions::default()
            };
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("{name}: kubeconfig {}: {e}", path.display()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| format!("{name}: no kubeconfig or in-cluster account: {e}"))?,
    };
    kube_config.connect_timeout = Some(Duration::from_secs(5));
    kube_config.read_timeout = Some(Duration::from_secs(
        u64::from(config.watch_timeout_secs) + 30,
    ));
    kube_config.write_timeout = Some(Duration::from_secs(10));
    Client::try_from(kube_config).map_err(|e| format!("{name}: {e}"))
}

/// Lists `api` whole (page by page, at most `objects_max` objects);
/// returns the objects and the version.
async fn list_all<K: Watched>(
    api: &Api<K>,
    page: u32,
    objects_max: usize,
) -> Result<(Vec<Object>, String), String> {
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(page);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let listed = api.list(&params).await.map_err(|e| e.to_string())?;
        objects.extend(listed.items.iter().map(Watched::object));
        if objects.len() > objects_max {
            return Err(format!(
                "more than {objects_max} objects (metadata.kubernetes.objects_max)"
            ));
        }
        token = listed.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            let version = listed.metadata.resource_version.unwrap_or_default();
            return Ok((objects, version));
        }
    }
}

/// Lists then watches one kind until the queue closes.
async fn follow<K: Watched>(
    api: Api<K>,
    kind: Kind,
    config: KubernetesSourceConfig,
    queue: mpsc::Sender<Update>,
) {
    let mut version: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    let mut first = true;
    let idle_max = Duration::from_secs(u64::from(config.watch_timeout_secs) + 30);
    loop {
        let from = match version.clone() {
            Some(v) => v,
            None => match list_all(&api, config.page_size, config.objects_max).await {
                Ok((objects, v)) => {
                    let relist = !std::mem::replace(&mut first, false);
                    if queue
                        .send(Update::Listed(kind, objects, relist))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    backoff = Duration::from_secs(1);
                    v
                }
                Err(e) => {
                    if queue
                        .send(Update::Broken(kind, format!("list: {e}")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let params = WatchParams::default().timeout(config.watch_timeout_secs);
        let stream = match api.watch(&params, &from).await {
            Ok(stream) => stream,
            Err(e) => {
                if queue
                    .send(Update::Broken(kind, format!("watch: {e}")))
                    .await
                    .is_err()
                {
                    return;
                }
                version = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if queue.send(Update::Watching(kind)).await.is_err() {
            return;
        }
        let mut stream = std::pin::pin!(stream);
        let opened = tokio::time::Instant::now();
        let mut received = 0_u64;
        loop {
            let next = match tokio::time::timeout(idle_max, stream.try_next()).await {
                Ok(next) => next,
                Err(_) => break,
            };
            let update = match next {
                Ok(None) => break,
                Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                    version = o.resource_version().or(version);
                    Update::Event(o.object(), false)
                }
                Ok(Some(WatchEvent::Deleted(o))) => {
                    version = o.resource_version().or(version);
                    Update::Event(o.object(), true)
                }
                Ok(Some(WatchEvent::Bookmark(b))) => {
                    version = Some(b.metadata.resource_version);
                    Update::Bookmark
                }
                Ok(Some(WatchEvent::Error(status))) => {
                    // 410 Gone: the version expired; anything else: start over too.
                    version = None;
                    Update::Broken(kind, format!("watch: {} ({})", status.message, status.code))
                }
                Err(e) => Update::Broken(kind, format!("watch: {e}")),
            };
            let broken = matches!(update, Update::Broken(..));
            received += 1;
            if queue.send(update).await.is_err() {
                return;
            }
            if broken {
                break;
            }
        }
        if received <= 1 && opened.elapsed() < WATCH_SHORT {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        } else if received > 1 {
            backoff = Duration::from_secs(1);
        }
    }
}

/// Watches the cluster of `config` until `stop`, reporting to `report`.
/// Returns an error only when no client can be made (a bad kubeconfig).
pub fn watch_until(
    config: &KubernetesSourceConfig,
    stop: &Arc<AtomicBool>,
    mut report: impl FnMut(Report),
) -> Result<(), String> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{}: starting its runtime: {e}", config.name()))?;
    runtime.block_on(async {
        let client = client_of(config).await?;
        let (queue, mut updates) = mpsc::channel(QUEUE_MAX);
        let tasks = [
            tokio::spawn(follow(
                Api::<Node>::all(client.clone()),
                Kind::Node,
                config.clone(),
                queue.clone(),
            )),
            tokio::spawn(follow(
                Api::<ReplicaSet>::all(client.clone()),
                Kind::ReplicaSet,
                config.clone(),
                queue.clone(),
            )),
            tokio::spawn(follow(
                Api::<Job>::all(client.clone()),
                Kind::Job,
                config.clone(),
                queue.clone(),
            )),
        ];
        let mut pods_task = None;
        let mut consumer = Consumer::new(&config.cluster);
        while !stop.load(Ordering::Relaxed) {
            let update =
                match tokio::time::timeout(Duration::from_millis(200), updates.recv()).await {
                    Ok(Some(update)) => update,
                    Ok(None) => break,
                    Err(_) => {
                        consumer.tick(&mut report);
                        continue;
                    }
                };
            consumer.take(update, &mut report);
            // Pods once nodes and controllers are known (their zone and
            // Deployment name them), or after 10 s without them.
            if pods_task.is_none()
                && (consumer.ready_for_pods()
                    || consumer.started.elapsed() > Duration::from_secs(10))
            {
                pods_task = Some(tokio::spawn(follow(
                    Api::<K8sPod>::all(client.clone()),
                    Kind::Pod,
                    config.clone(),
                    queue.clone(),
                )));
            }
            consumer.tick(&mut report);
        }
        for task in tasks.iter().chain(pods_task.iter()) {
            task.abort();
        }
        Ok(())
    })
}

/// The consumer's state: the tracker and each kind's health.
struct Consumer {
    tracker: PodTracker,
    listed: [bool; 4],
    watching: [bool; 4],
    started: std::time::Instant,
    last_seen: Option<Secs>,
    watch_events: u64,
}

fn slot(kind: Kind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

fn now() -> Secs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| Secs::try_from(d.as_secs()).unwrap_or(Secs::MAX))
}

impl Consumer {
    fn new(cluster: &str) -> Consumer {
        Consumer {
            tracker: PodTracker::new(cluster),
            listed: [false; 4],
            watching: [false; 4],
            started: std::time::Instant::now(),
            last_seen: None,
            watch_events: 0,
        }
    }

    fn ready_for_pods(&self) -> bool {
        self.listed[..3].iter().all(|l| *l)
    }

    fn take(&mut self, update: Update, report: &mut impl FnMut(Report)) {
        let at = now();
        match update {
            Update::Listed(kind, objects, relist) => {
                self.listed[slot(kind)] = true;
                if relist {
                    report(Report::Relisted);
                }
                self.listed_all(kind, objects, at, report);
            }
            Update::Event(object, gone) => {
                self.watch_events += 1;
                if let Some(events) = self.object(object, gone, at) {
                    report(Report::Events(events));
                }
            }
            Update::Watching(kind) => self.watching[slot(kind)] = true,
            Update::Broken(kind, message) => {
                self.watching[slot(kind)] = false;
                report(Report::Error(format!("{kind:?}: {message}")));
            }
            Update::Bookmark => {}
        }
    }

    fn listed_all(
        &mut self,
        kind: Kind,
        objects: Vec<Object>,
        at: Secs,
        report: &mut impl FnMut(Report),
    ) {
        match kind {
            Kind::Pod => {
                let pods = objects
                    .into_iter()
                    .filter_map(|o| match o {
                        Object::Pod(p) => Some(*p),
                        _ => None,
                    })
                    .collect();
                report(Report::Events(self.tracker.relist(pods, at)));
                report(Report::PodsListed {
                    held: self.tracker.held_ips(),
                    at,
                });
            }
            Kind::Node => {
                self.tracker.nodes.clear();
                for object in objects {
                    self.object(object, false, at);
                }
            }
            Kind::ReplicaSet | Kind::Job => {
                let name = if kind == Kind::Job {
                    "Job"
                } else {
                    "ReplicaSet"
                };
                self.tracker.controllers.retain(|(_, k, _), _| k != name);
                for object in objects {
                    self.object(object, false, at);
                }
            }
        }
    }

    /// Applies one object; pods give events.
    fn object(&mut self, object: Object, gone: bool, at: Secs) -> Option<Vec<MetadataEvent>> {
        match object {
            Object::Pod(pod) => Some(self.tracker.pod(*pod, gone, at)),
            Object::Node(name, place) => {
                if gone {
                    self.tracker.nodes.remove(&name);
                } else {
                    self.tracker.nodes.insert(name, place);
                }
                None
            }
            Object::Controller(ns, kind, name, owner) => {
                let key = (ns, kind.to_string(), name);
                match owner {
                    Some(owner) if !gone => {
                        self.tracker.controllers.insert(key, owner);
                    }
                    _ => {
                        self.tracker.controllers.remove(&key);
                    }
                }
                None
            }
        }
    }

    /// Reports watch counts, and the time seen once every kind is listed and watched.
    fn tick(&mut self, report: &mut impl FnMut(Report)) {
        if self.watch_events > 0 {
            report(Report::WatchEvents(std::mem::take(&mut self.watch_events)));
        }
        let at = now();
        if self.listed.iter().all(|l| *l)
            && self.watching.iter().all(|w| *w)
            && self.last_seen != Some(at)
        {
            self.last_seen = Some(at);
            report(Report::Seen(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_pod_is_read_as_the_tracker_takes_it() {
        let json = r#"{
          "metadata": {"name": "web-7c9f-x2kqp", "namespace": "shop", "uid": "u-1",
            "labels": {"app": "web", "pod-template-hash": "7c9f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f",
              "uid": "rs-1", "controller": true, "blockOwnerDeletion": true}]},
          "spec": {"nodeName": "ip-10-30-1-10.ec2.internal", "containers": []},
          "status": {"phase": "Running", "podIP": "10.30.1.23", "podIPs": [{"ip": "10.30.1.23"}]}
        }"#;
        let pod: K8sPod = serde_json::from_str(json).unwrap();
        let read = pod_of(&pod);
        assert_eq!(
            read.ips,
            vec!["10.30.1.23".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            read.owner.as_ref().map(|o| o.name.as_str()),
            Some("web-7c9f")
        );
        assert_eq!(
            read.node_name.as_deref(),
            Some("ip-10-30-1-10.ec2.internal")
        );
        assert!(!read.host_network && !read.deleting);
        let settings = KubernetesSourceConfig::default();
        assert!(
            settings
                .validate()
                .unwrap_err()
                .starts_with("metadata.kubernetes.cluster")
        );
    }

    // ---- cold review (issue 17) -------------------------------------

    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;

    /// A one-response-per-connection HTTP server on loopback: `answer`
    /// gets the request line and returns the body (JSON, 200).
    fn serve(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut byte = [0_u8; 1];
                    while !request.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => request.push(byte[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let line = text.lines().next().unwrap_or_default().to_string();
                    let body = answer(&line);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        port
    }

    fn client(port: u16) -> Client {
        let config = Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        Client::try_from(config).unwrap()
    }

    fn pod_json(n: usize) -> String {
        format!(
            r#"{{"metadata":{{"name":"p-{n}","namespace":"x","uid":"u-{n}","resourceVersion":"7"}},"spec":{{"containers":[]}},"status":{{"phase":"Running","podIP":"10.0.{}.{}"}}}}"#,
            (n / 250) % 250,
            n % 250 + 1
        )
    }

    /// Found by a cold review: a list was never bounded: an API server (broken, or hostile) that
    /// answers every page with a continue token is listed forever, every
    /// object kept in memory, and nothing ever reaches the tracker (the
    /// EC2 poller refuses more than `interfaces_max` interfaces; the pod
    /// list has no such bound).
    #[test]
    fn review_a_list_that_never_ends_is_given_up() {
        let pages = Arc::new(AtomicUsize::new(0));
        let served = pages.clone();
        let port = serve(move |_| {
            let n = served.fetch_add(1, Ordering::Relaxed);
            let items: Vec<String> = (0..100).map(|i| pod_json(n * 100 + i)).collect();
            format!(
                r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"7","continue":"page-{n}"}},"items":[{}]}}"#,
                items.join(",")
            )
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let api = Api::<K8sPod>::all(client(port));
            tokio::time::timeout(Duration::from_secs(5), list_all(&api, 100, 10_000)).await
        });
        let pages = pages.load(Ordering::Relaxed);
        assert!(
            result.is_ok(),
            "still listing after 5 s: {pages} pages, {} pods held in memory",
            pages * 100
        );
    }

    /// Found by a cold review: a watch that the server ends at once (an empty answer, a proxy
    /// that closes streams, or a stream error) is made again at once: no
    /// back-off, so a broken API server is called in a tight loop (the
    /// back-off is only for failed lists and failed watch calls).
    #[test]
    fn review_a_watch_that_ends_at_once_is_not_made_again_in_a_tight_loop() {
        let watches = Arc::new(AtomicUsize::new(0));
        let counted = watches.clone();
        let port = serve(move |line| {
            if line.contains("watch=true") {
                counted.fetch_add(1, Ordering::Relaxed);
                String::new()
            } else {
                r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}"#
                    .to_string()
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (queue, mut updates) = mpsc::channel(QUEUE_MAX);
            let task = tokio::spawn(follow(
                Api::<K8sPod>::all(client(port)),
                Kind::Pod,
                KubernetesSourceConfig {
                    cluster: "c".into(),
                    ..KubernetesSourceConfig::default()
                },
                queue,
            ));
            let drain = tokio::spawn(async move { while updates.recv().await.is_some() {} });
            tokio::time::sleep(Duration::from_secs(3)).await;
            task.abort();
            drain.abort();
        });
        let watches = watches.load(Ordering::Relaxed);
        assert!(
            watches <= 10,
            "{watches} watch calls in 3 s against a server that ends every watch at once"
        );
    }

    /// Found by a cold review: after a restart the tracker starts empty,
    /// so a pod deleted while trawl was down is in no list and no release:
    /// a pods list reports what it holds, for the caller to release the
    /// rest of the cluster's pod addresses the index still has.
    #[test]
    fn a_pods_list_reports_what_it_holds() {
        let mut consumer = Consumer::new("prod-eks");
        let mut listed = None;
        let mut report = |r: Report| {
            if let Report::PodsListed { held, .. } = r {
                listed = Some(held);
            }
        };
        for kind in KINDS {
            consumer.take(Update::Listed(kind, Vec::new(), false), &mut report);
        }
        assert_eq!(listed, Some(std::collections::BTreeSet::new()));
    }
}
