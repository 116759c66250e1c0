//! End-to-end store bench: one simulated day of attributed flows (default
//! 100 M, 1,000 apps; `TRAWL_DAY_FLOWS` to change) added in time order with
//! the store sealing as the watermark passes each hour, then the two
//! reference queries on `flows_1m` (top-20 app pairs for the day, which
//! rollup routing answers from `flows_1d`, and also without routing; a
//! 1-hour time series by region), p50 over `TRAWL_DAY_RUNS` runs (default
//! 11), and the same queries with DuckDB over the same Parquet segments
//! (`flows_1m`, and `flows_1d` for the rows routing reads) when
//! `target/peer-venv` has it (`bench/duckdb_queries.py`).
//!
//! Run: `cargo bench -p trawl-store --bench day`.

use std::time::{Duration, Instant};

use trawl_store::{DetailSpec, SqlEngine, Store, StoreConfig};

mod synth;

const DAY_START: u32 = 1_790_035_200; // a midnight UTC
const BATCH: usize = 4096;

fn env_usize(name: &str, default: usize) -> usize {
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

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let flows = env_usize("TRAWL_DAY_FLOWS", 100_000_000);
    let runs = env_usize("TRAWL_DAY_RUNS", 11);
    let root = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../../target".into());
    let dir = std::path::Path::new(&root).join("bench-day");
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = StoreConfig::new(&dir);
    config.detail = DetailSpec {
        enabled: false,
        ..DetailSpec::default()
    };
    let store = std::sync::Arc::new(std::sync::RwLock::new(Store::open(config).expect("open")));

    let mut day = synth::Day::new(42);
    let (mut adding, mut sealing) = (Duration::ZERO, Duration::ZERO);
    let mut open_bytes_max = 0;
    let mut done = 0usize;
    while done < flows {
        let count = BATCH.min(flows - done);
        let generated: Vec<_> = (done..done + count)
            .map(|i| day.flow(DAY_START + (i as u64 * 86_400 / flows as u64) as u32))
            .collect();
        let batch: Vec<_> = generated.iter().map(synth::Generated::enriched).collect();
        let mut s = store.write().expect("lock");
        let t = Instant::now();
        s.add_batch(
            &batch,
            &day.workloads,
            &[("synthetic-day", &(done + count).to_string())],
        )
        .expect("add");
        adding += t.elapsed();
        open_bytes_max = open_bytes_max.max(s.open_bytes());
        if s.seal_due() {
            let t = Instant::now();
            s.seal().expect("seal");
            s.maintain().expect("maintain");
            sealing += t.elapsed();
        }
        done += count;
    }
    {
        let mut s = store.write().expect("lock");
        let t = Instant::now();
        // End of the day: the watermark has passed everything.
        s.seal().expect("seal");
        sealing += t.elapsed();
        let stats = s.stats();
        let rows = |table: &str| -> u64 {
            s.manifest()
                .segments
                .iter()
                .filter(|m| m.table == table)
                .map(|m| m.rows)
                .sum()
        };
        println!(
            "ingest: {flows} flows, add_batch {:.2} M flows/s ({:.1} s), seal+compact {:.1} s; \
             flows_1m {} rows, flows_1h {} rows, flows_1d {} rows, {} segments; \
             open buckets peak {} MiB; peak RSS {} MiB; seals {}, compactions {}",
            flows as f64 / adding.as_secs_f64() / 1e6,
            adding.as_secs_f64(),
            sealing.as_secs_f64(),
            rows("flows_1m"),
            rows("flows_1h"),
            rows("flows_1d"),
            s.manifest().segments.len(),
            open_bytes_max >> 20,
            peak_rss_mib(),
            stats.seals,
            stats.compactions,
        );
    }

    let engine = SqlEngine::new(store.clone(), None).expect("engine");
    let unrouted = SqlEngine::new(store.clone(), None)
        .expect("engine")
        .without_rollup_routing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hour = DAY_START + 14 * 3600;
    let top20 = "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m \
                 GROUP BY src_app, dst_app ORDER BY bytes DESC LIMIT 20"
        .to_string();
    let series = format!(
        "SELECT time, src_region, sum(bytes) AS bytes FROM flows_1m \
         WHERE time >= to_timestamp_seconds({hour}) AND time < to_timestamp_seconds({}) \
         GROUP BY time, src_region ORDER BY time, src_region",
        hour + 3600
    );
    // (name, engine, SQL, DuckDB's query of the same name to compare with)
    let queries = [
        (
            "top20_app_pairs_day",
            &engine,
            &top20,
            "top20_app_pairs_day",
        ),
        (
            "top20_app_pairs_day",
            &engine,
            &top20,
            "top20_app_pairs_day_from_flows_1d",
        ),
        (
            "top20_app_pairs_day_unrouted",
            &unrouted,
            &top20,
            "top20_app_pairs_day",
        ),
        ("region_series_1h", &engine, &series, "region_series_1h"),
    ];
    let answer = |engine: &SqlEngine, sql: &str| {
        let result = runtime.block_on(engine.query(sql)).expect("query");
        arrow::util::pretty::pretty_format_batches(&result.batches)
            .expect("format")
            .to_string()
    };
    assert_eq!(
        answer(&engine, &top20),
        answer(&unrouted, &top20),
        "routing changed the answer"
    );
    let mut trawl_p50 = Vec::new();
    for (name, engine, sql, _) in &queries {
        let rows = runtime
            .block_on(engine.query(sql))
            .expect("query")
            .num_rows();
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                runtime.block_on(engine.query(sql)).expect("query");
                t.elapsed()
            })
            .collect();
        let p50 = median(times);
        println!("trawl  {name}: p50 {p50:.1} ms ({rows} rows)");
        trawl_p50.push(p50);
    }

    let python = std::path::Path::new(&root).join("peer-venv/bin/python");
    if !python.exists() {
        println!("duckdb: skipped ({} missing; see README)", python.display());
        return;
    }
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let output = std::process::Command::new(python)
        .arg("../../bench/duckdb_queries.py")
        .arg(&dir)
        .arg(hour.to_string())
        .arg(runs.to_string())
        .arg(threads.to_string())
        .output()
        .expect("run duckdb");
    let text = String::from_utf8_lossy(&output.stdout);
    let answer: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "duckdb said: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for ((name, _, _, duck_name), trawl) in queries.iter().zip(&trawl_p50) {
        let duck = answer[duck_name]["p50_ms"].as_f64().unwrap_or(f64::NAN);
        println!(
            "trawl {name} vs duckdb {duck_name}: {trawl:.1} vs {duck:.1} ms ({} rows); \
             trawl/duckdb time ratio {:.2}",
            answer[duck_name]["rows"],
            trawl / duck
        );
    }
}
