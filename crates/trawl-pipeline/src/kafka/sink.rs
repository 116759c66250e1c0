//! The Kafka sink (`[[sinks.kafka]]`): every enriched flow the store
//! seals, published once to a topic, one transaction per seal.
//!
//! ```text
//!  seal (generation G) ─► manifest lists G's detail segments (sealed_in = G)
//!  sink thread: for each sealed generation past the published one, in order:
//!     read G's `flows` segments ─► JSON lines (SQL's column names), key src_app/dst_app
//!     begin ─► rows to TOPIC + {"store_id","generation":G,"rows","positions"} to the
//!     progress topic ─► commit   (a failure aborts; the generation is tried again)
//!  start: published = the newest generation of this store in the progress topic
//! ```
//!
//! Exactly once for `read_committed` consumers. The store and the sink are
//! two commits: the store's manifest first (the seal), the sink's
//! transaction after. The sink's progress is not kept beside the store but
//! in Kafka, in the same transaction as the rows it covers (the progress
//! topic), so the two cannot disagree about what was published: a process
//! killed between a seal and its transaction publishes that seal at its
//! next start (from the segments on disk); one killed inside a transaction
//! has it aborted by the broker when the next start claims the same
//! `transactional.id` (`trawl-sink-STORE_ID-TOPIC`, one per data
//! directory), and publishes it again whole. A seal's detail segments are
//! kept out of compaction until published ([`Store::hold_detail_after`]),
//! so no published row is merged into an unpublished segment.
//!
//! Where the two can diverge (say it plainly):
//! - the sink's topic runs behind the store by up to one seal interval,
//!   plus however long the brokers are unreachable (`trawl_sink_kafka_lag_generations`);
//! - rows the store drops before they are published — detail retention
//!   (`store.detail_retention_secs`) expiring segments while the brokers
//!   are unreachable for longer than it — never reach the topic
//!   (`trawl_sink_kafka_segments_expired_total` counts the seals affected);
//! - consumers reading `read_uncommitted` see aborted attempts too.
//!
//! The input's offsets are the store's own positions (the manifest, see
//! [`crate::kafka`]): the progress record of the transaction carries the
//! positions of the manifest the published seal belongs to, when it is
//! still the newest, so a reader of the topic can tell which input it
//! covers. They are not sent to the source's consumer group with
//! `send_offsets_to_transaction`: that group's commits carry the
//! partitions' hand-over state, written by the source alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use trawl_store::{DETAIL_TABLE, SegmentMeta, read_detail_segment};

use super::KafkaError;
use crate::worker::Context;

/// How long a transaction call may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a metadata or admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the manifest is looked at for new seals.
const CHECK_EVERY: Duration = Duration::from_millis(200);
/// The wait after a failed transaction, doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Progress records read back from the end of the progress topic, per
/// step, when looking for this store's newest.
const PROGRESS_WINDOW: i64 = 10_000;
/// Errors printed before only every 1,000th is.
const PRINTED_MAX: u64 = 20;

/// Client properties trawl sets itself on the sink's producer.
pub const RESERVED_SINK_PROPERTIES: [&str; 4] = [
    "bootstrap.servers",
    "transactional.id",
    "enable.idempotence",
    "isolation.level",
];

/// `[[sinks.kafka]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic enriched flows go to (one message a flow).
    pub topic: String,
    /// `json`: one JSON object a message, SQL's column names, nulls
    /// written out.
    pub format: String,
    /// Columns of the message key, joined with `/` (default `src_app`,
    /// `dst_app`: one pair's flows stay in order in one partition).
    pub key: Vec<String>,
    /// Where the sink's progress goes (default `TOPIC.trawl-progress`;
    /// created with one partition if missing).
    pub progress_topic: Option<String>,
    /// Client properties passed to librdkafka as they are (SASL, TLS,
    /// `compression.type`…); not those in [`RESERVED_SINK_PROPERTIES`].
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            brokers: String::new(),
            topic: String::new(),
            format: "json".to_string(),
            key: vec!["src_app".to_string(), "dst_app".to_string()],
            progress_topic: None,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSinkConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("sinks.kafka.brokers is empty".into());
        }
        super::validate_topic(&self.topic).map_err(|e| format!("sinks.kafka.topic: {e}"))?;
        super::validate_topic(&self.progress_topic())
            .map_err(|e| format!("sinks.kafka.progress_topic: {e}"))?;
        if self.format != "json" {
            return Err(format!(
                "sinks.kafka.format = {:?}: only json is written",
                self.format
            ));
        }
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| RESERVED_SINK_PROPERTIES.contains(&k.as_str()))
        {
            return Err(format!(
                "sinks.kafka.properties.{key}: trawl sets it itself (exactly-once depends on it)"
            ));
        }
        Ok(())
    }

    /// The progress topic's name.
    pub fn progress_topic(&self) -> String {
        self.progress_topic
            .clone()
            .unwrap_or_else(|| format!("{}.trawl-progress", self.topic))
    }
}

