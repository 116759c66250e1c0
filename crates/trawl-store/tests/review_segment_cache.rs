//! Cold review of 65d23b3 (the segment cache: `segment_cache.rs`, its
//! hooks in `store.rs`, `StoreTable::scan` / `take_cached` /
//! `load_segments` in `sql.rs`).
//!
//! Findings first (these fail on 65d23b3), then what was checked and found
//! sound (these pass).

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::common::{
    self, Estate, Flow, add, oracle, query_sums, spread_flows as flows, wordy_estate,
};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use trawl_store::{EngineLimits, SegmentCache, SqlEngine, Store, StoreConfig};

const T0: u32 = 1_790_035_200; // a midnight UTC
const HOUR: u32 = 3600;

type Shared = Arc<RwLock<Store>>;

/// A store, a server's engine over it (`cache_segments`), and its cache.
fn cached(config: StoreConfig) -> (Shared, SqlEngine, Arc<SegmentCache>) {
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let (engine, cache) = server_engine(&store);
    (store, engine, cache)
}

/// A server's engine over `store`: from now on seals fill the cache.
fn server_engine(store: &Shared) -> (SqlEngine, Arc<SegmentCache>) {
    let limits = EngineLimits {
        cache_segments: true,
        ..EngineLimits::default()
    };
    let engine = SqlEngine::with_limits(store.clone(), None, limits).unwrap();
    let cache = store.read().unwrap().segment_cache().unwrap();
    (engine, cache)
}

fn plain_store(config: StoreConfig) -> Shared {
    Arc::new(RwLock::new(Store::open(config).unwrap()))
}

fn ids_of(store: &Shared, table: &str) -> Vec<u64> {
    let s = store.read().unwrap();
    s.manifest()
        .segments
        .iter()
        .filter(|m| m.table == table)
        .map(|m| m.id)
        .collect()
}

fn rollup_ids(store: &Shared) -> HashSet<u64> {
    let s = store.read().unwrap();
    s.manifest()
        .segments
        .iter()
        .filter(|m| m.table != "flows")
        .map(|m| m.id)
        .collect()
}

/// Runs `sql` on a fresh runtime; dropping it waits for the blocking
/// loads the query started (tokio's blocking pool runs queued tasks out).
fn run_sql(engine: &SqlEngine, sql: &str) -> Vec<RecordBatch> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(engine.query(sql)).expect(sql).batches
}

/// `(sum(flows), sum(bytes), count(*))` of one aggregate query.
fn totals(engine: &SqlEngine, sql: &str) -> (u64, u64, i64) {
    let batches = run_sql(engine, sql);
    let b = &batches[0];
    let u = |i: usize| {
        let c = b.column(i).as_primitive::<UInt64Type>();
        if c.is_null(0) { 0 } else { c.value(0) }
    };
    (u(0), u(1), b.column(2).as_primitive::<Int64Type>().value(0))
}

fn ts(secs: u32) -> String {
    format!("to_timestamp_seconds({secs})")
}

/// A runtime with one blocking thread, held by a gate until `open`: a
/// loader a query schedules waits behind it, so a test decides what
/// happens to the store while the load is "in flight".
struct GatedRuntime {
    runtime: tokio::runtime::Runtime,
    gate: Option<std::sync::mpsc::Sender<()>>,
}

impl GatedRuntime {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        runtime.spawn_blocking(move || {
            let _ = rx.recv();
        });
        GatedRuntime {
            runtime,
            gate: Some(tx),
        }
    }

    /// Plans `sql` (EXPLAIN: `scan` runs, no file is read), which
    /// schedules the loads of every segment the scan missed.
    fn plan(&self, engine: &SqlEngine, sql: &str) {
        self.runtime
            .block_on(engine.query(&format!("EXPLAIN {sql}")))
            .unwrap();
    }

    /// Lets the queued loads run, and waits until they are done (a task
    /// queued after them on the one blocking thread has run).
    fn open_and_drain(&mut self) {
        drop(self.gate.take());
        let fence = self.runtime.spawn_blocking(|| ());
        self.runtime.block_on(fence).unwrap();
    }
}

// ---------------------------------------------------------------------
// Findings (these fail on 65d23b3).
// ---------------------------------------------------------------------

