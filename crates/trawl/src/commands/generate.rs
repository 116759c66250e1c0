//! `trawl generate`: a seeded synthetic estate (trawl-gen) and its flow
//! logs. With `--out-dir`: files as AWS delivers them to S3 (one gzip file
//! per account, region and 5 minutes), `metadata.jsonl`, `ip-ranges.json`
//! and `truth.json`. Otherwise: flow-log lines (header first) to a file or
//! stdout and metadata events to `--metadata-out`, optionally paced at
//! wall-clock time (`--live`). A JSON summary of what was written goes to
//! stderr, so that a decode of the output can be checked against it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use flate2::Compression;
use flate2::write::GzEncoder;
use trawl_attrib::parse_time;
use trawl_flowlog::LogFormat;
use trawl_gen::files::Layout;
use trawl_gen::{
    Cardinality, Estate, EstateConfig, TickOutput, Truth, default_format, v5_all_fields_format,
    write_estate,
};

/// Arguments of `trawl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Write S3-layout files, metadata.jsonl, ip-ranges.json and truth.json here.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Without --out-dir: the flow-log file (stdout when absent or `-`;
    /// gzip when it ends in `.gz` or with --gzip).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Without --out-dir: write metadata events (JSON lines) here.
    #[arg(long, value_name = "FILE")]
    metadata_out: Option<PathBuf>,
    /// Compress the --output stream.
    #[arg(long)]
    gzip: bool,
    /// With --out-dir: plain `.log` files instead of `.log.gz`.
    #[arg(long)]
    plain: bool,
    /// With --out-dir: every file directly in the directory.
    #[arg(long)]
    flat: bool,
    /// Leave out the header line.
    #[arg(long)]
    no_header: bool,
    /// Applications in the estate (2 to 1,000,000).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    apps: u64,
    /// Simulated seconds (0 with --live: until stopped).
    #[arg(long, default_value_t = 3600)]
    duration_secs: u32,
    /// Flow records per simulated second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Share of instances replaced per hour (IPs then pass to other apps).
    #[arg(long, default_value_t = 1.0)]
    churn: f64,
    /// Seed: the same arguments write the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First second, RFC 3339 or epoch seconds (default 2026-11-22T00:00:00Z; now with --live).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Stop after at least this many records (with --out-dir: after the
    /// first whole second past `records / rate` seconds).
    #[arg(long)]
    records: Option<u64>,
    /// Pace at wall-clock time.
    #[arg(long)]
    live: bool,
    /// How many distinct rollup rows the traffic makes: `low` (a few
    /// dependencies per app, one port each), `mixed` (a realistic spread),
    /// `high` (random app pairs on random service ports: rollups barely
    /// compress).
    #[arg(long, default_value = "low", value_parser = clap::value_parser!(Cardinality))]
    cardinality: Cardinality,
    /// Fields of every line: `default` (22 fields of version 5), `v5-all`
    /// (all 29 fields of version 5, in AWS's order), or a field list in
    /// AWS's names (`'version srcaddr dstaddr bytes start'`).
    #[arg(long, default_value = "default", value_name = "FORMAT")]
    log_format: String,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl GenerateArgs {
    fn estate_config(&self) -> anyhow::Result<EstateConfig> {
        let mut config = EstateConfig {
            seed: self.seed,
            apps: self.apps as usize,
            records_per_sec: self.rate,
            churn_per_hour: self.churn,
            cardinality: self.cardinality,
            format: match self.log_format.as_str() {
                "default" => default_format(),
                "v5-all" => v5_all_fields_format(),
                fields => LogFormat::parse(fields).context("--log-format")?,
            },
            ..EstateConfig::default()
        };
        if let Some(start) = &self.start {
            config.start_secs = parse_time(start).context("--start")?;
        } else if self.live {
            config.start_secs = now_secs();
        }
        Ok(config)
    }
}

fn summary(truth: &Truth, output: &str) -> String {
    serde_json::json!({
        "output": output,
        "records": truth.records,
        "bytes": truth.bytes,
        "packets": truth.packets,
        "rejected_records": truth.rejected_records,
        "events": truth.events,
        "app_pairs": truth.app_pairs.len(),
    })
    .to_string()
}

/// Runs `trawl generate`.
pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let config = args.estate_config()?;
    if let Some(dir) = &args.out_dir {
        let layout = Layout {
            gzip: !args.plain,
            flat: args.flat,
        };
        // The files are written a second at a time at `rate` records/s
        // (`--records` was ignored here: a 2 M-record estate came out 27 M).
        let duration_secs = match args.records {
            Some(records) => {
                let secs = records.div_ceil(u64::from(args.rate.max(1)));
                args.duration_secs
                    .min(u32::try_from(secs).unwrap_or(u32::MAX))
            }
            None => args.duration_secs,
        };
        let (estate, report) = write_estate(config, duration_secs, dir, layout)?;
        eprintln!("{}", summary(&estate.truth(), &dir.display().to_string()));
        eprintln!(
            "trawl: {} files, {} metadata events",
            report.files, report.events
        );
        return Ok(ExitCode::SUCCESS);
    }
    let to_file = args.output.as_ref().filter(|p| p.as_os_str() != "-");
    let name = to_file.map_or("stdout".to_string(), |p| p.display().to_string());
    let sink: Box<dyn Write> = match to_file {
        Some(path) => Box::new(File::create(path).with_context(|| format!("creating {name}"))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out: Box<dyn Write> = if args.gzip || name.ends_with(".gz") {
        Box::new(GzEncoder::new(
            BufWriter::with_capacity(1 << 20, sink),
            Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, sink))
    };
    let mut metadata = match &args.metadata_out {
        Some(path) => Some(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let truth = stream(args, config, &mut out, metadata.as_mut())?;
    out.flush()?;
    drop(out);
    if let Some(mut metadata) = metadata {
        metadata.flush()?;
    }
    eprintln!("{}", summary(&truth, &name));
    Ok(ExitCode::SUCCESS)
}

fn stream(
    args: &GenerateArgs,
    config: EstateConfig,
    out: &mut dyn Write,
    mut metadata: Option<&mut BufWriter<File>>,
) -> anyhow::Result<Truth> {
    let mut estate = Estate::new(config);
    if !args.no_header {
        writeln!(out, "{}", estate.format().header_line())?;
    }
    let mut tick = TickOutput::default();
    let mut records = 0;
    let mut second = 0;
    while (args.duration_secs == 0 && args.live) || second < args.duration_secs {
        if args.live {
            let wait = estate.now() - now_secs();
            if wait > 0 {
                out.flush()?;
                std::thread::sleep(Duration::from_secs(wait as u64));
            }
        }
        tick.clear();
        estate.tick(&mut tick);
        for lines in &tick.lines {
            out.write_all(lines)?;
        }
        if let Some(metadata) = metadata.as_deref_mut() {
            for event in &tick.events {
                serde_json::to_writer(&mut *metadata, event)?;
                metadata.write_all(b"\n")?;
            }
        }
        records += tick.records;
        second += 1;
        if args.records.is_some_and(|n| records >= n) {
            break;
        }
    }
    Ok(estate.truth())
}
