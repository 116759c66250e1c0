//! `trawl whois`: who held an IP at a given time. Loads metadata events
//! (JSON lines, or CSV snapshots), optional networks and AWS ranges, and
//! prints one JSON object: the workload fields (`"app": null` when no one
//! held the IP), the interval, and the rule that answered: the object a
//! running trawl answers `GET /api/v1/whois` with (`trawl_server::answer_json`).
//!
//! The files are taken as complete (all the metadata there is), so every
//! answer is settled. Bad lines are reported on stderr with
//! their file and line, counted, and skipped.

use std::fs::File;
use std::io::BufReader;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use trawl_attrib::{
    AttributionIndex, IndexConfig, MetadataEvent, NetworkEntry, parse_time, read_csv_snapshot,
    read_json_lines,
};
use trawl_server::answer_json;

/// Arguments of `trawl whois`.
#[derive(Debug, Args)]
pub struct WhoisArgs {
    /// The address.
    ip: IpAddr,
    /// The time: RFC 3339 (`2026-11-22T10:03:00Z`) or epoch seconds.
    #[arg(long, value_name = "TIME")]
    at: String,
    /// Metadata files: JSON lines of events, or `.csv` snapshots.
    #[arg(long = "metadata", value_name = "FILE", required = true)]
    metadata: Vec<PathBuf>,
    /// A TOML file with `[[networks]]` entries (cidr, name, kind, app,
    /// account, region, az, vpc, subnet), as in the config file.
    #[arg(long, value_name = "FILE")]
    networks: Option<PathBuf>,
    /// AWS's `ip-ranges.json`.
    #[arg(long, value_name = "FILE")]
    ip_ranges: Option<PathBuf>,
}

#[derive(Deserialize)]
struct NetworksFile {
    #[serde(default)]
    networks: Vec<NetworkEntry>,
}

/// Runs `trawl whois`.
pub fn run(args: &WhoisArgs) -> anyhow::Result<ExitCode> {
    let at = parse_time(&args.at).context("--at")?;
    let mut index = AttributionIndex::new(IndexConfig::default());
    let mut errors = 0u64;
    for path in &args.metadata {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("opening {name}"))?;
        let mut events = Vec::new();
        let mut report = |error: trawl_attrib::EventError| {
            errors += 1;
            eprintln!("trawl: {error}");
        };
        if name.ends_with(".csv") {
            events.extend(read_csv_snapshot(file, &name, None, &mut report));
        } else {
            read_json_lines(BufReader::new(file), &name, |e| events.push(e), &mut report);
        }
        apply_all(&mut index, &events, &name, &mut errors);
    }
    index.advance_horizon(i64::MAX);
    if let Some(path) = &args.networks {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: NetworksFile =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        index.add_networks(&file.networks);
    }
    if let Some(path) = &args.ip_ranges {
        let json = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        index.add_aws_ip_ranges(&json, &path.display().to_string())?;
    }
    println!("{}", answer_json(&index, args.ip, at));
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn apply_all(index: &mut AttributionIndex, events: &[MetadataEvent], name: &str, errors: &mut u64) {
    for event in events {
        if let Err(error) = index.apply(event) {
            *errors += 1;
            eprintln!("trawl: {name}: {error}");
        }
    }
}