/// sql.rs `take_cached` / `load_segments` and segment_cache.rs `insert`:
/// a loader reads the segments of the manifest a query planned on and
/// inserts them whenever it gets to them; `retain` runs only when a
/// manifest is published (store.rs `cache_segments`). A compaction that
/// publishes while the load is queued or running drops nothing (the
/// replaced segments are not cached yet), then the loader inserts them:
/// the cache holds segments no manifest lists, counted in its bytes and
/// evicting live ones, until some later publish (an idle server: never).
/// The same happens when a query *plans* across a compaction (its
/// snapshot lists the replaced segments; its `begin_load` comes after
/// `retain`). No answer is wrong (ids are never reused): memory and
/// metrics are.
#[test]
fn a_load_finishing_after_a_compaction_caches_the_replaced_segments() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    // Sealed before the server's engine exists: nothing cached yet.
    let store = plain_store(StoreConfig::new(dir.path()));
    let all = flows(3000, T0, 6 * HOUR, 0);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &all[..1500], None);
        s.seal().unwrap();
        add(&mut s, &estate, &all[1500..], None);
        s.seal().unwrap();
    }
    let (engine, cache) = server_engine(&store);
    let mut gated = GatedRuntime::new();
    gated.plan(&engine, "SELECT * FROM flows_1m");
    let before: HashSet<u64> = ids_of(&store, "flows_1m").into_iter().collect();
    assert!(
        store.write().unwrap().maintain().unwrap() > 0,
        "setup: compacted"
    );
    let after: HashSet<u64> = ids_of(&store, "flows_1m").into_iter().collect();
    let replaced: Vec<u64> = before.difference(&after).copied().collect();
    assert!(!replaced.is_empty(), "setup: segments replaced");
    gated.open_and_drain();
    let stale: Vec<u64> = replaced
        .iter()
        .copied()
        .filter(|id| cache.get(*id).is_some())
        .collect();
    // Answers stay right: the stale entries are never asked for.
    assert_eq!(query_sums(&engine, "flows_1m"), oracle(&estate, &all, 60));
    assert!(
        stale.is_empty(),
        "{} of {} replaced segments are cached after the compaction published: {:?} \
         ({} segments cached, the manifest lists {} rollup segments)",
        stale.len(),
        replaced.len(),
        cache.stats(),
        cache.stats().segments,
        rollup_ids(&store).len(),
    );
}

/// The same path with retention: a seal whose draft expires segments
/// publishes while their load is queued; the loader inserts the expired
/// segments afterwards (their files stay for `delete_delay`).
#[test]
fn a_load_finishing_after_retention_caches_the_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let mut config = StoreConfig::new(dir.path());
    for spec in &mut config.rollups {
        if spec.name == "flows_1m" {
            spec.retention_secs = 2 * HOUR;
        }
    }
    config.wall_clock_secs = Some(T0 + 2 * 86_400);
    let store = plain_store(config);
    let early = flows(1000, T0, 2 * HOUR, 0);
    add(&mut store.write().unwrap(), &estate, &early, None);
    store.write().unwrap().seal().unwrap();
    let (engine, cache) = server_engine(&store);
    let old = ids_of(&store, "flows_1m");
    let mut gated = GatedRuntime::new();
    gated.plan(&engine, "SELECT * FROM flows_1m");
    // A day later: the seal's draft expires the early flows_1m segments.
    let late = flows(200, T0 + 24 * HOUR, HOUR, 1);
    add(&mut store.write().unwrap(), &estate, &late, None);
    store.write().unwrap().seal().unwrap();
    let listed: HashSet<u64> = ids_of(&store, "flows_1m").into_iter().collect();
    let expired: Vec<u64> = old.into_iter().filter(|id| !listed.contains(id)).collect();
    assert!(!expired.is_empty(), "setup: flows_1m segments expired");
    gated.open_and_drain();
    let stale: Vec<u64> = expired
        .iter()
        .copied()
        .filter(|id| cache.get(*id).is_some())
        .collect();
    assert!(
        stale.is_empty(),
        "{} of {} expired segments are cached after the seal that expired them: {:?}",
        stale.len(),
        expired.len(),
        cache.stats()
    );
}

