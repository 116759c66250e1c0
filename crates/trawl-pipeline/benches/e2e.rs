//! End-to-end pipeline bench: gzip flow-log files -> decode -> attribute ->
//! roll up -> sealed, on every core, against DuckDB's batch form of the same
//! job on the same files.
//!
//! The matrix (issue 14): two estates x two inputs x detail on and off.
//!
//! - estates: `low`, the generator's default (22 fields, a few dependencies
//!   per app: rollups compress well), and `high`, the adversarial one (all 29
//!   fields of version 5 with a header line, 3,000 apps, random app pairs on
//!   random service ports: a minute's `flows_1m` rows are nearly as many as
//!   its flows);
//! - inputs: `many` files as S3 delivers them (one per account, region and
//!   5 minutes), or the same lines in `one` gzip file;
//! - the `flows` detail table on (the default) or off.
//!
//! Each run is a child process (this binary with `--child`), so that its
//! peak RSS and CPU time are its own. Reported per run: flows/s, cores used
//! (user + system CPU time over wall time while ingesting), peak RSS; and
//! per estate and input DuckDB's time (`bench/duckdb_e2e.py`, 2 threads,
//! from `target/peer-venv`; see the README) and trawl's speed over it.
//!
//! `TRAWL_E2E_FLOWS` sets the flows per estate (default 2 M);
//! `TRAWL_E2E_SHARDS` the store's open shards (default: one per core; 1
//! makes every writer wait for the one shard, as before issue 14). Inputs are
//! generated once into `target/bench-e2e-{estate}-{flows}` and reused.
//! Arguments filter the runs by label words (`cargo bench --bench e2e --
//! high off`). Run: `cargo bench -p trawl-pipeline --bench e2e`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use trawl_attrib::AttributionIndex;
use trawl_gen::files::Layout;
use trawl_gen::{Cardinality, EstateConfig, Truth, v5_all_fields_format, write_estate};
use trawl_pipeline::{Pipeline, PipelineConfig};
use trawl_store::{DetailSpec, Store, StoreConfig};

const ESTATES: [&str; 2] = ["low", "high"];
const INPUTS: [&str; 2] = ["many", "one"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../../target".into()))
}

fn estate_config(estate: &str) -> EstateConfig {
    let low = EstateConfig {
        records_per_sec: 20_000,
        ..EstateConfig::default()
    };
    match estate {
        "high" => EstateConfig {
            apps: 3000,
            cardinality: Cardinality::High,
            format: v5_all_fields_format(),
            ..low
        },
        _ => low,
    }
}

/// The generated estate: S3-layout files under `dir`, and the same lines
/// (one header) in `one/flows.log.gz`.
struct Inputs {
    dir: PathBuf,
    one: PathBuf,
    truth: Truth,
}

fn inputs(estate: &str, flows: u64) -> Inputs {
    let dir = target_dir().join(format!("bench-e2e-{estate}-{flows}"));
    let truth_path = dir.join("truth.json");
    let one = dir.with_extension("one").join("flows.log.gz");
    if !truth_path.exists() || !one.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let config = estate_config(estate);
        let started = Instant::now();
        let secs = (flows / u64::from(config.records_per_sec)).max(1) as u32;
        let layout = Layout {
            gzip: true,
            flat: false,
        };
        write_estate(config, secs, &dir, layout).expect("generating the bench input");
        write_one_file(&dir, &one);
        eprintln!(
            "generated the {estate} estate ({secs} s) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let truth = serde_json::from_slice(&std::fs::read(&truth_path).expect("truth")).expect("truth");
    Inputs { dir, one, truth }
}

/// Every flow-log file under `dir`, in name order.
fn flow_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = trawl_pipeline::list_files(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".log.gz"))
        .collect();
    files.sort();
    files
}

