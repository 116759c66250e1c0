//! Cold review of b64e4da ("Seals skip regrouping that does not pay"):
//! a derived rollup's source chunk is passed through (time floored) or
//! regrouped, decided per chunk by a distinct-count estimate; pending
//! segments count shared buffers once.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::{Arc, RwLock};

use common::{Estate, Flow, add, add_to, oracle, query_sums};
use trawl_store::{SqlEngine, Store, StoreConfig};

const HOUR: u32 = 3600;
const DAY: u32 = 86_400;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

/// Flow `i` of a high-cardinality stream: a key of its own at any grain
/// (service port `1000 + i`), so a seal passes every source chunk through.
fn unique(i: usize, start: u32) -> Flow {
    Flow {
        start,
        src: i % 10,
        dst: (i / 10) % 10,
        src_port: 40_000,
        dst_port: 1000 + (i % 30_000) as u16,
        protocol: 6,
        bytes: 100 + i as u64,
        packets: 1 + (i % 7) as u64,
        reject: i.is_multiple_of(13),
        egress: i.is_multiple_of(2),
    }
}

/// `count` unique flows spread over `[start, start + span)`.
fn uniques(count: usize, first: usize, start: u32, span: u32) -> Vec<Flow> {
    (first..first + count)
        .map(|i| unique(i, start + (i as u32 * 61) % span))
        .collect()
}

/// `count` flows over few keys (9 × 11 pairs): a seal regroups them.
fn recurring(count: usize, start: u32, span: u32) -> Vec<Flow> {
    (0..count)
        .map(|i| Flow {
            start: start + (i as u32 * 7919) % span,
            src: i % 9,
            dst: i % 11,
            src_port: 40_000,
            dst_port: 443,
            protocol: 6,
            bytes: 100 + i as u64,
            packets: 2,
            reject: false,
            egress: true,
        })
        .collect()
}

fn open_with(config: StoreConfig) -> (Arc<RwLock<Store>>, SqlEngine) {
    let store = Arc::new(RwLock::new(Store::open(config).expect("open")));
    let engine = SqlEngine::new(store.clone(), None).expect("engine");
    (store, engine)
}

fn base_config(dir: &std::path::Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.open_shards = 1;
    config.delete_delay = std::time::Duration::ZERO;
    config.wall_clock_secs = Some(T0 + 30 * DAY);
    config
}

/// Every rollup of `config` against the oracle at its grain.
fn check_all(engine: &SqlEngine, config: &StoreConfig, estate: &Estate, all: &[Flow], when: &str) {
    for spec in &config.rollups {
        assert_eq!(
            query_sums(engine, &spec.name),
            oracle(estate, all, spec.grain_secs),
            "{}: {when}",
            spec.name
        );
    }
}

fn run_sql(engine: &SqlEngine, sql: &str) -> Vec<arrow::array::RecordBatch> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(engine.query(sql)).expect(sql).batches
}

fn scalar_i64(engine: &SqlEngine, sql: &str) -> i64 {
    use arrow::array::AsArray;
    let batches = run_sql(engine, sql);
    batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

/// Rows of `table` whose time is off its grain.
fn off_grain(engine: &SqlEngine, table: &str, grain: u32) -> i64 {
    scalar_i64(
        engine,
        &format!("SELECT count(*) FROM {table} WHERE CAST(time AS BIGINT) % {grain} <> 0"),
    )
}

/// Seals, checks, compacts (after the chunks closed), checks, reopens,
/// checks: the whole life of `all` in a store of `config`.
fn life(config: StoreConfig, estate: &Estate, batches: &[Vec<Flow>]) {
    let (store, engine) = open_with(config.clone());
    let mut all = Vec::new();
    for batch in batches {
        add(&mut store.write().unwrap(), estate, batch, None);
        all.extend_from_slice(batch);
        check_all(&engine, &config, estate, &all, "open");
        store.write().unwrap().seal().unwrap();
        check_all(&engine, &config, estate, &all, "sealed");
    }
    for spec in &config.rollups {
        assert_eq!(
            off_grain(&engine, &spec.name, spec.grain_secs),
            0,
            "{}",
            spec.name
        );
    }
    // Move the watermark past every chunk, then compact.
    let last = all.iter().map(|f| f.start).max().unwrap();
    let markers = move_watermark_past(&store, estate, last);
    all.extend(markers);
    store.write().unwrap().maintain().unwrap();
    check_all(&engine, &config, estate, &all, "compacted");
    drop((store, engine));
    let (_store, engine) = open_with(config.clone());
    check_all(&engine, &config, estate, &all, "reopened");
}

/// Adds three flows (a jump needs confirming) three days after `last`
/// and seals, so the watermark passes every chunk up to `last`.
fn move_watermark_past(store: &Arc<RwLock<Store>>, estate: &Estate, last: u32) -> Vec<Flow> {
    let far = last + 3 * DAY;
    let markers: Vec<Flow> = (0..3).map(|k| unique(999_990 + k, far + k as u32)).collect();
    let mut s = store.write().unwrap();
    add(&mut s, estate, &markers, None);
    s.seal().unwrap();
    assert!(s.watermark() > last + DAY, "the watermark moved");
    markers
}

// ---------------------------------------------------------------------
// Checked and found fine (these pass).
// ---------------------------------------------------------------------

/// Default tables, one shard: passed-through and regrouped chunks in
/// the same derived chunk, late deltas, compaction, reopen.
#[test]
fn fine_default_tables_mixed_chunks_deltas_compaction_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let batches = vec![
        [uniques(3000, 0, T0, HOUR), recurring(3000, T0 + HOUR, HOUR)].concat(),
        // Late into both hours (deltas), and a new hour of each kind.
        [
            uniques(500, 3000, T0, HOUR),
            recurring(500, T0 + HOUR, HOUR),
            uniques(800, 4000, T0 + 3 * HOUR, HOUR),
        ]
        .concat(),
    ];
    life(base_config(dir.path()), &estate, &batches);
}

