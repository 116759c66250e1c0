//! Containers end to end: S3 gzip files (single and multi-member, truncated,
//! corrupt), CloudWatch Logs subscription payloads, Firehose HTTP endpoint
//! requests, Firehose-to-S3 files of concatenated envelopes; and the line
//! errors that must not stop decoding (invalid UTF-8, overlong lines).
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{self, Read, Write};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use trawl_flowlog::{
    DecodeError, DecodeOptions, ErrorKind, FlowRecord, LogFormat, RecordSink, TextDecoder,
    decode_payload, decode_reader, write_json,
};

const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
const LINE_A: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
const LINE_B: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";
const LINE_NODATA: &str =
    "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";

#[derive(Default)]
struct Collect {
    records: Vec<String>,
    errors: Vec<DecodeError>,
}

impl RecordSink for Collect {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        let mut json = Vec::new();
        write_json(format, record, &mut json);
        self.records.push(String::from_utf8(json).unwrap());
    }
    fn error(&mut self, error: DecodeError) {
        self.errors.push(error);
    }
}

impl Collect {
    fn kinds(&self) -> Vec<ErrorKind> {
        self.errors.iter().map(DecodeError::kind).collect()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn read(input: &[u8], options: &DecodeOptions) -> (Collect, TextDecoder) {
    let mut text = TextDecoder::new("input", options);
    let mut sink = Collect::default();
    decode_reader(input, &mut text, &mut sink);
    (sink, text)
}

fn many_lines(n: usize) -> String {
    let mut text = format!("{HEADER}\n");
    for i in 0..n {
        let line = LINE_A.replace(" 4249 ", &format!(" {i} "));
        text.push_str(&line);
        text.push('\n');
    }
    text
}

#[test]
fn gzip_file_decodes_like_plain_text() {
    let text = many_lines(5000);
    let (plain, _) = read(text.as_bytes(), &DecodeOptions::default());
    let (gz, decoder) = read(&gzip(text.as_bytes()), &DecodeOptions::default());
    assert_eq!(plain.records.len(), 5000);
    assert_eq!(plain.records, gz.records);
    assert!(gz.errors.is_empty());
    assert_eq!(decoder.stats().header_lines, 1);
    assert!(decoder.stats().input_bytes < decoder.stats().text_bytes);
}

#[test]
fn multi_member_gzip_decodes_every_member() {
    let mut both = gzip(format!("{HEADER}\n{LINE_A}\n").as_bytes());
    both.extend(gzip(format!("{HEADER}\n{LINE_B}\n").as_bytes()));
    let (sink, decoder) = read(&both, &DecodeOptions::default());
    assert_eq!(sink.records.len(), 2);
    assert_eq!(decoder.stats().header_lines, 2);
}

#[test]
fn truncated_gzip_keeps_every_complete_line_and_reports_once() {
    let text = many_lines(20_000);
    let full = gzip(text.as_bytes());
    let cut = &full[..full.len() * 2 / 3];
    let (sink, _) = read(cut, &DecodeOptions::default());
    assert_eq!(sink.kinds(), [ErrorKind::TruncatedGzip]);
    assert!(sink.records.len() > 1000 && sink.records.len() < 20_000);
    let (all, _) = read(text.as_bytes(), &DecodeOptions::default());
    assert_eq!(sink.records[..], all.records[..sink.records.len()]);
    let message = sink.errors[0].to_string();
    assert!(message.starts_with("input: line "), "{message}");
}

/// Deflate data carries no check until the CRC at the end of its member, so
/// corruption inside a member surfaces as bad lines first; the container
/// error comes once, last, and nothing panics.
#[test]
fn corrupt_gzip_is_reported_not_panicked() {
    let mut data = gzip(many_lines(2000).as_bytes());
    let middle = data.len() / 2;
    for byte in &mut data[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    let (sink, _) = read(&data, &DecodeOptions::default());
    let kinds = sink.kinds();
    let container = |k: &ErrorKind| matches!(k, ErrorKind::CorruptGzip | ErrorKind::TruncatedGzip);
    assert!(kinds.last().is_some_and(container), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| container(k)).count(), 1);
    assert!(
        sink.records.len() >= 900,
        "records before the damage are kept"
    );
}

fn cloudwatch_payload(message_type: &str, lines: &[&str]) -> Vec<u8> {
    let events: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| serde_json::json!({"id": i.to_string(), "timestamp": 1418530010000u64, "message": line}))
        .collect();
    let body = serde_json::json!({
        "messageType": message_type,
        "owner": "123456789010",
        "logGroup": "vpc-flow-logs",
        "logStream": "eni-1235b8ca123456789-all",
        "subscriptionFilters": ["to-kinesis"],
        "logEvents": events,
    });
    gzip(body.to_string().as_bytes())
}

#[test]
fn cloudwatch_payload_yields_one_record_per_event() {
    let payload = cloudwatch_payload("DATA_MESSAGE", &[LINE_A, "2 garbage", LINE_NODATA]);
    let mut text = TextDecoder::new("kinesis:flows/0", &DecodeOptions::default());
    let mut sink = Collect::default();
    decode_payload(&payload, &mut text, &mut sink);
    assert_eq!(sink.records.len(), 2);
    assert_eq!(sink.kinds(), [ErrorKind::FieldCount]);
    assert!(
        sink.errors[0]
            .to_string()
            .starts_with("kinesis:flows/0: line 2: wrong number of fields"),
        "{}",
        sink.errors[0]
    );
    assert_eq!(text.stats().nodata_records, 1);
}

#[test]
fn cloudwatch_control_message_is_skipped() {
    let payload = cloudwatch_payload(
        "CONTROL_MESSAGE",
        &["CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."],
    );
    let mut text = TextDecoder::new("kinesis", &DecodeOptions::default());
    let mut sink = Collect::default();
    decode_payload(&payload, &mut text, &mut sink);
    assert!(sink.records.is_empty() && sink.errors.is_empty());
}

#[test]
fn firehose_request_decodes_each_record_and_names_bad_ones() {
    let engine = base64::engine::general_purpose::STANDARD;
    let request = serde_json::json!({
        "requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f",
        "timestamp": 1578090901599u64,
        "records": [
            {"data": engine.encode(cloudwatch_payload("DATA_MESSAGE", &[LINE_A, LINE_B]))},
            {"data": engine.encode(format!("{LINE_A}\n{LINE_B}\n"))},
            {"data": "not base64!"},
            {"data": engine.encode(format!("{LINE_A}\n2 x\n"))},
        ],
    });
    let mut text = TextDecoder::new("firehose", &DecodeOptions::default());
    let mut sink = Collect::default();
    let summary = decode_payload(request.to_string().as_bytes(), &mut text, &mut sink);
    assert_eq!(
        summary.firehose_request_id.as_deref(),
        Some("ed4acda5-034f-9f42-bba1-f29aea6d7d8f")
    );
    assert_eq!(summary.firehose_timestamp_ms, Some(1578090901599));
    assert_eq!(sink.records.len(), 5);
    let messages: Vec<String> = sink.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("firehose: record 3, line 1: invalid envelope"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].starts_with("firehose: record 4, line 2: wrong number"),
        "{}",
        messages[1]
    );
}

