//! Pipeline counters and their Prometheus text form.
//!
//! Counters are plain atomics owned by one pipeline (no global registry, so
//! several pipelines — tests — never mix). [`render_metrics`] adds the
//! store's and the index's own counters at the moment of the scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use trawl_attrib::AttributionIndex;
use trawl_flowlog::ErrorKind;
use trawl_store::Store;

/// Why a held flow left the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// Metadata caught up (the flow's time is behind the horizon).
    Settled,
    /// The hold delay passed.
    Deadline,
    /// A seal was due (held flows are added before every seal).
    Seal,
    /// The hold was full.
    Full,
}

impl ReleaseReason {
    const ALL: [ReleaseReason; 4] = [Self::Settled, Self::Deadline, Self::Seal, Self::Full];

    fn name(self) -> &'static str {
        match self {
            Self::Settled => "settled",
            Self::Deadline => "deadline",
            Self::Seal => "seal",
            Self::Full => "full",
        }
    }
}

/// Counters of a running pipeline.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Flow records decoded.
    pub records: AtomicU64,
    /// Input bytes read (as stored: compressed for gzip files).
    pub input_bytes: AtomicU64,
    /// Files read to their end.
    pub files_done: AtomicU64,
    /// Files that could not be opened or read.
    pub file_errors: AtomicU64,
    /// Files found under a known name that were another file (read anew).
    pub files_replaced: AtomicU64,
    /// Files found under a new name that were a known file moved (resumed).
    pub files_moved: AtomicU64,
    /// Positions of files gone and read to their end, forgotten.
    pub positions_pruned: AtomicU64,
    /// Pushes replayed from the push log at start.
    pub pushes_replayed: AtomicU64,
    /// Pushes the push log refused (full, too large, or a disk error).
    pub pushes_refused: AtomicU64,
    /// Bytes in the push log now.
    pub push_log_bytes: AtomicU64,
    /// Payloads pushed (HTTP, Firehose, demo).
    pub payloads: AtomicU64,
    /// Metadata events applied.
    pub metadata_events: AtomicU64,
    /// Metadata lines refused.
    pub metadata_errors: AtomicU64,
    /// Flows held now.
    pub held: AtomicU64,
    /// Flows ever held.
    pub held_total: AtomicU64,
    released: [AtomicU64; 4],
    decode_errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Newest record `start` seen (epoch seconds).
    pub newest_event_secs: AtomicU64,
    /// Seals the pipeline asked for.
    pub seals: AtomicU64,
    /// Store errors (seal or maintenance failures), each also printed.
    pub store_errors: AtomicU64,
    /// Batches that waited for a seal to free memory (open memory past the cap).
    pub full_waits: AtomicU64,
    /// Seals a worker ran because open memory passed the cap.
    pub early_seals: AtomicU64,
    /// Kafka sources' counters.
    pub kafka: KafkaStats,
    /// The Kafka sinks' counters (all sinks together).
    pub sink: SinkStats,
    /// Kinesis sources' counters.
    pub kinesis: KinesisStats,
    /// Cloud inventories' counters (`[[metadata.aws]]`, `[[metadata.kubernetes]]`).
    pub cloud: crate::cloud::CloudStats,
}

/// One source's partitions (`topic/partition`): (records, seconds) behind.
pub type PartitionLags = BTreeMap<String, (u64, u64)>;

/// Counters of the Kafka sources.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Messages consumed.
    pub messages: AtomicU64,
    /// Messages that were not what their container says, or held no
    /// record at all among their errors (each printed with topic,
    /// partition and offset).
    pub bad_messages: AtomicU64,
    /// Assignments and revocations.
    pub rebalances: AtomicU64,
    /// Partitions the group took back without a revocation (assignment lost).
    pub partitions_lost: AtomicU64,
    /// Partitions taken over without their previous store's release
    /// (waited `handoff_wait_secs`).
    pub handoff_timeouts: AtomicU64,
    /// Offset commits to the group that failed (retried).
    pub commit_errors: AtomicU64,
    /// Errors the client reported (brokers down, …).
    pub client_errors: AtomicU64,
    /// Messages read from the metadata topic.
    pub metadata_messages: AtomicU64,
    /// Learned heartbeats published to the metadata topic.
    pub heartbeats_published: AtomicU64,
    /// Per source, per partition (`topic/partition`): records behind the
    /// partition's last stable offset, and seconds behind.
    lags: std::sync::Mutex<BTreeMap<String, PartitionLags>>,
}

