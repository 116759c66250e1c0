//! The running pipeline: worker threads fed by a bounded job queue, a
//! ticker that releases held flows, seals and maintains, and the calls
//! sources and servers use.
//!
//! ```text
//! watch_dir / add_files ─► jobs (bounded: sources wait) ─► workers × N ─► store
//! read_stream (stdin)   ─┘                                   (decode, attribute)
//! push_payload (HTTP)   ──────── in the caller's thread ─────────┘
//! apply_metadata ─► index                  ticker: release held, seal, maintain
//! ```
//!
//! Backpressure: the queue holds `queued_jobs_max` jobs; a worker holds one
//! chunk; the store lock serialises adds, so a slow store slows every
//! source instead of growing memory.
//!
//! Exactly-once from files: each batch's position goes into the store with
//! the batch; a seal commits the positions with the data (after emptying
//! the hold). On start, files resume from the manifest's positions; which
//! file is which (names, moves, replacements) is the [`crate::feeder`]'s
//! business.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use trawl_attrib::{AttributionIndex, EventError, MetadataEvent, PersistError};
use trawl_store::{SealReport, SharedIndex, SharedStore, Store, StoreError};

use crate::cloud::{AwsMetadataSource, CloudHorizon, KubernetesMetadataSource};
use crate::config::PipelineConfig;
use crate::feeder::{Feeder, InFlight, Job};
use crate::kafka::{
    KafkaError, KafkaMetadataConfig, KafkaMetadataSource, KafkaSink, KafkaSinkConfig, KafkaSource,
    KafkaSourceConfig, store_id,
};
use crate::kinesis::{KinesisError, KinesisSource, KinesisSourceConfig};
use crate::position::FileStat;
use crate::push_log::{PUSH_LOG_KEY, PushLog, PushLogError, PushLogLimits, PushPosition};
use crate::source::{Envelope, PushReport, push_durably, read_file, read_stream, replay_push_log};
use crate::stats::{PipelineStats, render_metrics};
use crate::worker::{Context, release_ready, seal};
use crate::{metadata_file, metadata_log};
use trawl_cloud::aws::AwsSourceConfig;
use trawl_cloud::kubernetes::KubernetesSourceConfig;

/// Why the pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A setting is out of its bounds (the message names it).
    #[error("{0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The push log failed.
    #[error(transparent)]
    PushLog(#[from] PushLogError),
    /// A Kafka source could not start.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// A cloud inventory could not start (the message names the setting).
    #[error("{0}")]
    Cloud(String),
    /// A Kinesis source could not start.
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    /// The attribution snapshot could not be saved.
    #[error("saving the attribution snapshot: {0}")]
    Snapshot(#[from] PersistError),
    /// The index has no room to remember where the metadata log was
    /// applied to (too many metadata sources).
    #[error(
        "the attribution index holds too many source positions to keep the metadata log's ({0} at most): configure fewer metadata files"
    )]
    SourcePositionsFull(usize),
    /// A worker thread could not be started.
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    /// Two watched directories end in the same name: their files would
    /// share names in the manifest.
    #[error(
        "{first} and {second} are both watched and both named `{label}`: files are known by the directory's name and their path in it, so they would be confused; watch their common parent or rename one"
    )]
    DirLabel {
        /// The shared last component.
        label: String,
        /// The directory watched first.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A watched directory inside another: its files would have two names.
    #[error(
        "{inner} is inside {outer}, which is watched too: its files would be read twice; watch one of them"
    )]
    NestedDirs {
        /// The outer directory.
        outer: PathBuf,
        /// The one inside it.
        inner: PathBuf,
    },
}

