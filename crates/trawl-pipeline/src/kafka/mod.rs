//! The Kafka flow source: topics of flow-log messages read by a consumer
//! group, exactly once into the store across crashes and rebalances.
//!
//! ```text
//!  broker ─► consumer thread (one per [[sources.kafka]]): poll ─► message ─► container
//!            (lines, gzip, CloudWatch, Firehose) ─► record lines ─► workers' path
//!            (decode, attribute, add with position kafka:TOPIC/P = {offset, byte})
//!  rebalance: assigned ─► positioned from the store (or the group's commit, if past it)
//!             revoked   ─► sealed first, the sealed offsets committed, then given up
//!  after every seal: the sealed positions committed to the group (lag tools, next owners)
//! ```
//!
//! Exactly once, as Druid's Kafka indexing does it: a partition's position
//! goes into the store with the flows it covers and is committed with them
//! in the manifest (`position`); on assignment the partition is read from
//! there, not from the group. The group's committed offsets are written
//! only after a seal has made them true, so they matter for one thing
//! besides lag tools: when another process in the group has sealed a
//! partition further than this store holds, this process starts where that
//! one stopped (`position::start_at`).
//!
//! Rebalances (cooperative-sticky: only moving partitions are revoked):
//! before a partition is given up, everything added from it is sealed and
//! the sealed offset committed, so the next owner starts exactly there. A
//! seal that keeps failing (disk full) past `revoke_seal_secs_max` ends the
//! process: what it holds unsealed would otherwise be stored twice, here
//! later and by the next owner now; ended, it is stored once, by the next
//! owner. A partition *lost* (the group moved on while this process did not
//! poll) is treated the same way.
//!
//! Known window (two stores, two commits): a process killed after a seal
//! is published and before its offsets reach the group (one poll, 100 ms,
//! plus a commit's round trip), or removed from the group because its
//! session expired while it held unsealed flows, whose partitions another
//! member takes over before it comes back: that member reads again what
//! the seal held. One process per group (however often it is killed), and
//! orderly joins and leaves, never meet it; a store shared by the group
//! (object storage) closes it.
//!
//! Event time: each partition's newest record start is tracked, and the
//! store's watermark is held at the slowest partition's
//! ([`trawl_store::Store::set_watermark_cap`]), so a partition that lags
//! does not find its minutes sealed and its records late. A partition with
//! no message for `idle_partition_secs` stops holding it back.

mod consumer;
mod message;
mod metadata;
mod position;
mod sink;

use std::collections::BTreeMap;

use serde::Deserialize;

pub(crate) use consumer::store_id;
pub use consumer::{KafkaError, KafkaSource, STORE_ID_FILE};
pub(crate) use message::add_message;
pub use message::{Added, Container, MessageText, message_text};
pub use metadata::{
    KafkaMetadataConfig, KafkaMetadataSource, RESERVED_METADATA_PROPERTIES, metadata_partition_key,
};
pub use position::{
    Holder, PartitionPosition, Start, committer, handoff_metadata, holder, partition_key,
    release_is_stale, start_at,
};
pub use sink::{KafkaSink, KafkaSinkConfig, RESERVED_SINK_PROPERTIES};

/// Client properties trawl sets itself: set in `properties`, they would
/// break exactly-once or name the group twice.
pub const RESERVED_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "partition.assignment.strategy",
];

/// Longest Kafka topic name.
const TOPIC_NAME_BYTES_MAX: usize = 249;

/// One `[[sources.kafka]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics of flow-log messages.
    pub topics: Vec<String>,
    /// Consumer group (one group is one logical store: processes in it
    /// split the partitions).
    pub group: String,
    /// The fields of messages without a header line (AWS's default format
    /// when unset; a header line in a message then wins).
    pub log_format: Option<String>,
    /// What a message holds.
    pub container: Container,
    /// Where a partition the store and the group know nothing of starts:
    /// `earliest` or `latest`.
    pub start: String,
    /// Client properties passed to librdkafka as they are (SASL, TLS,
    /// fetch sizes, `client.id`…); not those in [`RESERVED_PROPERTIES`].
    pub properties: BTreeMap<String, String>,
    /// A partition with no message for this long no longer holds the
    /// watermark back (seconds; 0: never idle).
    pub idle_partition_secs: u64,
    /// Longest a revoked partition's seal is retried before the process
    /// ends rather than store its records twice (seconds).
    pub revoke_seal_secs_max: u64,
    /// Longest a newly assigned partition waits for the store that held it
    /// to release it (seconds): past it (that process died), reading starts
    /// from its last commit, and what it sealed after may count twice.
    pub handoff_wait_secs: u64,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            brokers: String::new(),
            topics: Vec::new(),
            group: "trawl".to_string(),
            log_format: None,
            container: Container::Auto,
            start: "earliest".to_string(),
            properties: BTreeMap::new(),
            idle_partition_secs: 30,
            revoke_seal_secs_max: 60,
            handoff_wait_secs: 20,
        }
    }
}

