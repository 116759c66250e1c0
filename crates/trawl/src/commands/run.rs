//! `trawl run`: the long-running service. Sources from the config file
//! and flags (directories followed for new files, stdin, metadata files,
//! HTTP pushes, Kafka topics), the pipeline, and the HTTP server; SIGINT or SIGTERM
//! seals, saves the attribution snapshot and exits (a second signal exits
//! at once). With `--once`: read the directories to their end, seal, exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use trawl_pipeline::{
    Container, KafkaMetadataConfig, KafkaSinkConfig, KafkaSourceConfig, KinesisSourceConfig,
    Pipeline,
};

use crate::setup::{self, Config};

/// Arguments of `trawl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (`trawl.example.toml` lists every option).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A directory of flow-log files, flat or S3 layout (repeatable).
    #[arg(long = "flows-dir", value_name = "DIR")]
    flows_dirs: Vec<PathBuf>,
    /// A metadata events file, JSON lines (repeatable).
    #[arg(long = "metadata", value_name = "FILE")]
    metadata: Vec<PathBuf>,
    /// AWS's `ip-ranges.json`.
    #[arg(long, value_name = "FILE")]
    aws_ip_ranges: Option<PathBuf>,
    /// HTTP address (default 127.0.0.1:8941).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Also read flow-log lines from stdin.
    #[arg(long)]
    stdin: bool,
    /// Read the directories (and stdin) once, seal and exit; no server.
    #[arg(long)]
    once: bool,
    /// Kafka bootstrap brokers (`host:port[,…]`): consume `--kafka-topic`
    /// and read `--kafka-metadata-topic`.
    #[arg(long, value_name = "HOST:PORT")]
    kafka_brokers: Option<String>,
    /// A Kafka topic of flow-log messages (repeatable).
    #[arg(long = "kafka-topic", value_name = "TOPIC", requires = "kafka_brokers")]
    kafka_topics: Vec<String>,
    /// The consumer group (default `trawl`).
    #[arg(long, value_name = "GROUP", requires = "kafka_brokers")]
    kafka_group: Option<String>,
    /// Fields of messages without a header line (default: AWS's default format).
    #[arg(long, value_name = "FORMAT", requires = "kafka_brokers")]
    kafka_log_format: Option<String>,
    /// What a message holds: auto, lines, gzip, cloudwatch or firehose.
    #[arg(long, value_name = "CONTAINER", requires = "kafka_brokers")]
    kafka_container: Option<String>,
    /// A Kafka topic of ownership events (JSON lines), read whole by every
    /// process (`[sources.kafka_metadata]`).
    #[arg(long, value_name = "TOPIC", requires = "kafka_brokers")]
    kafka_metadata_topic: Option<String>,
    /// A Kafka topic every sealed flow is published to, once, as JSON
    /// (`[[sinks.kafka]]`; needs the `flows` table).
    #[arg(long, value_name = "TOPIC", requires = "kafka_brokers")]
    kafka_sink_topic: Option<String>,
    /// A Kinesis Data Stream of flow logs (`[[sources.kinesis]]` for more settings).
    #[arg(long, value_name = "STREAM")]
    kinesis_stream: Option<String>,
    /// The stream's region (default us-east-1).
    #[arg(long, value_name = "REGION", requires = "kinesis_stream")]
    kinesis_region: Option<String>,
    /// Another Kinesis endpoint (compatible services, tests).
    #[arg(long, value_name = "URL", requires = "kinesis_stream")]
    kinesis_endpoint_url: Option<String>,
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        config
            .sources
            .flows_dirs
            .extend(self.flows_dirs.iter().cloned());
        config
            .sources
            .metadata_files
            .extend(self.metadata.iter().cloned());
        if let Some(path) = &self.aws_ip_ranges {
            config.sources.aws_ip_ranges = Some(path.clone());
        }
        if let Some(listen) = &self.listen {
            config.listen = listen.clone();
        }
        config.sources.stdin |= self.stdin;
        config.sources.follow &= !self.once;
        if let Some(kafka) = self.kafka_source()? {
            config.sources.kafka.push(kafka);
        }
        if let (Some(brokers), Some(topic)) = (&self.kafka_brokers, &self.kafka_sink_topic) {
            config.sinks.kafka.push(KafkaSinkConfig {
                brokers: brokers.clone(),
                topic: topic.clone(),
                ..KafkaSinkConfig::default()
            });
        }
        if let (Some(brokers), Some(topic)) = (&self.kafka_brokers, &self.kafka_metadata_topic) {
            config.sources.kafka_metadata = Some(KafkaMetadataConfig {
                brokers: brokers.clone(),
                topic: topic.clone(),
                ..KafkaMetadataConfig::default()
            });
        }
        if let Some(stream) = &self.kinesis_stream {
            let mut kinesis = KinesisSourceConfig {
                stream: stream.clone(),
                endpoint_url: self.kinesis_endpoint_url.clone(),
                ..KinesisSourceConfig::default()
            };
            if let Some(region) = &self.kinesis_region {
                kinesis.region = region.clone();
            }
            config.sources.kinesis.push(kinesis);
        }
        if self.once && !(config.sources.kafka.is_empty() && config.sources.kinesis.is_empty()) {
            bail!(
                "--once reads directories to their end; a Kafka or Kinesis source runs until trawl is stopped"
            );
        }
        Ok(config)
    }

    /// The Kafka source the flags describe, if any.
    fn kafka_source(&self) -> anyhow::Result<Option<KafkaSourceConfig>> {
        let Some(brokers) = &self.kafka_brokers else {
            return Ok(None);
        };
        if self.kafka_topics.is_empty() {
            if self.kafka_metadata_topic.is_none() && self.kafka_sink_topic.is_none() {
                bail!(
                    "--kafka-brokers needs --kafka-topic, --kafka-metadata-topic or --kafka-sink-topic"
                );
            }
            return Ok(None);
        }
        let mut kafka = KafkaSourceConfig {
            brokers: brokers.clone(),
            topics: self.kafka_topics.clone(),
            log_format: self.kafka_log_format.clone(),
            ..KafkaSourceConfig::default()
        };
        if let Some(group) = &self.kafka_group {
            kafka.group = group.clone();
        }
        if let Some(name) = &self.kafka_container {
            kafka.container = Container::parse(name).with_context(|| {
                format!("--kafka-container {name}: one of auto, lines, gzip, cloudwatch, firehose")
            })?;
        }
        Ok(Some(kafka))
    }
}

