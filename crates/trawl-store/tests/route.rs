//! Rollup routing (`route.rs`): which queries are answered from a coarser
//! rollup, and a property test that routing never changes an answer —
//! random aggregate queries, routable or not, give the same rows from an
//! engine with routing and one without.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock};

use crate::common::{Estate, Flow, add, text_rows};
use proptest::prelude::*;
use trawl_store::{SqlEngine, Store, StoreConfig};

const HOUR: u32 = 3600;
const DAY: u32 = 86_400;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % DAY;

struct Fixture {
    _dir: tempfile::TempDir,
    routed: SqlEngine,
    plain: SqlEngine,
    runtime: tokio::runtime::Runtime,
}

fn flows(count: usize, start: u32, span_secs: u32) -> Vec<Flow> {
    (0..count)
        .map(|i| {
            let n = i as u32;
            Flow {
                start: start + (n * 7919) % span_secs,
                src: i % 9,
                dst: (i * 3 + 1) % 11,
                src_port: 40_000 + (i % 1000) as u16,
                dst_port: if i % 3 == 0 { 443 } else { 5432 },
                protocol: if i % 5 == 0 { 17 } else { 6 },
                bytes: 100 + (i as u64 * 37) % 5000,
                packets: 1 + i as u64 % 7,
                reject: i % 13 == 0,
                egress: i % 2 == 0,
            }
        })
        .collect()
}

