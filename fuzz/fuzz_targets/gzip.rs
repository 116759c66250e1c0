//! S3 `.log.gz` files: arbitrary bytes behind the gzip magic, so every input
//! exercises the gzip container (headers, deflate, truncation, CRC).
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use trawl_flowlog::{TextDecoder, decode_reader};

fuzz_target!(|data: &[u8]| {
    let mut input = vec![0x1f, 0x8b];
    input.extend_from_slice(data);
    let mut text = TextDecoder::new("fuzz.log.gz", &common::options());
    let mut sink = common::Checking { records: 0, errors: 0 };
    decode_reader(input.as_slice(), &mut text, &mut sink);
    assert_eq!(sink.records, text.stats().records);
});
