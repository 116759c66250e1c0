//! The consumer thread of one `[[sources.kafka]]`: polls the group,
//! positions assigned partitions, seals before giving one up, adds each
//! message's lines with its position, commits sealed offsets to the group,
//! and holds the watermark at the slowest partition. See the module
//! header of `kafka` for the exactly-once argument.
//!
//! The thread that polls keeps the partitions' state and the group: it
//! positions, dedups and hands each message to a *lane* (one thread per
//! worker, bounded queue), always the same lane for one partition, so a
//! partition's messages are added, and their positions noted, in offset
//! order while other partitions' are added on the other cores. librdkafka
//! calls the rebalance and statistics callbacks from `poll`; a
//! revocation (and the stop) first waits until the lanes have added every
//! message handed to them, so a seal before a partition is given up holds
//! all of it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use trawl_flowlog::{DecodeOptions, LogFormat};

use super::message::add_message;
use sha2::Digest as _;

use super::position::{
    Holder, PartitionPosition, Start, committer, handoff_metadata, holder, partition_key,
    release_is_stale, start_at,
};
use super::{KafkaSourceConfig, client_with};
use crate::worker::{Context, PositionSource, seal};

/// How long a call to the group coordinator may take.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the watermark cap is recomputed (and refused commits retried).
const WATERMARK_EVERY: Duration = Duration::from_secs(1);
/// How long one poll waits for a message.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Bad messages and client errors printed before only every 1,000th is.
const PRINTED_MAX: u64 = 20;
/// Messages queued for one lane (bounded: the poll waits past it).
const LANE_QUEUE_MAX: usize = 16;

/// Why a Kafka source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A setting is wrong (the message names it).
    #[error("{0}")]
    Config(String),
    /// The client refused its configuration or could not subscribe.
    #[error("sources.kafka ({brokers}, topics {topics}): {source}")]
    Client {
        /// The brokers configured.
        brokers: String,
        /// The topics configured.
        topics: String,
        /// librdkafka's error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// The consumer thread could not be started.
    #[error("starting the Kafka consumer thread: {0}")]
    Thread(std::io::Error),
}

/// A running Kafka source: its consumer thread.
#[derive(Debug)]
pub struct KafkaSource {
    handle: JoinHandle<()>,
}

impl KafkaSource {
    /// Starts consuming `config`'s topics into the pipeline of `cx` until
    /// `stop` is set; then seals, commits and leaves the group.
    pub fn start(
        cx: Arc<Context>,
        config: KafkaSourceConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<KafkaSource, KafkaError> {
        config.validate().map_err(KafkaError::Config)?;
        let (brokers, topics) = (config.brokers.clone(), config.topics.join(","));
        let client_error = |source| KafkaError::Client {
            brokers: brokers.clone(),
            topics: topics.clone(),
            source: Box::new(source),
        };
        let options =
            DecodeOptions {
                format: match &config.log_format {
                    Some(spec) => Some(LogFormat::parse(spec).map_err(|e| {
                        KafkaError::Config(format!("sources.kafka.log_format: {e}"))
                    })?),
                    None => None,
                },
                ..cx.decode_options.clone()
            };
        let store_id = {
            let dir = cx.store_read().data_dir().to_path_buf();
            store_id(&dir).map_err(|e| {
                KafkaError::Config(format!("{}: {e}", dir.join(STORE_ID_FILE).display()))
            })?
        };
        let shared = Arc::new(Shared {
            name: format!("kafka:{}:{}", config.group, config.topics.join(",")),
            cx,
            options,
            store_id,
            partitions: Mutex::new(BTreeMap::new()),
            releases: Mutex::new(Vec::new()),
            lanes: Lanes::default(),
            config,
        });
        let lanes = start_lanes(&shared).map_err(KafkaError::Thread)?;
        let consumer: BaseConsumer<Ctx> = client_config(&shared.config)
            .create_with_context(Ctx(shared.clone()))
            .map_err(client_error)?;
        let topics: Vec<&str> = shared.config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(client_error)?;
        let handle = std::thread::Builder::new()
            .name("trawl-kafka".to_string())
            .spawn(move || {
                consume_until(&shared, &consumer, &stop);
                // The queues closed: every lane ends.
                shared
                    .lanes
                    .senders
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                for lane in lanes {
                    let _ = lane.join();
                }
            })
            .map_err(KafkaError::Thread)?;
        Ok(KafkaSource { handle })
    }

    /// The consumer thread (it ends once `stop` is set).
    pub fn into_thread(self) -> JoinHandle<()> {
        self.handle
    }
}

/// Starts one lane per worker, each adding the messages handed to it in
/// order.
fn start_lanes(shared: &Arc<Shared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    let count = shared.cx.config.workers.max(1);
    let mut handles = Vec::with_capacity(count);
    let mut senders = Vec::with_capacity(count);
    for i in 0..count {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(LANE_QUEUE_MAX);
        let lane = shared.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("trawl-kafka-lane-{i}"))
                .spawn(move || run_lane(&lane, &receiver))?,
        );
        senders.push(sender);
    }
    *shared
        .lanes
        .senders
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = senders;
    Ok(handles)
}