impl KafkaStats {
    /// Replaces `source`'s partition lags (records, seconds).
    pub fn set_lags(&self, source: &str, lags: PartitionLags) {
        let mut all = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        all.insert(source.to_string(), lags);
    }

    /// Every partition's lag: `(topic/partition, records, seconds)`.
    pub fn lags(&self) -> Vec<(String, u64, u64)> {
        let all = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        all.values()
            .flat_map(|lags| lags.iter().map(|(p, (r, s))| (p.clone(), *r, *s)))
            .collect()
    }

    fn render(&self, m: &mut String) {
        for (name, help, counter) in [
            (
                "trawl_kafka_messages_total",
                "Kafka messages consumed.",
                &self.messages,
            ),
            (
                "trawl_kafka_bad_messages_total",
                "Kafka messages that were not what their container says or held no record (printed with topic, partition, offset).",
                &self.bad_messages,
            ),
            (
                "trawl_kafka_rebalances_total",
                "Partition assignments and revocations.",
                &self.rebalances,
            ),
            (
                "trawl_kafka_partitions_lost_total",
                "Partitions the group took back without a revocation (assignment lost).",
                &self.partitions_lost,
            ),
            (
                "trawl_kafka_handoff_timeouts_total",
                "Partitions taken over without the previous store's release (it died?): flows it sealed after its last commit may count twice.",
                &self.handoff_timeouts,
            ),
            (
                "trawl_kafka_commit_errors_total",
                "Offset commits to the group that failed (retried).",
                &self.commit_errors,
            ),
            (
                "trawl_kafka_client_errors_total",
                "Errors the Kafka client reported.",
                &self.client_errors,
            ),
            (
                "trawl_kafka_metadata_messages_total",
                "Messages read from the metadata topic.",
                &self.metadata_messages,
            ),
            (
                "trawl_kafka_heartbeats_published_total",
                "Heartbeats learned from flows and published to the metadata topic.",
                &self.heartbeats_published,
            ),
        ] {
            metric(m, name, "counter", help, &[("", get(counter))]);
        }
        let lags = self.lags();
        let label = |p: &str| format!("{{partition=\"{}\"}}", escape_label(p));
        let records: Vec<(String, u64)> = lags.iter().map(|(p, r, _)| (label(p), *r)).collect();
        let seconds: Vec<(String, u64)> = lags.iter().map(|(p, _, s)| (label(p), *s)).collect();
        for (name, help, samples) in [
            (
                "trawl_kafka_lag_records",
                "Records between a partition's position and its last stable offset.",
                records,
            ),
            (
                "trawl_kafka_lag_seconds",
                "Age of the last message consumed from a partition that has records left.",
                seconds,
            ),
        ] {
            let samples: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            metric(m, name, "gauge", help, &samples);
        }
    }
}

/// Counters of the Kinesis sources.
#[derive(Debug, Default)]
pub struct KinesisStats {
    /// Records read.
    pub records: AtomicU64,
    /// Records that were not what their container says or held no flow
    /// among their errors (each printed with stream, shard and sequence).
    pub bad_records: AtomicU64,
    /// Calls refused for throughput (`ProvisionedThroughputExceeded`, KMS), backed off.
    pub throttles: AtomicU64,
    /// Other failed calls (backed off, retried).
    pub errors: AtomicU64,
    /// Iterators that expired and were got again.
    pub expired_iterators: AtomicU64,
    /// Closed shards read to their end.
    pub shards_ended: AtomicU64,
    /// Stored positions not used: of another shard of the same id (the
    /// stream was made again).
    pub foreign_positions: AtomicU64,
    /// Per source, per shard (`stream/shard`): seconds behind the tip.
    lags: std::sync::Mutex<BTreeMap<String, Vec<(String, u64)>>>,
}