/// Two days of flows: the first sealed (segments, deltas), the rest open.
/// `minute_retention_secs` shortens `flows_1m`'s history so that it has
/// dropped rows the coarser tables keep.
fn fixture(minute_retention_secs: Option<u32>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let mut config = StoreConfig::new(dir.path());
    if let Some(secs) = minute_retention_secs {
        config.rollups[0].retention_secs = secs;
    }
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &flows(3000, T0, DAY), None);
        s.seal().unwrap();
        add(&mut s, &estate, &flows(500, T0 + 2 * HOUR, HOUR), None); // a delta
        s.seal().unwrap();
        add(&mut s, &estate, &flows(2000, T0 + DAY, DAY), None);
        s.maintain().unwrap(); // compacts closed chunks, applies retention
    }
    Fixture {
        routed: SqlEngine::new(store.clone(), None).unwrap(),
        plain: SqlEngine::new(store, None)
            .unwrap()
            .without_rollup_routing(),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Fixture {
    fn rows(&self, engine: &SqlEngine, sql: &str) -> Vec<Vec<String>> {
        let result = self.runtime.block_on(engine.query(sql)).unwrap();
        let mut rows = text_rows(&result.batches);
        rows.sort();
        rows
    }

    /// The table the optimized plan scans.
    fn scanned(&self, sql: &str) -> String {
        let plan = self.rows(&self.routed, &format!("EXPLAIN {sql}"));
        let logical = plan
            .iter()
            .find(|row| row[0] == "logical_plan")
            .map(|row| row[1].clone())
            .unwrap();
        let start = logical.find("TableScan: ").unwrap() + "TableScan: ".len();
        logical[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

fn ts(secs: u32) -> String {
    format!("to_timestamp_seconds({secs})")
}

#[test]
fn whole_day_aggregates_read_the_daily_rollup() {
    let f = fixture(None);
    let top = "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m \
               GROUP BY src_app, dst_app ORDER BY bytes DESC LIMIT 20";
    assert_eq!(f.scanned(top), "flows_1d");
    assert_eq!(f.rows(&f.routed, top), f.rows(&f.plain, top));
    let day = format!(
        "SELECT date_trunc('day', time) AS d, count(DISTINCT src_app), max(dst_az), sum(flows) \
         FROM flows_1m WHERE time >= {} AND time < {} GROUP BY d",
        ts(T0),
        ts(T0 + DAY)
    );
    assert_eq!(f.scanned(&day), "flows_1d");
}

#[test]
fn hour_aligned_queries_read_the_hourly_rollup() {
    let f = fixture(None);
    let sql = format!(
        "SELECT date_trunc('hour', time) AS h, src_app, sum(bytes) FROM flows_1m \
         WHERE time >= {} AND time < {} AND protocol = 6 GROUP BY h, src_app",
        ts(T0 + 3 * HOUR),
        ts(T0 + 9 * HOUR)
    );
    assert_eq!(f.scanned(&sql), "flows_1h");
    assert_eq!(f.rows(&f.routed, &sql), f.rows(&f.plain, &sql));
}

#[test]
fn queries_a_coarser_rollup_would_change_stay_on_the_minutes() {
    let f = fixture(None);
    for sql in [
        // Counts rows, not flows.
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app".to_string(),
        // Minute buckets.
        "SELECT time, sum(bytes) FROM flows_1m GROUP BY time".to_string(),
        "SELECT date_trunc('minute', time) AS m, sum(bytes) FROM flows_1m GROUP BY m".to_string(),
        // A bound inside an hour.
        format!(
            "SELECT src_app, sum(bytes) FROM flows_1m WHERE time >= {} GROUP BY src_app",
            ts(T0 + 90)
        ),
        // `>` and `<=` include part of a bucket.
        format!(
            "SELECT src_app, sum(bytes) FROM flows_1m WHERE time > {} GROUP BY src_app",
            ts(T0)
        ),
        // A measure filter or a measure aggregate other than sum.
        "SELECT src_app, sum(bytes) FROM flows_1m WHERE bytes > 100 GROUP BY src_app".to_string(),
        "SELECT src_app, max(bytes) FROM flows_1m GROUP BY src_app".to_string(),
        "SELECT src_app, sum(DISTINCT bytes) FROM flows_1m GROUP BY src_app".to_string(),
        // Not an aggregate.
        "SELECT * FROM flows_1m LIMIT 5".to_string(),
    ] {
        assert_eq!(f.scanned(&sql), "flows_1m", "{sql}");
    }
}

#[test]
fn a_minute_table_that_dropped_history_is_routed_only_above_its_floor() {
    // flows_1m keeps 6 h: its first day is gone, the coarser tables keep it.
    let f = fixture(Some(6 * HOUR));
    let unbounded = "SELECT src_app, sum(bytes) FROM flows_1m GROUP BY src_app";
    assert_eq!(f.scanned(unbounded), "flows_1m");
    let recent = format!(
        "SELECT src_app, sum(bytes) FROM flows_1m WHERE time >= {} GROUP BY src_app",
        ts(T0 + DAY + 23 * HOUR)
    );
    assert_eq!(f.scanned(&recent), "flows_1h");
    assert_eq!(f.rows(&f.routed, &recent), f.rows(&f.plain, &recent));
}

/// A random aggregate query over `flows_1m` from a small grammar that mixes
/// routable and non-routable parts.
fn arb_query() -> impl Strategy<Value = String> {
    let groups = prop::sample::subsequence(
        vec![
            "src_app",
            "dst_az",
            "protocol",
            "date_trunc('hour', time)",
            "date_trunc('day', time)",
            "date_trunc('minute', time)",
        ],
        0..3,
    );
    let aggregates = prop::sample::subsequence(
        vec![
            "sum(bytes)",
            "sum(packets)",
            "sum(flows)",
            "count(*)",
            "max(src_app)",
            "min(dst_app)",
            "count(DISTINCT dst_app)",
            "min(bytes)",
        ],
        1..3,
    );
    let bound = prop_oneof![
        3 => Just(0),
        3 => Just(2 * HOUR),
        3 => Just(DAY),
        3 => Just(DAY + 5 * HOUR),
        1 => Just(HOUR + 60),
        1 => Just(DAY + 17),
    ];
    let filters = (
        prop::option::of((
            prop::sample::select(vec![">=", ">=", ">=", ">"]),
            bound.clone(),
        )),
        prop::option::of((prop::sample::select(vec!["<", "<", "<", "<="]), bound)),
        prop::option::of(prop::sample::select(vec![
            "src_app = 'api'",
            "protocol = 17",
            "bytes > 2000",
            "dst_az IS NOT NULL",
        ])),
    );
    (groups, aggregates, filters).prop_map(|(groups, aggregates, (low, high, other))| {
        let mut select: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        select.extend(aggregates.iter().map(|a| a.to_string()));
        let mut conditions = Vec::new();
        if let Some((op, secs)) = low {
            conditions.push(format!("time {op} {}", ts(T0 + secs)));
        }
        if let Some((op, secs)) = high {
            conditions.push(format!("time {op} {}", ts(T0 + secs + DAY)));
        }
        conditions.extend(other.map(str::to_string));
        let mut sql = format!("SELECT {} FROM flows_1m", select.join(", "));
        if !conditions.is_empty() {
            sql += &format!(" WHERE {}", conditions.join(" AND "));
        }
        if !groups.is_empty() {
            sql += &format!(" GROUP BY {}", groups.join(", "));
        }
        sql
    })
}

#[test]
fn routing_never_changes_an_answer() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let fixtures = [fixture(None), fixture(Some(6 * HOUR))];
    let routed = std::cell::Cell::new(0);
    let cases = 192;
    // A fixed seed: the share of routed queries below is asserted, and with
    // a random one it sometimes fell under the bar (a flaky CI failure).
    let config = Config {
        cases,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    runner
        .run(&(arb_query(), 0..2usize), |(query, which)| {
            let f = &fixtures[which];
            if f.scanned(&query) != "flows_1m" {
                routed.set(routed.get() + 1);
            }
            prop_assert_eq!(
                f.rows(&f.routed, &query),
                f.rows(&f.plain, &query),
                "{}",
                query
            );
            Ok(())
        })
        .unwrap();
    // The grammar must exercise routing, not only its refusals.
    assert!(routed.get() >= cases / 8, "only {} routed", routed.get());
}