/// Adds each message of the lane's queue until it closes.
fn run_lane(shared: &Shared, jobs: &Receiver<Job>) {
    /// Counts the message finished; if adding it panicked, ends the
    /// process: a drain (a revocation, the stop) would wait for ever, and
    /// the lane's later messages would be lost until a restart, which
    /// reads them again from the sealed positions.
    struct Finished<'s>(&'s Lanes);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                fail_stop(
                    "a Kafka lane panicked while adding a message: ending the process (a restart reads again what was not sealed)",
                );
            }
            self.0.done();
        }
    }
    for job in jobs {
        let _finished = Finished(&shared.lanes);
        shared.add_job(job);
    }
}

/// The client settings: the config's properties, then what exactly-once
/// needs (no automatic commits or offset stores, committed reads only,
/// cooperative rebalances).
fn client_config(config: &KafkaSourceConfig) -> ClientConfig {
    let mut client = client_with(&config.brokers, &config.properties);
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", &config.start)
        .set("statistics.interval.ms", "5000");
    client
}

/// A partition and an offset in it: `(topic, partition, offset)`.
type Offset3 = (String, i32, u64);

/// One assigned partition's state in this process.
#[derive(Debug)]
struct PartitionState {
    key: String,
    /// Where reading resumes inside a message the store holds in part.
    resume: Option<PartitionPosition>,
    /// The next offset to add (messages below it are in).
    next: u64,
    /// Latest record start added from the partition.
    newest_event: Option<u32>,
    /// When the last message arrived (or the partition was assigned).
    last_message: Instant,
    /// Create or append time of the last message (milliseconds).
    last_message_ms: Option<i64>,
    /// The offset last committed to the group.
    committed: Option<u64>,
    /// The offset reading started at: no commit goes below it (the
    /// manifest may still hold a position from an earlier ownership).
    floor: u64,
    /// The partition's last stable offset, from the client's statistics.
    end_offset: Option<i64>,
}

/// What the consumer thread and the client's callbacks share.
struct Shared {
    /// Name of the source (watermark cap, messages).
    name: String,
    cx: Arc<Context>,
    options: DecodeOptions,
    config: KafkaSourceConfig,
    /// This data directory's id in the group's commit metadata.
    store_id: String,
    partitions: Mutex<BTreeMap<(String, i32), PartitionState>>,
    /// Releases the group refused, with when they were first tried.
    releases: Mutex<Vec<(Offset3, Instant)>>,
    /// The lanes messages are added on.
    lanes: Lanes,
}

/// One message handed to a lane.
struct Job {
    topic: String,
    partition: i32,
    offset: u64,
    key: String,
    /// Bytes of its decoded text already in the store.
    skip: u64,
    payload: Vec<u8>,
}

/// The lanes' queues and how many messages they have not finished.
#[derive(Default)]
struct Lanes {
    senders: Mutex<Vec<SyncSender<Job>>>,
    /// Each partition's lane, dealt round-robin as partitions first send
    /// (two partitions on two cores use both).
    lane_of: Mutex<BTreeMap<(String, i32), usize>>,
    in_flight: Mutex<usize>,
    finished: Condvar,
}