impl KinesisStats {
    /// Replaces `source`'s shard lags (seconds behind the tip).
    pub fn set_lags(&self, source: &str, lags: Vec<(String, u64)>) {
        let mut all = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        all.insert(source.to_string(), lags);
    }

    fn render(&self, m: &mut String) {
        for (name, help, counter) in [
            (
                "trawl_kinesis_records_total",
                "Kinesis records read.",
                &self.records,
            ),
            (
                "trawl_kinesis_bad_records_total",
                "Kinesis records that were not what their container says or held no flow.",
                &self.bad_records,
            ),
            (
                "trawl_kinesis_throttles_total",
                "Kinesis calls refused for throughput (backed off).",
                &self.throttles,
            ),
            (
                "trawl_kinesis_errors_total",
                "Other failed Kinesis calls (retried).",
                &self.errors,
            ),
            (
                "trawl_kinesis_expired_iterators_total",
                "Kinesis shard iterators that expired and were got again.",
                &self.expired_iterators,
            ),
            (
                "trawl_kinesis_shards_ended_total",
                "Closed Kinesis shards read to their end.",
                &self.shards_ended,
            ),
            (
                "trawl_kinesis_foreign_positions_total",
                "Stored shard positions not used: another shard of the same id (the stream was made again).",
                &self.foreign_positions,
            ),
        ] {
            metric(m, name, "counter", help, &[("", get(counter))]);
        }
        let all = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        let samples: Vec<(String, u64)> = all
            .values()
            .flatten()
            .map(|(shard, s)| (format!("{{shard=\"{}\"}}", escape_label(shard)), *s))
            .collect();
        drop(all);
        let samples: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            m,
            "trawl_kinesis_lag_seconds",
            "gauge",
            "How far a shard's reader is behind its tip (MillisBehindLatest).",
            &samples,
        );
    }
}

/// Counters of the Kafka sinks.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Flows published (committed transactions only).
    pub rows: AtomicU64,
    /// Transactions committed (one a seal).
    pub transactions: AtomicU64,
    /// Transactions that failed and were aborted (retried).
    pub errors: AtomicU64,
    /// Detail segments retention removed before they were published.
    pub segments_expired: AtomicU64,
    /// Seals not yet published.
    pub lag_generations: AtomicU64,
}

impl SinkStats {
    fn render(&self, m: &mut String) {
        for (name, kind, help, counter) in [
            (
                "trawl_sink_kafka_rows_total",
                "counter",
                "Flows published to Kafka (committed transactions).",
                &self.rows,
            ),
            (
                "trawl_sink_kafka_transactions_total",
                "counter",
                "Kafka sink transactions committed (one a seal).",
                &self.transactions,
            ),
            (
                "trawl_sink_kafka_errors_total",
                "counter",
                "Kafka sink transactions aborted after an error (retried).",
                &self.errors,
            ),
            (
                "trawl_sink_kafka_segments_expired_total",
                "counter",
                "Detail segments removed by retention before the sink published them.",
                &self.segments_expired,
            ),
            (
                "trawl_sink_kafka_lag_generations",
                "gauge",
                "Seals the Kafka sink has not published yet.",
                &self.lag_generations,
            ),
        ] {
            metric(m, name, kind, help, &[("", get(counter))]);
        }
    }
}

