//! Query latency over HTTP on the high-cardinality estate (issue 14 #5),
//! release build, against DuckDB with the same `flows_1m` rows in memory.
//!
//! The estate is the e2e bench's adversarial one as `trawl generate` writes
//! it (all 29 fields of version 5, 3,000 apps, random app pairs on random
//! service ports; 2 M flows over about two hours, `TRAWL_HTTP_FLOWS` to
//! change), loaded by `trawl ingest` with the defaults (detail on) into
//! `target/bench-http-high-{flows}` once and reused. A `trawl run` child
//! serves it; the three reference queries of the store bench (top-20 app
//! pairs over everything, a 1-hour series by region, AZ x AZ bytes for one
//! region) are each sent once (cold: segments read from Parquet, then
//! loaded into the segment cache), and, once the cache has settled,
//! `TRAWL_HTTP_RUNS` times (default 21) as CSV over HTTP, the p50 compared with DuckDB's (`bench/duckdb_queries.py
//! --memory`: the segments' `flows_1m` rows loaded into a table first, 2
//! threads) when `target/peer-venv` has it. Both answers must have the
//! same rows. `cargo bench -p trawl --bench http_queries`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Server, ok, path, trawl};

const REGION: &str = "us-east-1";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../../target".into()))
}

/// Generates and ingests the estate into `dir/data` unless done before.
fn data_dir(dir: &Path, flows: u64) -> PathBuf {
    let (files, data) = (dir.join("files"), dir.join("data"));
    if dir.join("ingested").exists() {
        return data;
    }
    let _ = std::fs::remove_dir_all(dir);
    let started = Instant::now();
    ok(trawl(&[
        "generate",
        "--out-dir",
        path(&files),
        "--cardinality",
        "high",
        "--log-format",
        "v5-all",
        "--apps",
        "3000",
        "--rate",
        "300",
        "--duration-secs",
        "86400",
        "--records",
        &flows.to_string(),
    ]));
    let generated = started.elapsed();
    let started = Instant::now();
    ok(trawl(&[
        "ingest",
        "--data-dir",
        path(&data),
        "--metadata",
        path(&files.join("metadata.jsonl")),
        "--aws-ip-ranges",
        path(&files.join("ip-ranges.json")),
        path(&files),
    ]));
    eprintln!(
        "estate: generated in {:.1} s, ingested in {:.1} s",
        generated.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    std::fs::write(dir.join("ingested"), b"").unwrap();
    data
}

/// The CSV answer's data lines, sorted (engines order ties differently).
fn rows(csv: &[u8]) -> Vec<String> {
    let mut rows: Vec<String> = String::from_utf8_lossy(csv)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let flows = env_u64("TRAWL_HTTP_FLOWS", 2_000_000);
    let runs = env_u64("TRAWL_HTTP_RUNS", 21) as usize;
    let dir = target_dir().join(format!("bench-http-high-{flows}"));
    let data = data_dir(&dir, flows);
    let server = Server::start(&["run", "--data-dir", path(&data), "--listen", "127.0.0.1:0"]);
    let (status, first) = server.sql(
        "SELECT CAST(min(time) AS BIGINT) AS t, count(*) AS n FROM flows_1m",
        "csv",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    let first = rows(&first);
    let (start, rows_1m) = first[0].split_once(',').unwrap();
    // The first whole hour of the estate.
    let hour = start.parse::<u64>().unwrap().div_ceil(3600) * 3600;
    eprintln!("flows_1m: {rows_1m} rows; series hour starts at {hour}");
    let queries = [
        (
            "top20_app_pairs",
            "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m \
             GROUP BY src_app, dst_app ORDER BY bytes DESC LIMIT 20"
                .to_string(),
        ),
        (
            "region_series_1h",
            format!(
                "SELECT CAST(time AS BIGINT) AS time, src_region, sum(bytes) AS bytes \
                 FROM flows_1m \
                 WHERE time >= to_timestamp_seconds({hour}) AND time < to_timestamp_seconds({}) \
                 GROUP BY time, src_region ORDER BY time, src_region",
                hour + 3600
            ),
        ),
        (
            "az_matrix_region",
            format!(
                "SELECT src_az, dst_az, sum(bytes) AS bytes FROM flows_1m \
                 WHERE src_region = '{REGION}' AND dst_region = '{REGION}' \
                 GROUP BY src_az, dst_az ORDER BY src_az, dst_az"
            ),
        ),
    ];
    // The first query of each reads Parquet (cold) and has its segments
    // loaded into the segment cache; the timed runs start once it settles.
    let mut answers = Vec::new();
    for (name, sql) in &queries {
        let t = Instant::now();
        let (status, answer) = server.sql(sql, "csv");
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&answer));
        println!(
            "trawl  {name}: first (cold, from Parquet) {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
        answers.push(answer);
    }
    let settled = Instant::now();
    let mut cached = (0, 0);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = (
            server.metric("trawl_segment_cache_segments"),
            server.metric("trawl_segment_cache_bytes"),
        );
        if now == cached || settled.elapsed() > Duration::from_secs(60) {
            break;
        }
        cached = now;
    }
    println!(
        "segment cache: {} segments, {} MiB, settled in {:.1} s",
        cached.0,
        cached.1 >> 20,
        settled.elapsed().as_secs_f64()
    );
    let mut trawl_answers = Vec::new();
    for ((name, sql), answer) in queries.iter().zip(answers) {
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let (status, _) = server.sql(sql, "csv");
                assert_eq!(status, 200);
                t.elapsed()
            })
            .collect();
        let p50 = median_ms(times);
        let answer = rows(&answer);
        println!(
            "trawl  {name}: p50 {p50:.1} ms over HTTP ({} rows)",
            answer.len()
        );
        trawl_answers.push((p50, answer));
    }
    drop(server);

    let python = target_dir().join("peer-venv/bin/python");
    if !python.exists() {
        println!("duckdb: skipped ({} missing; see README)", python.display());
        return;
    }
    let output = Command::new(python)
        .arg("../../bench/duckdb_queries.py")
        .args([
            path(&data),
            &hour.to_string(),
            &runs.to_string(),
            "2",
            "--memory",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let answer: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "duckdb said: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for ((name, _), (trawl_p50, trawl_rows)) in queries.iter().zip(&trawl_answers) {
        let duck = &answer[*name];
        let duck_p50 = duck["p50_ms"].as_f64().unwrap_or(f64::NAN);
        let mut duck_rows: Vec<String> = duck["rows_csv"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        duck_rows.sort();
        assert_eq!(&duck_rows, trawl_rows, "{name}: the engines disagree");
        println!(
            "trawl {name} vs duckdb (in memory): {trawl_p50:.1} vs {duck_p50:.1} ms; \
             trawl/duckdb time ratio {:.2}",
            trawl_p50 / duck_p50
        );
    }
}
