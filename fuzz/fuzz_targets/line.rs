//! The line decoder on arbitrary bytes, in the default format or every field.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use trawl_flowlog::{Field, LineDecoder, LogFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, line)) = data.split_first() else { return };
    let format = if selector & 1 == 0 {
        LogFormat::default()
    } else {
        LogFormat::from_fields(Field::ALL).expect("every field once is a valid format")
    };
    let decoder = LineDecoder::new(format.clone());
    let mut sink = common::Checking { records: 0, errors: 0 };
    if let Ok(record) = decoder.decode(line) {
        trawl_flowlog::RecordSink::record(&mut sink, &record, &format);
    }
    if let Ok(text) = std::str::from_utf8(line) {
        let mut record = trawl_flowlog::FlowRecord::new();
        let by_str = decoder.decode_str_into(text, &mut record).is_ok();
        assert_eq!(by_str, decoder.decode(line).is_ok());
    }
});