/// Three shards, each passing its own chunks through.
#[test]
fn fine_three_shards_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = base_config(dir.path());
    config.open_shards = 3;
    let (store, engine) = open_with(config.clone());
    let mut all = Vec::new();
    for (i, start) in [T0, T0 + HOUR, T0].into_iter().enumerate() {
        let batch = uniques(1500, i * 1500, start, 2 * HOUR);
        add_to(&store.read().unwrap(), Some(i), &estate, &batch, None);
        all.extend(batch);
    }
    store.write().unwrap().seal().unwrap();
    check_all(&engine, &config, &estate, &all, "sealed");
    store.write().unwrap().maintain().unwrap();
    check_all(&engine, &config, &estate, &all, "maintained");
}

/// Source chunk 90 min, derived chunks of 3 h and a day: a source chunk
/// still lies in one derived chunk; times floored stay in it.
#[test]
fn fine_odd_chunk_lengths_that_divide() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = base_config(dir.path());
    config.rollups[0].chunk_secs = 5400;
    config.rollups[1].chunk_secs = 3 * HOUR;
    let batches = vec![
        uniques(4000, 0, T0 + 2 * HOUR, 6 * HOUR),
        recurring(2000, T0 + DAY - 2 * HOUR, 4 * HOUR),
    ];
    life(config, &estate, &batches);
}

/// A derived chunk (1 h) shorter than, so not a multiple of, its source's
/// (2 h): always regrouped, as before.
#[test]
fn fine_derived_chunk_not_a_multiple_of_the_source_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = base_config(dir.path());
    config.rollups[0].chunk_secs = 2 * HOUR;
    config.rollups[1].chunk_secs = HOUR;
    let batches = vec![uniques(3000, 0, T0, 5 * HOUR)];
    life(config, &estate, &batches);
}

/// A derived chunk that is a multiple of a 2 h source chunk whose grain
/// (1 h) is not: passed through, floored into two buckets per chunk.
#[test]
fn fine_grain_not_a_multiple_of_the_source_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = base_config(dir.path());
    config.rollups[0].chunk_secs = 2 * HOUR;
    let batches = vec![
        uniques(3000, 0, T0, 5 * HOUR),
        recurring(3000, T0 + 6 * HOUR, 4 * HOUR),
    ];
    life(config, &estate, &batches);
}

/// Derived tables that keep fewer dimensions than their source: the
/// passed-through batch takes the kept columns by name.
#[test]
fn fine_derived_tables_with_fewer_dimensions() {
    use trawl_store::Dim;
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = base_config(dir.path());
    let kept = vec![
        Dim::SrcApp,
        Dim::DstApp,
        Dim::ServicePort,
        Dim::Action,
        Dim::CrossAz,
    ];
    config.rollups[1].dims = kept.clone();
    config.rollups[2].dims = kept;
    let batches = vec![[uniques(3000, 0, T0, HOUR), recurring(2000, T0 + HOUR, HOUR)].concat()];
    life(config, &estate, &batches);
}

/// A flow past `flows_1m`'s retention goes to the derived tables' own
/// rows; those are regrouped into the same segment as a passed-through
/// chunk of the same day.
#[test]
fn fine_own_rows_past_the_source_retention_beside_passed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = base_config(dir.path());
    config.rollups[0].retention_secs = 2 * HOUR;
    let (store, engine) = open_with(config.clone());
    let new = uniques(2000, 0, T0 + 6 * HOUR, HOUR);
    let late = uniques(300, 5000, T0, HOUR);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &new, None);
        add(&mut s, &estate, &late, None);
        s.seal().unwrap();
    }
    let all = [new.clone(), late].concat();
    assert_eq!(query_sums(&engine, "flows_1m"), oracle(&estate, &new, 60));
    assert_eq!(query_sums(&engine, "flows_1h"), oracle(&estate, &all, HOUR));
    assert_eq!(query_sums(&engine, "flows_1d"), oracle(&estate, &all, DAY));
}