/// A running sink: its thread, and the flag that ends it.
#[derive(Debug)]
pub struct KafkaSink {
    handle: JoinHandle<()>,
    finish: Arc<AtomicBool>,
}

impl KafkaSink {
    /// Starts publishing the store's seals of `cx` to `config.topic`;
    /// fails when the store keeps no detail rows, a setting is wrong, or
    /// the brokers cannot say what was published before.
    pub fn start(
        cx: Arc<Context>,
        config: KafkaSinkConfig,
        store_id: String,
    ) -> Result<KafkaSink, KafkaError> {
        config.validate().map_err(KafkaError::Config)?;
        let (dir, schema) = {
            let store = cx.store_read();
            if !store.config().detail.enabled {
                return Err(KafkaError::Config(
                    "sinks.kafka publishes the flows table: set store.detail = true".into(),
                ));
            }
            let (dir, schema) = store.detail_source().ok_or_else(|| {
                KafkaError::Config("sinks.kafka: the store has no flows table".into())
            })?;
            (dir, schema)
        };
        for column in &config.key {
            if schema.field_with_name(column).is_err() {
                return Err(KafkaError::Config(format!(
                    "sinks.kafka.key: {column:?} is no column of flows"
                )));
            }
        }
        let client_error = |source| KafkaError::Client {
            brokers: config.brokers.clone(),
            topics: config.topic.clone(),
            source: Box::new(source),
        };
        let progress_topic = config.progress_topic();
        create_progress_topic(&config, &progress_topic).map_err(client_error)?;
        let published =
            published_generation(&config, &progress_topic, &store_id).map_err(client_error)?;
        let transactional_id = format!("trawl-sink-{store_id}-{}", config.topic);
        let producer: BaseProducer = producer_config(&config, &transactional_id)
            .create()
            .map_err(client_error)?;
        producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(client_error)?;
        cx.store_read().hold_detail_after(Some(published));
        eprintln!(
            "trawl: sink {}: published through seal {published} (transactional.id {transactional_id})",
            config.topic
        );
        let finish = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            cx,
            progress_topic,
            store_id,
            dir,
            schema,
            published,
            producer,
            config,
        };
        let stop = finish.clone();
        let handle = std::thread::Builder::new()
            .name("trawl-kafka-sink".to_string())
            .spawn(move || publisher.publish_until(&stop))
            .map_err(KafkaError::Thread)?;
        Ok(KafkaSink { handle, finish })
    }

    /// Publishes what is sealed by now (trying for at most
    /// `TRANSACTION_TIMEOUT` more), then ends the thread.
    pub fn finish(self) {
        self.finish.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

fn producer_config(config: &KafkaSinkConfig, transactional_id: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", &config.brokers)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", "60000");
    client
}

/// Creates the progress topic (one partition) unless it exists.
fn create_progress_topic(config: &KafkaSinkConfig, topic: &str) -> Result<(), ClientError> {
    let mut client = ClientConfig::new();
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client.set("bootstrap.servers", &config.brokers);
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new], &options))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(ClientError::AdminOp(code)),
        }
    }
    Ok(())
}

/// One progress record (the value; the key is the store id).
#[derive(Debug, serde::Serialize, Deserialize)]
struct Progress {
    store_id: String,
    generation: u64,
    rows: u64,
    #[serde(default)]
    positions: BTreeMap<String, String>,
}

/// The newest generation this store published: the last record keyed by
/// `store_id` in the progress topic (committed records only), read back
/// from its end; 0 if there is none.
fn published_generation(
    config: &KafkaSinkConfig,
    topic: &str,
    store_id: &str,
) -> Result<u64, ClientError> {
    let mut client = ClientConfig::new();
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    let consumer: BaseConsumer = client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", "trawl-sink-progress-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, REQUEST_TIMEOUT)?;
    let mut end = high;
    while end > low {
        let from = (end - PROGRESS_WINDOW).max(low);
        if let Some(generation) = newest_in(&consumer, topic, store_id, from, end)? {
            return Ok(generation);
        }
        end = from;
    }
    Ok(0)
}

