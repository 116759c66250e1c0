// Shared by the fuzz targets: a sink that checks the decoder's promises.
use trawl_flowlog::{DecodeError, DecodeOptions, FlowRecord, LogFormat, RecordSink, write_json, write_line};

/// Checks each record re-encodes and re-decodes to itself, and counts.
pub struct Checking {
    pub records: u64,
    pub errors: u64,
}

impl RecordSink for Checking {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        self.records += 1;
        let mut line = Vec::new();
        write_line(format, record, &mut line);
        let again = trawl_flowlog::LineDecoder::new(format.clone())
            .decode(&line)
            .expect("a decoded record must re-encode to a decodable line");
        for column in format.columns() {
            assert_eq!(record.column(*column), again.column(*column));
        }
        let mut json = Vec::new();
        write_json(format, record, &mut json);
    }

    fn error(&mut self, error: DecodeError) {
        self.errors += 1;
        let _ = error.to_string();
    }
}

/// Small limits, so the fuzzer reaches them.
#[allow(dead_code)]
pub fn options() -> DecodeOptions {
    DecodeOptions {
        format: None,
        line_bytes_max: 256,
        payload_bytes_max: 64 * 1024,
    }
}
