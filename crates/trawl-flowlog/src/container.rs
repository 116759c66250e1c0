//! Containers: the ways AWS delivers record lines, unwrapped down to lines
//! for a [`TextDecoder`].
//!
//! - **Streams** ([`decode_reader`]): files and stdin, plain text or gzip
//!   (S3 delivery, `.log.gz`; multi-member streams decode whole), detected by
//!   the gzip magic bytes. Text is decoded in bounded chunks, so a file of any
//!   size runs in constant memory. A stream whose text starts with `{` holds
//!   concatenated JSON envelopes (Firehose → S3 of CloudWatch Logs data) and
//!   is decoded as such, up to the payload limit.
//! - **Payloads** ([`decode_payload`]): one message as a Kafka or Kinesis
//!   record or an HTTP body carries it: a CloudWatch Logs subscription payload
//!   (gzip JSON with `logEvents`; `CONTROL_MESSAGE`s are skipped), a Kinesis
//!   Data Firehose HTTP endpoint request (JSON with base64 `records`, each of
//!   which is itself a payload), or plain text, gzip or not.
//!
//! Damage to a container (truncated or corrupt gzip, JSON that is not an
//! envelope) is reported once and ends that container; every complete line
//! before it has been delivered, and the incomplete line at the break is
//! dropped rather than decoded from half its bytes.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read};

use base64::Engine;
use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;

use crate::error::ErrorKind;
use crate::record::FlowRecord;
use crate::text::{RecordSink, TextDecoder};

/// Bytes read from a stream at a time.
const CHUNK_BYTES: usize = 256 * 1024;

/// Most levels of envelope inside envelope (Firehose → CloudWatch → text is 2).
const NESTING_MAX: u8 = 3;

/// The first bytes of every gzip member: how gzip is told from text.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decodes a file or stdin: plain text or gzip, record lines or JSON envelopes.
/// Read errors are reported through `sink` and end the stream.
pub fn decode_reader(reader: impl Read, text: &mut TextDecoder, sink: &mut impl RecordSink) {
    let mut counted = BufReader::with_capacity(
        CHUNK_BYTES,
        Counting {
            inner: reader,
            bytes: 0,
        },
    );
    let is_gzip = match counted.fill_buf() {
        Ok(head) => head.starts_with(&GZIP_MAGIC),
        Err(error) => {
            text.container_error(ErrorKind::Io, error.to_string().as_bytes(), sink);
            return;
        }
    };
    if is_gzip {
        let mut gzip = MultiGzDecoder::new(counted);
        decode_text_stream(&mut gzip, true, text, sink);
        text.add_input_bytes(gzip.get_ref().get_ref().bytes);
    } else {
        decode_text_stream(&mut counted, false, text, sink);
        text.add_input_bytes(counted.get_ref().bytes);
    }
}

/// Counts the bytes read through it (compressed size for gzip files).
struct Counting<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

fn decode_text_stream(
    reader: &mut impl Read,
    is_gzip: bool,
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
) {
    let mut buffer = vec![0u8; CHUNK_BYTES.max(2 * text.line_bytes_max() + 2)];
    let mut filled = 0;
    let mut first = true;
    loop {
        let read = match read_retrying(reader, &mut buffer[filled..]) {
            Ok(read) => read,
            Err(error) => {
                let kind = read_error_kind(&error, is_gzip);
                text.container_error(kind, error.to_string().as_bytes(), sink);
                return;
            }
        };
        filled += read;
        if first && filled > 0 {
            first = false;
            if starts_with_json(&buffer[..filled]) {
                return decode_envelope_stream(reader, buffer, filled, text, sink);
            }
        }
        let at_end = read == 0;
        let consumed = text.decode_chunk(&buffer[..filled], at_end, sink);
        if at_end {
            return;
        }
        buffer.copy_within(consumed..filled, 0);
        filled -= consumed;
        // decode_chunk leaves at most one line's worth unconsumed, so the
        // next read always has room (a zero-byte read means end of stream).
        debug_assert!(filled <= text.line_bytes_max() + 1 && filled < buffer.len());
    }
}

fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn read_error_kind(error: &io::Error, is_gzip: bool) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::UnexpectedEof if is_gzip => ErrorKind::TruncatedGzip,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData if is_gzip => {
            ErrorKind::CorruptGzip
        }
        _ => ErrorKind::Io,
    }
}

/// Whether the first byte of `bytes` that is not white space is `{`: JSON
/// envelopes, not record lines.
pub fn starts_with_json(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads the rest of a stream of concatenated JSON envelopes (bounded) and decodes them.
fn decode_envelope_stream(
    reader: &mut impl Read,
    mut buffer: Vec<u8>,
    filled: usize,
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
) {
    buffer.truncate(filled);
    let limit = text.payload_bytes_max();
    let room = (limit + 1).saturating_sub(buffer.len()) as u64;
    if let Err(error) = reader.take(room).read_to_end(&mut buffer) {
        text.container_error(ErrorKind::Io, error.to_string().as_bytes(), sink);
        return;
    }
    if buffer.len() > limit {
        let found = format!("more than {limit} bytes of JSON envelopes");
        text.container_error(ErrorKind::PayloadTooLarge, found.as_bytes(), sink);
        return;
    }
    decode_json_envelopes(&buffer, 0, text, sink, &mut PayloadSummary::default());
}

/// What [`decode_payload`] learned about the payload itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadSummary {
    /// The Firehose `requestId`, when the payload is a Firehose request
    /// (its HTTP response must echo it).
    pub firehose_request_id: Option<String>,
    /// The Firehose request `timestamp` (milliseconds), when present.
    pub firehose_timestamp_ms: Option<i64>,
    /// JSON envelopes (Firehose requests and CloudWatch payloads) decoded.
    pub json_envelopes: u64,
}