/// Starts the cloud inventories and waits (bounded) for their first polls.
fn start_cloud_metadata(pipeline: &Pipeline, config: &Config) -> anyhow::Result<()> {
    let metadata = &config.metadata;
    if metadata.aws.is_empty() && metadata.kubernetes.is_empty() {
        return Ok(());
    }
    for kubernetes in &metadata.kubernetes {
        pipeline.add_kubernetes_metadata(kubernetes.clone())?;
    }
    for aws in &metadata.aws {
        // With pods watched, their addresses are the watcher's, not the nodes'.
        let leave = aws
            .leave_pod_addresses
            .unwrap_or(!metadata.kubernetes.is_empty());
        pipeline.add_aws_metadata(aws.clone(), leave)?;
    }
    let wait = Duration::from_secs(metadata.first_poll_wait_secs);
    let unseen = pipeline.wait_for_cloud_metadata(wait);
    if !unseen.is_empty() {
        eprintln!(
            "trawl: no complete poll of {} within {} s: flows are consumed meanwhile (held while their owners are unknown)",
            unseen.join(", "),
            wait.as_secs()
        );
    }
    Ok(())
}

/// Runs `trawl run`.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let running = setup::start(&config)?;
    let pipeline = running.pipeline.clone();
    if config.sources.stdin {
        pipeline.add_stream("stdin", Box::new(std::io::stdin()))?;
    }
    for sink in &config.sinks.kafka {
        pipeline.add_kafka_sink(sink.clone())?;
    }
    if let Some(metadata) = &config.sources.kafka_metadata {
        pipeline.add_kafka_metadata(metadata.clone())?;
    }
    start_cloud_metadata(&pipeline, &config)?;
    if args.once {
        for dir in &config.sources.flows_dirs {
            pipeline.add_dir(dir)?;
        }
        pipeline.wait_idle();
        drop(pipeline);
        running.stop()?;
        eprintln!("trawl: done");
        return Ok(ExitCode::SUCCESS);
    }
    for kinesis in &config.sources.kinesis {
        pipeline.add_kinesis(kinesis.clone())?;
    }
    for kafka in &config.sources.kafka {
        pipeline.add_kafka(kafka.clone())?;
    }
    for dir in &config.sources.flows_dirs {
        if config.sources.follow {
            pipeline.follow_dir(dir.clone())?;
        } else {
            pipeline.add_dir(dir)?;
        }
    }
    let state = running.app_state(&config)?;
    setup::check_exposure(&config.listen, &state)?;
    let scheme = setup::scheme(&state);
    let runtime = setup::server_runtime()?;
    runtime.block_on(async {
        let listener = setup::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        println!("trawl: serving {scheme}://{addr}/ (SQL: POST {scheme}://{addr}/api/v1/sql, metrics: {scheme}://{addr}/metrics)");
        tokio::select! {
            served = trawl_server::serve(listener, state.clone()) => served?,
            name = setup::stop_signal() => {
                eprintln!("trawl: {name}: sealing open buckets and saving attribution (again to exit at once)");
                setup::exit_on_second_signal();
            }
        }
        anyhow::Ok(())
    })?;
    drop(runtime);
    drop(state);
    let records = pipeline.stats().records.load(Ordering::Relaxed);
    drop(pipeline);
    running.stop()?;
    eprintln!("trawl: stopped after {records} records");
    Ok(ExitCode::SUCCESS)
}
