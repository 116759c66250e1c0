//! The config file (`trawl.toml`) and what `run`, `ingest` and `demo`
//! build from it: a locked data directory, the store, the attribution
//! index (reloaded from its snapshot, plus networks, AWS ranges and
//! metadata files), the pipeline, and the HTTP server.
//!
//! Every option has a default; `trawl.example.toml` at the repository root
//! lists them all with a line of docs, and a test keeps it in step.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use trawl_attrib::{AttributionIndex, IndexConfig, NetworkEntry};
use trawl_cloud::aws::AwsSourceConfig;
use trawl_cloud::kubernetes::KubernetesSourceConfig;
use trawl_pipeline::{
    KafkaMetadataConfig, KafkaSinkConfig, KafkaSourceConfig, KinesisSourceConfig, Pipeline,
    PipelineConfig,
};
use trawl_server::{AppState, ServerConfig, TOKENS_ENV, Tokens};
use trawl_store::{DetailSpec, EngineLimits, SqlEngine, Store, StoreConfig};

/// Default address of the HTTP server.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8941";

/// Name of the attribution snapshot in the data directory.
const INDEX_SNAPSHOT: &str = "attribution.snapshot";

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Segments, manifest and attribution snapshot.
    pub data_dir: PathBuf,
    /// Address of the HTTP server.
    pub listen: String,
    /// Where flows and metadata come from.
    pub sources: SourcesConfig,
    /// Where enriched flows go besides the store.
    pub sinks: SinksConfig,
    /// Ownership read from where it lives (EC2, ECS, Kubernetes).
    pub metadata: MetadataSection,
    /// The store.
    pub store: StoreSection,
    /// Attribution.
    pub attribution: AttributionSection,
    /// Workers, batches, hold-back, sealing.
    pub pipeline: PipelineConfig,
    /// Static prefixes (VPCs, subnets, on-premises ranges).
    pub networks: Vec<NetworkEntry>,
    /// The HTTP surface: tokens, TLS, origins, limits.
    pub server: ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("trawl-data"),
            listen: LISTEN_DEFAULT.to_string(),
            sources: SourcesConfig::default(),
            sinks: SinksConfig::default(),
            metadata: MetadataSection::default(),
            store: StoreSection::default(),
            attribution: AttributionSection::default(),
            pipeline: PipelineConfig::default(),
            networks: Vec::new(),
            server: ServerConfig::default(),
        }
    }
}

/// `[sources]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// Directories of flow-log files (flat or S3 layout).
    pub flows_dirs: Vec<PathBuf>,
    /// Keep listing the directories for new files.
    pub follow: bool,
    /// Also read flow-log lines from stdin.
    pub stdin: bool,
    /// Metadata event files (JSON lines), applied at start.
    pub metadata_files: Vec<PathBuf>,
    /// AWS's `ip-ranges.json`.
    pub aws_ip_ranges: Option<PathBuf>,
    /// Access key Firehose must send (`X-Amz-Firehose-Access-Key`); none: any.
    pub firehose_access_key: Option<String>,
    /// Kafka topics of flow logs (`[[sources.kafka]]`), each read by a
    /// consumer group, exactly once.
    pub kafka: Vec<KafkaSourceConfig>,
    /// A Kafka topic of ownership events, read whole by every process.
    pub kafka_metadata: Option<KafkaMetadataConfig>,
    /// Kinesis Data Streams of flow logs (`[[sources.kinesis]]`), each
    /// read exactly once (this node's shards).
    pub kinesis: Vec<KinesisSourceConfig>,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            flows_dirs: Vec::new(),
            follow: true,
            stdin: false,
            metadata_files: Vec::new(),
            aws_ip_ranges: None,
            firehose_access_key: None,
            kafka: Vec::new(),
            kafka_metadata: None,
            kinesis: Vec::new(),
        }
    }
}

/// `[metadata]`: cloud inventories polled or watched for ownership.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataSection {
    /// EC2 network interfaces, instances and ECS tasks (`[[metadata.aws]]`).
    pub aws: Vec<AwsSourceConfig>,
    /// Kubernetes clusters whose pods are watched (`[[metadata.kubernetes]]`).
    pub kubernetes: Vec<KubernetesSourceConfig>,
    /// Longest the start waits for every inventory's first poll before
    /// flows are consumed (seconds).
    pub first_poll_wait_secs: u64,
}