/// The newest generation of `store_id` among progress records `[from, end)`.
fn newest_in(
    consumer: &BaseConsumer,
    topic: &str,
    store_id: &str,
    from: i64,
    end: i64,
) -> Result<Option<u64>, ClientError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))?;
    consumer.assign(&tpl)?;
    let mut newest = None;
    let deadline = Instant::now() + REQUEST_TIMEOUT * 3;
    while Instant::now() < deadline {
        let position =
            consumer
                .position()?
                .find_partition(topic, 0)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
        if position.is_some_and(|p| p >= end) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                if message.offset() >= end {
                    break;
                }
                if message.key() == Some(store_id.as_bytes())
                    && let Some(progress) = message
                        .payload()
                        .and_then(|p| serde_json::from_slice::<Progress>(p).ok())
                {
                    newest = newest.max(Some(progress.generation));
                }
            }
            Some(Err(error)) => return Err(error),
            None => {}
        }
    }
    Ok(newest)
}

/// The sink thread's state.
struct Publisher {
    cx: Arc<Context>,
    config: KafkaSinkConfig,
    progress_topic: String,
    store_id: String,
    dir: PathBuf,
    schema: SchemaRef,
    /// Seals up to this generation are in the topic.
    published: u64,
    producer: BaseProducer,
}

/// A seal's detail segments, waiting to be published.
struct Pending {
    generation: u64,
    segments: Vec<SegmentMeta>,
    /// The manifest's positions, if `generation` is the newest.
    positions: BTreeMap<String, String>,
}

