//! `trawl demo`: the first thing to run. Generates sample VPC flow logs in
//! memory as S3 delivers them (header line, gzip), decodes them with the
//! same code `trawl parse` uses, and shows a few records, the counts, and
//! the decode rate — nothing to configure, no files left behind.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use flate2::Compression;
use flate2::write::GzEncoder;
use trawl_flowlog::sample::SampleLines;
use trawl_flowlog::{
    DecodeError, DecodeOptions, FlowRecord, LogFormat, RecordSink, TextDecoder, decode_reader,
    write_json,
};

/// Arguments of `trawl demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Records to generate and decode.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Records to print as JSON.
    #[arg(long, default_value_t = 3)]
    show: usize,
}

/// Runs `trawl demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let mut lines = SampleLines::new(2026);
    let mut text = lines.format().header_line().into_bytes();
    text.push(b'\n');
    for _ in 0..args.records {
        lines.write_next(&mut text);
    }
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&text).context("compressing the sample")?;
    let gzip = encoder.finish().context("compressing the sample")?;
    println!(
        "trawl demo: {} sample VPC flow-log records, {:.1} MB of text, {:.1} MB as a .log.gz",
        args.records,
        text.len() as f64 / 1e6,
        gzip.len() as f64 / 1e6
    );

    let mut sink = DemoSink {
        shown: Vec::new(),
        show: args.show,
        bytes: 0,
        errors: 0,
    };
    for (label, input) in [("plain text", &text), ("gzip", &gzip)] {
        let started = Instant::now();
        let mut decoder =
            TextDecoder::new(format!("demo.log ({label})"), &DecodeOptions::default());
        decode_reader(input.as_slice(), &mut decoder, &mut sink);
        let seconds = started.elapsed().as_secs_f64();
        let stats = decoder.stats();
        println!(
            "decoded {label:>10}: {} records ({} NODATA, {} SKIPDATA), {} errors in {:.3} s = {:.2} M records/s",
            stats.records,
            stats.nodata_records,
            stats.skipdata_records,
            stats.errors.total(),
            seconds,
            stats.records as f64 / seconds / 1e6
        );
    }
    println!("first records as `trawl parse` prints them:");
    for record in &sink.shown {
        println!("  {record}");
    }
    let expected = lines.totals();
    println!(
        "sum of bytes: decoded {} per pass, generated {} ({})",
        sink.bytes / 2,
        expected.bytes,
        if sink.bytes / 2 == expected.bytes && sink.errors == 0 {
            "equal"
        } else {
            "DIFFERENT"
        }
    );
    println!(
        "next: `trawl generate --records 100000 -o flows.log.gz` then `trawl parse --stats flows.log.gz`"
    );
    Ok(ExitCode::SUCCESS)
}

struct DemoSink {
    shown: Vec<String>,
    show: usize,
    bytes: u64,
    errors: u64,
}

impl RecordSink for DemoSink {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        self.bytes += record.bytes().unwrap_or(0);
        if self.shown.len() < self.show {
            let mut json = Vec::new();
            write_json(format, record, &mut json);
            self.shown.push(String::from_utf8_lossy(&json).into_owned());
        }
    }

    fn error(&mut self, error: DecodeError) {
        self.errors += 1;
        eprintln!("trawl: {error}");
    }
}