/// segment_cache.rs `insert` counts an entry as the sum of
/// `get_array_memory_size` of its batches. A sealed rollup batch's text
/// columns are dictionary arrays whose values are the store's whole
/// dictionary (`Dictionary::values`, one shared snapshot), so every text
/// column of every batch counts the whole dictionary again (commit.rs
/// `count_memory_once` exists for exactly this, and the cache does not use
/// it). With a dictionary of ~2.6 MB (2,000 workloads) each sealed
/// segment of 2,000 rows is counted past 16 MiB (the dictionary once per
/// text column): `seal_finish` caches none of them in a 16 MiB cache,
/// though the three share one dictionary and hold ~3 MB; on a
/// high-cardinality estate (the commit's target) sealed segments are
/// never kept, and what is kept evicts others for bytes it does not hold
/// (`trawl_segment_cache_bytes` overstates memory the same way).
#[test]
fn sealed_segments_are_counted_once_per_text_column_for_the_shared_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let estate = wordy_estate(2000);
    let mut config = StoreConfig::new(dir.path());
    config.open_shards = 1;
    config.segment_cache_bytes_max = 16 << 20;
    let (store, engine, cache) = cached(config);
    let hour: Vec<Flow> = (0..2000)
        .map(|i| Flow {
            start: T0 + (i as u32 * 61) % HOUR,
            src: i % 2000,
            dst: (i * 7 + 1) % 2000,
            src_port: 40_000,
            dst_port: 443,
            protocol: 6,
            bytes: 100,
            packets: 1,
            reject: false,
            egress: true,
        })
        .collect();
    add(&mut store.write().unwrap(), &estate, &hour, None);
    store.write().unwrap().seal().unwrap();
    let rollups = rollup_ids(&store).len();
    assert_eq!(rollups, 3, "setup: one segment per rollup");
    let after_seal = cache.stats();
    // The same segments read back from Parquet (each column's dictionary
    // holds only its own values) are counted small enough to fit.
    for table in ["flows_1m", "flows_1h", "flows_1d"] {
        run_sql(&engine, &format!("SELECT count(*) FROM {table}"));
    }
    let after_load = cache.stats();
    assert_eq!(
        after_seal.segments, rollups,
        "sealed segments kept in a 16 MiB cache: {after_seal:?}; \
         the same segments loaded from Parquet: {after_load:?}"
    );
}

/// sql.rs `take_cached` / segment_cache.rs `begin_load`: a segment the
/// cache can never hold (decoded larger than `segment_cache_bytes_max`,
/// or refused by the schema or row check) is read in full by a blocking
/// loader, thrown away at `insert`, and scheduled again by the next query
/// that misses it: every query decodes it twice (the Parquet scan and the
/// loader), the loader outside the query memory pool and past the
/// cache's bound, and after a cancelled query too. The same holds for a
/// working set larger than the cache (each query loads what the last one
/// evicted).
#[test]
fn a_segment_larger_than_the_cache_is_loaded_again_by_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let mut config = StoreConfig::new(dir.path());
    config.segment_cache_bytes_max = 1024;
    let (store, engine, cache) = cached(config);
    let all = flows(2000, T0, HOUR, 0);
    add(&mut store.write().unwrap(), &estate, &all, None);
    store.write().unwrap().seal().unwrap();
    // The query's loads are done when run_sql's runtime is dropped.
    assert_eq!(query_sums(&engine, "flows_1m"), oracle(&estate, &all, 60));
    assert_eq!(cache.stats().segments, 0, "nothing fits in 1 KiB");
    let reloaded: Vec<u64> = ids_of(&store, "flows_1m")
        .into_iter()
        .filter(|id| {
            let again = cache.begin_load(*id);
            if again {
                cache.end_load(*id);
            }
            again
        })
        .collect();
    assert!(
        reloaded.is_empty(),
        "the next query would read segments {reloaded:?} in full again, only to drop them"
    );
}

// ---------------------------------------------------------------------
// Checked and found sound (these pass).
// ---------------------------------------------------------------------