impl Publisher {
    /// Publishes each new seal until `finish`, then what is sealed by then.
    fn publish_until(mut self, finish: &AtomicBool) {
        let mut backoff = BACKOFF_MIN;
        let mut finishing_since: Option<Instant> = None;
        loop {
            let finishing = finish.load(Ordering::Relaxed);
            if finishing && finishing_since.is_none() {
                finishing_since = Some(Instant::now());
            }
            let pending = self.pending();
            self.publish_lag(&pending);
            if pending.is_empty() {
                if finishing {
                    return;
                }
                std::thread::sleep(CHECK_EVERY);
                continue;
            }
            let mut failed = false;
            for seal in pending {
                if let Err(error) = self.publish(&seal) {
                    self.report(&error, seal.generation);
                    failed = true;
                    break;
                }
                backoff = BACKOFF_MIN;
            }
            if failed {
                if finishing_since.is_some_and(|t| t.elapsed() > TRANSACTION_TIMEOUT) {
                    eprintln!(
                        "trawl: sink {}: stopping with seals unpublished (published through {}): the next start publishes them",
                        self.config.topic, self.published
                    );
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// The seals past the published one, oldest first; counts those whose
    /// segments retention removed before they were published.
    fn pending(&self) -> Vec<Pending> {
        let store = self.cx.store_read();
        let manifest = store.manifest();
        let mut by_generation: BTreeMap<u64, Vec<SegmentMeta>> = BTreeMap::new();
        for segment in &manifest.segments {
            if segment.table != DETAIL_TABLE {
                continue;
            }
            if let Some(g) = segment.sealed_in.filter(|g| *g > self.published) {
                by_generation.entry(g).or_default().push(segment.clone());
            }
        }
        let newest = manifest.generation;
        by_generation
            .into_iter()
            .map(|(generation, segments)| Pending {
                generation,
                segments,
                positions: if generation == newest {
                    manifest.positions.clone()
                } else {
                    BTreeMap::new()
                },
            })
            .collect()
    }

    /// Publishes one seal's rows and its progress record in one
    /// transaction (aborted on any failure).
    fn publish(&mut self, seal: &Pending) -> Result<(), ClientError> {
        let mut batches = Vec::new();
        for segment in &seal.segments {
            match read_detail_segment(&self.dir, segment, &self.schema) {
                Ok(mut read) => batches.append(&mut read),
                Err(error) => {
                    // Removed by retention since the listing: the next
                    // listing no longer shows it.
                    eprintln!(
                        "trawl: sink {}: seal {}: {error}",
                        self.config.topic, seal.generation
                    );
                    self.cx
                        .stats
                        .sink
                        .segments_expired
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.producer.begin_transaction()?;
        let outcome = self.send_seal(seal, &batches);
        match outcome.and_then(|rows| {
            self.producer.commit_transaction(TRANSACTION_TIMEOUT)?;
            Ok(rows)
        }) {
            Ok(rows) => {
                self.published = seal.generation;
                self.cx.store_read().hold_detail_after(Some(self.published));
                let stats = &self.cx.stats.sink;
                stats.rows.fetch_add(rows, Ordering::Relaxed);
                stats.transactions.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
                Err(error)
            }
        }
    }

    /// Sends the rows of `batches` and the progress record; returns the rows.
    fn send_seal(&self, seal: &Pending, batches: &[RecordBatch]) -> Result<u64, ClientError> {
        let header = format!("{}:{}", self.store_id, seal.generation);
        let headers = OwnedHeaders::new().insert(Header {
            key: "trawl-seal",
            value: Some(header.as_str()),
        });
        let mut rows = 0u64;
        for batch in batches {
            let lines = json_lines(batch)?;
            let keys = self.keys(batch)?;
            for (line, key) in lines.iter().zip(&keys) {
                let record = BaseRecord::to(&self.config.topic)
                    .payload(line.as_slice())
                    .key(key.as_str())
                    .headers(headers.clone());
                self.send(record)?;
                rows += 1;
            }
        }
        let progress = Progress {
            store_id: self.store_id.clone(),
            generation: seal.generation,
            rows,
            positions: seal.positions.clone(),
        };
        let value = serde_json::to_vec(&progress).unwrap_or_default();
        let record = BaseRecord::to(&self.progress_topic)
            .payload(value.as_slice())
            .key(self.store_id.as_str());
        self.send(record)?;
        self.producer.flush(TRANSACTION_TIMEOUT)?;
        Ok(rows)
    }

    /// Sends one record, waiting while the client's queue is full.
    fn send(&self, mut record: BaseRecord<'_, str, [u8]>) -> Result<(), ClientError> {
        let deadline = Instant::now() + TRANSACTION_TIMEOUT;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Each row's key: the key columns' values joined with `/`.
    fn keys(&self, batch: &RecordBatch) -> Result<Vec<String>, ClientError> {
        let options = FormatOptions::default();
        let mut formatters = Vec::new();
        for name in &self.config.key {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| ClientError::MessageProduction(RDKafkaErrorCode::InvalidRecord))?;
            formatters.push(
                ArrayFormatter::try_new(column.as_ref(), &options)
                    .map_err(|_| ClientError::MessageProduction(RDKafkaErrorCode::InvalidRecord))?,
            );
        }
        Ok((0..batch.num_rows())
            .map(|row| {
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect())
    }

    fn publish_lag(&self, pending: &[Pending]) {
        self.cx
            .stats
            .sink
            .lag_generations
            .store(pending.len() as u64, Ordering::Relaxed);
    }

    fn report(&self, error: &ClientError, generation: u64) {
        let n = self.cx.stats.sink.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= PRINTED_MAX || n.is_multiple_of(1000) {
            eprintln!(
                "trawl: sink {}: seal {generation} not published (retried): {error}",
                self.config.topic
            );
        }
    }
}

/// One JSON object a row, nulls written out.
fn json_lines(batch: &RecordBatch) -> Result<Vec<Vec<u8>>, ClientError> {
    let mut buffer = Vec::new();
    let mut writer = arrow::json::writer::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut buffer);
    writer
        .write(batch)
        .and_then(|()| writer.finish())
        .map_err(|_| ClientError::MessageProduction(RDKafkaErrorCode::InvalidRecord))?;
    drop(writer);
    Ok(buffer
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn sink_settings_are_checked_by_name() {
        let ok = KafkaSinkConfig {
            brokers: "b:1".into(),
            topic: "enriched".into(),
            ..KafkaSinkConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.progress_topic(), "enriched.trawl-progress");
        let mut reserved = ok.clone();
        reserved
            .properties
            .insert("transactional.id".into(), "x".into());
        assert!(
            reserved
                .validate()
                .unwrap_err()
                .contains("transactional.id")
        );
        let avro = KafkaSinkConfig {
            format: "avro".into(),
            ..ok.clone()
        };
        assert!(avro.validate().unwrap_err().contains("format"));
    }

    #[test]
    fn rows_become_one_json_object_each_with_nulls_written_out() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("src_app", DataType::Utf8, true),
            Field::new("bytes", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("api"), None])),
                Arc::new(UInt64Array::from(vec![10, 20])),
            ],
        )
        .unwrap();
        let lines = json_lines(&batch).unwrap();
        assert_eq!(
            lines,
            vec![
                br#"{"src_app":"api","bytes":10}"#.to_vec(),
                br#"{"src_app":null,"bytes":20}"#.to_vec()
            ]
        );
    }
}
