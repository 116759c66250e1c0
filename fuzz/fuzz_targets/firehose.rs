//! Kinesis Data Firehose HTTP endpoint request bodies (and any other payload
//! `decode_payload` auto-detects), as received.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use trawl_flowlog::{TextDecoder, decode_payload};

fuzz_target!(|data: &[u8]| {
    let mut text = TextDecoder::new("firehose", &common::options());
    let mut sink = common::Checking { records: 0, errors: 0 };
    decode_payload(data, &mut text, &mut sink);
    assert_eq!(sink.records, text.stats().records);
});