/// Decodes one message: a CloudWatch Logs subscription payload, a Firehose
/// HTTP endpoint request, or record lines, each gzip-compressed or not.
pub fn decode_payload(
    payload: &[u8],
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
) -> PayloadSummary {
    text.add_input_bytes(payload.len() as u64);
    let mut summary = PayloadSummary::default();
    decode_nested(payload, 0, text, sink, &mut summary);
    summary
}

fn decode_nested(
    payload: &[u8],
    depth: u8,
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
    summary: &mut PayloadSummary,
) {
    if depth > NESTING_MAX {
        text.container_error(
            ErrorKind::InvalidEnvelope,
            b"envelopes nested too deep",
            sink,
        );
        return;
    }
    if payload.starts_with(&GZIP_MAGIC) {
        if let Some(inflated) = gunzip_bounded(payload, text, sink) {
            decode_nested(&inflated, depth + 1, text, sink, summary);
        }
    } else if starts_with_json(payload) {
        decode_json_envelopes(payload, depth, text, sink, summary);
    } else {
        text.decode_chunk(payload, true, sink);
    }
}

/// Inflates a whole gzip payload, refusing more than the payload limit.
fn gunzip_bounded(
    payload: &[u8],
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
) -> Option<Vec<u8>> {
    let limit = text.payload_bytes_max();
    let mut inflated = Vec::with_capacity(payload.len().saturating_mul(4).min(limit));
    let result = MultiGzDecoder::new(payload)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated);
    if let Err(error) = result {
        let kind = read_error_kind(&error, true);
        text.container_error(kind, error.to_string().as_bytes(), sink);
        return None;
    }
    if inflated.len() > limit {
        let found = format!("gzip payload inflates past {limit} bytes");
        text.container_error(ErrorKind::PayloadTooLarge, found.as_bytes(), sink);
        return None;
    }
    Some(inflated)
}

/// The fields of CloudWatch Logs subscription payloads and Firehose HTTP
/// endpoint requests; one shape reads both.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "messageType", default)]
    message_type: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents", borrow, default)]
    log_events: Option<Vec<LogEvent<'a>>>,
    #[serde(borrow, default)]
    records: Option<Vec<FirehoseRecord<'a>>>,
    #[serde(rename = "requestId", default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct FirehoseRecord<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// Decodes one or more concatenated JSON envelopes.
fn decode_json_envelopes(
    json: &[u8],
    depth: u8,
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
    summary: &mut PayloadSummary,
) {
    for envelope in serde_json::Deserializer::from_slice(json).into_iter::<Envelope<'_>>() {
        match envelope {
            Ok(envelope) => {
                summary.json_envelopes += 1;
                decode_envelope(envelope, depth, text, sink, summary);
            }
            Err(error) => {
                text.container_error(
                    ErrorKind::InvalidEnvelope,
                    error.to_string().as_bytes(),
                    sink,
                );
                break;
            }
        }
    }
}

fn decode_envelope(
    envelope: Envelope<'_>,
    depth: u8,
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
    summary: &mut PayloadSummary,
) {
    if let Some(records) = envelope.records {
        summary.firehose_request_id = envelope.request_id.map(Cow::into_owned);
        summary.firehose_timestamp_ms = envelope.timestamp;
        return decode_firehose_records(&records, depth, text, sink, summary);
    }
    match envelope.message_type.as_deref() {
        Some("CONTROL_MESSAGE") => {}
        Some("DATA_MESSAGE") | None if envelope.log_events.is_some() => {
            text.restart_lines();
            let mut record = FlowRecord::new();
            for event in envelope.log_events.iter().flatten() {
                let line = event.message.trim_end_matches(['\n', '\r']);
                text.decode_text_line(line, &mut record, sink);
            }
        }
        other => {
            let found = format!(
                "expected a CloudWatch Logs payload (messageType, logEvents) or a Firehose request (records), found messageType {other:?}"
            );
            text.container_error(ErrorKind::InvalidEnvelope, found.as_bytes(), sink);
        }
    }
}

fn decode_firehose_records(
    records: &[FirehoseRecord<'_>],
    depth: u8,
    text: &mut TextDecoder,
    sink: &mut impl RecordSink,
    summary: &mut PayloadSummary,
) {
    let engine = &base64::engine::general_purpose::STANDARD;
    for (index, record) in records.iter().enumerate() {
        text.begin_record(Some(index as u64 + 1));
        if base64::decoded_len_estimate(record.data.len()) > text.payload_bytes_max() {
            let found = format!("record data of {} base64 bytes", record.data.len());
            text.container_error(ErrorKind::PayloadTooLarge, found.as_bytes(), sink);
            continue;
        }
        match engine.decode(record.data.as_bytes()) {
            Ok(data) => decode_nested(&data, depth + 1, text, sink, summary),
            Err(error) => {
                let found = format!("record data is not base64: {error}");
                text.container_error(ErrorKind::InvalidEnvelope, found.as_bytes(), sink);
            }
        }
    }
    text.begin_record(None);
}