/// Filters stay above the scan (`supports_filters_pushdown` is
/// `Inexact`), so cached segments, which skip row-group pruning, answer
/// time-bounded (aligned or not, one-sided, BETWEEN), dimension-filtered
/// and LIMIT queries exactly as Parquet did, for every rollup.
#[test]
fn fine_filtered_and_limited_queries_from_memory_equal_parquet_and_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let store = plain_store(StoreConfig::new(dir.path()));
    let all = flows(4000, T0, 6 * HOUR, 0);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &all[..2000], None);
        s.seal().unwrap();
        add(&mut s, &estate, &all[2000..], None);
        s.seal().unwrap();
    }
    // Sealed before the engine: the first pass reads Parquet (partly).
    let (engine, cache) = server_engine(&store);
    let want = |grain: u32, keep: &dyn Fn(u32) -> bool| {
        let (mut f, mut b, mut keys) = (0u64, 0u64, 0i64);
        for (key, sums) in oracle(&estate, &all, grain) {
            if keep(key.0 as u32) {
                f += sums.2;
                b += sums.0;
                keys += 1;
            }
        }
        (f, b, keys)
    };
    let cases: Vec<(&str, String, Box<dyn Fn(u32) -> bool>)> = vec![
        (
            "flows_1m",
            format!(
                "time >= {} AND time < {}",
                ts(T0 + HOUR + 90),
                ts(T0 + 3 * HOUR)
            ),
            Box::new(|t| (T0 + HOUR + 90..T0 + 3 * HOUR).contains(&t)),
        ),
        (
            "flows_1m",
            format!(
                "time BETWEEN {} AND {}",
                ts(T0 + 2 * HOUR),
                ts(T0 + 2 * HOUR + 600)
            ),
            Box::new(|t| (T0 + 2 * HOUR..=T0 + 2 * HOUR + 600).contains(&t)),
        ),
        (
            "flows_1m",
            format!("time = {}", ts(T0 + 4 * HOUR + 120)),
            Box::new(|t| t == T0 + 4 * HOUR + 120),
        ),
        (
            "flows_1h",
            format!("time > {}", ts(T0 + 3 * HOUR)),
            Box::new(|t| t > T0 + 3 * HOUR),
        ),
        (
            "flows_1d",
            format!("time < {}", ts(T0 + 1)),
            Box::new(|t| t < T0 + 1),
        ),
    ];
    let grain = |table: &str| match table {
        "flows_1m" => 60,
        "flows_1h" => HOUR,
        _ => 86_400,
    };
    // The count of keys: the oracle's key has every dimension the
    // synthetic flows vary, so grouped rows = keys.
    let sql = |table: &str, filter: &str| {
        format!(
            "SELECT CAST(sum(f) AS BIGINT UNSIGNED), CAST(sum(b) AS BIGINT UNSIGNED), count(*) FROM \
             (SELECT time, src_app, dst_app, service_port, action, cross_az, \
              sum(flows) AS f, sum(bytes) AS b FROM {table} WHERE {filter} \
              GROUP BY 1, 2, 3, 4, 5, 6)"
        )
    };
    let cold: Vec<_> = cases
        .iter()
        .map(|(table, filter, _)| totals(&engine, &sql(table, filter)))
        .collect();
    for table in ["flows_1m", "flows_1h", "flows_1d"] {
        run_sql(&engine, &format!("SELECT count(*) FROM {table}"));
    }
    assert_eq!(
        cache.stats().segments,
        rollup_ids(&store).len(),
        "setup: warm"
    );
    let misses = cache.stats().misses;
    for ((table, filter, keep), cold) in cases.iter().zip(cold) {
        let warm = totals(&engine, &sql(table, filter));
        let want = want(grain(table), keep.as_ref());
        assert_eq!(cold, want, "{table} WHERE {filter}: cold");
        assert_eq!(warm, cold, "{table} WHERE {filter}: warm");
    }
    assert_eq!(cache.stats().misses, misses, "served from memory only");
    // A dimension filter, and a LIMIT pushed into the scan.
    let api = |engine: &SqlEngine| {
        totals(
            engine,
            "SELECT CAST(sum(flows) AS BIGINT UNSIGNED), CAST(sum(bytes) AS BIGINT UNSIGNED), \
             count(*) FROM flows_1m WHERE src_app = 'api' AND protocol = 6",
        )
    };
    let want_api: u64 = all
        .iter()
        .filter(|f| estate.app(f.src) == Some("api"))
        .count() as u64;
    assert_eq!(api(&engine).0, want_api);
    for n in [1usize, 3, 50] {
        let rows: usize = run_sql(&engine, &format!("SELECT * FROM flows_1m LIMIT {n}"))
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, n, "LIMIT {n}");
    }
}

