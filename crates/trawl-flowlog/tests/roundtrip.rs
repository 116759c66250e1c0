//! Property tests. Round trip: a random record in a random custom format
//! (any subset of AWS's fields, in any order) is written as AWS writes it,
//! decoded back, and must be equal — through the line decoder alone and
//! through a gzip S3 file with its header line. Robustness: arbitrary bytes
//! through every container never panic, and every line is accounted for.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use proptest::sample::subsequence;
use trawl_flowlog::{
    Action, DecodeError, DecodeOptions, Field, FlowDirection, FlowRecord, LineDecoder, LogFormat,
    LogStatus, RecordSink, SublocationType, TextDecoder, TrafficType, Value, ValueType,
    decode_payload, decode_reader, write_json, write_line,
};

/// An owned value, so strategies can produce records that outlive them.
#[derive(Debug, Clone)]
enum Owned {
    Null,
    Int(u64),
    Addr(IpAddr),
    Str(String),
    Keyword(Value<'static>),
}

fn value_strategy(value_type: ValueType) -> BoxedStrategy<Owned> {
    let present = match value_type {
        ValueType::Int { max } => prop_oneof![0..=max.min(99), 0..=max, Just(max)]
            .prop_map(Owned::Int)
            .boxed(),
        ValueType::Addr => prop_oneof![
            any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        ]
        .prop_map(Owned::Addr)
        .boxed(),
        ValueType::Str => "[A-Za-z0-9:/._+=-]{1,40}"
            .prop_filter("`-` alone means null", |s| s != "-")
            .prop_map(Owned::Str)
            .boxed(),
        ValueType::Action => keyword(Action::ALL, Value::Action),
        ValueType::LogStatus => keyword(LogStatus::ALL, Value::LogStatus),
        ValueType::FlowDirection => keyword(FlowDirection::ALL, Value::FlowDirection),
        ValueType::TrafficType => keyword(TrafficType::ALL, Value::TrafficType),
        ValueType::SublocationType => keyword(SublocationType::ALL, Value::SublocationType),
    };
    prop_oneof![1 => Just(Owned::Null), 6 => present].boxed()
}

fn keyword<T: Copy + std::fmt::Debug + 'static>(
    all: &'static [T],
    wrap: fn(T) -> Value<'static>,
) -> BoxedStrategy<Owned> {
    proptest::sample::select(all)
        .prop_map(move |k| Owned::Keyword(wrap(k)))
        .boxed()
}

/// A random format and a few records of it.
fn format_and_records() -> impl Strategy<Value = (Vec<Field>, Vec<Vec<Owned>>)> {
    subsequence(Field::ALL.to_vec(), 1..=Field::COUNT)
        .prop_shuffle()
        .prop_flat_map(|fields| {
            let row: Vec<BoxedStrategy<Owned>> = fields
                .iter()
                .map(|f| value_strategy(f.value_type()))
                .collect();
            (Just(fields), proptest::collection::vec(row, 1..8))
        })
}

fn record_of<'a>(fields: &[Field], values: &'a [Owned]) -> FlowRecord<'a> {
    let mut record = FlowRecord::new();
    for (field, value) in fields.iter().zip(values) {
        let value = match value {
            Owned::Null => Value::Null,
            Owned::Int(v) => Value::Int(*v),
            Owned::Addr(a) => Value::Addr(*a),
            Owned::Str(s) => Value::Str(s),
            Owned::Keyword(k) => *k,
        };
        record.set(*field, value);
    }
    record
}

struct Json(Vec<String>, Vec<DecodeError>);

impl RecordSink for Json {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        let mut out = Vec::new();
        write_json(format, record, &mut out);
        self.0.push(String::from_utf8(out).unwrap());
    }
    fn error(&mut self, error: DecodeError) {
        self.1.push(error);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_record_in_any_format_round_trips((fields, rows) in format_and_records()) {
        let format = LogFormat::from_fields(&fields).unwrap();
        let decoder = LineDecoder::new(format.clone());
        for values in &rows {
            let record = record_of(&fields, values);
            let mut line = Vec::new();
            write_line(&format, &record, &mut line);
            let decoded = decoder.decode(&line);
            prop_assert_eq!(decoded.as_ref(), Ok(&record), "line {:?}", String::from_utf8_lossy(&line));
        }
    }

    #[test]
    fn gzip_s3_file_round_trips((fields, rows) in format_and_records()) {
        let format = LogFormat::from_fields(&fields).unwrap();
        let mut text = format.header_line().into_bytes();
        text.push(b'\n');
        let mut expected = Vec::new();
        for values in &rows {
            let record = record_of(&fields, values);
            write_line(&format, &record, &mut text);
            text.push(b'\n');
            let mut json = Vec::new();
            write_json(&format, &record, &mut json);
            expected.push(String::from_utf8(json).unwrap());
        }
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&text).unwrap();
        let gz = encoder.finish().unwrap();
        let mut decoder = TextDecoder::new("prop.log.gz", &DecodeOptions::default());
        let mut sink = Json(Vec::new(), Vec::new());
        decode_reader(gz.as_slice(), &mut decoder, &mut sink);
        prop_assert!(sink.1.is_empty(), "{:?}", sink.1);
        prop_assert_eq!(sink.0, expected);
    }
}

/// Line-level errors: each stands for exactly one line.
fn line_errors(stats: &trawl_flowlog::DecodeStats) -> u64 {
    stats
        .errors
        .nonzero()
        .filter(|(kind, _)| kind.is_line_error())
        .map(|(_, n)| n)
        .sum()
}

fn mostly_flow_text() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"2".to_vec()),
        Just(b"-".to_vec()),
        Just(b"ACCEPT".to_vec()),
        Just(b"OK".to_vec()),
        Just(b"10.0.0.1".to_vec()),
        Just(b"version".to_vec()),
        Just(b"srcaddr".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"{".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(token, 0..64).prop_map(|tokens| tokens.join(&b' '))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_streams_never_panic_and_every_line_is_accounted_for(
        bytes in prop_oneof![mostly_flow_text(), proptest::collection::vec(any::<u8>(), 0..512)],
        line_bytes_max in 8usize..128,
    ) {
        let options = DecodeOptions { line_bytes_max, ..DecodeOptions::default() };
        let mut decoder = TextDecoder::new("fuzz", &options);
        let mut sink = Json(Vec::new(), Vec::new());
        decode_reader(bytes.as_slice(), &mut decoder, &mut sink);
        let s = decoder.stats();
        if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_none_or(|b| *b != b'{') {
            prop_assert_eq!(s.lines, s.records + s.header_lines + s.blank_lines + line_errors(s));
        }
        prop_assert_eq!(sink.0.len() as u64, s.records);
        prop_assert_eq!(sink.1.len() as u64, s.errors.total());
    }

    #[test]
    fn arbitrary_payloads_never_panic(
        bytes in prop_oneof![
            mostly_flow_text(),
            proptest::collection::vec(any::<u8>(), 0..512),
            "[{}\\[\\]\":,a-z0-9 ]{0,200}".prop_map(String::into_bytes),
        ],
    ) {
        let options = DecodeOptions { payload_bytes_max: 4096, ..DecodeOptions::default() };
        let mut decoder = TextDecoder::new("fuzz", &options);
        let mut sink = Json(Vec::new(), Vec::new());
        decode_payload(&bytes, &mut decoder, &mut sink);
        prop_assert_eq!(sink.0.len() as u64, decoder.stats().records);
    }
}