/// Routed (to `flows_1d`) and unrouted answers agree over passed-through rows.
#[test]
fn fine_routing_agrees_over_passed_through_rows() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let config = base_config(dir.path());
    let (store, routed) = open_with(config);
    let plain = SqlEngine::new(store.clone(), None)
        .unwrap()
        .without_rollup_routing();
    add(
        &mut store.write().unwrap(),
        &estate,
        &[uniques(3000, 0, T0, 3 * HOUR), recurring(1000, T0, HOUR)].concat(),
        None,
    );
    store.write().unwrap().seal().unwrap();
    let sql = "SELECT CAST(src_app AS VARCHAR) AS a, CAST(sum(bytes) AS BIGINT) AS b, \
               count(DISTINCT service_port) AS p FROM flows_1m GROUP BY 1 ORDER BY 1";
    let show = |engine: &SqlEngine| {
        arrow::util::pretty::pretty_format_batches(&run_sql(engine, sql))
            .unwrap()
            .to_string()
    };
    let explain = show_plan(&routed, sql);
    assert!(explain.contains("flows_1d"), "routed: {explain}");
    assert_eq!(show(&routed), show(&plain));
}

fn show_plan(engine: &SqlEngine, sql: &str) -> String {
    arrow::util::pretty::pretty_format_batches(&run_sql(engine, &format!("EXPLAIN {sql}")))
        .unwrap()
        .to_string()
}

/// A crash between any two durable steps of a seal that passes chunks
/// through loses and doubles nothing.
#[test]
fn fine_crash_at_every_step_of_a_pass_through_seal() {
    let estate = Estate::new(10);
    let first = uniques(2000, 0, T0, HOUR);
    let second = [
        uniques(2000, 2000, T0 + HOUR, HOUR),
        recurring(500, T0, HOUR),
    ]
    .concat();
    let mut steps = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let config = base_config(dir.path());
        let interrupted = {
            let (store, _engine) = open_with(config.clone());
            let mut s = store.write().unwrap();
            add(&mut s, &estate, &first, Some(("src", "1")));
            s.seal().unwrap();
            add(&mut s, &estate, &second, Some(("src", "2")));
            s.interrupt_next_commit_after(steps);
            s.seal().is_err()
        };
        let (store, engine) = open_with(config.clone());
        {
            let mut s = store.write().unwrap();
            if s.positions().get("src").map(String::as_str) != Some("2") {
                add(&mut s, &estate, &second, Some(("src", "2")));
            }
            s.seal().unwrap();
            s.maintain().unwrap();
        }
        let all = [first.clone(), second.clone()].concat();
        check_all(
            &engine,
            &config,
            &estate,
            &all,
            &format!("crash after {steps}"),
        );
        if !interrupted {
            break;
        }
        steps += 1;
    }
    assert!(steps >= 7, "only {steps} crash points");
}

/// The memory figure of a first seal counts shared buffers once and sums
/// to at most what every batch holds.
#[test]
fn fine_count_once_is_not_above_the_per_batch_count() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, _engine) = open_with(base_config(dir.path()));
    let mut s = store.write().unwrap();
    add(&mut s, &estate, &uniques(5000, 0, T0, 2 * HOUR), None);
    let before = s.open_bytes();
    let job = s.seal_begin().unwrap();
    let during = s.open_bytes();
    assert!(during > 0 && during < before * 4, "{before} -> {during}");
    drop(job);
}

// ---------------------------------------------------------------------
// Probes.
// ---------------------------------------------------------------------

#[test]
fn probe_memory_after_failed_seals() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, _engine) = open_with(base_config(dir.path()));
    let mut s = store.write().unwrap();
    add(&mut s, &estate, &uniques(5000, 0, T0, 2 * HOUR), None);
    let open = s.open_bytes();
    s.interrupt_next_commit_after(0);
    assert!(s.seal().is_err());
    let first = s.open_bytes();
    s.interrupt_next_commit_after(0);
    assert!(s.seal().is_err());
    let second = s.open_bytes();
    s.interrupt_next_commit_after(0);
    assert!(s.seal().is_err());
    let third = s.open_bytes();
    eprintln!("open {open} first {first} second {second} third {third}");
    for t in ["flows_1m", "flows_1h", "flows_1d"] {
        let rows: u64 = s
            .manifest()
            .segments
            .iter()
            .filter(|x| x.table == t)
            .map(|x| x.rows)
            .sum();
        eprintln!("{t} {rows}");
    }
}