impl Lanes {
    /// Hands `job` to its partition's lane (waiting while it is full).
    fn send(&self, job: Job) {
        let senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        if senders.is_empty() {
            return;
        }
        let lane = {
            let mut lane_of = self.lane_of.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (job.topic.clone(), job.partition);
            match lane_of.get(&key) {
                Some(lane) => *lane,
                None => {
                    // The least loaded lane.
                    let lanes = senders.len();
                    let mut load = vec![0usize; lanes];
                    for lane in lane_of.values() {
                        load[*lane % lanes] += 1;
                    }
                    let lane = (0..load.len()).min_by_key(|i| load[*i]).unwrap_or(0);
                    lane_of.insert(key, lane);
                    lane
                }
            }
        };
        let sender = senders[lane].clone();
        drop(senders);
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        if sender.send(job).is_err() {
            self.done();
        }
    }

    /// Forgets every partition's lane; call it drained only (a partition
    /// moved to another lane with messages queued on its old one would be
    /// added out of order).
    fn redeal(&self) {
        self.lane_of
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// One message finished.
    fn done(&self) {
        let mut n = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.finished.notify_all();
        }
    }

    /// Waits until every message handed to a lane is added.
    fn drain(&self) {
        let n = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _idle = self
            .finished
            .wait_while(n, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl Shared {
    fn partitions(&self) -> MutexGuard<'_, BTreeMap<(String, i32), PartitionState>> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The client context: rebalances, statistics and errors.
struct Ctx(Arc<Shared>);

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        let mut partitions = self.0.partitions();
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                if let Some(state) = partitions.get_mut(&(topic.clone(), *partition))
                    && stats.ls_offset >= 0
                {
                    state.end_offset = Some(stats.ls_offset);
                }
            }
        }
        drop(partitions);
        self.0.publish_lag();
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let stats = &self.0.cx.stats.kafka;
        let n = stats.client_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= PRINTED_MAX || n.is_multiple_of(1000) {
            eprintln!(
                "trawl: {}: client error #{n}: {error}: {reason}",
                self.0.name
            );
        }
    }
}

impl ConsumerContext for Ctx {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(error) = result {
            // An asynchronous commit the group refused: tried again after
            // the next seal, however quiet the partition.
            self.0
                .cx
                .stats
                .kafka
                .commit_errors
                .fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "trawl: {}: committing offsets to the group: {error}",
                self.0.name
            );
            let mut partitions = self.0.partitions();
            for elem in offsets.elements() {
                if let Some(state) =
                    partitions.get_mut(&(elem.topic().to_string(), elem.partition()))
                {
                    state.committed = None;
                }
            }
        }
    }

    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        self.0
            .cx
            .stats
            .kafka
            .rebalances
            .fetch_add(1, Ordering::Relaxed);
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assignment = self.0.assign(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(&assignment)
                } else {
                    consumer.assign(&assignment)
                }
            }
            _ => {
                self.0.revoke(consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(error) = done {
            eprintln!("trawl: {}: rebalance: {error}", self.0.name);
        }
        self.0.publish_watermark();
    }
}