impl Default for MetadataSection {
    fn default() -> Self {
        MetadataSection {
            aws: Vec::new(),
            kubernetes: Vec::new(),
            first_poll_wait_secs: 60,
        }
    }
}

impl MetadataSection {
    /// Checks every source, and that a flow whose address only the next
    /// poll can name is held that long; the error names the setting.
    pub fn validate(&self, pipeline: &PipelineConfig) -> Result<(), String> {
        for kubernetes in &self.kubernetes {
            kubernetes.validate()?;
        }
        let mut names = std::collections::BTreeSet::new();
        for target in self.aws.iter().flat_map(AwsSourceConfig::targets) {
            if !names.insert(target.name()) {
                return Err(format!(
                    "metadata.aws: {} is polled by two sources (they would share its position and its place in the horizon): list every VPC of it in one source's vpc_ids",
                    target.name()
                ));
            }
        }
        for aws in &self.aws {
            aws.validate()?;
            if pipeline.hold_secs < aws.poll_secs + 10 {
                return Err(format!(
                    "pipeline.hold_secs = {} is shorter than metadata.aws.poll_secs ({}) + 10: a flow from an address the next poll would name is attributed unknown before it; raise hold_secs or poll more often",
                    pipeline.hold_secs, aws.poll_secs
                ));
            }
        }
        Ok(())
    }
}

/// `[sinks]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinksConfig {
    /// Kafka topics every sealed flow is published to, once
    /// (`[[sinks.kafka]]`, transactional).
    pub kafka: Vec<KafkaSinkConfig>,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// How far behind the newest flow a flow is still on time (seconds).
    pub lateness_secs: u32,
    /// Cap on open-bucket memory (bytes).
    pub open_bytes_max: usize,
    /// Keep one row per record in `flows`.
    pub detail: bool,
    /// History kept in `flows` (seconds).
    pub detail_retention_secs: u32,
    /// Segments of one chunk before it is compacted.
    pub segments_per_chunk_max: usize,
    /// How far past the wall clock a flow's start may be and still move the watermark (seconds).
    pub future_slack_secs: u32,
    /// Shards of open rows, so that workers add at once (0: one per core, at most 8).
    pub open_shards: usize,
    /// Decoded rollup segments kept in memory for queries (bytes; 0: none).
    pub segment_cache_bytes_max: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        let store = StoreConfig::new("");
        StoreSection {
            lateness_secs: store.lateness_secs,
            open_bytes_max: store.open_bytes_max,
            detail: store.detail.enabled,
            detail_retention_secs: store.detail.retention_secs,
            segments_per_chunk_max: store.segments_per_chunk_max,
            future_slack_secs: store.future_slack_secs,
            open_shards: 0,
            segment_cache_bytes_max: store.segment_cache_bytes_max,
        }
    }
}

/// `[attribution]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributionSection {
    /// How late a metadata event may arrive and still be placed exactly (seconds).
    pub reorder_window_secs: u32,
    /// Ownership history kept (seconds).
    pub retention_secs: u32,
    /// How far past the wall clock an event's time may be and still move retention and the horizon (seconds).
    pub future_slack_secs: u32,
}

impl Default for AttributionSection {
    fn default() -> Self {
        let index = IndexConfig::default();
        AttributionSection {
            reorder_window_secs: index.reorder_window_secs,
            retention_secs: index.retention_secs,
            future_slack_secs: index.future_slack_secs,
        }
    }
}

impl Config {
    /// Reads `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        config
            .server
            .validate()
            .with_context(|| format!("{}", path.display()))?;
        config
            .metadata
            .validate(&config.pipeline)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    fn store_config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(&self.data_dir);
        config.lateness_secs = self.store.lateness_secs;
        config.open_bytes_max = self.store.open_bytes_max;
        config.detail = DetailSpec {
            enabled: self.store.detail,
            retention_secs: self.store.detail_retention_secs,
            ..DetailSpec::default()
        };
        config.segments_per_chunk_max = self.store.segments_per_chunk_max;
        config.future_slack_secs = self.store.future_slack_secs;
        config.segment_cache_bytes_max = self.store.segment_cache_bytes_max;
        if self.store.open_shards > 0 {
            config.open_shards = self.store.open_shards;
        }
        config
    }

    fn index_config(&self) -> IndexConfig {
        IndexConfig {
            reorder_window_secs: self.attribution.reorder_window_secs,
            retention_secs: self.attribution.retention_secs,
            future_slack_secs: self.attribution.future_slack_secs,
            ..IndexConfig::default()
        }
    }
}