impl KafkaSourceConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("sources.kafka.brokers is empty: name at least one host:port".into());
        }
        if self.topics.is_empty() {
            return Err("sources.kafka.topics is empty: name at least one topic".into());
        }
        for topic in &self.topics {
            validate_topic(topic).map_err(|e| format!("sources.kafka.topics: {e}"))?;
        }
        if self.group.trim().is_empty() {
            return Err("sources.kafka.group is empty".into());
        }
        if let Some(format) = &self.log_format {
            trawl_flowlog::LogFormat::parse(format)
                .map_err(|error| format!("sources.kafka.log_format: {error}"))?;
        }
        if !["earliest", "latest"].contains(&self.start.as_str()) {
            return Err(format!(
                "sources.kafka.start = {:?}: must be earliest or latest",
                self.start
            ));
        }
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| RESERVED_PROPERTIES.contains(&k.as_str()))
        {
            return Err(format!(
                "sources.kafka.properties.{key}: trawl sets it itself (exactly-once depends on it)"
            ));
        }
        if self.handoff_wait_secs > 3600 {
            return Err("sources.kafka.handoff_wait_secs must be at most 3600".into());
        }
        if !(1..=3600).contains(&self.revoke_seal_secs_max) {
            return Err("sources.kafka.revoke_seal_secs_max must be between 1 and 3600".into());
        }
        Ok(())
    }
}

/// A client's settings: the configured `properties` as they are, then
/// the brokers (every Kafka client trawl makes starts here).
pub(crate) fn client_with(
    brokers: &str,
    properties: &BTreeMap<String, String>,
) -> rdkafka::config::ClientConfig {
    let mut client = rdkafka::config::ClientConfig::new();
    for (key, value) in properties {
        client.set(key, value);
    }
    client.set("bootstrap.servers", brokers);
    client
}

/// Checks a topic name (Kafka's rules).
pub(crate) fn validate_topic(topic: &str) -> Result<(), String> {
    let valid = topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if topic.is_empty() || topic.len() > TOPIC_NAME_BYTES_MAX || !valid {
        return Err(format!(
            "{topic:?} is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KafkaSourceConfig {
        KafkaSourceConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: vec!["flows".into()],
            ..KafkaSourceConfig::default()
        }
    }

    #[test]
    fn settings_that_would_break_exactly_once_are_refused_by_name() {
        assert_eq!(config().validate(), Ok(()));
        let mut auto_commit = config();
        auto_commit
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        let error = auto_commit.validate().unwrap_err();
        assert!(error.contains("properties.enable.auto.commit"), "{error}");
        let mut bad_topic = config();
        bad_topic.topics = vec!["flows/1".into()];
        assert!(bad_topic.validate().unwrap_err().contains("flows/1"));
        let mut bad_format = config();
        bad_format.log_format = Some("srcaddr nonsense".into());
        assert!(bad_format.validate().unwrap_err().contains("log_format"));
        let no_brokers = KafkaSourceConfig {
            brokers: " ".into(),
            ..config()
        };
        assert!(no_brokers.validate().unwrap_err().contains("brokers"));
    }

    #[test]
    fn the_config_reads_from_toml_names() {
        let parsed: KafkaSourceConfig = serde_json::from_str(
            r#"{"brokers":"b:1","topics":["t"],"container":"cloudwatch","properties":{"security.protocol":"SASL_SSL"}}"#,
        )
        .unwrap();
        assert_eq!(parsed.container, Container::Cloudwatch);
        assert_eq!(parsed.group, "trawl");
        assert_eq!(parsed.properties["security.protocol"], "SASL_SSL");
    }
}
