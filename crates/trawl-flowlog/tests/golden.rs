//! Golden tests: every `tests/golden/NAME.log` is decoded (with the format
//! in `NAME.format` when present, else its header line or the default) and
//! the records as JSON lines, the errors, and the counters must equal
//! `NAME.expected` byte for byte. The `aws_*` inputs are the literal example
//! records of AWS's VPC flow-log documentation.
//!
//! To accept new output after a deliberate change:
//! `TRAWL_UPDATE_GOLDEN=1 cargo test -p trawl-flowlog --test golden`, then
//! read the diff.
#![allow(missing_docs, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use trawl_flowlog::{
    DecodeError, DecodeOptions, FlowRecord, LogFormat, RecordSink, TextDecoder, decode_reader,
    write_json,
};

struct Transcript(String);

impl RecordSink for Transcript {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        let mut json = Vec::new();
        write_json(format, record, &mut json);
        self.0.push_str(std::str::from_utf8(&json).unwrap());
        self.0.push('\n');
    }

    fn error(&mut self, error: DecodeError) {
        writeln!(self.0, "error: {error}").unwrap();
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn transcript(input: &Path) -> String {
    let format_path = input.with_extension("format");
    let format = fs::read_to_string(&format_path)
        .ok()
        .map(|spec| LogFormat::parse(&spec).unwrap());
    let options = DecodeOptions {
        format,
        ..DecodeOptions::default()
    };
    let name = input.file_name().unwrap().to_string_lossy().into_owned();
    let mut text = TextDecoder::new(name, &options);
    let mut out = Transcript(String::new());
    decode_reader(fs::File::open(input).unwrap(), &mut text, &mut out);
    let s = text.stats();
    let mut errors: Vec<String> = s
        .errors
        .nonzero()
        .map(|(kind, n)| format!("{}={n}", kind.name()))
        .collect();
    errors.sort();
    writeln!(
        out.0,
        "stats: lines={} records={} nodata={} skipdata={} headers={} blank={} errors=[{}]",
        s.lines,
        s.records,
        s.nodata_records,
        s.skipdata_records,
        s.header_lines,
        s.blank_lines,
        errors.join(" ")
    )
    .unwrap();
    out.0
}

#[test]
fn golden_files_decode_as_expected() {
    let update = std::env::var_os("TRAWL_UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "golden inputs missing: {inputs:?}");
    let mut mismatches = Vec::new();
    for input in &inputs {
        let actual = transcript(input);
        let expected_path = input.with_extension("expected");
        if update {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        if actual != expected {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                input.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_aws_example_decodes_without_error() {
    for entry in fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("aws_") && name.ends_with(".log") {
            let out = transcript(&path);
            assert!(!out.contains("error:"), "{name}: {out}");
            assert!(out.contains("errors=[]"), "{name}: {out}");
        }
    }
}