/// An exclusive lock on a data directory, held while the process uses it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `dir` (creating it), or fails naming the directory.
    pub fn acquire(dir: &Path) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("LOCK");
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        if file.try_lock().is_err() {
            bail!(
                "{} is in use by another trawl process (query it with --server URL)",
                dir.display()
            );
        }
        Ok(DataDirLock { _file: file })
    }
}

/// A running pipeline over a locked data directory.
#[derive(Debug)]
pub struct Running {
    /// The pipeline.
    pub pipeline: Arc<Pipeline>,
    _lock: DataDirLock,
}

/// Opens the data directory and starts the pipeline (metadata files applied).
pub fn start(config: &Config) -> anyhow::Result<Running> {
    let lock = DataDirLock::acquire(&config.data_dir)?;
    let store = Store::open(config.store_config())
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    let snapshot = config.data_dir.join(INDEX_SNAPSHOT);
    let mut index = if snapshot.exists() {
        AttributionIndex::load(&snapshot, config.index_config())
            .with_context(|| format!("loading {}", snapshot.display()))?
    } else {
        AttributionIndex::new(config.index_config())
    };
    index.add_networks(&config.networks);
    if let Some(path) = &config.sources.aws_ip_ranges {
        let json = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        index.add_aws_ip_ranges(&json, &path.display().to_string())?;
    }
    let mut pipeline_config = config.pipeline.clone();
    pipeline_config.snapshot_path = Some(snapshot.clone());
    let pipeline = Pipeline::start(pipeline_config, store, index)?;
    for path in &config.sources.metadata_files {
        let (applied, errors, from) = pipeline
            .apply_metadata_file(path)
            .with_context(|| format!("reading {}", path.display()))?;
        for error in errors.iter().take(20) {
            eprintln!("trawl: {error}");
        }
        let new = if from > 0 {
            format!(" (new lines past byte {from}: the rest was applied before)")
        } else {
            String::new()
        };
        eprintln!(
            "trawl: {}: {applied} metadata events applied{new}, {} refused",
            path.display(),
            errors.len()
        );
    }
    let replayed = pipeline
        .replay_push_log()
        .context("replaying the push log")?;
    if replayed > 0 {
        eprintln!(
            "trawl: {replayed} pushes replayed from the push log (acknowledged, not yet sealed)"
        );
    }
    Ok(Running {
        pipeline: Arc::new(pipeline),
        _lock: lock,
    })
}

impl Running {
    /// Seals everything, saves the attribution snapshot, and unlocks.
    pub fn stop(self) -> anyhow::Result<()> {
        let Running { pipeline, .. } = self;
        let Ok(pipeline) = Arc::try_unwrap(pipeline) else {
            bail!("the pipeline is still in use");
        };
        // Seals, then saves the attribution snapshot (`snapshot_path`).
        pipeline
            .shutdown()
            .context("sealing and saving the attribution snapshot at shutdown")?;
        Ok(())
    }

    /// The HTTP server's state over this pipeline: a read-only engine
    /// with the query memory pool, the tokens (config, token file,
    /// `TRAWL_TOKENS`), TLS when configured.
    pub fn app_state(&self, config: &Config) -> anyhow::Result<Arc<AppState>> {
        let server = &config.server;
        let limits = EngineLimits {
            memory_bytes_max: Some(server.query_memory_bytes_max()),
            cache_segments: true,
        };
        let engine =
            SqlEngine::with_limits(self.pipeline.store(), Some(self.pipeline.index()), limits)?;
        let env = std::env::var(TOKENS_ENV).ok();
        let tokens = Tokens::load(&server.tokens, server.token_file.as_deref(), env.as_deref())?;
        let tls = match (&server.tls_cert, &server.tls_key) {
            (Some(cert), Some(key)) => Some(trawl_server::load_tls(cert, key)?),
            _ => None,
        };
        let mut state = AppState::new(self.pipeline.clone(), engine, server.clone(), tokens, tls)?;
        state.firehose_access_key = config.sources.firehose_access_key.clone();
        Ok(Arc::new(state))
    }
}

