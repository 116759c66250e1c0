//! # trawl-flowlog
//!
//! Decodes AWS VPC flow logs, from every way AWS delivers them, into typed
//! records that borrow from the input. It knows nothing of workloads,
//! storage or the network: bytes and readers in, [`FlowRecord`]s and
//! [`DecodeError`]s out.
//!
//! ## Data flow
//!
//! ```text
//! file / stdin ──► decode_reader ─┐ (plain or gzip, chunked)
//! Kafka record ─┐                 ├─► TextDecoder ──► LineDecoder ──► RecordSink
//! HTTP body    ─┴► decode_payload ┘ (CloudWatch Logs    (header lines,   (one line →
//!                                     gzip JSON, Firehose  limits, counters)  FlowRecord)
//!                                     base64 records)
//! ```
//!
//! ## Using it
//!
//! ```
//! use trawl_flowlog::{DecodeError, DecodeOptions, FlowRecord, LogFormat, RecordSink, TextDecoder, decode_reader};
//!
//! struct Sum { bytes: u64, errors: usize }
//! impl RecordSink for Sum {
//!     fn record(&mut self, record: &FlowRecord<'_>, _: &LogFormat) { self.bytes += record.bytes().unwrap_or(0); }
//!     fn error(&mut self, _error: DecodeError) { self.errors += 1; }
//! }
//!
//! let input = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
//! 2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK
//! 2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 oops 1418530010 1418530070 REJECT OK
//! ";
//! let mut text = TextDecoder::new("example.log", &DecodeOptions::default());
//! let mut sum = Sum { bytes: 0, errors: 0 };
//! decode_reader(input.as_bytes(), &mut text, &mut sum);
//! assert_eq!((sum.bytes, sum.errors), (4249, 1));
//! assert_eq!(text.stats().records, 1);
//! ```
//!
//! ## Rules
//!
//! - Field names: see [`Field`]; JSON keys and SQL columns use
//!   [`Field::column`] (`src_addr`, `log_status`, `pkt_dst_addr`, …).
//! - `-` is null for any field; NODATA and SKIPDATA records are records.
//! - A bad line is one error naming source, line, field and text; decoding
//!   goes on with the next line. Every limit (line length, payload size,
//!   envelope nesting, columns of a header line) is explicit.

mod addr;
mod container;
mod error;
mod field;
mod format;
mod line;
mod record;
pub mod sample;
mod scan;
mod text;
mod write;

pub use container::{GZIP_MAGIC, PayloadSummary, decode_payload, decode_reader, starts_with_json};
pub use error::{DecodeError, ERROR_TEXT_BYTES_MAX, ErrorCounts, ErrorKind, LineError, Position};
pub use field::{Field, ValueType};
pub use format::{COLUMNS_MAX, Column, FormatError, LogFormat};
pub use line::LineDecoder;
pub use record::{
    Action, FlowDirection, FlowRecord, LogStatus, SublocationType, TrafficType, Value,
};
pub use text::{
    DecodeOptions, DecodeStats, LINE_BYTES_MAX_DEFAULT, PAYLOAD_BYTES_MAX_DEFAULT, RecordSink,
    TextDecoder,
};
pub use write::{write_json, write_line};
