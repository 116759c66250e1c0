//! The metadata topic (`[sources.kafka_metadata]`): ownership events read
//! by every process, whole, into its attribution index.
//!
//! ```text
//!  broker ─► metadata thread (no group: every partition assigned) ─► message (JSON lines
//!            of assign / release / snapshot / interface events) ─► index, with the position
//!            kafka-metadata:TOPIC/P = next offset (under one index lock)
//!  snapshot (every snapshot_interval_secs, at stop) ─► index + positions on disk together
//!  start ─► snapshot loaded ─► each partition read from its saved position (or its start)
//! ```
//!
//! Flows are split between the processes of a consumer group, but
//! ownership is not: a process must know who held an IP whichever
//! partition its flows came from, so each one reads all of the metadata
//! topic (the way Netflix's FlowCollector broadcasts ownership to every
//! node). The positions are saved in the attribution snapshot with the
//! ownership they produced, so a restart reads only what the snapshot
//! lacks; a crash between two snapshots reads some messages again, which
//! is harmless (events are idempotent).
//!
//! Completeness: once every partition has been read to its end, metadata
//! is vouched complete up to the newest event applied (the horizon, as for
//! a metadata file read to its end), so held flows need not wait out
//! their hold-back. [`KafkaMetadataSource::start`] waits for that (at most
//! `catch_up_secs_max`) before flows are consumed, so that a restart does
//! not attribute a backlog of flows against half the history.
//!
//! Partitions added to the topic are picked up within
//! `refresh_secs`; a message that is not JSON lines has its lines counted
//! as metadata errors (each names `kafka:TOPIC/P@OFFSET` and its line),
//! and reading goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use trawl_attrib::MetadataEvent;

use super::{KafkaError, client_with};
use crate::heartbeats::HeartbeatOutbox;
use crate::metadata_log::{apply_events, parse_events};
use crate::worker::Context;

/// How long one poll waits for a message.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a metadata request to the brokers may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Errors printed before only every 1,000th is.
const PRINTED_MAX: u64 = 20;

/// Client properties trawl sets itself on the metadata consumer.
pub const RESERVED_METADATA_PROPERTIES: [&str; 5] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "isolation.level",
    "enable.partition.eof",
];

/// `[sources.kafka_metadata]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaMetadataConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic of ownership events (JSON lines, one or many a message).
    pub topic: String,
    /// Client properties passed to librdkafka as they are (SASL, TLS…);
    /// not those in [`RESERVED_METADATA_PROPERTIES`].
    pub properties: BTreeMap<String, String>,
    /// Longest the start waits for the topic to be read to its end before
    /// flows are consumed (seconds; 0: do not wait).
    pub catch_up_secs_max: u64,
    /// How often the topic's partition count is checked (seconds).
    pub refresh_secs: u64,
    /// Also publish what this process learns from its flows (heartbeats:
    /// an interface's own address over a span) to the topic, so that the
    /// processes of a group, each learning from its own partitions, share
    /// them.
    pub publish_learned: bool,
    /// How often learned heartbeats are published (seconds).
    pub publish_interval_secs: u64,
}

impl Default for KafkaMetadataConfig {
    fn default() -> Self {
        KafkaMetadataConfig {
            brokers: String::new(),
            topic: String::new(),
            properties: BTreeMap::new(),
            catch_up_secs_max: 30,
            refresh_secs: 30,
            publish_learned: false,
            publish_interval_secs: 10,
        }
    }
}

impl KafkaMetadataConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("sources.kafka_metadata.brokers is empty".into());
        }
        super::validate_topic(&self.topic)
            .map_err(|e| format!("sources.kafka_metadata.topic: {e}"))?;
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| RESERVED_METADATA_PROPERTIES.contains(&k.as_str()))
        {
            return Err(format!(
                "sources.kafka_metadata.properties.{key}: trawl sets it itself"
            ));
        }
        if self.catch_up_secs_max > 3600 {
            return Err("sources.kafka_metadata.catch_up_secs_max must be at most 3600".into());
        }
        if !(1..=3600).contains(&self.publish_interval_secs) {
            return Err(
                "sources.kafka_metadata.publish_interval_secs must be between 1 and 3600".into(),
            );
        }
        if !(1..=3600).contains(&self.refresh_secs) {
            return Err("sources.kafka_metadata.refresh_secs must be between 1 and 3600".into());
        }
        Ok(())
    }
}