#[test]
fn firehose_to_s3_file_of_concatenated_envelopes() {
    let mut body = Vec::new();
    for lines in [[LINE_A, LINE_B], [LINE_B, LINE_A]] {
        let payload = cloudwatch_payload("DATA_MESSAGE", &lines);
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(payload.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        body.extend(json);
    }
    let (sink, _) = read(&gzip(&body), &DecodeOptions::default());
    assert_eq!(sink.records.len(), 4);
    assert!(sink.errors.is_empty());
}

#[test]
fn json_that_is_no_envelope_is_an_error() {
    let mut text = TextDecoder::new("push", &DecodeOptions::default());
    let mut sink = Collect::default();
    decode_payload(br#"{"hello": "world"}"#, &mut text, &mut sink);
    decode_payload(br#"{"records": [{"data": 1}]}"#, &mut text, &mut sink);
    assert_eq!(
        sink.kinds(),
        [ErrorKind::InvalidEnvelope, ErrorKind::InvalidEnvelope]
    );
}

#[test]
fn oversized_payload_is_refused() {
    let options = DecodeOptions {
        payload_bytes_max: 64 * 1024,
        ..DecodeOptions::default()
    };
    let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
    let mut text = TextDecoder::new("push", &options);
    let mut sink = Collect::default();
    decode_payload(&bomb, &mut text, &mut sink);
    assert_eq!(sink.kinds(), [ErrorKind::PayloadTooLarge]);
}

#[test]
fn invalid_utf8_is_one_error_and_neighbours_survive() {
    let input = format!(
        "{LINE_A}\n{}\n{LINE_B}\n",
        LINE_A.replace("eni-1235", "eni-\u{fffd}")
    )
    .into_bytes()
    .iter()
    .flat_map(|b| if *b == 0xbd { vec![0xff] } else { vec![*b] })
    .collect::<Vec<u8>>();
    let (sink, _) = read(&input, &DecodeOptions::default());
    assert_eq!(sink.records.len(), 2);
    assert_eq!(sink.kinds(), [ErrorKind::InvalidUtf8]);
    assert!(
        sink.errors[0]
            .to_string()
            .starts_with("input: line 2: field interface_id: invalid UTF-8"),
        "{}",
        sink.errors[0]
    );
}

#[test]
fn overlong_line_is_one_error_across_chunk_boundaries() {
    let options = DecodeOptions {
        line_bytes_max: 4096,
        ..DecodeOptions::default()
    };
    let long = "9".repeat(1_000_000);
    let input = format!("{LINE_A}\n{long}\n{LINE_B}\n");
    let (sink, decoder) = read(input.as_bytes(), &options);
    assert_eq!(sink.records.len(), 2);
    assert_eq!(sink.kinds(), [ErrorKind::LineTooLong]);
    assert_eq!(decoder.stats().lines, 3);
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn read_errors_are_reported() {
    let mut text = TextDecoder::new("broken", &DecodeOptions::default());
    let mut sink = Collect::default();
    decode_reader(Failing, &mut text, &mut sink);
    assert_eq!(sink.kinds(), [ErrorKind::Io]);
    assert!(sink.errors[0].to_string().contains("disk on fire"));
}
