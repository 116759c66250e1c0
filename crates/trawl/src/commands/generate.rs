//! `trawl generate`: write deterministic sample flow logs as AWS delivers
//! them to S3 (header line, default format, optionally gzip), and print
//! what was written (records, sums of bytes and packets) as JSON on stderr,
//! so that a decode of the output can be checked against it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use flate2::Compression;
use flate2::write::GzEncoder;
use trawl_flowlog::sample::{SampleLines, SampleTotals};

/// Arguments of `trawl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of records to write.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Seed: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file; stdout when absent or `-`.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Compress with gzip (implied by an output name ending in `.gz`).
    #[arg(long)]
    gzip: bool,
    /// Leave out the header line S3 delivery writes.
    #[arg(long)]
    no_header: bool,
}

/// Runs `trawl generate`.
pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let to_file = args.output.as_ref().filter(|p| p.as_os_str() != "-");
    let name = to_file.map_or("stdout".to_string(), |p| p.display().to_string());
    let sink: Box<dyn Write> = match to_file {
        Some(path) => Box::new(File::create(path).with_context(|| format!("creating {name}"))?),
        None => Box::new(io::stdout().lock()),
    };
    let gzip = args.gzip || name.ends_with(".gz");
    let totals = if gzip {
        let mut encoder = GzEncoder::new(sink, Compression::fast());
        let totals = write_lines(args, &mut encoder)?;
        encoder.finish()?.flush()?;
        totals
    } else {
        let mut out = sink;
        let totals = write_lines(args, &mut out)?;
        out.flush()?;
        totals
    };
    eprintln!(
        "{}",
        serde_json::json!({
            "output": name,
            "records": totals.records,
            "nodata_records": totals.nodata_records,
            "skipdata_records": totals.skipdata_records,
            "rejected_records": totals.rejected_records,
            "flow_bytes": totals.bytes,
            "flow_packets": totals.packets,
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn write_lines(args: &GenerateArgs, out: &mut impl Write) -> anyhow::Result<SampleTotals> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut lines = SampleLines::new(args.seed);
    if !args.no_header {
        writeln!(out, "{}", lines.format().header_line())?;
    }
    let mut buffer = Vec::with_capacity(1 << 16);
    for _ in 0..args.records {
        lines.write_next(&mut buffer);
        if buffer.len() >= 1 << 15 {
            out.write_all(&buffer).context("writing sample lines")?;
            buffer.clear();
        }
    }
    out.write_all(&buffer).context("writing sample lines")?;
    out.flush()?;
    Ok(*lines.totals())
}
