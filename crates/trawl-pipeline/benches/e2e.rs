//! End-to-end pipeline bench: generated gzip flow-log files (S3 layout,
//! default 10 M records of a 300-app churning estate; `TRAWL_E2E_FLOWS` to
//! change) → decode → attribute → roll up → sealed, on every core, with
//! the detail table on (the default) and off. Reports flows/s, MB/s of gzip
//! read, and peak RSS.
//!
//! The files are generated once into `target/bench-e2e-N` and reused.
//! Run: `cargo bench -p trawl-pipeline --bench e2e`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use trawl_attrib::AttributionIndex;
use trawl_gen::files::Layout;
use trawl_gen::{EstateConfig, Truth, write_estate};
use trawl_pipeline::{Pipeline, PipelineConfig};
use trawl_store::{DetailSpec, Store, StoreConfig};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

fn inputs(root: &Path, flows: u64) -> (PathBuf, Truth) {
    let dir = root.join(format!("bench-e2e-{flows}"));
    let truth_path = dir.join("truth.json");
    if !truth_path.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let rate = 20_000;
        let config = EstateConfig {
            records_per_sec: rate,
            ..EstateConfig::default()
        };
        let started = Instant::now();
        let secs = (flows / u64::from(rate)).max(1) as u32;
        let layout = Layout {
            gzip: true,
            flat: false,
        };
        write_estate(config, secs, &dir, layout).expect("generating the bench input");
        eprintln!(
            "generated {} s of estate in {:.1} s",
            secs,
            started.elapsed().as_secs_f64()
        );
    }
    let truth = serde_json::from_slice(&std::fs::read(&truth_path).expect("truth")).expect("truth");
    (dir, truth)
}

fn dir_bytes(dir: &Path) -> u64 {
    trawl_pipeline::list_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn run(label: &str, inputs: &Path, data: &Path, detail: bool, truth: &Truth) {
    let _ = std::fs::remove_dir_all(data);
    let mut store_config = StoreConfig::new(data);
    store_config.detail = DetailSpec {
        enabled: detail,
        ..DetailSpec::default()
    };
    let store = Store::open(store_config).expect("store");
    let mut index = AttributionIndex::default();
    let ranges = std::fs::read(inputs.join("ip-ranges.json")).expect("ip-ranges");
    index
        .add_aws_ip_ranges(&ranges, "ip-ranges.json")
        .expect("ip-ranges");
    let pipeline = Pipeline::start(PipelineConfig::default(), store, index).expect("start");
    let metadata = std::fs::File::open(inputs.join("metadata.jsonl")).expect("metadata");
    let started = Instant::now();
    pipeline.apply_metadata(std::io::BufReader::new(metadata), "metadata.jsonl", true);
    let metadata_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    pipeline.add_dir(inputs).expect("files");
    pipeline.wait_idle();
    let stats_records = pipeline
        .stats()
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    let metrics = pipeline.metrics_text();
    let counters: Vec<&str> = ["trawl_store_seals_total", "trawl_pipeline_full_waits_total"]
        .iter()
        .filter_map(|name| metrics.lines().find(|l| l.starts_with(name)))
        .collect();
    println!("{label}: {}", counters.join(", "));
    pipeline.shutdown().expect("seal");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(stats_records, truth.records, "every record decoded");
    let gz = dir_bytes(inputs) as f64 / 1e6;
    println!(
        "{label}: {} flows in {secs:.2} s = {:.2} M flows/s ({:.0} MB/s of gzip), metadata {metadata_secs:.2} s; peak RSS so far {} MiB",
        truth.records,
        truth.records as f64 / secs / 1e6,
        gz / secs,
        peak_rss_mib()
    );
}

fn main() {
    let flows = env_u64("TRAWL_E2E_FLOWS", 10_000_000);
    let root = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../../target".into());
    let root = Path::new(&root);
    let (dir, truth) = inputs(root, flows);
    let data = root.join("bench-e2e-data");
    // `cargo bench --bench e2e -- off` runs only the runs whose label contains "off".
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = [
        ("rollups only (flows detail off)", false),
        ("rollups + flows detail (default)", true),
    ];
    for (label, detail) in runs {
        if filter.is_empty() || filter.iter().any(|f| label.contains(f.as_str())) {
            run(label, &dir, &data, detail, &truth);
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}