/// A Prometheus label value with `\`, `"` and newlines escaped.
pub(crate) fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl PipelineStats {
    /// Counts a decode error of `kind`.
    pub fn decode_error(&self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.decode_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Decode errors so far, all kinds.
    pub fn decode_errors_total(&self) -> u64 {
        self.decode_errors
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts `n` flows released from the hold for `reason`.
    pub fn released(&self, reason: ReleaseReason, n: u64) {
        let i = ReleaseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.released[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Flows released for `reason` so far.
    pub fn released_for(&self, reason: ReleaseReason) -> u64 {
        let i = ReleaseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.released[i].load(Ordering::Relaxed)
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The Prometheus text exposition of the pipeline, store and index.
pub fn render_metrics(
    stats: &PipelineStats,
    store: &Store,
    index: &AttributionIndex,
    now_secs: u64,
) -> String {
    let mut out = String::with_capacity(4096);
    let m = &mut out;
    metric(
        m,
        "trawl_records_in_total",
        "counter",
        "Flow records decoded.",
        &[("", get(&stats.records))],
    );
    metric(
        m,
        "trawl_input_bytes_total",
        "counter",
        "Input bytes read.",
        &[("", get(&stats.input_bytes))],
    );
    let errors: Vec<(String, u64)> = ErrorKind::ALL
        .iter()
        .zip(&stats.decode_errors)
        .map(|(kind, c)| (format!("{{kind=\"{}\"}}", kind.name()), get(c)))
        .collect();
    let errors: Vec<(&str, u64)> = errors.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric(
        m,
        "trawl_decode_errors_total",
        "counter",
        "Lines or payloads that failed to decode, by kind.",
        &errors,
    );
    metric(
        m,
        "trawl_files_done_total",
        "counter",
        "Files read to their end.",
        &[("", get(&stats.files_done))],
    );
    metric(
        m,
        "trawl_file_errors_total",
        "counter",
        "Files that could not be read.",
        &[("", get(&stats.file_errors))],
    );
    metric(
        m,
        "trawl_files_replaced_total",
        "counter",
        "Files found under a known name whose first bytes differ (read from their start).",
        &[("", get(&stats.files_replaced))],
    );
    metric(
        m,
        "trawl_files_moved_total",
        "counter",
        "Files found under a new name with the first bytes of a file gone (resumed).",
        &[("", get(&stats.files_moved))],
    );
    metric(
        m,
        "trawl_file_positions_pruned_total",
        "counter",
        "Positions of files gone and read to their end, removed from the manifest.",
        &[("", get(&stats.positions_pruned))],
    );
    metric(
        m,
        "trawl_pushes_replayed_total",
        "counter",
        "Pushes replayed from the push log at start (acknowledged before a crash, not yet sealed).",
        &[("", get(&stats.pushes_replayed))],
    );
    metric(
        m,
        "trawl_pushes_refused_total",
        "counter",
        "Pushes the push log refused (full until the next seal, too large, or a disk error): answered 503/413.",
        &[("", get(&stats.pushes_refused))],
    );
    metric(
        m,
        "trawl_push_log_bytes",
        "gauge",
        "Bytes in the push log, not yet covered by a seal.",
        &[("", get(&stats.push_log_bytes))],
    );
    metric(
        m,
        "trawl_payloads_total",
        "counter",
        "Payloads pushed.",
        &[("", get(&stats.payloads))],
    );
    metric(
        m,
        "trawl_metadata_events_total",
        "counter",
        "Metadata events applied.",
        &[("", get(&stats.metadata_events))],
    );
    metric(
        m,
        "trawl_metadata_errors_total",
        "counter",
        "Metadata lines refused.",
        &[("", get(&stats.metadata_errors))],
    );
    metric(
        m,
        "trawl_held_records",
        "gauge",
        "Flows held for metadata to catch up.",
        &[("", get(&stats.held))],
    );
    let released: Vec<(String, u64)> = ReleaseReason::ALL
        .iter()
        .map(|r| {
            (
                format!("{{reason=\"{}\"}}", r.name()),
                stats.released_for(*r),
            )
        })
        .collect();
    let released: Vec<(&str, u64)> = released.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric(
        m,
        "trawl_held_released_total",
        "counter",
        "Held flows released, by reason.",
        &released,
    );
    let newest = get(&stats.newest_event_secs);
    metric(
        m,
        "trawl_event_time_newest_seconds",
        "gauge",
        "Newest flow start seen.",
        &[("", newest)],
    );
    let lag = if newest == 0 {
        0
    } else {
        now_secs.saturating_sub(newest)
    };
    metric(
        m,
        "trawl_lag_seconds",
        "gauge",
        "Wall clock minus the newest flow start.",
        &[("", lag)],
    );
    stats.kafka.render(m);
    stats.sink.render(m);
    stats.kinesis.render(m);
    stats.cloud.render(m);
    let s = store.stats();
    metric(
        m,
        "trawl_late_records_total",
        "counter",
        "Records older than the watermark on arrival (kept).",
        &[("", s.late_records)],
    );
    metric(
        m,
        "trawl_future_records_total",
        "counter",
        "Records starting past the wall clock plus the store's future slack (kept; they do not move the watermark).",
        &[("", s.future_records)],
    );
    metric(
        m,
        "trawl_store_records_total",
        "counter",
        "Records added to the store.",
        &[("", s.records)],
    );
    metric(
        m,
        "trawl_store_seals_total",
        "counter",
        "Seals committed.",
        &[("", s.seals)],
    );
    let cache = store.segment_cache().map(|c| c.stats()).unwrap_or_default();
    metric(
        m,
        "trawl_segment_cache_bytes",
        "gauge",
        "Bytes of decoded rollup segments kept in memory for queries.",
        &[("", cache.bytes as u64)],
    );
    metric(
        m,
        "trawl_segment_cache_segments",
        "gauge",
        "Rollup segments kept in memory for queries.",
        &[("", cache.segments as u64)],
    );
    metric(
        m,
        "trawl_segment_cache_reads_total",
        "counter",
        "Segments queries read, from memory (hit) or from Parquet (miss).",
        &[
            ("{result=\"hit\"}", cache.hits),
            ("{result=\"miss\"}", cache.misses),
        ],
    );
    metric(
        m,
        "trawl_store_segments_sealed_total",
        "counter",
        "Segments written by seals.",
        &[("", s.segments_sealed)],
    );
    metric(
        m,
        "trawl_store_compactions_total",
        "counter",
        "Chunks compacted.",
        &[("", s.compactions)],
    );
    metric(
        m,
        "trawl_store_compactions_refused_total",
        "counter",
        "Chunks left uncompacted because the string dictionary was full (their strings are kept).",
        &[("", s.compactions_refused)],
    );
    metric(
        m,
        "trawl_store_segments",
        "gauge",
        "Live segments.",
        &[("", store.manifest().segments.len() as u64)],
    );
    metric(
        m,
        "trawl_store_open_bytes",
        "gauge",
        "Open-bucket memory.",
        &[("", store.open_bytes() as u64)],
    );
    metric(
        m,
        "trawl_store_open_rows",
        "gauge",
        "Open-bucket rows.",
        &[("", store.open_rows() as u64)],
    );
    metric(
        m,
        "trawl_store_errors_total",
        "counter",
        "Seal or maintenance failures.",
        &[("", get(&stats.store_errors))],
    );
    metric(
        m,
        "trawl_pipeline_full_waits_total",
        "counter",
        "Batches that waited for a seal to free memory.",
        &[("", get(&stats.full_waits))],
    );
    metric(
        m,
        "trawl_pipeline_early_seals_total",
        "counter",
        "Seals run because open memory passed the store's cap (held flows released first).",
        &[("", get(&stats.early_seals))],
    );
    metric(
        m,
        "trawl_index_ips",
        "gauge",
        "IPs with ownership history.",
        &[("", index.ip_count() as u64)],
    );
    metric(
        m,
        "trawl_index_memory_bytes",
        "gauge",
        "Attribution index memory.",
        &[("", index.memory_bytes() as u64)],
    );
    metric(
        m,
        "trawl_index_events_total",
        "counter",
        "Metadata events applied to the index.",
        &[("", index.stats().events)],
    );
    metric(
        m,
        "trawl_index_future_events_total",
        "counter",
        "Metadata events stamped past the wall clock plus the future slack (applied; they move neither retention nor the horizon).",
        &[("", index.stats().future_events)],
    );
    metric(
        m,
        "trawl_index_heartbeats_total",
        "counter",
        "Ownership confirmations learned from flows.",
        &[("", index.stats().heartbeats)],
    );
    out
}