/// Concatenates the lines of every file (the first header only) into one
/// gzip file, as `zcat | gzip` would.
fn write_one_file(dir: &Path, one: &Path) {
    std::fs::create_dir_all(one.parent().expect("a parent")).expect("one-file dir");
    let file = std::fs::File::create(one).expect("one file");
    let mut out = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
    let mut header_written = false;
    for path in flow_files(dir) {
        let reader = BufReader::new(MultiGzDecoder::new(std::fs::File::open(&path).expect("in")));
        for line in reader.split(b'\n') {
            let line = line.expect("gzip");
            if line.starts_with(b"version ") {
                if header_written {
                    continue;
                }
                header_written = true;
            }
            out.write_all(&line).expect("write");
            out.write_all(b"\n").expect("write");
        }
    }
    out.finish().expect("finish").flush().expect("flush");
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// User plus system CPU time of this process so far (seconds), from
/// `/proc/self/stat` (fields 14 and 15, in ticks of USER_HZ: 100 on Linux).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name, field 3 is at index 0: utime (14) and stime (15).
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// One run, in this (child) process; prints one JSON line.
fn child(estate: &str, input: &str, detail: bool) {
    let flows = env_u64("TRAWL_E2E_FLOWS", 2_000_000);
    let inputs = inputs(estate, flows);
    let data = target_dir().join(format!("bench-e2e-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut store_config = StoreConfig::new(&data);
    store_config.detail = DetailSpec {
        enabled: detail,
        ..DetailSpec::default()
    };
    if let Some(shards) = std::env::var("TRAWL_E2E_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        store_config.open_shards = shards;
    }
    let store = Store::open(store_config).expect("store");
    let mut index = AttributionIndex::default();
    let ranges = std::fs::read(inputs.dir.join("ip-ranges.json")).expect("ip-ranges");
    index
        .add_aws_ip_ranges(&ranges, "ip-ranges.json")
        .expect("ip-ranges");
    let pipeline = Pipeline::start(PipelineConfig::default(), store, index).expect("start");
    let metadata = std::fs::File::open(inputs.dir.join("metadata.jsonl")).expect("metadata");
    pipeline.apply_metadata(BufReader::new(metadata), "metadata.jsonl", true);
    let (started, cpu_before) = (Instant::now(), cpu_secs());
    match input {
        "one" => pipeline.add_files(std::slice::from_ref(&inputs.one)),
        _ => pipeline.add_dir(&inputs.dir),
    }
    .expect("files");
    pipeline.wait_idle();
    let ingest_secs = started.elapsed().as_secs_f64();
    let records = pipeline
        .stats()
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    pipeline.shutdown().expect("seal");
    let (secs, cpu) = (started.elapsed().as_secs_f64(), cpu_secs() - cpu_before);
    assert_eq!(records, inputs.truth.records, "every record decoded");
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "{}",
        serde_json::json!({
            "flows": records,
            "secs": secs,
            "flows_per_sec": records as f64 / secs,
            "cores": cpu / secs,
            "ingest_secs": ingest_secs,
            "seal_secs": secs - ingest_secs,
            "peak_rss_mib": peak_rss_mib(),
        })
    );
}

/// Runs one configuration in a child process; its JSON line.
fn run_child(estate: &str, input: &str, detail: bool) -> serde_json::Value {
    let output = Command::new(std::env::current_exe().expect("this bench"))
        .args(["--child", estate, input, if detail { "on" } else { "off" }])
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {estate} {input} {detail}: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("the child's JSON")
}

/// DuckDB's batch form on the same files; its JSON line, or None if the
/// venv is missing.
fn duckdb(inputs: &Inputs, input: &str) -> Option<serde_json::Value> {
    let python = target_dir().join("peer-venv/bin/python");
    if !python.exists() {
        println!("duckdb: skipped ({} missing; see README)", python.display());
        return None;
    }
    let glob = match input {
        "one" => inputs.one.display().to_string(),
        _ => format!("{}/AWSLogs/**/*.log.gz", inputs.dir.display()),
    };
    let output = Command::new(python)
        .arg("../../bench/duckdb_e2e.py")
        .arg(glob)
        .arg(inputs.dir.join("metadata.jsonl"))
        .arg("2")
        .output()
        .expect("run duckdb");
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .ok()
        .or_else(|| {
            println!(
                "duckdb failed: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            );
            None
        })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, estate, input, detail, ..] = args.as_slice()
        && flag == "--child"
    {
        child(estate, input, detail == "on");
        return;
    }
    let flows = env_u64("TRAWL_E2E_FLOWS", 2_000_000);
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let wanted = |label: &str| {
        filter.is_empty()
            || filter
                .iter()
                .all(|f| label.split(' ').any(|w| w == f.as_str()))
    };
    println!(
        "| estate | input | detail | flows/s | cores used | peak RSS | DuckDB flows/s | trawl / DuckDB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for estate in ESTATES {
        let runs: Vec<(&str, bool)> = INPUTS
            .into_iter()
            .flat_map(|input| [(input, false), (input, true)])
            .filter(|&(input, detail)| {
                wanted(&format!(
                    "{estate} {input} {}",
                    if detail { "on" } else { "off" }
                ))
            })
            .collect();
        if runs.is_empty() {
            continue;
        }
        let inputs = inputs(estate, flows);
        for input in INPUTS {
            let runs: Vec<bool> = runs
                .iter()
                .filter(|(i, _)| *i == input)
                .map(|&(_, detail)| detail)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let duck = duckdb(&inputs, input);
            let duck_rate = duck
                .as_ref()
                .and_then(|d| Some(d["flows"].as_f64()? / d["secs"].as_f64()?));
            for detail in runs {
                let run = run_child(estate, input, detail);
                let rate = run["flows_per_sec"].as_f64().unwrap_or(0.0);
                println!(
                    "| {estate} | {input} | {} | {:.2} M | {:.2} | {} MiB | {} | {} |",
                    if detail { "on" } else { "off" },
                    rate / 1e6,
                    run["cores"].as_f64().unwrap_or(0.0),
                    run["peak_rss_mib"],
                    duck_rate.map_or("-".into(), |d| format!("{:.2} M", d / 1e6)),
                    duck_rate.map_or("-".into(), |d| format!("{:.2}x", rate / d)),
                );
            }
        }
    }
}