/// Refuses to serve a non-loopback address without tokens (unless
/// `allow_unauthenticated`): anyone who can reach it could read every
/// flow and push forged ones.
pub fn check_exposure(listen: &str, state: &AppState) -> anyhow::Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen}: not an address like 127.0.0.1:8941"))?;
    if addr.ip().is_loopback() || !state.tokens.is_empty() || state.config.allow_unauthenticated {
        return Ok(());
    }
    bail!(
        "refusing to serve {listen} without authentication: it is not a loopback address, so \
         anyone who reaches it could read every flow and push forged ones. Configure tokens \
         ([server] tokens, token_file, or {TOKENS_ENV}=read:TOKEN,write:TOKEN), or set \
         [server] allow_unauthenticated = true to accept that"
    )
}

/// The scheme the server speaks.
pub fn scheme(state: &AppState) -> &'static str {
    if state.tls.is_some() { "https" } else { "http" }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes, Docker
/// stop with it); returns its name.
pub async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).ok();
    let sigterm = async {
        match terminate.as_mut() {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = sigterm => "SIGTERM",
    }
}

/// After a first stop signal: a second one exits at once, without
/// sealing (what was sealed stays; the rest is read again at restart).
pub fn exit_on_second_signal() {
    let spawned = std::thread::Builder::new()
        .name("trawl-second-signal".into())
        .spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let name = runtime.block_on(stop_signal());
            eprintln!("trawl: second signal ({name}): exiting without sealing");
            std::process::exit(130);
        });
    if spawned.is_err() {
        eprintln!("trawl: cannot watch for a second signal");
    }
}

/// The runtime the HTTP server runs on (two threads: the pipeline's
/// workers have the cores).
pub fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Binds `listen`; when that is the default address and it is taken, a
/// free port on the same host instead.
pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen}: not an address like 127.0.0.1:8941"))?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if listen == LISTEN_DEFAULT && e.kind() == std::io::ErrorKind::AddrInUse => {
            let fallback = SocketAddr::new(addr.ip(), 0);
            Ok(tokio::net::TcpListener::bind(fallback).await?)
        }
        Err(e) => Err(e).with_context(|| format!("listening on {listen}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../trawl.example.toml");
        let example = Config::load(Some(&path)).expect("example config parses");
        let mut expected = Config::default();
        expected.sources.flows_dirs = vec![PathBuf::from("flows")];
        expected.sources.metadata_files = vec![PathBuf::from("flows/metadata.jsonl")];
        expected.pipeline.workers = example.pipeline.workers;
        expected.networks = example.networks.clone();
        assert_eq!(example, expected);
        assert_eq!(example.networks.len(), 1);
    }

    #[test]
    fn the_aws_example_parses_and_names_its_sources() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/aws-metadata.toml");
        let example = Config::load(Some(&path)).expect("example config parses");
        let aws = &example.metadata.aws[0];
        let targets: Vec<String> = aws.targets().iter().map(|t| t.name()).collect();
        assert_eq!(targets.len(), 4, "{targets:?}");
        assert_eq!(targets[0], "aws:111111111111/us-east-1");
        assert_eq!(example.metadata.kubernetes[0].name(), "kubernetes:prod-eks");
    }

    #[test]
    fn a_hold_shorter_than_the_poll_interval_is_refused_by_name() {
        let text = "[pipeline]\nhold_secs = 30\n[[metadata.aws]]\nregions = [\"us-east-1\"]\npoll_secs = 60\n";
        let config: Config = toml::from_str(text).expect("parses");
        let error = config.metadata.validate(&config.pipeline).unwrap_err();
        assert!(error.starts_with("pipeline.hold_secs = 30"), "{error}");
    }

    /// Found by a cold review: two sources of one region and account
    /// shared a position and a place in the horizon.
    #[test]
    fn two_sources_of_one_region_and_account_are_refused() {
        let text = "[[metadata.aws]]\nregions = [\"us-east-1\"]\nvpc_ids = [\"vpc-a\"]\n\
                    [[metadata.aws]]\nregions = [\"us-east-1\"]\nvpc_ids = [\"vpc-b\"]\n";
        let config: Config = toml::from_str(text).expect("parses");
        let error = config.metadata.validate(&config.pipeline).unwrap_err();
        assert!(
            error.contains("aws:default/us-east-1 is polled by two sources"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_option_is_refused_with_its_name() {
        let error = toml::from_str::<Config>("[store]\nlatenes_secs = 3\n").expect_err("refused");
        assert!(error.to_string().contains("latenes_secs"), "{error}");
    }
}