/// Rows a seal is writing are open rows (`open_batches` reads
/// `self.sealing`) until `seal_finish`, which publishes, caches them and
/// clears `sealing` under the one write lock; a query's scan takes files,
/// open rows and the cache handle under one read lock. A warm cache
/// counts nothing twice at any step (begin, write, finish), nor after a
/// compaction.
#[test]
fn fine_rows_being_sealed_are_counted_once_with_a_warm_cache() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let (store, engine, cache) = cached(StoreConfig::new(dir.path()));
    let mut all = flows(2000, T0, 4 * HOUR, 0);
    add(&mut store.write().unwrap(), &estate, &all, None);
    store.write().unwrap().seal().unwrap();
    let check = |all: &[Flow], when: &str| {
        for (table, grain) in [("flows_1m", 60), ("flows_1h", HOUR), ("flows_1d", 86_400)] {
            assert_eq!(
                query_sums(&engine, table),
                oracle(&estate, all, grain),
                "{table}: {when}"
            );
        }
    };
    check(&all, "warming");
    assert!(cache.stats().segments > 0);
    // Deltas into the same chunks, and a new one.
    let more = flows(1500, T0 + 2 * HOUR, 3 * HOUR, 3);
    add(&mut store.write().unwrap(), &estate, &more, None);
    all.extend_from_slice(&more);
    check(&all, "open");
    let mut job = store.write().unwrap().seal_begin().unwrap();
    check(&all, "sealing, not written");
    job.write();
    check(&all, "sealing, written");
    // Flows added while the job is out go to fresh open buckets.
    let during = flows(300, T0 + 3 * HOUR, HOUR, 5);
    add(&mut store.write().unwrap(), &estate, &during, None);
    all.extend_from_slice(&during);
    check(&all, "sealing, more open");
    store.write().unwrap().seal_finish(job).unwrap();
    check(&all, "sealed and cached");
    store.write().unwrap().seal().unwrap();
    store.write().unwrap().maintain().unwrap();
    check(&all, "compacted");
    check(&all, "compacted, warm");
}

/// A seal that fails (at any step: segment writes, directory sync,
/// manifest write, publish) leaves its rows in `sealing` and its ids
/// drafted (`ids_drafted`); the cache only takes ids a published manifest
/// lists, so the retry's new ids, its cached batches and the rows still
/// open never overlap.
#[test]
fn fine_a_failed_seal_and_its_retry_answer_once_from_the_cache() {
    for steps in [0, 1, 5, 15, 25, 30, 35, 40, 60] {
        let dir = tempfile::tempdir().unwrap();
        let estate = Estate::new(12);
        let mut config = StoreConfig::new(dir.path());
        config.open_shards = 2;
        let (store, engine, cache) = cached(config);
        let mut all = flows(1200, T0, 3 * HOUR, 0);
        add(&mut store.write().unwrap(), &estate, &all, None);
        store.write().unwrap().seal().unwrap();
        assert_eq!(query_sums(&engine, "flows_1m"), oracle(&estate, &all, 60));
        let more = flows(900, T0 + HOUR, 3 * HOUR, 2);
        add(&mut store.write().unwrap(), &estate, &more, None);
        all.extend_from_slice(&more);
        {
            let mut s = store.write().unwrap();
            s.interrupt_next_commit_after(steps);
            let _ = s.seal();
        }
        assert_eq!(
            query_sums(&engine, "flows_1m"),
            oracle(&estate, &all, 60),
            "after a seal interrupted at {steps}"
        );
        store.write().unwrap().seal().unwrap();
        let listed = rollup_ids(&store);
        assert!(cache.stats().segments <= listed.len());
        for (table, grain) in [("flows_1m", 60), ("flows_1h", HOUR), ("flows_1d", 86_400)] {
            assert_eq!(
                query_sums(&engine, table),
                oracle(&estate, &all, grain),
                "{table}: retried after {steps}"
            );
        }
    }
}

