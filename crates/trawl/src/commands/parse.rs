//! `trawl parse`: decode flow-log files (plain, gzip, CloudWatch Logs or
//! Firehose JSON) or stdin, print each record as one JSON object per line,
//! or with `--stats` a summary. Bad lines are reported on stderr (the first
//! `--errors-max` of them, each naming file, line, field and text), counted,
//! and skipped; they never stop the run. Exit status: 0 when every line
//! decoded, 1 when some did not, 2 when an input could not be read at all.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use trawl_flowlog::{
    DecodeError, DecodeOptions, DecodeStats, FlowRecord, LINE_BYTES_MAX_DEFAULT, LogFormat,
    RecordSink, TextDecoder, decode_reader, write_json,
};

/// Arguments of `trawl parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Files to decode; `-` reads stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Record format: AWS's `${version} ${srcaddr} …` or the same names
    /// separated by spaces. Without it, each file's header line, else AWS's
    /// default format, decides.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Print a summary (records, errors by kind, bytes, time, rate) as JSON
    /// instead of the records.
    #[arg(long)]
    stats: bool,
    /// How many decode errors to print on stderr; all are counted.
    #[arg(long, default_value_t = 20, value_name = "N")]
    errors_max: u64,
    /// Longest accepted line, in bytes.
    #[arg(long, default_value_t = LINE_BYTES_MAX_DEFAULT, value_name = "BYTES")]
    line_bytes_max: usize,
}

/// Runs `trawl parse`.
pub fn run(args: &ParseArgs) -> anyhow::Result<ExitCode> {
    let format = args
        .log_format
        .as_deref()
        .map(LogFormat::parse)
        .transpose()
        .context("--log-format")?;
    let options = DecodeOptions {
        format,
        line_bytes_max: args.line_bytes_max,
        ..DecodeOptions::default()
    };
    let stdout = io::stdout().lock();
    let mut sink = JsonSink {
        out: BufWriter::with_capacity(1 << 20, stdout),
        write_records: !args.stats,
        line: Vec::with_capacity(1024),
        write_error: None,
        errors_printed: 0,
        errors_max: args.errors_max,
        flow_bytes: 0,
        flow_packets: 0,
    };
    let started = Instant::now();
    let mut total = DecodeStats::default();
    for path in &args.files {
        let stats = decode_path(path, &options, &mut sink)?;
        total.merge(&stats);
    }
    let seconds = started.elapsed().as_secs_f64();
    if args.stats {
        let mut summary = summary_json(&total, args.files.len(), seconds);
        summary["flow_bytes"] = sink.flow_bytes.into();
        summary["flow_packets"] = sink.flow_packets.into();
        writeln!(sink.out, "{summary}").context("writing the summary")?;
    }
    let suppressed = total.errors.total().saturating_sub(sink.errors_printed);
    if suppressed > 0 {
        eprintln!("trawl: {suppressed} more decode errors not shown (--errors-max)");
    }
    match sink.out.flush().err().or(sink.write_error) {
        Some(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            return Err(error).context("writing to stdout");
        }
        _ => {}
    }
    Ok(if total.errors.total() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn decode_path(
    path: &PathBuf,
    options: &DecodeOptions,
    sink: &mut JsonSink<impl Write>,
) -> anyhow::Result<DecodeStats> {
    let name = path.display().to_string();
    let mut text = TextDecoder::new(name.as_str(), options);
    if name == "-" {
        decode_reader(io::stdin().lock(), &mut text, sink);
    } else {
        let file = File::open(path).with_context(|| format!("opening {name}"))?;
        decode_reader(file, &mut text, sink);
    }
    Ok(*text.stats())
}

/// Writes records as JSON lines and prints the first errors.
struct JsonSink<W: Write> {
    out: BufWriter<W>,
    write_records: bool,
    line: Vec<u8>,
    write_error: Option<io::Error>,
    errors_printed: u64,
    errors_max: u64,
    /// Sum of the records' `bytes` fields.
    flow_bytes: u64,
    /// Sum of the records' `packets` fields.
    flow_packets: u64,
}

impl<W: Write> RecordSink for JsonSink<W> {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        self.flow_bytes = self.flow_bytes.wrapping_add(record.bytes().unwrap_or(0));
        self.flow_packets = self
            .flow_packets
            .wrapping_add(record.packets().unwrap_or(0));
        if !self.write_records || self.write_error.is_some() {
            return;
        }
        self.line.clear();
        write_json(format, record, &mut self.line);
        self.line.push(b'\n');
        if let Err(error) = self.out.write_all(&self.line) {
            self.write_error = Some(error);
        }
    }

    fn error(&mut self, error: DecodeError) {
        if self.errors_printed < self.errors_max {
            self.errors_printed += 1;
            eprintln!("trawl: {error}");
        }
    }
}

fn summary_json(stats: &DecodeStats, files: usize, seconds: f64) -> serde_json::Value {
    let errors: serde_json::Map<String, serde_json::Value> = stats
        .errors
        .nonzero()
        .map(|(kind, n)| (kind.name().to_string(), n.into()))
        .collect();
    let rate = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    serde_json::json!({
        "files": files,
        "lines": stats.lines,
        "records": stats.records,
        "nodata_records": stats.nodata_records,
        "skipdata_records": stats.skipdata_records,
        "header_lines": stats.header_lines,
        "blank_lines": stats.blank_lines,
        "errors_total": stats.errors.total(),
        "errors": errors,
        "input_bytes": stats.input_bytes,
        "text_bytes": stats.text_bytes,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "records_per_second": rate(stats.records).round(),
        "text_mb_per_second": (rate(stats.text_bytes) / 1e6 * 10.0).round() / 10.0,
    })
}
