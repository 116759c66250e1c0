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

use super::{KafkaError, client_with};
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
/// Longest a read of the progress topic to its end may take: past the
/// transaction timeout, so that one left open is aborted meanwhile.
const PROGRESS_READ_TIMEOUT: Duration = Duration::from_secs(75);
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

    /// The name of the sink's hold on detail segments in the store.
    pub fn holder(&self) -> String {
        format!("kafka:{}", self.topic)
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
    holder: String,
}

impl KafkaSink {
    /// Starts publishing the store's seals of `cx` to `config.topic`;
    /// fails when the store keeps no detail rows or a setting is wrong.
    /// The seals this sink has not published are held out of compaction
    /// at once (the hold is in the manifest from the next seal on); the
    /// brokers are reached in the background, retried until they answer.
    pub fn start(
        cx: Arc<Context>,
        config: KafkaSinkConfig,
        store_id: String,
    ) -> Result<KafkaSink, KafkaError> {
        config.validate().map_err(KafkaError::Config)?;
        let holder = config.holder();
        let hold = holder.clone();
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
            if store.detail_hold(&hold).is_none() {
                // A sink new to this store publishes all it still holds.
                store.hold_detail_after(&hold, Some(0));
            }
            (dir, schema)
        };
        for column in &config.key {
            if schema.field_with_name(column).is_err() {
                return Err(KafkaError::Config(format!(
                    "sinks.kafka.key: {column:?} is no column of flows"
                )));
            }
        }
        let finish = Arc::new(AtomicBool::new(false));
        let stop = finish.clone();
        let handle = std::thread::Builder::new()
            .name("trawl-kafka-sink".to_string())
            .spawn(move || {
                if let Some(publisher) =
                    Publisher::connect(cx, config, store_id, dir, schema, &stop)
                {
                    publisher.publish_until(&stop);
                }
            })
            .map_err(KafkaError::Thread)?;
        Ok(KafkaSink {
            handle,
            finish,
            holder,
        })
    }

    /// The name of its hold on the store's detail segments (one a topic).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Publishes what is sealed by now (trying for at most
    /// `TRANSACTION_TIMEOUT` more), then ends the thread.
    pub fn finish(self) {
        self.finish.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// A transactional producer for `config`, initialised (fencing and
/// aborting what an earlier process with the same id left open).
fn transactional_producer(
    config: &KafkaSinkConfig,
    transactional_id: &str,
) -> Result<BaseProducer, ClientError> {
    let producer: BaseProducer = producer_config(config, transactional_id).create()?;
    producer.init_transactions(TRANSACTION_TIMEOUT)?;
    Ok(producer)
}

fn producer_config(config: &KafkaSinkConfig, transactional_id: &str) -> ClientConfig {
    let mut client = client_with(&config.brokers, &config.properties);
    client
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", "60000");
    client
}

/// Creates the progress topic (one partition) unless it exists.
fn create_progress_topic(config: &KafkaSinkConfig, topic: &str) -> Result<(), ClientError> {
    let admin: AdminClient<DefaultClientContext> =
        client_with(&config.brokers, &config.properties).create()?;
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
/// from its end; 0 if there is none. The end is the high watermark (what
/// `read_uncommitted` sees): a transaction another store left open holds
/// `read_committed` readers at its start until the broker aborts it, and
/// records committed after it (this store's newest, maybe) lie past the
/// last stable offset. Unless every record up to the end is read, the
/// answer is an error (retried), never a partial one.
fn published_generation(
    config: &KafkaSinkConfig,
    topic: &str,
    store_id: &str,
) -> Result<u64, ClientError> {
    let reader = |isolation: &str| -> Result<BaseConsumer, ClientError> {
        client_with(&config.brokers, &config.properties)
            .set("group.id", "trawl-sink-progress-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
    };
    let (low, high) = reader("read_uncommitted")?.fetch_watermarks(topic, 0, REQUEST_TIMEOUT)?;
    let consumer = reader("read_committed")?;
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

/// The newest generation of `store_id` among progress records `[from,
/// end)`; an error if the reader does not reach `end` in time.
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
    let deadline = Instant::now() + PROGRESS_READ_TIMEOUT;
    loop {
        let position =
            consumer
                .position()?
                .find_partition(topic, 0)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
        if position.is_some_and(|p| p >= end) {
            return Ok(newest);
        }
        if Instant::now() >= deadline {
            // Not read to its end (a transaction left open): no answer.
            return Err(ClientError::Global(RDKafkaErrorCode::OperationTimedOut));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                if message.offset() >= end {
                    return Ok(newest);
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
    /// Reaches the brokers: the progress topic made if missing, what this
    /// store published read from it, the transactional producer
    /// initialised; retried (backing off) until done or `finish`.
    fn connect(
        cx: Arc<Context>,
        config: KafkaSinkConfig,
        store_id: String,
        dir: PathBuf,
        schema: SchemaRef,
        finish: &AtomicBool,
    ) -> Option<Publisher> {
        let progress_topic = config.progress_topic();
        let transactional_id = format!("trawl-sink-{store_id}-{}", config.topic);
        let mut backoff = BACKOFF_MIN;
        let attempt = || -> Result<(u64, BaseProducer), ClientError> {
            create_progress_topic(&config, &progress_topic)?;
            // The producer first: initialising it aborts what an earlier
            // process of this store left open, before progress is read.
            let producer = transactional_producer(&config, &transactional_id)?;
            let published = published_generation(&config, &progress_topic, &store_id)?;
            Ok((published, producer))
        };
        loop {
            match attempt() {
                Ok((published, producer)) => {
                    cx.store_read()
                        .hold_detail_after(&config.holder(), Some(published));
                    eprintln!(
                        "trawl: sink {}: published through seal {published} (transactional.id {transactional_id})",
                        config.topic
                    );
                    return Some(Publisher {
                        cx,
                        progress_topic,
                        store_id,
                        dir,
                        schema,
                        published,
                        producer,
                        config,
                    });
                }
                Err(error) => {
                    let n = cx.stats.sink.errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if n <= PRINTED_MAX || n.is_multiple_of(1000) {
                        eprintln!(
                            "trawl: sink {}: reaching the brokers (retried; seals wait, held): {error}",
                            config.topic
                        );
                    }
                }
            }
            if finish.load(Ordering::Relaxed) {
                eprintln!(
                    "trawl: sink {}: stopping before the brokers answered: the next start publishes what is sealed",
                    config.topic
                );
                return None;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

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
                    if is_fatal(&error) {
                        self.renew_producer();
                    }
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

    /// A new producer in place of one that failed for good (fenced, or
    /// its transaction timed out); kept if a new one cannot be made now.
    fn renew_producer(&mut self) {
        let transactional_id = format!("trawl-sink-{}-{}", self.store_id, self.config.topic);
        match transactional_producer(&self.config, &transactional_id) {
            Ok(producer) => self.producer = producer,
            Err(error) => self.report(&error, self.published + 1),
        }
    }

    /// The seals past the published one, oldest first.
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
                Err(error) if self.still_listed(segment) => {
                    // Unreadable but the store's: never published without it.
                    eprintln!(
                        "trawl: sink {}: seal {}: {error} (retried)",
                        self.config.topic, seal.generation
                    );
                    return Err(ClientError::MessageProduction(
                        RDKafkaErrorCode::InvalidRecord,
                    ));
                }
                Err(error) => {
                    // Removed by retention since the listing.
                    eprintln!(
                        "trawl: sink {}: seal {}: {error}: expired before it was published",
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
                self.cx
                    .store_read()
                    .hold_detail_after(&self.config.holder(), Some(self.published));
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

    /// Whether the store still lists `segment` (not expired since).
    fn still_listed(&self, segment: &SegmentMeta) -> bool {
        let store = self.cx.store_read();
        store.manifest().segments.iter().any(|s| s.id == segment.id)
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

/// Whether a failed transaction leaves the producer unusable (fenced by
/// another process with the same id, or a fatal client error).
fn is_fatal(error: &ClientError) -> bool {
    match error {
        ClientError::Transaction(e) => e.is_fatal(),
        ClientError::MessageProduction(code) => matches!(
            code,
            RDKafkaErrorCode::Fatal | RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced
        ),
        _ => false,
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

// Tests against a real broker (noida-db), written by a cold review. They start it
// from the test environment `.ci/test-deps` made (target/test-deps/venv,
// or TRAWL_TEST_VENV), as crates/trawl/tests/common/kafka.rs does.
#[cfg(test)]
pub(crate) mod broker_tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A noida-db broker on a free port, killed on drop.
    pub(crate) struct Noida {
        child: Child,
        pub brokers: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Noida {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Noida {
        pub(crate) fn start() -> Noida {
            let venv = std::env::var_os("TRAWL_TEST_VENV").map_or_else(
                || {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../target/test-deps/venv")
                },
                PathBuf::from,
            );
            let found = Command::new(venv.join("bin/python"))
                .args([
                    "-c",
                    "import importlib.resources as r; print(r.files('noida_db').joinpath('noida-db'))",
                ])
                .output()
                .unwrap();
            let binary = PathBuf::from(String::from_utf8(found.stdout).unwrap().trim());
            assert!(
                binary.exists(),
                "run .ci/test-deps: no {}",
                binary.display()
            );
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(&binary)
                .args(["start", "--only", "kafka", "--host", "127.0.0.1"])
                .args(["--kafka-port", &port.to_string()])
                .arg("--data-dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let broker = Noida {
                child,
                brokers: format!("127.0.0.1:{port}"),
                _dir: dir,
            };
            let started = Instant::now();
            loop {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &broker.brokers)
                    .create()
                    .unwrap();
                if consumer
                    .fetch_metadata(None, Duration::from_secs(1))
                    .is_ok()
                {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "no broker");
                std::thread::sleep(Duration::from_millis(100));
            }
            broker
        }

        /// A transactional producer (initialised).
        pub(crate) fn producer(&self, transactional_id: &str) -> BaseProducer {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("transactional.id", transactional_id)
                .set("transaction.timeout.ms", "60000")
                .create()
                .unwrap();
            producer.init_transactions(TRANSACTION_TIMEOUT).unwrap();
            producer
        }
    }

    fn progress_record(producer: &BaseProducer, topic: &str, store_id: &str, generation: u64) {
        let value = serde_json::to_vec(&Progress {
            store_id: store_id.to_string(),
            generation,
            rows: 1,
            positions: BTreeMap::new(),
        })
        .unwrap();
        producer
            .send(
                BaseRecord::to(topic)
                    .payload(value.as_slice())
                    .key(store_id),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(TRANSACTION_TIMEOUT).unwrap();
    }

    fn committed_progress(broker: &Noida, topic: &str, store_id: &str, generation: u64) {
        let producer = broker.producer(&format!("trawl-sink-{store_id}-enriched"));
        producer.begin_transaction().unwrap();
        progress_record(&producer, topic, store_id, generation);
        producer.commit_transaction(TRANSACTION_TIMEOUT).unwrap();
    }

    fn sink_config(broker: &Noida) -> KafkaSinkConfig {
        KafkaSinkConfig {
            brokers: broker.brokers.clone(),
            topic: "enriched".into(),
            ..KafkaSinkConfig::default()
        }
    }

    /// Guard: the progress topic ends with
    /// a commit marker, and the consumer's position does pass it, so
    /// `newest_in` does not wait out its 30 s deadline at every start.
    #[test]
    fn the_sink_reads_its_published_generation_without_waiting_out_the_deadline() {
        let broker = Noida::start();
        let config = sink_config(&broker);
        let topic = config.progress_topic();
        create_progress_topic(&config, &topic).unwrap();
        committed_progress(&broker, &topic, "store-a", 7);
        let started = Instant::now();
        let published = published_generation(&config, &topic, "store-a").unwrap();
        let took = started.elapsed();
        assert_eq!(published, 7);
        assert!(
            took < Duration::from_secs(10),
            "published_generation took {took:?} for one committed record"
        );
    }

    /// Regression (cold review of the sink and metadata topic): two stores whose sinks publish to one topic share
    /// its progress topic. Store B is killed inside a transaction (its
    /// progress record written, no commit); store A commits a later seal
    /// after it, then restarts before the broker times B's transaction out
    /// (60 s). The progress consumer reads `read_committed`, so
    /// `fetch_watermarks` answers the last stable offset (B's open record)
    /// as the end: A's later record is past it, `newest_in` never looks
    /// at it and answers generation 1 at once, so A publishes seal 2 again
    /// (every row of it twice for read_committed consumers).
    /// Refusing to start (an error) would be right; a stale answer is not.
    #[test]
    fn an_open_transaction_of_another_store_does_not_make_the_published_generation_stale() {
        let broker = Noida::start();
        let config = sink_config(&broker);
        let topic = config.progress_topic();
        create_progress_topic(&config, &topic).unwrap();
        committed_progress(&broker, &topic, "store-a", 1);
        let killed = broker.producer("trawl-sink-store-b-enriched");
        killed.begin_transaction().unwrap();
        progress_record(&killed, &topic, "store-b", 1);
        committed_progress(&broker, &topic, "store-a", 2);
        // Refusing to answer (an error) is safe; a stale answer is not.
        if let Ok(published) = published_generation(&config, &topic, "store-a") {
            assert_eq!(
                published, 2,
                "store A's seal 2 is committed in the progress topic: it would be published twice"
            );
        }
        drop(killed);
    }

    /// A pipeline over `dir` (a store whose open chunks are
    /// compacted past one segment, so two seals are enough; no ticker
    /// maintenance: the test runs it).
    pub(crate) fn pipeline(dir: &std::path::Path) -> crate::pipeline::Pipeline {
        let mut store_config = trawl_store::StoreConfig::new(dir.join("data"));
        store_config.segments_per_chunk_max = 1;
        store_config.open_shards = 1;
        let store = trawl_store::Store::open(store_config).unwrap();
        let config = crate::config::PipelineConfig {
            hold_secs: 0,
            workers: 1,
            maintain_interval_secs: 3600,
            seal_interval_secs: 3600,
            push_log: false,
            ..crate::config::PipelineConfig::default()
        };
        crate::pipeline::Pipeline::start(config, store, trawl_attrib::AttributionIndex::default())
            .unwrap()
    }

    /// `n` flow records (AWS's default format), all in one chunk.
    pub(crate) fn flow_lines(n: usize, seed: usize) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let start = now - now % 3600 + 60;
        let start = if start + 120 > now {
            start - 3600
        } else {
            start
        };
        (0..n)
            .map(|i| {
                format!(
                    "2 123456789012 eni-1 10.0.{}.{} 10.1.0.{} 443 {} 6 {} {} {start} {} ACCEPT OK\n",
                    seed % 200,
                    i % 200 + 1,
                    i % 50 + 1,
                    40000 + i,
                    i + 1,
                    100 * (i + 1),
                    start + 30
                )
            })
            .collect()
    }

    /// The detail segments' `sealed_in`, sorted.
    pub(crate) fn detail_seals(pipeline: &crate::pipeline::Pipeline) -> Vec<Option<u64>> {
        let store = pipeline.store();
        let store = store.read().unwrap();
        let mut sealed: Vec<Option<u64>> = store
            .manifest()
            .segments
            .iter()
            .filter(|s| s.table == DETAIL_TABLE)
            .map(|s| s.sealed_in)
            .collect();
        sealed.sort();
        sealed
    }

    /// Messages in `topic` (every partition) for read_committed.
    pub(crate) fn committed_messages(brokers: &str, topic: &str) -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "review-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .unwrap();
        let partitions: Vec<i32> = metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect();
        if partitions.is_empty() {
            return 0;
        }
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut ended = std::collections::BTreeSet::new();
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while ended.len() < partitions.len() && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(_)) => n += 1,
                Some(Err(ClientError::PartitionEOF(p))) => {
                    ended.insert(p);
                }
                _ => {}
            }
        }
        n
    }

    /// Regression (cold review of the sink and metadata topic): `[[sinks.kafka]]` is a list, but the store keeps
    /// one hold (`detail_held_after`) that every sink overwrites with its
    /// own published generation. Sink A publishes seals 1 and 2 while
    /// sink B's brokers are down: A's hold (after 2) replaces B's (after
    /// 0), compaction merges the two seals' detail segments into one with
    /// `sealed_in: None`, and B never publishes them, even once its
    /// brokers are back.
    #[test]
    fn a_second_sink_keeps_its_unpublished_seals_out_of_compaction() {
        let (a, b) = (Noida::start(), Noida::start());
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        pipeline.add_kafka_sink(sink_config(&a)).unwrap();
        let same_topic = pipeline.add_kafka_sink(sink_config(&b)).unwrap_err();
        assert!(same_topic.to_string().contains("enriched"), "{same_topic}");
        let other = KafkaSinkConfig {
            topic: "enriched-b".into(),
            ..sink_config(&b)
        };
        pipeline.add_kafka_sink(other).unwrap();
        drop(b); // B's brokers go down
        pipeline.push("test", flow_lines(20, 1).as_bytes()).unwrap();
        pipeline.seal().unwrap();
        pipeline.push("test", flow_lines(20, 2).as_bytes()).unwrap();
        pipeline.seal().unwrap();
        let before = detail_seals(&pipeline);
        assert_eq!(before.len(), 2, "{before:?}");
        let started = Instant::now();
        while pipeline.stats().sink.transactions.load(Ordering::Relaxed) < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "A published nothing"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(committed_messages(&a.brokers, "enriched"), 40);
        pipeline.store().write().unwrap().maintain().unwrap();
        assert_eq!(
            detail_seals(&pipeline),
            before,
            "seals sink B has not published were compacted: B can never publish them"
        );
        // (the pipeline is not shut down: sink B would retry for 30 s)
        std::mem::forget(pipeline);
    }

    /// Regression (cold review of the sink and metadata topic): the hold lives in the store's memory only and is
    /// set by `KafkaSink::start`, after `Pipeline::start` has started the
    /// ticker. A process stopped with seals unpublished ("the next start
    /// publishes them") restarts: if the ticker's maintenance (every
    /// `maintain_interval_secs`, 10 s by default) runs before the sink has
    /// started (its start may take 10 s + 10 s + 30 s of broker timeouts),
    /// or if the data directory is run once without the sink (`trawl run
    /// --once`, a run without `--kafka-sink-topic`), the unpublished
    /// seal's detail segments are compacted (`sealed_in: None`) and never
    /// published. Here seal 1 was published, seal 2 was not; the sink
    /// starts 1.5 s after a pipeline maintaining every second.
    #[test]
    fn a_seal_left_unpublished_is_published_after_a_restart_even_if_maintenance_ran_first() {
        let broker = Noida::start();
        let dir = tempfile::tempdir().unwrap();
        let first = pipeline(dir.path());
        // The earlier process ran the sink: its hold (here as the sink sets
        // it when it starts) goes into the manifest with the seals.
        first
            .store()
            .read()
            .unwrap()
            .hold_detail_after("kafka:enriched", Some(0));
        first.push("test", flow_lines(20, 1).as_bytes()).unwrap();
        first.seal().unwrap();
        first.push("test", flow_lines(30, 2).as_bytes()).unwrap();
        first.seal().unwrap();
        first.shutdown().unwrap();
        // What the killed process published: seal 1 (20 rows) with its
        // progress, in one transaction.
        let id = crate::kafka::store_id(&dir.path().join("data")).unwrap();
        let config = sink_config(&broker);
        let topic = config.progress_topic();
        create_progress_topic(&config, &topic).unwrap();
        {
            let producer = broker.producer(&format!("trawl-sink-{id}-enriched"));
            producer.begin_transaction().unwrap();
            for _ in 0..20 {
                producer
                    .send(BaseRecord::<str, [u8]>::to("enriched").payload(b"{}".as_slice()))
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
            progress_record(&producer, &topic, &id, 1);
            producer.commit_transaction(TRANSACTION_TIMEOUT).unwrap();
        }
        // The restart: the ticker maintains every second; the sink starts
        // after its first maintenance.
        let mut store_config = trawl_store::StoreConfig::new(dir.path().join("data"));
        store_config.segments_per_chunk_max = 1;
        store_config.open_shards = 1;
        let store = trawl_store::Store::open(store_config).unwrap();
        let second = crate::pipeline::Pipeline::start(
            crate::config::PipelineConfig {
                hold_secs: 0,
                workers: 1,
                maintain_interval_secs: 1,
                seal_interval_secs: 3600,
                push_log: false,
                ..crate::config::PipelineConfig::default()
            },
            store,
            trawl_attrib::AttributionIndex::default(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        second.add_kafka_sink(config).unwrap();
        second.shutdown().unwrap(); // publishes what is sealed
        assert_eq!(
            committed_messages(&broker.brokers, "enriched"),
            50,
            "seal 2's 30 rows were compacted before the sink held them"
        );
    }

    /// Regression (cold review of the sink and metadata topic): `publish` takes any failure to read a segment
    /// the manifest lists as its expiry: it counts it in
    /// `segments_expired`, commits the seal without those rows and moves
    /// its progress past them, so they are never published. A read that
    /// fails for another reason (a file briefly unreadable: EMFILE, EIO,
    /// a restore in progress) loses rows the store still holds. Here the
    /// segment's file is away while the sink publishes, then back.
    #[test]
    fn a_segment_that_cannot_be_read_but_is_still_listed_is_not_skipped() {
        let broker = Noida::start();
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        pipeline.push("test", flow_lines(20, 1).as_bytes()).unwrap();
        pipeline.seal().unwrap();
        let file = {
            let store = pipeline.store();
            let store = store.read().unwrap();
            let segment = store
                .manifest()
                .segments
                .iter()
                .find(|s| s.table == DETAIL_TABLE)
                .cloned()
                .unwrap();
            dir.path().join("data").join(&segment.file)
        };
        let away = file.with_extension("away");
        std::fs::rename(&file, &away).unwrap();
        pipeline.add_kafka_sink(sink_config(&broker)).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        std::fs::rename(&away, &file).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        pipeline.shutdown().unwrap();
        assert_eq!(
            committed_messages(&broker.brokers, "enriched"),
            20,
            "the seal was committed without the rows of a segment the store still lists"
        );
    }
}
