//! Files and stdin: arbitrary bytes through `decode_reader` (plain text,
//! header lines, limits, JSON envelope streams).
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use trawl_flowlog::{TextDecoder, decode_reader};

fuzz_target!(|data: &[u8]| {
    let mut text = TextDecoder::new("fuzz", &common::options());
    let mut sink = common::Checking { records: 0, errors: 0 };
    decode_reader(data, &mut text, &mut sink);
    assert_eq!(sink.records, text.stats().records);
    assert_eq!(sink.errors, text.stats().errors.total());
});
