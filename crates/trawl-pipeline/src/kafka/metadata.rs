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
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use trawl_attrib::MetadataEvent;

use super::KafkaError;
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
}

impl Default for KafkaMetadataConfig {
    fn default() -> Self {
        KafkaMetadataConfig {
            brokers: String::new(),
            topic: String::new(),
            properties: BTreeMap::new(),
            catch_up_secs_max: 30,
            refresh_secs: 30,
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
        stop: Arc<AtomicBool>,
    ) -> Result<KafkaMetadataSource, KafkaError> {
        config.validate().map_err(KafkaError::Config)?;
        let client_error = |source| KafkaError::Client {
            brokers: config.brokers.clone(),
            topics: config.topic.clone(),
            source: Box::new(source),
        };
        let consumer: BaseConsumer = client_config(&config).create().map_err(client_error)?;
        let caught_up = Arc::new(CaughtUp::default());
        let wait = Duration::from_secs(config.catch_up_secs_max);
        let reader = Reader {
            name: format!("kafka-metadata:{}", config.topic),
            cx,
            config,
            partitions: BTreeMap::new(),
            caught_up: caught_up.clone(),
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

/// The client settings: partitions assigned, not subscribed (librdkafka's
/// consumer wants a `group.id` even so; it joins nothing and commits
/// nothing), committed reads only, an end-of-partition event to know when
/// the topic is read.
fn client_config(config: &KafkaMetadataConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", &config.brokers)
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
}

impl Reader {
    /// Assigns partitions and applies messages until `stop`.
    fn read_until(mut self, consumer: &BaseConsumer, stop: &AtomicBool) {
        let refresh = Duration::from_secs(self.config.refresh_secs);
        let mut last_refresh: Option<Instant> = None;
        let mut newest_applied: Option<i64> = None;
        let mut vouched = false;
        while !stop.load(Ordering::Relaxed) {
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
        let source = format!("kafka:{}/{partition}@{offset}", self.config.topic);
        let payload = message.payload().unwrap_or_default();
        let (events, errors) = parse_events(&self.cx, payload, &source);
        for error in errors.iter().take(3) {
            eprintln!("trawl: {error}");
        }
        let newest = events.iter().map(MetadataEvent::at).max();
        let key = metadata_partition_key(&self.config.topic, partition);
        let mut index = self.cx.index_write();
        apply_events(&self.cx, &mut index, &events, None);
        index.set_source_position(&key, &(offset + 1).to_string());
        newest
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