impl Shared {
    /// `tpl`, newly assigned, with each partition's starting offset; its
    /// state recorded.
    fn assign(&self, consumer: &BaseConsumer<Ctx>, tpl: &TopicPartitionList) -> TopicPartitionList {
        let committed = self.committed_when_released(consumer, tpl);
        let stored: Vec<Option<PartitionPosition>> = {
            let store = self.cx.store_read();
            let positions = store.pending_positions();
            tpl.elements()
                .iter()
                .map(|e| {
                    positions
                        .get(&partition_key(e.topic(), e.partition()))
                        .and_then(|v| PartitionPosition::decode(v))
                })
                .collect()
        };
        let ends: Vec<Option<u64>> = tpl
            .elements()
            .iter()
            .map(|e| end_of(consumer, e.topic(), e.partition()))
            .collect();
        let assignment = tpl.clone();
        let mut remade_keys = Vec::new();
        let mut partitions = self.partitions();
        for ((mut elem, stored), end) in assignment.elements().into_iter().zip(stored).zip(ends) {
            let (topic, partition) = (elem.topic().to_string(), elem.partition());
            // The group's offset, unless this store committed it: its own
            // positions are the truth then (a commit of an older position,
            // a remade topic's reset, may not have reached the group).
            let group = committed
                .find_partition(&topic, partition)
                .filter(|e| committer(e.metadata()) != Some(self.store_id.as_str()))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => u64::try_from(o).ok(),
                    _ => None,
                });
            // A partition that now ends before a position (the topic was
            // made again): that position is another topic's, and reading
            // from it would skip (or wait for) the new one's messages.
            let past_end = |offset: u64| end.is_some_and(|end| offset > end);
            let remade = stored.is_some_and(|s| past_end(s.offset)) || group.is_some_and(past_end);
            let (stored, group) = if remade {
                remade_keys.push((topic.clone(), partition));
                eprintln!(
                    "trawl: {}: {topic}/{partition} ends at {}, before the position held for it (the topic was made again?): read from its start",
                    self.name,
                    end.unwrap_or(0)
                );
                let reset = PartitionPosition::default();
                (Some(reset), None)
            } else {
                (stored, group)
            };
            let start = start_at(stored, group);
            let key = partition_key(&topic, partition);
            if let Start::At(at) = start
                && (remade || stored.is_none_or(|s| s.offset < at.offset))
            {
                // Another store read up to here: this store's position
                // moves with it, or its next seal would commit the old one
                // (and a restart read the other store's flows again).
                let noted = self.cx.store_read().note_positions(&[(&key, &at.encode())]);
                if let Err(error) = noted {
                    eprintln!("trawl: {}: {key}: {error}", self.name);
                }
            }
            let (offset, resume, next) = match start {
                Start::At(at) => (
                    i64::try_from(at.offset).map_or(Offset::End, Offset::Offset),
                    (at.byte > 0).then_some(at),
                    at.offset,
                ),
                // `auto.offset.reset` decides: there is no committed offset.
                Start::Reset => (Offset::Invalid, None, 0),
            };
            if let Err(error) = elem.set_offset(offset) {
                eprintln!("trawl: {}: {topic}/{partition}: {error}", self.name);
            }
            eprintln!(
                "trawl: {}: assigned {topic}/{partition}, from {}",
                self.name,
                describe(start)
            );
            partitions.insert(
                (topic.clone(), partition),
                PartitionState {
                    key,
                    resume,
                    next,
                    newest_event: None,
                    last_message: Instant::now(),
                    last_message_ms: None,
                    committed: group,
                    floor: next,
                    end_offset: None,
                },
            );
        }
        drop(partitions);
        // The reset is only pending until sealed: killed before the next
        // seal, a restart would resume from the old topic's position and
        // skip the new one's messages below it.
        if !remade_keys.is_empty() {
            self.seal_within(self.config.revoke_seal_secs_max, &remade_keys);
        }
        assignment
    }

    /// The group's commits of `tpl`, once no other store holds any of its
    /// partitions (each waits at most `handoff_wait_secs` for its holder to
    /// release it).
    fn committed_when_released(
        &self,
        consumer: &BaseConsumer<Ctx>,
        tpl: &TopicPartitionList,
    ) -> TopicPartitionList {
        let deadline = Instant::now() + Duration::from_secs(self.config.handoff_wait_secs);
        loop {
            let committed = match consumer.committed_offsets(tpl.clone(), COORDINATOR_TIMEOUT) {
                Ok(committed) => committed,
                // Asked again until the hand-over deadline: without the
                // commits, another store's further seals would be missed.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                Err(error) => {
                    // No coordinator all that time: the store's positions
                    // are still right unless another store sealed further.
                    eprintln!(
                        "trawl: {}: reading the group's offsets: {error}; starting from this store's positions",
                        self.name
                    );
                    return TopicPartitionList::new();
                }
            };
            let held: Vec<String> = committed
                .elements()
                .iter()
                .filter_map(|e| match holder(e.metadata(), &self.store_id) {
                    Holder::Other(id) => {
                        Some(format!("{}/{} (store {id})", e.topic(), e.partition()))
                    }
                    Holder::Nobody | Holder::Me => None,
                })
                .collect();
            if held.is_empty() {
                return committed;
            }
            if Instant::now() >= deadline {
                self.cx
                    .stats
                    .kafka
                    .handoff_timeouts
                    .fetch_add(held.len() as u64, Ordering::Relaxed);
                eprintln!(
                    "trawl: {}: {} not released within {} s (its process died?): reading from its last commit; flows it sealed after may be counted twice",
                    self.name,
                    held.join(", "),
                    self.config.handoff_wait_secs
                );
                return committed;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Before `tpl` is given up: seals what was added from it (bounded in
    /// time, else the process ends), commits the sealed offsets, forgets it.
    fn revoke(&self, consumer: &BaseConsumer<Ctx>, tpl: &TopicPartitionList) {
        // Every message handed out is added before anything is sealed.
        self.lanes.drain();
        let keys: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // Nothing is in flight now: the partitions kept are dealt to the
        // lanes afresh (their order kept), so they spread again.
        self.lanes.redeal();
        if consumer.assignment_lost() {
            // The group moved to a new generation without this member's
            // revocation (a heartbeat refused): the group still waits for
            // this member to rejoin, which it does only after this callback,
            // so sealing and committing now still comes before the next
            // owner reads. (Not so when the session expired: see the module
            // header's known window.)
            self.cx
                .stats
                .kafka
                .partitions_lost
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            eprintln!(
                "trawl: {}: the group took {} back (assignment lost): sealing and committing before rejoining",
                self.name,
                names(&keys)
            );
        }
        if self.unsealed(&keys) {
            self.seal_within(self.config.revoke_seal_secs_max, &keys);
        }
        let offsets = self.sealed_offsets(&keys);
        if !self.commit(consumer, &offsets, true, CommitMode::Sync) {
            // Released once the group takes commits from this member again.
            let mut releases = self.releases.lock().unwrap_or_else(PoisonError::into_inner);
            releases.extend(offsets.into_iter().map(|o| (o, Instant::now())));
        }
        let mut partitions = self.partitions();
        for key in &keys {
            partitions.remove(key);
        }
        drop(partitions);
        eprintln!("trawl: {}: gave up {}", self.name, names(&keys));
        self.publish_lag();
    }

    /// Whether anything added from `keys` is not yet in a published manifest.
    fn unsealed(&self, keys: &[(String, i32)]) -> bool {
        let store = self.cx.store_read();
        let pending = store.pending_positions();
        keys.iter().any(|(topic, partition)| {
            let key = partition_key(topic, *partition);
            pending.get(&key) != store.positions().get(&key)
        })
    }

    /// Seals until nothing from `keys` is unsealed, retrying for `secs_max`
    /// seconds; past that ends the process (see the module header).
    fn seal_within(&self, secs_max: u64, keys: &[(String, i32)]) {
        let deadline = Instant::now() + Duration::from_secs(secs_max);
        loop {
            match seal(&self.cx) {
                Ok(_) if !self.unsealed(keys) => return,
                Ok(_) => {}
                // The ticker's seal: wait for it, then seal again.
                Err(trawl_store::StoreError::SealInFlight) => {}
                Err(error) => {
                    self.cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("trawl: {}: sealing before a rebalance: {error}", self.name);
                }
            }
            if Instant::now() >= deadline {
                fail_stop(&format!(
                    "{}: could not seal {} within {secs_max} s before giving them up: ending the process so that their flows are stored once, by the next owner",
                    self.name,
                    names(keys)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Commits the sealed offsets of every assigned partition that moved
    /// since its last commit, as held by this store.
    fn commit_sealed(&self, consumer: &BaseConsumer<Ctx>, mode: CommitMode) {
        let sealed = self.cx.store_read().positions().clone();
        let mut moved = Vec::new();
        for ((topic, partition), state) in self.partitions().iter() {
            let offset = sealed
                .get(&state.key)
                .and_then(|v| PartitionPosition::decode(v))
                .map(|p| p.group_offset());
            if let Some(offset) = offset
                && offset >= state.floor
                // Never past what this ownership handed out (a remade
                // topic's old sealed offset, before its reset is sealed).
                && offset <= state.next
                && state.committed != Some(offset)
            {
                moved.push((topic.clone(), *partition, offset));
            }
        }
        if self.commit(consumer, &moved, false, mode) {
            let mut partitions = self.partitions();
            for (topic, partition, offset) in moved {
                if let Some(state) = partitions.get_mut(&(topic, partition)) {
                    state.committed = Some(offset);
                }
            }
        }
    }

    /// The sealed offsets of `keys`, as this store's store id releases them.
    fn sealed_offsets(&self, keys: &[(String, i32)]) -> Vec<Offset3> {
        let store = self.cx.store_read();
        keys.iter()
            .filter_map(|(topic, partition)| {
                let position = store
                    .positions()
                    .get(&partition_key(topic, *partition))
                    .and_then(|v| PartitionPosition::decode(v))?;
                Some((topic.clone(), *partition, position.group_offset()))
            })
            .collect()
    }

    /// Commits `offsets` with this store's handoff metadata; whether the
    /// group took them.
    fn commit(
        &self,
        consumer: &BaseConsumer<Ctx>,
        offsets: &[Offset3],
        released: bool,
        mode: CommitMode,
    ) -> bool {
        if offsets.is_empty() {
            return true;
        }
        let metadata = handoff_metadata(&self.store_id, released);
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            let Ok(offset) = i64::try_from(*offset) else {
                continue;
            };
            let mut elem = list.add_partition(topic, *partition);
            let positioned = elem.set_offset(Offset::Offset(offset));
            elem.set_metadata(metadata.as_str());
            if positioned.is_err() {
                return false;
            }
        }
        match consumer.commit(&list, mode) {
            Ok(()) => true,
            Err(error) => {
                let stats = &self.cx.stats.kafka;
                stats.commit_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "trawl: {}: committing offsets to the group: {error} (tried again)",
                    self.name
                );
                false
            }
        }
    }

    /// Commits the releases the group refused (while it moved to a new
    /// generation without this member); gives up on each after
    /// `handoff_wait_secs`, when the next owner has stopped waiting for it.
    fn retry_releases(&self, consumer: &BaseConsumer<Ctx>) {
        let mut pending = self.releases.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.is_empty() {
            return;
        }
        let Some(stale) = self.stale_releases(consumer, &pending) else {
            // The group's offsets unknown now: asked again next time.
            return;
        };
        pending.retain(|(o, _)| {
            let drop = stale.contains(o);
            if drop {
                eprintln!(
                    "trawl: {}: {}/{} not released at {}: another store holds it or sealed past it",
                    self.name, o.0, o.1, o.2
                );
            }
            !drop
        });
        if pending.is_empty() {
            return;
        }
        let offsets: Vec<Offset3> = pending.iter().map(|(o, _)| o.clone()).collect();
        if self.commit(consumer, &offsets, true, CommitMode::Sync) {
            pending.clear();
            eprintln!("trawl: {}: released {}", self.name, names_of(&offsets));
            return;
        }
        let wait = Duration::from_secs(self.config.handoff_wait_secs);
        pending.retain(|(_, since)| since.elapsed() < wait);
    }

    /// The pending releases the group's commits make stale (see
    /// [`release_is_stale`]); `None` if the group's commits cannot be read.
    fn stale_releases(
        &self,
        consumer: &BaseConsumer<Ctx>,
        pending: &[(Offset3, Instant)],
    ) -> Option<Vec<Offset3>> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition, _), _) in pending {
            tpl.add_partition(topic, *partition);
        }
        let committed = consumer.committed_offsets(tpl, COORDINATOR_TIMEOUT).ok()?;
        Some(
            pending
                .iter()
                .map(|(o, _)| o)
                .filter(|(topic, partition, offset)| {
                    let group = committed.find_partition(topic, *partition).and_then(|e| {
                        match e.offset() {
                            Offset::Offset(at) => u64::try_from(at)
                                .ok()
                                .map(|at| (at, e.metadata().to_string())),
                            _ => None,
                        }
                    });
                    let group = group.as_ref().map(|(at, m)| (*at, m.as_str()));
                    release_is_stale(*offset, group, &self.store_id)
                })
                .cloned()
                .collect(),
        )
    }

    /// Hands one message to its partition's lane, unless the store holds
    /// it already.
    fn add_message(&self, message: &BorrowedMessage<'_>) {
        let (topic, partition) = (message.topic(), message.partition());
        let Ok(offset) = u64::try_from(message.offset()) else {
            return;
        };
        let (key, skip) = {
            let mut partitions = self.partitions();
            let Some(state) = partitions.get_mut(&(topic.to_string(), partition)) else {
                // Fetched before the partition was given up.
                return;
            };
            if offset < state.next {
                // Already in the store (a message fetched twice).
                return;
            }
            let skip = match state.resume.take() {
                Some(at) if at.offset == offset => at.byte,
                _ => 0,
            };
            state.next = offset + 1;
            state.last_message = Instant::now();
            state.last_message_ms = message.timestamp().to_millis();
            (state.key.clone(), skip)
        };
        self.cx.stats.kafka.messages.fetch_add(1, Ordering::Relaxed);
        self.lanes.send(Job {
            topic: topic.to_string(),
            partition,
            offset,
            key,
            skip,
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    }

    /// Adds one message on its lane: its lines from where the store stands
    /// in it, then the position past it.
    fn add_job(&self, job: Job) {
        let Job {
            topic,
            partition,
            offset,
            key,
            skip,
            payload,
        } = job;
        let stats = &self.cx.stats.kafka;
        let source = format!("kafka:{topic}/{partition}@{offset}");
        let at = (key.as_str(), PositionSource::Partition(offset));
        let added = add_message(
            &self.cx,
            &self.options,
            self.config.container,
            &source,
            &payload,
            at,
            skip,
        );
        let next = PartitionPosition {
            offset: offset + 1,
            byte: 0,
        };
        if let Err(error) = self
            .cx
            .store_read()
            .note_positions(&[(&key, &next.encode())])
        {
            eprintln!("trawl: {source}: {error}");
        }
        if let Some(why) = added.bad {
            let n = stats.bad_messages.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= PRINTED_MAX || n.is_multiple_of(1000) {
                eprintln!("trawl: bad message #{n}: {source}: {why}");
            }
        }
        if let Some(start) = added.start_max
            && let Some(state) = self.partitions().get_mut(&(topic, partition))
        {
            state.newest_event = state.newest_event.max(Some(start));
        }
    }

    /// Holds the store's watermark at the slowest partition that is not
    /// idle; lets it go when every partition is idle or none is assigned.
    fn publish_watermark(&self) {
        let idle_after = Duration::from_secs(self.config.idle_partition_secs);
        let partitions = self.partitions();
        let mut cap: Option<u32> = None;
        for state in partitions.values() {
            let idle =
                self.config.idle_partition_secs > 0 && state.last_message.elapsed() >= idle_after;
            if idle {
                continue;
            }
            // A partition that has given no flow time yet (empty, only
            // bad messages) holds nothing back: a cap of 0 stalled sealing
            // and retention for as long as it stayed so.
            if let Some(reached) = state.newest_event {
                cap = Some(cap.map_or(reached, |c| c.min(reached)));
            }
        }
        drop(partitions);
        self.cx.store_read().set_watermark_cap(&self.name, cap);
    }

    /// Publishes every assigned partition's lag in `/metrics`.
    fn publish_lag(&self) {
        let now_ms = crate::pipeline::now_secs().saturating_mul(1000);
        let lags = self
            .partitions()
            .iter()
            .map(|((topic, partition), state)| {
                let records = state
                    .end_offset
                    .and_then(|end| u64::try_from(end).ok())
                    .map_or(0, |end| end.saturating_sub(state.next));
                let behind_ms = state
                    .last_message_ms
                    .and_then(|t| u64::try_from(t).ok())
                    .map_or(0, |t| now_ms.saturating_sub(t));
                let seconds = if records > 0 { behind_ms / 1000 } else { 0 };
                (format!("{topic}/{partition}"), (records, seconds))
            })
            .collect();
        self.cx.stats.kafka.set_lags(&self.name, lags);
    }
}

/// Polls until `stop`, then seals, commits and leaves the group.
fn consume_until(shared: &Shared, consumer: &BaseConsumer<Ctx>, stop: &AtomicBool) {
    let mut generation = shared.cx.store_read().manifest().generation;
    let (mut last_check, mut last_watermark) = (Instant::now(), Instant::now());
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL_TIMEOUT) {
            Some(Ok(message)) => shared.add_message(&message),
            Some(Err(error)) => {
                let stats = &shared.cx.stats.kafka;
                let n = stats.client_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= PRINTED_MAX || n.is_multiple_of(1000) {
                    eprintln!("trawl: {}: consuming: {error}", shared.name);
                }
            }
            None => {}
        }
        // Once a poll's wait, not once a message (the store's lock):
        // offsets follow seals closely, what a seal made true reaching the
        // group within 100 ms (see the known window in the module header).
        if last_check.elapsed() >= POLL_TIMEOUT {
            last_check = Instant::now();
            let sealed = shared.cx.store_read().manifest().generation;
            if sealed != generation {
                generation = sealed;
                shared.commit_sealed(consumer, CommitMode::Async);
            }
            shared.retry_releases(consumer);
        }
        if last_watermark.elapsed() >= WATERMARK_EVERY {
            last_watermark = Instant::now();
            shared.publish_watermark();
            // Commits the group refused (the callback forgot them) again.
            shared.commit_sealed(consumer, CommitMode::Async);
        }
    }
    // Everything handed out is added, and sealed, before the group hears
    // we leave: the revocation that follows finds nothing unsealed.
    shared.lanes.drain();
    let keys: Vec<(String, i32)> = shared.partitions().keys().cloned().collect();
    if shared.unsealed(&keys) {
        shared.seal_within(shared.config.revoke_seal_secs_max, &keys);
    }
    shared.commit_sealed(consumer, CommitMode::Sync);
    consumer.unsubscribe();
    // Serves the revocation (librdkafka calls the callback from poll).
    let deadline = Instant::now() + COORDINATOR_TIMEOUT;
    while !shared.partitions().is_empty() && Instant::now() < deadline {
        let _ = consumer.poll(POLL_TIMEOUT);
    }
    shared.cx.store_read().set_watermark_cap(&shared.name, None);
}

/// The partition's high watermark, if the broker says it in time (asked
/// up to three times: just after a topic is made, its leader may not be
/// known yet).
fn end_of(consumer: &BaseConsumer<Ctx>, topic: &str, partition: i32) -> Option<u64> {
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        if let Ok((_, high)) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(3)) {
            return u64::try_from(high).ok();
        }
    }
    None
}

