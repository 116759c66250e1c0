//! A seal that passes a minute table's rows through to `flows_1h` and
//! `flows_1d` (high-cardinality traffic) copies their encoded columns
//! from the `flows_1m` file instead of encoding them again: the derived
//! files hold the very bytes of the source's column chunks, read back as
//! the same rows, and stay right across compaction and reopening.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::common::{
    Estate, Flow, add_to, column_chunks, footer, oracle, python_stdout, query_sums,
};
use trawl_store::{SqlEngine, Store, StoreConfig};

const HOUR: u32 = 3600;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

/// `count` (at most 3 M) flows with a key each (workload pair and service
/// port), over two hours.
fn unique_flows(count: usize) -> Vec<Flow> {
    (0..count)
        .map(|i| Flow {
            start: T0 + (i as u32 * 61) % (2 * HOUR),
            src: i % 10,
            dst: (i / 10) % 10,
            src_port: 40_000,
            dst_port: 1000 + ((i / 100) % 30_000) as u16,
            protocol: 6,
            bytes: 100 + i as u64,
            packets: 1 + (i % 7) as u64,
            reject: i.is_multiple_of(13),
            egress: i.is_multiple_of(2),
        })
        .collect()
}

fn files_of(dir: &Path, table: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(table))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_pass_through_seal_copies_the_minute_tables_encoded_columns() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = StoreConfig::new(dir.path());
    config.open_shards = 2;
    config.wall_clock_secs = Some(T0 + 2 * HOUR);
    config.delete_delay = std::time::Duration::ZERO;
    let store = Arc::new(RwLock::new(Store::open(config.clone()).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    // Two shards, each with two hours (two `flows_1m` chunks).
    let flows = unique_flows(200_000);
    let (first, second) = flows.split_at(100_000);
    add_to(&store.read().unwrap(), Some(0), &estate, first, None);
    add_to(&store.read().unwrap(), Some(1), &estate, second, None);
    store.write().unwrap().seal().unwrap();

    let minute_chunks: Vec<(String, Vec<u8>)> = files_of(dir.path(), "flows_1m")
        .iter()
        .flat_map(|path| column_chunks(path))
        .collect();
    for table in ["flows_1h", "flows_1d"] {
        let files = files_of(dir.path(), table);
        assert_eq!(files.len(), 2, "{table}: a segment per shard");
        for path in files {
            for chunk in column_chunks(&path) {
                assert!(
                    minute_chunks.contains(&chunk),
                    "{}: column {} encoded again, not copied",
                    path.display(),
                    chunk.0
                );
            }
            // A row group per source chunk, cut as the source's.
            assert_eq!(footer(&path).num_row_groups(), 2, "{}", path.display());
        }
    }
    for spec in &config.rollups {
        let want = oracle(&estate, &flows, spec.grain_secs);
        assert_eq!(
            query_sums(&engine, &spec.name),
            want,
            "{} sealed",
            spec.name
        );
    }
    drop((store, engine));
    let store = Arc::new(RwLock::new(Store::open(config.clone()).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    for spec in &config.rollups {
        let want = oracle(&estate, &flows, spec.grain_secs);
        assert_eq!(
            query_sums(&engine, &spec.name),
            want,
            "{} reopened",
            spec.name
        );
    }
}

/// DuckDB, another Parquet reader, reads the copied files as the rows
/// they stand for: each table's totals are the flows', and `flows_1h` and
/// `flows_1d` hold, key by key, `flows_1m`'s sums with time floored.
#[test]
fn duckdb_reads_the_copied_segments_as_the_minute_rows() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = StoreConfig::new(dir.path());
    config.open_shards = 2;
    config.wall_clock_secs = Some(T0 + 2 * HOUR);
    let store = Store::open(config).unwrap();
    let flows = unique_flows(60_000);
    let (first, second) = flows.split_at(30_000);
    add_to(&store, Some(0), &estate, first, None);
    add_to(&store, Some(1), &estate, second, None);
    let mut store = store;
    store.seal().unwrap();
    let script = r#"
import duckdb, json, sys
d = sys.argv[1]
# time is seconds since the epoch (INT64: Parquet has no second unit)
def rows(table, grain):
    return f"""select time - time % {grain} t, coalesce(src_app, '-') src_app,
        coalesce(dst_app, '-') dst_app, coalesce(service_port, -1) service_port,
        coalesce(protocol, -1) protocol, coalesce(action, '-') action,
        sum(bytes) b, sum(packets) p, sum(flows) f
        from read_parquet('{d}/{table}/*.parquet') group by all"""
out = {}
for table in ["flows_1m", "flows_1h", "flows_1d"]:
    out[table] = duckdb.execute(f"select count(*), sum(bytes)::bigint, sum(packets)::bigint, sum(flows)::bigint from read_parquet('{d}/{table}/*.parquet')").fetchone()
for table, grain in [("flows_1h", 3600), ("flows_1d", 86400)]:
    out[table + " differs"] = duckdb.execute(f"""select count(*) from ({rows('flows_1m', grain)}) a
        full outer join ({rows(table, grain)}) b using (t, src_app, dst_app, service_port, protocol, action)
        where a.b is distinct from b.b or a.p is distinct from b.p or a.f is distinct from b.f""").fetchone()[0]
print(json.dumps(out))
"#;
    let output = python_stdout(script, &[dir.path()]);
    let answer: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let bytes: u64 = flows.iter().map(|f| f.bytes).sum();
    let packets: u64 = flows.iter().map(|f| f.packets).sum();
    for table in ["flows_1m", "flows_1h", "flows_1d"] {
        let totals = &answer[table];
        assert_eq!(totals[1], bytes, "{table}: {answer}");
        assert_eq!(totals[2], packets, "{table}: {answer}");
        assert_eq!(totals[3], flows.len(), "{table}: {answer}");
    }
    assert_eq!(answer["flows_1h differs"], 0, "{answer}");
    assert_eq!(answer["flows_1d differs"], 0, "{answer}");
}
