//! The Kinesis Data Streams flow source: every shard of a stream (or this
//! node's share of them), exactly once into the store across crashes and
//! reshards.
//!
//! ```text
//!  stream ─► reader thread (one per [[sources.kinesis]], its own current-thread runtime):
//!            ListShards every list_shards_secs ─► this node's shards, parents first
//!            GetRecords per shard (≤ 5 calls/s/shard) ─► record ─► container (lines, gzip,
//!            CloudWatch Logs) ─► workers' path with position kinesis:STREAM/SHARD = {seq, byte}
//!  a closed shard read to its end ─► position `ended` ─► its children start
//! ```
//!
//! Exactly once, as for Kafka: a shard's position goes into the store's
//! manifest with the flows it covers, and a restart reads each shard from
//! there (`AFTER_SEQUENCE_NUMBER`, or `AT_SEQUENCE_NUMBER` and the bytes
//! already in, when a seal fell inside a record); nothing is checkpointed
//! anywhere else.
//!
//! Resharding: a child shard starts once its parents (the split shard, or
//! both merged ones) are read to their end, when they are this node's; a
//! parent no longer listed (past the stream's retention) does not hold it.
//!
//! Several processes: the static split of `position` (`node_index`,
//! `node_count`, by starting hash key); every process must be given the
//! same `node_count` and its own `node_index`, and its own data directory.
//!
//! Throttling (`ProvisionedThroughputExceededException`, KMS throttling)
//! and other failed calls back off per shard (doubling, up to 10 s) and
//! are counted; an expired iterator is got again from the position.
//! Event time: the store's watermark is held at the slowest active shard's
//! newest record, as for Kafka partitions; a shard with no record for
//! `idle_shard_secs` stops holding it.

mod position;
mod reader;

use serde::Deserialize;

pub use position::{ShardPosition, owner_of, sequence_order, shard_key};
pub use reader::{KinesisError, KinesisSource};

use crate::kafka::Container;

/// One `[[sources.kinesis]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KinesisSourceConfig {
    /// The stream's name.
    pub stream: String,
    /// Its AWS region.
    pub region: String,
    /// Another endpoint (tests, compatible services); unset: AWS's.
    pub endpoint_url: Option<String>,
    /// The fields of records without a header line (AWS's default format
    /// when unset).
    pub log_format: Option<String>,
    /// What a record holds (CloudWatch Logs subscriptions deliver gzip'd
    /// JSON: `auto` recognises it).
    pub container: Container,
    /// Where a shard this store knows nothing of starts: `earliest`
    /// (`TRIM_HORIZON`) or `latest`.
    pub start: String,
    /// This process's share: shards whose hash range starts in the
    /// `node_index`-th of `node_count` equal ranges.
    pub node_index: u32,
    /// How many processes split the stream.
    pub node_count: u32,
    /// Records asked for per `GetRecords` call (at most 10,000).
    pub records_per_call_max: i32,
    /// Shortest wait between two calls on one shard with nothing new
    /// (milliseconds; AWS allows 5 calls a second per shard).
    pub poll_interval_ms: u64,
    /// How often the shard list is read again (seconds).
    pub list_shards_secs: u64,
    /// A shard with no record for this long no longer holds the watermark
    /// back (seconds; 0: never idle).
    pub idle_shard_secs: u64,
}

impl Default for KinesisSourceConfig {
    fn default() -> Self {
        KinesisSourceConfig {
            stream: String::new(),
            region: "us-east-1".to_string(),
            endpoint_url: None,
            log_format: None,
            container: Container::Auto,
            start: "earliest".to_string(),
            node_index: 0,
            node_count: 1,
            records_per_call_max: 10_000,
            poll_interval_ms: 1000,
            list_shards_secs: 30,
            idle_shard_secs: 30,
        }
    }
}

impl KinesisSourceConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let valid = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        if self.stream.is_empty() || self.stream.len() > 128 || !self.stream.chars().all(valid) {
            return Err(format!(
                "sources.kinesis.stream = {:?}: 1 to 128 of a-z A-Z 0-9 _ . -",
                self.stream
            ));
        }
        if self.region.trim().is_empty() {
            return Err("sources.kinesis.region is empty".into());
        }
        if let Some(format) = &self.log_format {
            trawl_flowlog::LogFormat::parse(format)
                .map_err(|error| format!("sources.kinesis.log_format: {error}"))?;
        }
        if !["earliest", "latest"].contains(&self.start.as_str()) {
            return Err(format!(
                "sources.kinesis.start = {:?}: must be earliest or latest",
                self.start
            ));
        }
        if self.node_count == 0 || self.node_index >= self.node_count {
            return Err(format!(
                "sources.kinesis: node_index {} of node_count {}: the index must be below the count",
                self.node_index, self.node_count
            ));
        }
        if !(1..=10_000).contains(&self.records_per_call_max) {
            return Err("sources.kinesis.records_per_call_max must be between 1 and 10000".into());
        }
        if !(200..=60_000).contains(&self.poll_interval_ms) {
            return Err("sources.kinesis.poll_interval_ms must be between 200 and 60000".into());
        }
        if !(1..=3600).contains(&self.list_shards_secs) {
            return Err("sources.kinesis.list_shards_secs must be between 1 and 3600".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinesis_settings_are_checked_by_name() {
        let ok = KinesisSourceConfig {
            stream: "flows".into(),
            ..KinesisSourceConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let split = KinesisSourceConfig {
            node_index: 2,
            node_count: 2,
            ..ok.clone()
        };
        assert!(split.validate().unwrap_err().contains("node_index"));
        let fast = KinesisSourceConfig {
            poll_interval_ms: 10,
            ..ok.clone()
        };
        assert!(fast.validate().unwrap_err().contains("poll_interval_ms"));
        let name = KinesisSourceConfig {
            stream: "a/b".into(),
            ..ok
        };
        assert!(name.validate().unwrap_err().contains("stream"));
    }
}