/// Ends the process (see the module header: stored once, by the next owner).
fn fail_stop(why: &str) -> ! {
    eprintln!("trawl: {why}");
    std::process::exit(75)
}

fn names(keys: &[(String, i32)]) -> String {
    keys.iter()
        .map(|(topic, partition)| format!("{topic}/{partition}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names_of(offsets: &[Offset3]) -> String {
    offsets
        .iter()
        .map(|(topic, partition, offset)| format!("{topic}/{partition} at {offset}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Name of the file holding a data directory's id for group commits.
pub const STORE_ID_FILE: &str = "STORE_ID";

/// The data directory's id, made and saved (written whole, then renamed)
/// the first time: a digest of the directory, the process and the time.
pub(crate) fn store_id(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join(STORE_ID_FILE);
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
    }
    let seed = format!(
        "{} {} {:?}",
        dir.display(),
        std::process::id(),
        std::time::SystemTime::now()
    );
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!("{STORE_ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

fn describe(start: Start) -> String {
    match start {
        Start::At(at) if at.byte > 0 => format!("offset {} (byte {} of it)", at.offset, at.byte),
        Start::At(at) => format!("offset {}", at.offset),
        Start::Reset => "auto.offset.reset (nothing stored or committed)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(partition: i32) -> Job {
        Job {
            topic: "t".into(),
            partition,
            offset: 0,
            key: String::new(),
            skip: 0,
            payload: Vec::new(),
        }
    }

    /// Regression (cold review): the lanes were dealt once, so after a
    /// rebalance the partitions kept could all sit on one lane (one core).
    #[test]
    fn partitions_left_after_a_rebalance_use_every_lane() {
        let lanes = Lanes::default();
        let (s0, r0) = std::sync::mpsc::sync_channel::<Job>(LANE_QUEUE_MAX);
        let (s1, r1) = std::sync::mpsc::sync_channel::<Job>(LANE_QUEUE_MAX);
        *lanes.senders.lock().unwrap() = vec![s0, s1];
        for p in 0..4 {
            lanes.send(job(p));
        }
        while r0.try_recv().is_ok() {}
        while r1.try_recv().is_ok() {}
        // Partitions 1 and 3 revoked: drained, dealt afresh; 0 and 2
        // remain, two partitions on two lanes.
        lanes.redeal();
        lanes.send(job(0));
        lanes.send(job(2));
        let on0 = std::iter::from_fn(|| r0.try_recv().ok()).count();
        let on1 = std::iter::from_fn(|| r1.try_recv().ok()).count();
        assert_eq!((on0, on1), (1, 1), "two partitions on one lane");
    }
}