/// A running pipeline. See the module header.
pub struct Pipeline {
    cx: Arc<Context>,
    feeder: Feeder,
    stop: Arc<AtomicBool>,
    /// Never sent on: dropped at shutdown, after `stop` is set (or with
    /// the pipeline), so that the ticker and follow threads waiting out an
    /// interval on its receiver wake at once and end (the ticker's 200 ms
    /// sleep held every `trawl ingest` up to 200 ms after its last flow, a
    /// tenth of a 2 s ingest).
    stop_wake: Sender<()>,
    /// `stop_wake`'s receiver, for background threads started later.
    woken: Receiver<()>,
    workers: Vec<JoinHandle<()>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    sinks: Mutex<Vec<KafkaSink>>,
    /// What every cloud inventory has seen up to.
    cloud_horizon: Arc<CloudHorizon>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

fn spawn(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
        .map_err(PipelineError::Thread)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pipeline {
    /// Starts workers and the ticker over `store` and `index`.
    pub fn start(
        config: PipelineConfig,
        store: Store,
        index: AttributionIndex,
    ) -> Result<Pipeline, PipelineError> {
        config.validate().map_err(PipelineError::Config)?;
        let push_log = if config.push_log {
            // Past every push a sealed position names (the log may lack it).
            let next_seq_min = store
                .positions()
                .get(PUSH_LOG_KEY)
                .and_then(|v| PushPosition::decode(v))
                .map_or(0, |p| p.seq + 1);
            let limits = PushLogLimits {
                bytes_max: config.push_log_bytes_max,
                ..PushLogLimits::default()
            };
            Some(PushLog::open(
                &store.data_dir().join("push-log"),
                limits,
                next_seq_min,
            )?)
        } else {
            None
        };
        let metadata_log = match &config.snapshot_path {
            Some(_) if config.push_log => {
                let limits = PushLogLimits {
                    bytes_max: config.push_log_bytes_max,
                    ..PushLogLimits::default()
                };
                let dir = store.data_dir().join("metadata-log");
                let next_seq_min = metadata_log::next_seq_min(&index);
                Some(PushLog::open(&dir, limits, next_seq_min)?)
            }
            _ => None,
        };
        let cx = Arc::new(Context::new(config, store, index, push_log, metadata_log));
        let (sender, receiver) = crossbeam_channel::bounded(cx.config.queued_jobs_max.max(1));
        let in_flight = Arc::new(InFlight::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_wake, woken) = crossbeam_channel::bounded(0);
        let mut workers = Vec::new();
        for i in 0..cx.config.workers.max(1) {
            let (cx, receiver, in_flight) = (cx.clone(), receiver.clone(), in_flight.clone());
            workers.push(spawn(&format!("trawl-worker-{i}"), move || {
                work(&cx, &receiver, &in_flight)
            })?);
        }
        let ticker = {
            let (cx, stop, woken) = (cx.clone(), stop.clone(), woken.clone());
            spawn("trawl-ticker", move || tick_until(&cx, &stop, &woken))?
        };
        Ok(Pipeline {
            feeder: Feeder::new(cx.clone(), sender, in_flight),
            cx,
            stop,
            stop_wake,
            woken,
            workers,
            background: Mutex::new(vec![ticker]),
            sinks: Mutex::new(Vec::new()),
            cloud_horizon: Arc::default(),
        })
    }

    /// The store (for queries).
    pub fn store(&self) -> SharedStore {
        self.cx.store.clone()
    }

    /// The attribution index (for queries).
    pub fn index(&self) -> SharedIndex {
        self.cx.index.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &PipelineStats {
        &self.cx.stats
    }

    /// Queues `files` that have anything left to read (by the positions
    /// handed to the store so far); returns how many. Waits while the
    /// queue is full.
    pub fn add_files(&self, files: &[PathBuf]) -> Result<usize, PipelineError> {
        self.feeder.add_files(files, false)
    }

    /// Queues every flow-log file under `dir` with anything left to read.
    pub fn add_dir(&self, dir: &Path) -> Result<usize, PipelineError> {
        self.feeder.add_dir(dir, false)
    }

    /// Follows `dir` in the background: lists it every `poll_interval_ms`
    /// and queues new and grown files.
    pub fn follow_dir(&self, dir: PathBuf) -> Result<(), PipelineError> {
        let canonical = std::fs::canonicalize(&dir).map_err(|source| PipelineError::Io {
            path: dir.clone(),
            source,
        })?;
        self.feeder.label(&canonical)?;
        let (feeder, stop, woken) = (self.feeder.clone(), self.stop.clone(), self.woken.clone());
        let handle = spawn("trawl-follow", move || {
            let interval = Duration::from_millis(feeder.cx.config.poll_interval_ms.max(10));
            let mut reported = false;
            while !stop.load(Ordering::Relaxed) {
                match feeder.add_dir(&dir, true) {
                    Ok(_) => reported = false,
                    Err(error) if !reported => {
                        eprintln!("trawl: following {}: {error}", dir.display());
                        reported = true;
                    }
                    Err(_) => {}
                }
                if pipeline_gone_within(&woken, interval) {
                    break;
                }
            }
        })?;
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
        Ok(())
    }

    /// Consumes a Kafka source in the background until shutdown, which
    /// seals what it added, commits its offsets and leaves the group (see
    /// [`crate::kafka`]).
    pub fn add_kafka(&self, config: KafkaSourceConfig) -> Result<(), PipelineError> {
        let source = KafkaSource::start(self.cx.clone(), config, self.stop.clone())?;
        self.keep(source.into_thread());
        Ok(())
    }

    /// Reads a Kinesis stream (this node's shards) in the background until
    /// shutdown (see [`crate::kinesis`]).
    pub fn add_kinesis(&self, config: KinesisSourceConfig) -> Result<(), PipelineError> {
        let source = KinesisSource::start(self.cx.clone(), config, self.stop.clone())?;
        self.keep(source.into_thread());
        Ok(())
    }

    /// Reads a metadata topic into the index in the background until
    /// shutdown (every partition, no group; see `kafka::metadata`); returns
    /// once the topic is read to its end or `catch_up_secs_max` has passed.
    pub fn add_kafka_metadata(&self, config: KafkaMetadataConfig) -> Result<(), PipelineError> {
        let id = self.store_id()?;
        let source = KafkaMetadataSource::start(self.cx.clone(), config, id, self.stop.clone())?;
        self.keep(source.into_thread());
        Ok(())
    }

    /// Polls EC2 network interfaces, instances and ECS tasks of the
    /// regions and accounts of `config` in the background until shutdown
    /// (see [`crate::cloud`]); returns at once (see
    /// [`Pipeline::wait_for_cloud_metadata`]).
    pub fn add_aws_metadata(
        &self,
        config: AwsSourceConfig,
        leave_pod_addresses: bool,
    ) -> Result<(), PipelineError> {
        let source = AwsMetadataSource::start(
            self.cx.clone(),
            config,
            leave_pod_addresses,
            self.cloud_horizon.clone(),
            self.stop.clone(),
        )
        .map_err(PipelineError::Cloud)?;
        self.keep(source.into_thread());
        Ok(())
    }

    /// Watches a Kubernetes cluster's pods in the background until
    /// shutdown (see [`crate::cloud`]); returns at once.
    pub fn add_kubernetes_metadata(
        &self,
        config: KubernetesSourceConfig,
    ) -> Result<(), PipelineError> {
        let source = KubernetesMetadataSource::start(
            self.cx.clone(),
            config,
            self.cloud_horizon.clone(),
            self.stop.clone(),
        )
        .map_err(PipelineError::Cloud)?;
        self.keep(source.into_thread());
        Ok(())
    }

    /// Waits until every cloud inventory has been seen whole once, at
    /// most `wait`, so that flows are not attributed against half of it;
    /// returns the sources still unseen.
    pub fn wait_for_cloud_metadata(&self, wait: Duration) -> Vec<String> {
        self.cloud_horizon.wait_first(wait)
    }

    /// Publishes every seal's flows to a Kafka topic in the background, one
    /// transaction a seal (see `kafka::sink`); shutdown publishes the last
    /// seal before it returns.
    pub fn add_kafka_sink(&self, config: KafkaSinkConfig) -> Result<(), PipelineError> {
        let id = self.store_id()?;
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        if sinks.iter().any(|s| s.holder() == config.holder()) {
            return Err(PipelineError::Kafka(KafkaError::Config(format!(
                "sinks.kafka: topic {:?} twice (one sink a topic: they would share a transactional id and a hold)",
                config.topic
            ))));
        }
        sinks.push(KafkaSink::start(self.cx.clone(), config, id)?);
        Ok(())
    }

    /// Keeps a background thread, joined at shutdown.
    fn keep(&self, handle: JoinHandle<()>) {
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
    }

    /// The data directory's id (made the first time; see `kafka`).
    fn store_id(&self) -> Result<String, PipelineError> {
        let dir = self.cx.store_read().data_dir().to_path_buf();
        store_id(&dir).map_err(|source| PipelineError::Io { path: dir, source })
    }

    /// Queues a byte stream (stdin), read to its end by one worker.
    pub fn add_stream(
        &self,
        name: &str,
        reader: Box<dyn Read + Send>,
    ) -> Result<(), PipelineError> {
        self.feeder.in_flight.start(None);
        self.feeder.send(Job::Stream {
            name: name.to_string(),
            reader,
        })
    }

    /// Decodes and processes a pushed payload in the calling thread;
    /// returns once it is durable (in the push log, if the pipeline keeps
    /// one), so that the caller may acknowledge it.
    pub fn push(&self, source: &str, payload: &[u8]) -> Result<PushReport, PushLogError> {
        push_durably(&self.cx, source, payload, Envelope::Any)
    }

    /// [`push`](Self::push) of a Firehose HTTP endpoint request: nothing of
    /// it is kept unless it is one (its report then has no JSON envelope).
    pub fn push_firehose(&self, payload: &[u8]) -> Result<PushReport, PushLogError> {
        push_durably(&self.cx, "firehose", payload, Envelope::Firehose)
    }

    /// Adds the pushes the push log holds past the store's position: call
    /// it once at start, after metadata is loaded, before serving pushes.
    /// Returns how many pushes were replayed.
    pub fn replay_push_log(&self) -> Result<u64, PushLogError> {
        let metadata = metadata_log::replay_metadata_log(&self.cx)?;
        if metadata > 0 {
            eprintln!("trawl: {metadata} metadata pushes replayed from the metadata log");
        }
        replay_push_log(&self.cx)
    }

    /// Applies metadata events; with `complete_to`, vouches that metadata
    /// is complete up to that time (a source read to its end).
    pub fn apply_events(&self, events: &[MetadataEvent], complete_to: Option<i64>) -> usize {
        metadata_log::apply_events(&self.cx, &mut self.cx.index_write(), events, complete_to)
    }

    /// Applies a pushed body of JSON-lines metadata events (HTTP); returns
    /// once they are durable (in the metadata log, when the pipeline saves
    /// snapshots), with the events applied and the lines refused.
    pub fn push_metadata(
        &self,
        source_name: &str,
        body: &[u8],
    ) -> Result<(usize, Vec<EventError>), PushLogError> {
        metadata_log::push_metadata(&self.cx, source_name, body)
    }

    /// Saves the attribution snapshot now (to `snapshot_path`), then drops
    /// the metadata log it covers; nothing without a path.
    pub fn save_snapshot(&self) -> Result<(), PersistError> {
        match &self.cx.config.snapshot_path {
            Some(path) => metadata_log::save_snapshot(&self.cx, path),
            None => Ok(()),
        }
    }

    /// Applies the lines of the metadata file `path` past the position saved
    /// with the index for it, then records the new position (saved with the
    /// next snapshot; see [`crate::metadata_file`]). Returns the events
    /// applied, the errors, and the byte offset reading started at.
    pub fn apply_metadata_file(
        &self,
        path: &Path,
    ) -> std::io::Result<(usize, Vec<EventError>, u64)> {
        let plan = metadata_file::plan(&self.cx.index_read(), path)?;
        let name = match plan.from {
            0 => path.display().to_string(),
            from => format!("{} (from byte {from})", path.display()),
        };
        let (applied, errors) =
            self.apply_metadata(std::io::BufReader::new(plan.reader), &name, true);
        let recorded = self
            .cx
            .index_write()
            .set_source_position(&plan.key, &plan.done.encode());
        if !recorded {
            eprintln!(
                "trawl: {}: too many metadata sources to remember where each was read to: it will be applied again at the next start",
                path.display()
            );
        }
        Ok((applied, errors, plan.from))
    }

    /// Reads JSON-lines metadata events from `reader` and applies them;
    /// returns the events applied and the errors (each names its line).
    /// With `complete`, the source is taken as complete up to its newest event.
    pub fn apply_metadata(
        &self,
        reader: impl std::io::BufRead,
        source_name: &str,
        complete: bool,
    ) -> (usize, Vec<EventError>) {
        let (events, errors) = metadata_log::parse_events(&self.cx, reader, source_name);
        let newest = events
            .iter()
            .filter(|e| e.is_declaration())
            .map(MetadataEvent::at)
            .max();
        let applied = self.apply_events(&events, newest.filter(|_| complete));
        (applied, errors)
    }

    /// Jobs queued or running.
    pub fn pending_jobs(&self) -> usize {
        self.feeder.in_flight.pending()
    }

    /// Blocks until every queued job is done or `timeout` has passed;
    /// whether every one is.
    pub fn wait_idle_for(&self, timeout: Duration) -> bool {
        self.feeder.in_flight.wait_idle_for(timeout)
    }

    /// Blocks until every queued job is done.
    pub fn wait_idle(&self) {
        self.feeder.in_flight.wait_idle();
    }

    /// Releases held flows and seals now.
    pub fn seal(&self) -> Result<SealReport, PipelineError> {
        seal(&self.cx).map_err(PipelineError::from)
    }

    /// Prometheus text of the pipeline, store and index counters.
    pub fn metrics_text(&self) -> String {
        let index = self.cx.index_read();
        let store = self.cx.store_read();
        render_metrics(&self.cx.stats, &store, &index, now_secs())
    }

    /// Stops sources, finishes queued jobs, releases held flows and seals.
    pub fn shutdown(self) -> Result<SealReport, PipelineError> {
        let Pipeline {
            cx,
            feeder,
            stop,
            stop_wake,
            woken: _,
            workers,
            background,
            sinks,
            cloud_horizon: _,
        } = self;
        stop.store(true, Ordering::Relaxed);
        drop(stop_wake);
        let background = background
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        for handle in background {
            let _ = handle.join();
        }
        drop(feeder);
        for handle in workers {
            let _ = handle.join();
        }
        let report = seal(&cx);
        // The last seal is published before the sinks end (or, failing
        // that, at the next start).
        for sink in sinks.into_inner().unwrap_or_else(PoisonError::into_inner) {
            sink.finish();
        }
        let report = report?;
        if let Some(path) = &cx.config.snapshot_path {
            metadata_log::save_snapshot(&cx, path)?;
        }
        Ok(report)
    }
}

/// Gives a job's claim back when dropped: also when reading it panicked
/// (a claim kept for ever froze a follow thread waiting for it).
struct Claim<'a> {
    in_flight: &'a InFlight,
    key: Option<&'a str>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.in_flight.finish(self.key);
    }
}

fn work(cx: &Context, jobs: &Receiver<Job>, in_flight: &InFlight) {
    loop {
        // Chunks of files being read come first: their readers wait for them.
        if let Ok(chunk) = cx.chunk_jobs.try_recv() {
            chunk.run(cx);
            continue;
        }
        let job = crossbeam_channel::select! {
            recv(cx.chunk_jobs) -> chunk => {
                if let Ok(chunk) = chunk {
                    chunk.run(cx);
                }
                continue;
            }
            recv(jobs) -> job => match job {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        match job {
            Job::File {
                path,
                key,
                resume,
                growing,
            } => {
                let _claim = Claim {
                    in_flight,
                    key: Some(&key),
                };
                match read_file(cx, &path, &key, resume, growing) {
                    Ok(()) => in_flight.forget_failure(&key),
                    Err(error) => {
                        cx.stats.file_errors.fetch_add(1, Ordering::Relaxed);
                        let stat = std::fs::metadata(&path).map(|m| FileStat::of(&m)).ok();
                        if in_flight.record_failure(&key, stat) {
                            eprintln!(
                                "trawl: {}: {error} (retried with backoff while the file is unchanged; not reported again until it changes)",
                                path.display()
                            );
                        }
                    }
                }
            }
            Job::Stream { name, reader } => {
                let _claim = Claim {
                    in_flight,
                    key: None,
                };
                if let Err(error) = read_stream(cx, &name, reader) {
                    cx.stats.file_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("trawl: {name}: {error}");
                }
            }
        }
    }
}

/// Whether the ticker should seal now: open memory past its share of the
/// cap (at once), or, at most once every `seal_interval_min_secs`, a
/// bucket the watermark passed (a trickle of late records made a seal due
/// every tick, each rewriting the manifest), the interval, or a push log
/// half full.
fn seal_wanted(cx: &Context, since_seal: Duration) -> bool {
    let store = cx.store_read();
    let cap = store.config().open_bytes_max as u128;
    let percent = u128::from(cx.config.seal_at_open_percent.min(100));
    if store.open_bytes() as u128 * 100 >= cap * percent {
        return true;
    }
    let min_secs = cx
        .config
        .seal_interval_min_secs
        .min(cx.config.seal_interval_secs);
    if since_seal.as_secs() < min_secs {
        return false;
    }
    store.seal_due()
        || (since_seal.as_secs() >= cx.config.seal_interval_secs && store.open_rows() > 0)
        || cx
            .push_log
            .as_ref()
            .is_some_and(|log| log.bytes() >= cx.config.push_log_bytes_max / 2)
}

/// Waits `interval`, or less once the pipeline's `stop_wake` is dropped
/// (at shutdown, or with a pipeline dropped without one); whether it was:
/// the background thread then ends (a dropped pipeline's threads that
/// went on found the channel closed at once and spun, cold review of
/// d68ca02).
fn pipeline_gone_within(woken: &Receiver<()>, interval: Duration) -> bool {
    matches!(
        woken.recv_timeout(interval),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    )
}

fn tick_until(cx: &Context, stop: &AtomicBool, woken: &Receiver<()>) {
    let mut last_seal = Instant::now();
    let mut last_maintain = Instant::now();
    let mut last_snapshot = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let interval = cx.config.snapshot_interval_secs;
        if let Some(path) = &cx.config.snapshot_path
            && interval > 0
            && last_snapshot.elapsed().as_secs() >= interval
        {
            last_snapshot = Instant::now();
            if let Err(error) = metadata_log::save_snapshot(cx, path) {
                cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("trawl: {error} (retrying at the next interval)");
            }
        }
        if pipeline_gone_within(woken, Duration::from_millis(200)) || stop.load(Ordering::Relaxed) {
            break;
        }
        release_ready(cx);
        if seal_wanted(cx, last_seal.elapsed()) {
            match seal(cx) {
                Ok(_) => last_seal = Instant::now(),
                Err(error) => {
                    cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("trawl: seal failed (retrying): {error}");
                }
            }
        }
        if last_maintain.elapsed().as_secs() >= cx.config.maintain_interval_secs {
            last_maintain = Instant::now();
            cx.index_write().maintain();
            // Compaction reads and writes without the store lock.
            let job = cx.store_write().compaction_begin();
            let finished = job.and_then(|job| match job {
                Some(mut job) => {
                    job.run();
                    cx.store_write().compaction_finish(job)
                }
                None => Ok(0),
            });
            if let Err(error) = finished {
                cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("trawl: store maintenance failed: {error}");
            }
            cx.store_write().delete_doomed(false);
        }
    }
}
