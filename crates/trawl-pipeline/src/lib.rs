//! # trawl-pipeline
//!
//! The running system: sources feed decode-and-attribute workers, which
//! add to the store; a ticker releases held flows, seals and maintains.
//!
//! ```text
//!  files / dirs (followed) ─┐
//!  stdin                    ├─► bounded job queue ─► workers (one per core): a
//!                           │   worker reading a file inflates it and hands
//!                           │   chunks to free workers (bounded chunk queue)
//!  HTTP push, Firehose ─────┘   (caller's thread)      decode (trawl-flowlog)
//!  Kafka (consumer thread) ───── message lines ─────►  (in the consumer's thread)
//!                                                       learn + owner_at (trawl-attrib)
//!  metadata events ─► index                             add_batch + position (trawl-store)
//!                                                        └─► hold (unknown while metadata lags)
//!  ticker: release held (settled / deadline) · seal (watermark, memory, interval) · maintain
//! ```
//!
//! Modules: [`pipeline`] (threads and the public calls), [`worker`] (one
//! chunk: decode → attribute → store), [`source`] (files, streams,
//! payloads), [`chunks`] (whole-line chunks of a stream), `feeder` (which files to
//! read, under which name, from where), [`hold`] (held flows), [`cloud`] (EC2, ECS and Kubernetes inventories as metadata), [`kafka`]
//! (Kafka topics through a consumer group, exactly once), [`metadata_file`] (metadata files applied from
//! their saved positions), [`metadata_log`] (metadata applied, pushes
//! logged, snapshots), [`position`] (file positions in the
//! manifest), [`progress`] (a file's chunks finishing out of order), [`push_log`] (the write-ahead log of pushes), [`stats`] (counters, Prometheus text), [`config`].
//!
//! The crate knows the decoder, the index and the store; it knows nothing
//! of HTTP (trawl-server) or of the command line (the binary).

pub mod chunks;
pub mod cloud;
pub mod config;
mod feeder;
pub mod heartbeats;
pub mod hold;
pub mod kafka;
pub mod kinesis;
pub mod metadata_file;
pub mod metadata_log;
pub mod pipeline;
pub mod position;
pub mod progress;
pub mod push_log;
pub mod source;
pub mod stats;
pub mod worker;

pub use config::PipelineConfig;
pub use kafka::{Container, KafkaMetadataConfig, KafkaSinkConfig, KafkaSourceConfig};
pub use kinesis::KinesisSourceConfig;
pub use pipeline::{Pipeline, PipelineError, now_secs};
pub use position::{FilePosition, FileStat, Fingerprint};
pub use source::{PushReport, list_files};
pub use stats::{PipelineStats, ReleaseReason};