/// The index's position key of a metadata partition.
pub fn metadata_partition_key(topic: &str, partition: i32) -> String {
    format!("kafka-metadata:{topic}/{partition}")
}

/// A running metadata topic reader: its thread.
#[derive(Debug)]
pub struct KafkaMetadataSource {
    handle: JoinHandle<()>,
}

/// Whether the reader has read every partition to its end once.
#[derive(Debug, Default)]
struct CaughtUp {
    done: Mutex<bool>,
    changed: Condvar,
}

impl KafkaMetadataSource {
    /// Starts reading `config.topic` into the index of `cx` until `stop`;
    /// returns once it has been read to its end, or after
    /// `catch_up_secs_max` (reading goes on in the background).
    pub fn start(
        cx: Arc<Context>,
        config: KafkaMetadataConfig,
        store_id: String,
        stop: Arc<AtomicBool>,
    ) -> Result<KafkaMetadataSource, KafkaError> {
        config.validate().map_err(KafkaError::Config)?;
        let client_error = |source| KafkaError::Client {
            brokers: config.brokers.clone(),
            topics: config.topic.clone(),
            source: Box::new(source),
        };
        let consumer: BaseConsumer = client_config(&config).create().map_err(client_error)?;
        refuse_a_missing_topic(&consumer, &config)?;
        let publisher = if config.publish_learned {
            let producer: BaseProducer =
                heartbeat_producer(&config).create().map_err(client_error)?;
            let _ = cx.heartbeats.set(HeartbeatOutbox::default());
            Some(producer)
        } else {
            None
        };
        let caught_up = Arc::new(CaughtUp::default());
        let wait = Duration::from_secs(config.catch_up_secs_max);
        let reader = Reader {
            name: format!("kafka-metadata:{}", config.topic),
            cx,
            config,
            partitions: BTreeMap::new(),
            caught_up: caught_up.clone(),
            publisher,
            store_id,
        };
        let handle = std::thread::Builder::new()
            .name("trawl-kafka-metadata".to_string())
            .spawn(move || reader.read_until(&consumer, &stop))
            .map_err(KafkaError::Thread)?;
        let deadline = Instant::now() + wait;
        let mut done = caught_up
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !*done && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            done = caught_up
                .changed
                .wait_timeout(done, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if !*done && wait > Duration::ZERO {
            eprintln!(
                "trawl: the metadata topic was not read to its end within {} s: flows are consumed meanwhile (held while their owners are unknown)",
                wait.as_secs()
            );
        }
        drop(done);
        Ok(KafkaMetadataSource { handle })
    }

    /// The reader thread (it ends once `stop` is set).
    pub fn into_thread(self) -> JoinHandle<()> {
        self.handle
    }
}

/// Refuses a topic the brokers say does not exist (a typo would otherwise
/// cost `catch_up_secs_max`, then run with no ownership); brokers that do
/// not answer are not a reason to refuse (the reader retries).
fn refuse_a_missing_topic(
    consumer: &BaseConsumer,
    config: &KafkaMetadataConfig,
) -> Result<(), KafkaError> {
    let Ok(metadata) = consumer.fetch_metadata(Some(&config.topic), METADATA_TIMEOUT) else {
        return Ok(());
    };
    let described = metadata.topics().iter().find(|t| t.name() == config.topic);
    let missing = match described {
        None => true,
        Some(t) => {
            t.error().map(RDKafkaErrorCode::from) == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
        }
    };
    if missing {
        return Err(KafkaError::Config(format!(
            "sources.kafka_metadata.topic: the brokers ({}) have no topic {:?}",
            config.brokers, config.topic
        )));
    }
    Ok(())
}

/// The producer of learned heartbeats (idempotent; not transactional:
/// heartbeats applied twice change nothing).
fn heartbeat_producer(config: &KafkaMetadataConfig) -> ClientConfig {
    let mut client = client_with(&config.brokers, &config.properties);
    client
        .set("enable.idempotence", "true")
        .set("linger.ms", "50");
    client
}

/// The header naming the store that published a heartbeat message (its
/// own are not applied again).
const ORIGIN_HEADER: &str = "trawl-origin";
/// Heartbeats per published message.
const HEARTBEATS_PER_MESSAGE_MAX: usize = 500;

/// The client settings: partitions assigned, not subscribed (librdkafka's
/// consumer wants a `group.id` even so; it joins nothing and commits
/// nothing), committed reads only, an end-of-partition event to know when
/// the topic is read.
fn client_config(config: &KafkaMetadataConfig) -> ClientConfig {
    let mut client = client_with(&config.brokers, &config.properties);
    client
        .set("group.id", "trawl-metadata-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    client
}

/// One partition of the metadata topic.
#[derive(Debug, Default)]
struct PartitionState {
    /// The next offset to apply.
    next: Option<u64>,
    /// Read to its end since the last message.
    at_end: bool,
}

/// The reader thread's state.
struct Reader {
    name: String,
    cx: Arc<Context>,
    config: KafkaMetadataConfig,
    partitions: BTreeMap<i32, PartitionState>,
    caught_up: Arc<CaughtUp>,
    /// Publishes learned heartbeats, if configured.
    publisher: Option<BaseProducer>,
    /// This data directory's id (the origin of what it publishes).
    store_id: String,
}

impl Reader {
    /// Assigns partitions and applies messages until `stop`.
    fn read_until(mut self, consumer: &BaseConsumer, stop: &AtomicBool) {
        let refresh = Duration::from_secs(self.config.refresh_secs);
        let mut last_refresh: Option<Instant> = None;
        let mut newest_applied: Option<i64> = None;
        let mut vouched = false;
        let publish_every = Duration::from_secs(self.config.publish_interval_secs);
        let mut last_publish = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_publish.elapsed() >= publish_every {
                last_publish = Instant::now();
                self.publish_heartbeats();
            }
            if last_refresh.is_none_or(|t| t.elapsed() >= refresh)
                || self.partitions.is_empty()
                    && last_refresh.is_some_and(|t| t.elapsed() >= POLL_TIMEOUT * 10)
            {
                last_refresh = Some(Instant::now());
                self.assign_new_partitions(consumer);
            }
            match consumer.poll(POLL_TIMEOUT) {
                Some(Ok(message)) => {
                    if let Some(at) = self.apply(&message) {
                        newest_applied = newest_applied.max(Some(at));
                        vouched = false;
                    }
                }
                Some(Err(ClientError::PartitionEOF(partition))) => {
                    if let Some(state) = self.partitions.get_mut(&partition) {
                        state.at_end = true;
                    }
                }
                Some(Err(error)) => self.report(&error),
                None => {}
            }
            let all_read =
                !self.partitions.is_empty() && self.partitions.values().all(|p| p.at_end);
            if all_read && !vouched {
                vouched = true;
                if let Some(t) = newest_applied {
                    self.cx.index_write().advance_horizon(t);
                }
                let mut done = self
                    .caught_up
                    .done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                *done = true;
                self.caught_up.changed.notify_all();
            }
        }
        self.publish_heartbeats();
        if let Some(producer) = &self.publisher
            && let Err(error) = producer.flush(METADATA_TIMEOUT)
        {
            self.report(&error);
        }
    }

    /// Publishes the heartbeats learned since the last time (JSON lines
    /// of `heartbeat` events, marked with this store's id).
    fn publish_heartbeats(&self) {
        let (Some(producer), Some(outbox)) = (&self.publisher, self.cx.heartbeats.get()) else {
            return;
        };
        let heartbeats = outbox.drain();
        for chunk in heartbeats.chunks(HEARTBEATS_PER_MESSAGE_MAX) {
            let mut body = String::new();
            for h in chunk {
                let event = MetadataEvent::Heartbeat {
                    ip: h.ip,
                    interface_id: h.interface_id.clone(),
                    from: h.from,
                    to: h.to,
                };
                if let Ok(line) = serde_json::to_string(&event) {
                    body.push_str(&line);
                    body.push('\n');
                }
            }
            let headers = OwnedHeaders::new().insert(Header {
                key: ORIGIN_HEADER,
                value: Some(self.store_id.as_str()),
            });
            let record = BaseRecord::<(), str>::to(&self.config.topic)
                .payload(body.as_str())
                .headers(headers);
            match producer.send(record) {
                Ok(()) => {
                    self.cx
                        .stats
                        .kafka
                        .heartbeats_published
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Err((error, _)) => self.report(&error),
            }
        }
        producer.poll(Duration::ZERO);
    }

    /// Assigns the topic's partitions not assigned yet, each at the
    /// position the snapshot saved (or its start); those assigned before
    /// stay where they are (the whole list is assigned again: a consumer
    /// without a group cannot assign incrementally).
    fn assign_new_partitions(&mut self, consumer: &BaseConsumer) {
        let topic = self.config.topic.as_str();
        let metadata = match consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT) {
            Ok(metadata) => metadata,
            Err(error) => return self.report(&error),
        };
        let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return;
        };
        if let Some(error) = described.error() {
            let code = RDKafkaErrorCode::from(error);
            return self.report(&ClientError::MetadataFetch(code));
        }
        let new: Vec<i32> = described
            .partitions()
            .iter()
            .map(|p| p.id())
            .filter(|id| !self.partitions.contains_key(id))
            .collect();
        if new.is_empty() {
            return;
        }
        for &id in &new {
            let saved = self
                .cx
                .index_read()
                .source_position(&metadata_partition_key(topic, id))
                .and_then(|v| v.parse::<u64>().ok());
            let saved = self.within_partition(consumer, id, saved);
            self.partitions.insert(
                id,
                PartitionState {
                    next: saved,
                    at_end: false,
                },
            );
        }
        let mut all = TopicPartitionList::new();
        for (&id, state) in &self.partitions {
            let offset = match state.next.and_then(|o| i64::try_from(o).ok()) {
                Some(o) => Offset::Offset(o),
                None => Offset::Beginning,
            };
            if let Err(error) = all.add_partition_offset(topic, id, offset) {
                return self.report(&error);
            }
        }
        if let Err(error) = consumer.assign(&all) {
            for id in &new {
                self.partitions.remove(id);
            }
            return self.report(&error);
        }
        eprintln!(
            "trawl: {}: reading {} new partition(s) of the metadata topic",
            self.name,
            new.len()
        );
    }

