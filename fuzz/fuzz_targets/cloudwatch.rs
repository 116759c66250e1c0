//! CloudWatch Logs subscription payloads: the input is gzip-compressed (as
//! CloudWatch does) and decoded as one Kinesis/Kafka record.
#![no_main]
mod common;

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use trawl_flowlog::{TextDecoder, decode_payload};

fuzz_target!(|data: &[u8]| {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to a Vec");
    let payload = encoder.finish().expect("writing to a Vec");
    let mut text = TextDecoder::new("kinesis", &common::options());
    let mut sink = common::Checking { records: 0, errors: 0 };
    decode_payload(&payload, &mut text, &mut sink);
    assert_eq!(sink.records, text.stats().records);
});