/// Routing builds `StoreTable`s for the coarser rollups (route.rs
/// `scan_of`): with a warm cache, routed answers equal unrouted ones, and
/// the detail table `flows` is never cached (scan and `cache_segments`
/// both skip it) yet counts every record.
#[test]
fn fine_routed_queries_and_the_detail_table_with_a_warm_cache() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let mut config = StoreConfig::new(dir.path());
    config.detail.retention_secs = 3 * 86_400;
    let (store, engine, cache) = cached(config);
    let all = flows(3000, T0, 30 * HOUR, 0);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &all[..1000], None);
        s.seal().unwrap();
        add(&mut s, &estate, &all[1000..], None);
        s.seal().unwrap();
    }
    let plain = SqlEngine::new(store.clone(), None)
        .unwrap()
        .without_rollup_routing();
    let queries = [
        "SELECT src_app, dst_app, CAST(sum(bytes) AS BIGINT UNSIGNED) AS b FROM flows_1m \
         GROUP BY src_app, dst_app ORDER BY b DESC, src_app, dst_app"
            .to_string(),
        format!(
            "SELECT CAST(date_trunc('hour', time) AS BIGINT) AS h, src_app, \
             CAST(sum(flows) AS BIGINT UNSIGNED) AS f FROM flows_1m \
             WHERE time >= {} AND time < {} GROUP BY h, src_app ORDER BY h, src_app",
            ts(T0 + 2 * HOUR),
            ts(T0 + 26 * HOUR)
        ),
    ];
    let text = |batches: Vec<RecordBatch>| {
        arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    };
    for round in ["cold", "warm"] {
        for sql in &queries {
            assert_eq!(
                text(run_sql(&engine, sql)),
                text(run_sql(&plain, sql)),
                "{round}: {sql}"
            );
        }
        let count = run_sql(&engine, "SELECT count(*) FROM flows");
        assert_eq!(
            count[0].column(0).as_primitive::<Int64Type>().value(0),
            all.len() as i64,
            "{round}: flows"
        );
    }
    for id in ids_of(&store, "flows") {
        assert!(cache.get(id).is_none(), "detail segment {id} cached");
    }
    assert_eq!(cache.stats().segments, rollup_ids(&store).len());
}

/// Seals and compactions on one thread while another queries: each answer
/// (sum of `flows`, from flows_1m and routed to flows_1d) lies between the
/// flows added before the query and those added after it: nothing lost or
/// counted twice across publishes, `retain`, loads and cached seals.
#[test]
fn fine_queries_racing_seals_and_compactions_count_each_flow_once() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let mut config = StoreConfig::new(dir.path());
    config.delete_delay = std::time::Duration::ZERO;
    config.segments_per_chunk_max = 2;
    let (store, engine, _cache) = cached(config);
    let added = Arc::new(AtomicU64::new(0));
    let rounds = 24;
    let writer = {
        let (store, added) = (store.clone(), added.clone());
        std::thread::spawn(move || {
            let estate = Estate::new(12);
            for round in 0..rounds {
                let batch = flows(150, T0 + (round as u32 / 3) * HOUR, 2 * HOUR, round);
                {
                    let s = store.write().unwrap();
                    add_shared(&s, &estate, &batch);
                    added.fetch_add(batch.len() as u64, Ordering::SeqCst);
                }
                store.write().unwrap().seal().unwrap();
                if round % 3 == 2 {
                    store.write().unwrap().maintain().unwrap();
                }
            }
        })
    };
    let mut checked = 0;
    while !writer.is_finished() || checked < 3 {
        for sql in [
            "SELECT CAST(sum(flows) AS BIGINT UNSIGNED), CAST(sum(bytes) AS BIGINT UNSIGNED), \
             count(*) FROM flows_1m",
            "SELECT CAST(sum(flows) AS BIGINT UNSIGNED), CAST(sum(bytes) AS BIGINT UNSIGNED), \
             count(*) FROM (SELECT src_app, sum(flows) AS flows, sum(bytes) AS bytes \
             FROM flows_1m GROUP BY src_app)",
        ] {
            let lo = added.load(Ordering::SeqCst);
            let (got, _, _) = totals(&engine, sql);
            let hi = added.load(Ordering::SeqCst);
            assert!(
                lo <= got && got <= hi,
                "{got} flows, {lo}..={hi} added: {sql}"
            );
        }
        checked += 1;
    }
    writer.join().unwrap();
    let _ = estate;
}

fn add_shared(store: &Store, estate: &Estate, flows: &[Flow]) {
    common::add_to(store, None, estate, flows, None);
}