    /// `saved`, unless the partition now ends before it (the topic was
    /// made again, or another cluster serves it): then its start, or its
    /// events would be skipped up to the old offset.
    fn within_partition(
        &self,
        consumer: &BaseConsumer,
        partition: i32,
        saved: Option<u64>,
    ) -> Option<u64> {
        let saved = saved?;
        let topic = self.config.topic.as_str();
        match consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT) {
            Ok((_, high)) if u64::try_from(high).is_ok_and(|high| saved > high) => {
                eprintln!(
                    "trawl: {}: partition {partition} ends at {high}, before the saved position {saved} (the topic was made again?): read from its start",
                    self.name
                );
                None
            }
            _ => Some(saved),
        }
    }

    /// Applies one message's events with the partition's new position;
    /// returns the newest event time applied.
    fn apply(&mut self, message: &BorrowedMessage<'_>) -> Option<i64> {
        let partition = message.partition();
        let offset = u64::try_from(message.offset()).ok()?;
        let state = self.partitions.get_mut(&partition)?;
        state.at_end = false;
        if state.next.is_some_and(|next| offset < next) {
            return None;
        }
        state.next = Some(offset + 1);
        self.cx
            .stats
            .kafka
            .metadata_messages
            .fetch_add(1, Ordering::Relaxed);
        let key = metadata_partition_key(&self.config.topic, partition);
        if self.is_own(message) {
            // Learned here, applied here already.
            self.cx
                .index_write()
                .set_source_position(&key, &(offset + 1).to_string());
            return None;
        }
        let source = format!("kafka:{}/{partition}@{offset}", self.config.topic);
        let payload = message.payload().unwrap_or_default();
        let (events, errors) = parse_events(&self.cx, payload, &source);
        for error in errors.iter().take(3) {
            eprintln!("trawl: {error}");
        }
        // Heartbeats declare nothing: they vouch for no time.
        let newest = events
            .iter()
            .filter(|e| e.is_declaration())
            .map(MetadataEvent::at)
            .max();
        let mut index = self.cx.index_write();
        apply_events(&self.cx, &mut index, &events, None);
        index.set_source_position(&key, &(offset + 1).to_string());
        newest
    }

    /// Whether `message` was published by this store.
    fn is_own(&self, message: &BorrowedMessage<'_>) -> bool {
        message.headers().is_some_and(|headers| {
            headers
                .iter()
                .any(|h| h.key == ORIGIN_HEADER && h.value == Some(self.store_id.as_bytes()))
        })
    }

    fn report(&self, error: &ClientError) {
        let n = self
            .cx
            .stats
            .kafka
            .client_errors
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if n <= PRINTED_MAX || n.is_multiple_of(1000) {
            eprintln!("trawl: {}: {error}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_settings_are_checked_by_name() {
        let ok = KafkaMetadataConfig {
            brokers: "b:1".into(),
            topic: "ownership".into(),
            ..KafkaMetadataConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let mut reserved = ok.clone();
        reserved
            .properties
            .insert("isolation.level".into(), "read_uncommitted".into());
        assert!(reserved.validate().unwrap_err().contains("isolation.level"));
        let bad_topic = KafkaMetadataConfig {
            topic: "a b".into(),
            ..ok.clone()
        };
        assert!(bad_topic.validate().unwrap_err().contains("topic"));
        assert_eq!(metadata_partition_key("t", 3), "kafka-metadata:t/3");
    }
}

// Tests against a real broker, written by a cold review, against
// noida-db (see `sink::broker_tests::Noida`).
#[cfg(test)]
mod broker_tests {
    use super::*;
    use crate::kafka::sink::broker_tests::Noida;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    fn create_topic(broker: &Noida, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &broker.brokers)
            .create()
            .unwrap();
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results =
            futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap();
        for result in results {
            result.unwrap();
        }
    }

    fn context(dir: &std::path::Path) -> Arc<Context> {
        let store = trawl_store::Store::open(trawl_store::StoreConfig::new(dir)).unwrap();
        Arc::new(Context::new(
            crate::config::PipelineConfig::default(),
            store,
            trawl_attrib::AttributionIndex::default(),
            None,
            None,
        ))
    }

    fn config(broker: &Noida) -> KafkaMetadataConfig {
        KafkaMetadataConfig {
            brokers: broker.brokers.clone(),
            topic: "ownership".into(),
            catch_up_secs_max: 20,
            ..KafkaMetadataConfig::default()
        }
    }

    /// Regression (cold review of the sink and metadata topic): the position saved for a partition is taken as
    /// the truth even when the partition now ends before it (the topic
    /// was deleted and created again, or moved to another cluster under
    /// its name): the consumer resets to the start, and `apply` skips
    /// every message below the saved position, so the new topic's events
    /// are never applied (flows attributed to no one) until it grows past
    /// the old offset; meanwhile the start vouches metadata complete.
    #[test]
    fn events_of_a_partition_shorter_than_its_saved_position_are_applied() {
        let broker = Noida::start();
        create_topic(&broker, "ownership", 1);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &broker.brokers)
            .create()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for i in 1..=3 {
            let event = format!(
                r#"{{"type":"assign","ip":"10.0.0.{i}","at":{},"workload":{{"app":"web"}}}}"#,
                now - 600
            );
            producer
                .send(BaseRecord::<str, str>::to("ownership").payload(&event))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        // Saved by a snapshot when the old topic of that name had 100 messages.
        cx.index_write()
            .set_source_position(&metadata_partition_key("ownership", 0), "100");
        let stop = Arc::new(AtomicBool::new(false));
        let source =
            KafkaMetadataSource::start(cx.clone(), config(&broker), "test".into(), stop.clone())
                .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        source.into_thread().join().unwrap();
        assert_eq!(
            cx.stats.kafka.metadata_messages.load(Ordering::Relaxed),
            3,
            "the topic's 3 messages were skipped (below the saved position 100)"
        );
    }

    /// Guard: a topic with an empty partition (or none with messages) is
    /// read to its end at once: the start does not wait out
    /// `catch_up_secs_max` (checks that an empty partition gives its EOF).
    #[test]
    fn an_empty_partition_does_not_hold_the_start() {
        let broker = Noida::start();
        create_topic(&broker, "ownership", 2);
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let source =
            KafkaMetadataSource::start(cx, config(&broker), "test".into(), stop.clone()).unwrap();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        source.into_thread().join().unwrap();
        assert!(took < Duration::from_secs(10), "the start waited {took:?}");
    }

    /// Regression (cold review of the sink and metadata topic): a metadata topic that does not exist (a typo): the start
    /// should say so at once, not wait out `catch_up_secs_max` and then
    /// run with no ownership at all.
    #[test]
    fn a_missing_metadata_topic_is_refused_at_start() {
        let broker = Noida::start();
        let dir = tempfile::tempdir().unwrap();
        let cx = context(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let result = KafkaMetadataSource::start(cx, config(&broker), "test".into(), stop.clone());
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        match result {
            Ok(source) => {
                source.into_thread().join().unwrap();
                panic!("a missing topic was accepted after {took:?}");
            }
            Err(_) => assert!(took < Duration::from_secs(10)),
        }
    }
}
