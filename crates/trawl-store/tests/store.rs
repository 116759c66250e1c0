//! The store end to end through SQL: open buckets, seals, deltas,
//! compaction, retention, the memory cap, and reopening.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock};

use crate::common::{self, Estate, Flow, add, oracle, query_sums};
use trawl_store::{SqlEngine, Store, StoreConfig, StoreError};

const HOUR: u32 = 3600;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

fn flow(start: u32, src: usize, dst: usize, bytes: u64) -> Flow {
    Flow {
        start,
        src,
        dst,
        src_port: 40_000 + (bytes % 1000) as u16,
        dst_port: if dst.is_multiple_of(2) { 443 } else { 5432 },
        protocol: 6,
        bytes,
        packets: bytes / 100 + 1,
        reject: bytes.is_multiple_of(13),
        egress: src.is_multiple_of(2),
    }
}

fn flows(count: usize, start: u32, span_secs: u32) -> Vec<Flow> {
    (0..count)
        .map(|i| {
            let i32_ = i as u32;
            flow(
                start + (i32_ * 7919) % span_secs,
                i % 9,
                (i * 3 + 1) % 11,
                100 + (i as u64 * 37) % 5000,
            )
        })
        .collect()
}

fn open(dir: &std::path::Path) -> (Arc<RwLock<Store>>, SqlEngine) {
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(dir)).expect("open"),
    ));
    let engine = SqlEngine::new(store.clone(), None).expect("engine");
    (store, engine)
}

fn check(engine: &SqlEngine, estate: &Estate, all: &[Flow]) {
    assert_eq!(
        query_sums(engine, "flows_1m"),
        oracle(estate, all, 60),
        "flows_1m"
    );
    assert_eq!(
        query_sums(engine, "flows_1h"),
        oracle(estate, all, 3600),
        "flows_1h"
    );
    assert_eq!(
        query_sums(engine, "flows_1d"),
        oracle(estate, all, 86_400),
        "flows_1d"
    );
}

#[test]
fn records_are_queryable_before_and_after_sealing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let batch = flows(2000, T0, 2 * HOUR);
    let (store, engine) = open(dir.path());
    add(
        &mut store.write().unwrap(),
        &estate,
        &batch,
        Some(("file:a", "100")),
    );
    check(&engine, &estate, &batch);

    let report = store.write().unwrap().seal().unwrap();
    assert_eq!(
        report.segments,
        2 + 1 + 1 + 2,
        "two hours of flows_1m, one day of flows_1h, one day of flows_1d, two hours of flows"
    );
    assert_eq!(store.read().unwrap().open_rows(), 0);
    check(&engine, &estate, &batch);
    drop((store, engine));

    let (store, engine) = open(dir.path());
    assert_eq!(store.read().unwrap().positions()["file:a"], "100");
    check(&engine, &estate, &batch);
}

/// A seal writes its segments without the store lock: the rows it took
/// are answered while it writes, flows added meanwhile wait for the next
/// seal, and a seal that fails keeps its rows for the next one.
#[test]
fn rows_being_sealed_stay_answered_and_a_failed_seal_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let first = flows(2000, T0, 2 * HOUR);
    let (store, engine) = open(dir.path());
    add(
        &mut store.write().unwrap(),
        &estate,
        &first,
        Some(("file:a", "100")),
    );

    let mut job = store.write().unwrap().seal_begin().unwrap();
    check(&engine, &estate, &first);
    let sealing_rows = store.read().unwrap().open_rows();
    assert!(sealing_rows > 0 && job.segments() > 0);
    let second = flows(1500, T0 + HOUR, 2 * HOUR);
    add(
        &mut store.write().unwrap(),
        &estate,
        &second,
        Some(("file:a", "200")),
    );
    let both: Vec<Flow> = first.iter().chain(&second).cloned().collect();
    check(&engine, &estate, &both);
    assert!(matches!(
        store.write().unwrap().seal_begin(),
        Err(StoreError::SealInFlight)
    ));
    assert_eq!(store.write().unwrap().maintain().unwrap(), 0);

    job.write();
    check(&engine, &estate, &both);
    let report = store.write().unwrap().seal_finish(job).unwrap();
    assert_eq!(
        report.rows, sealing_rows as u64,
        "the rows taken at the start"
    );
    assert!(
        store.read().unwrap().open_rows() > 0,
        "the second batch waits"
    );
    assert_eq!(store.read().unwrap().positions()["file:a"], "100");
    check(&engine, &estate, &both);

    // The next seal fails before its first segment: nothing is lost.
    store.write().unwrap().interrupt_next_commit_after(0);
    assert!(store.write().unwrap().seal().is_err());
    assert!(store.read().unwrap().open_rows() > 0);
    check(&engine, &estate, &both);
    // A job dropped unfinished (its writer panicked) holds nothing up.
    let abandoned = store.write().unwrap().seal_begin().unwrap();
    assert!(store.read().unwrap().seal_in_flight());
    drop(abandoned);
    assert!(!store.read().unwrap().seal_in_flight());
    check(&engine, &estate, &both);
    store.write().unwrap().seal().unwrap();
    assert_eq!(store.read().unwrap().open_rows(), 0);
    check(&engine, &estate, &both);
    drop((store, engine));

    let (store, engine) = open(dir.path());
    assert_eq!(store.read().unwrap().positions()["file:a"], "200");
    check(&engine, &estate, &both);
}

#[test]
fn late_records_land_in_delta_segments_and_compaction_merges_them() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(dir.path());
    let first = flows(1000, T0, HOUR);
    add(&mut store.write().unwrap(), &estate, &first, None);
    store.write().unwrap().seal().unwrap();

    // Time moves three hours on; then a record for the first hour arrives.
    let later = flows(500, T0 + 3 * HOUR, HOUR);
    let late = flows(300, T0, HOUR);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &later, None);
        add(&mut s, &estate, &late, None);
        assert_eq!(s.stats().late_records, 300);
        s.seal().unwrap();
        assert!(s.stats().delta_segments >= 1, "{:?}", s.stats());
    }
    let all: Vec<Flow> = [first, later, late].concat();
    check(&engine, &estate, &all);

    let segments_before = store.read().unwrap().manifest().segments.len();
    let compacted = store.write().unwrap().maintain().unwrap();
    assert!(
        compacted >= 2,
        "flows_1m and flows hour 0 each had two segments"
    );
    assert!(store.read().unwrap().manifest().segments.len() < segments_before);
    check(&engine, &estate, &all);
    store.write().unwrap().delete_doomed(true);
    drop((store, engine));
    let (_store, engine) = open(dir.path());
    check(&engine, &estate, &all);
}

#[test]
fn retention_removes_old_chunks_only() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = StoreConfig::new(dir.path());
    config.rollups[0].retention_secs = 2 * HOUR;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    let old = flows(200, T0, HOUR);
    let new = flows(200, T0 + 5 * HOUR, HOUR);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &old, None);
        s.seal().unwrap();
        add(&mut s, &estate, &new, None);
        s.seal().unwrap();
        assert!(s.stats().segments_expired >= 1);
    }
    assert_eq!(
        query_sums(&engine, "flows_1m"),
        oracle(&estate, &new, 60),
        "old hour gone from flows_1m"
    );
    let all = [old, new].concat();
    assert_eq!(
        query_sums(&engine, "flows_1h"),
        oracle(&estate, &all, 3600),
        "flows_1h keeps it"
    );
}

#[test]
fn a_flow_past_the_minute_retention_still_reaches_the_derived_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = StoreConfig::new(dir.path());
    config.rollups[0].retention_secs = 2 * HOUR;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    let new = flows(200, T0 + 5 * HOUR, HOUR);
    let late = flows(50, T0, HOUR);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &new, None);
        add(&mut s, &estate, &late, None);
        assert_eq!(s.stats().expired_records, 50, "too old for flows_1m");
    }
    let all = [new.clone(), late].concat();
    for sealed in [false, true] {
        assert_eq!(query_sums(&engine, "flows_1m"), oracle(&estate, &new, 60));
        assert_eq!(
            query_sums(&engine, "flows_1h"),
            oracle(&estate, &all, 3600),
            "sealed: {sealed}"
        );
        assert_eq!(
            query_sums(&engine, "flows_1d"),
            oracle(&estate, &all, 86_400),
            "sealed: {sealed}"
        );
        store.write().unwrap().seal().unwrap();
    }
}

#[test]
fn the_memory_cap_seals_early_instead_of_growing() {
    // The store says when it is over the cap; its caller seals (a pipeline
    // does so after releasing the flows it holds back: issue 13 #3).
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = StoreConfig::new(dir.path());
    config.open_bytes_max = 256 * 1024;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    let (mut all, mut early_seals) = (Vec::new(), 0);
    for i in 0..20u32 {
        let batch = flows(500, T0 + i * 60, HOUR);
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &batch, Some(("src", &i.to_string())));
        if s.over_cap() {
            s.seal().unwrap();
            early_seals += 1;
        }
        assert!(
            s.open_bytes() <= 256 * 1024,
            "open memory {} over the cap",
            s.open_bytes()
        );
        all.extend(batch);
    }
    assert!(early_seals > 0);
    check(&engine, &estate, &all);
}

#[test]
fn time_filters_prune_and_still_answer_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(dir.path());
    let batch = flows(3000, T0, 3 * HOUR);
    add(&mut store.write().unwrap(), &estate, &batch, None);
    store.write().unwrap().seal().unwrap();
    let from = T0 + HOUR + 600;
    let sql = format!(
        "SELECT CAST(sum(bytes) AS BIGINT UNSIGNED) FROM flows_1m \
         WHERE time >= to_timestamp_seconds({from}) AND time < to_timestamp_seconds({})",
        from + 1800
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(engine.query(&sql)).unwrap();
    use arrow::array::AsArray;
    let got = result.batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::UInt64Type>()
        .value(0);
    let expected: u64 = batch
        .iter()
        .filter(|f| f.start - f.start % 60 >= from && f.start - f.start % 60 < from + 1800)
        .map(|f| f.bytes)
        .sum();
    assert_eq!(got, expected);
    let plan = runtime
        .block_on(engine.query(&format!("EXPLAIN {sql}")))
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&plan.batches)
        .unwrap()
        .to_string();
    assert_eq!(
        text.matches(".parquet").count(),
        1,
        "only the one hour's segment is read:\n{text}"
    );
}

#[test]
fn workloads_and_ip_history_show_the_attribution_index() {
    let events = r#"{"type":"assign","ip":"10.1.2.3","at":"2026-11-22T10:00:00Z","workload":{"app":"api","region":"us-east-1","labels":{"team":"edge"}}}
{"type":"release","ip":"10.1.2.3","at":"2026-11-22T10:05:00Z"}
{"type":"assign","ip":"10.1.2.3","at":"2026-11-22T10:06:00Z","workload":{"app":"db","kind":"instance"}}
"#;
    let mut index = trawl_attrib::AttributionIndex::default();
    trawl_attrib::read_json_lines(
        events.as_bytes(),
        "events.jsonl",
        |e| index.apply(&e).unwrap(),
        |e| panic!("{e}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(dir.path())).unwrap(),
    ));
    let engine = SqlEngine::new(store, Some(Arc::new(RwLock::new(index)))).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let show = |sql: &str| {
        let result = runtime.block_on(engine.query(sql)).unwrap();
        arrow::util::pretty::pretty_format_batches(&result.batches)
            .unwrap()
            .to_string()
    };
    let history = show(
        "SELECT ip, CAST(valid_from AS VARCHAR) AS f, CAST(valid_to AS VARCHAR) AS t, rule, app \
         FROM ip_history ORDER BY valid_from",
    );
    let expected = "\
+----------+----------------------+----------------------+----------+-----+
| ip       | f                    | t                    | rule     | app |
+----------+----------------------+----------------------+----------+-----+
| 10.1.2.3 | 2026-11-22T10:00:00Z | 2026-11-22T10:05:00Z | declared | api |
| 10.1.2.3 | 2026-11-22T10:06:00Z |                      | declared | db  |
+----------+----------------------+----------------------+----------+-----+";
    assert_eq!(history, expected);
    let workloads =
        show("SELECT app, region, kind, labels FROM workloads WHERE app IS NOT NULL ORDER BY app");
    assert!(
        workloads.contains(r#"| api | us-east-1 |          | {"team":"edge"} |"#),
        "{workloads}"
    );
    assert!(
        workloads.contains("| db  |           | instance |                 |"),
        "{workloads}"
    );
}

#[test]
fn bad_sql_is_an_invalid_query_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, engine) = open(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for sql in [
        "SELEC 1",
        "SELECT nope FROM flows_1m",
        "SELECT * FROM missing",
    ] {
        match runtime.block_on(engine.query(sql)) {
            Err(trawl_store::SqlError::Invalid(e)) => assert!(!e.to_string().is_empty()),
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[test]
fn a_relative_data_dir_is_queryable_after_sealing() {
    // Regression: segment paths relative to the working directory reached
    // DataFusion's object store, which could not find them.
    let dir = tempfile::tempdir_in(".").unwrap();
    let relative = dir
        .path()
        .strip_prefix(std::env::current_dir().unwrap())
        .unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(relative);
    let batch = flows(100, T0, HOUR);
    add(&mut store.write().unwrap(), &estate, &batch, None);
    store.write().unwrap().seal().unwrap();
    check(&engine, &estate, &batch);
}

fn total_flows(engine: &SqlEngine, table: &str) -> u64 {
    query_sums(engine, table).values().map(|v| v.2).sum()
}

/// Issue 13 #1 (review: one_future_record_expires_all_history): one record
/// stamped 20 years ahead (of the stream and the wall clock) moved the
/// watermark there; the next seal expired
/// every segment of every table and every later normal record was dropped
/// as past retention, also after a restart.
#[test]
fn one_future_record_expires_all_history() {
    const DAY: u32 = 86_400;
    let dir = tempfile::tempdir().expect("temp dir");
    let estate = Estate::new(12);
    let (store, engine) = open(dir.path());
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(1000, T0, HOUR),
        Some(("file:a", "1")),
    );
    store.write().unwrap().seal().expect("seal");
    let future = T0 + 20 * 365 * DAY;
    add(
        &mut store.write().unwrap(),
        &estate,
        &[flow(future, 1, 2, 500)],
        Some(("file:b", "1")),
    );
    store.write().unwrap().seal().expect("seal");
    assert!(
        store.read().unwrap().watermark() < T0 + DAY,
        "the future record moved the watermark"
    );
    assert_eq!(store.read().unwrap().stats().future_records, 1);
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(500, T0 + HOUR, HOUR),
        Some(("file:c", "1")),
    );
    store.write().unwrap().seal().expect("seal");
    for table in ["flows_1m", "flows_1h", "flows_1d"] {
        assert_eq!(
            total_flows(&engine, table),
            1501,
            "{table}: history, the future record and new records"
        );
    }
    drop(engine);
    drop(store);
    let (store, engine) = open(dir.path());
    assert_eq!(total_flows(&engine, "flows_1d"), 1501, "after reopening");
    assert!(store.read().unwrap().watermark() < T0 + DAY);
}

/// A manifest whose watermark a version without the horizon carried years
/// ahead is pulled back on open, so retention does not go on expiring.
#[test]
fn a_watermark_past_the_horizon_is_pulled_back_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let estate = Estate::new(12);
    let far = T0 + 20 * 365 * 86_400;
    {
        let mut config = StoreConfig::new(dir.path());
        config.wall_clock_secs = Some(far);
        let mut store = Store::open(config).expect("open");
        add(
            &mut store,
            &estate,
            &[flow(far, 1, 2, 500)],
            Some(("file:b", "1")),
        );
        store.seal().expect("seal");
        assert_eq!(store.watermark(), far - 15 * 60);
    }
    let (store, engine) = open(dir.path());
    let config = StoreConfig::new(dir.path());
    assert!(store.read().unwrap().watermark() <= config.wall_clock() + config.future_slack_secs);
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(100, T0, HOUR),
        Some(("file:c", "1")),
    );
    store.write().unwrap().seal().expect("seal");
    assert_eq!(total_flows(&engine, "flows_1d"), 101);
}

/// The same defect when the stray record is years ahead of the stream but
/// still in the past (a replay of old logs): it waits for confirmation,
/// while the first records after a real gap move the watermark.
#[test]
fn one_record_far_ahead_of_an_old_stream_moves_nothing_until_confirmed() {
    let old = 1_000_000_000 - 1_000_000_000 % 86_400;
    let dir = tempfile::tempdir().expect("temp dir");
    let estate = Estate::new(12);
    let (store, engine) = open(dir.path());
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(1000, old, HOUR),
        Some(("file:a", "1")),
    );
    let stray = old + 5 * 365 * 86_400;
    add(
        &mut store.write().unwrap(),
        &estate,
        &[flow(stray, 1, 2, 500)],
        Some(("file:b", "1")),
    );
    store.write().unwrap().seal().expect("seal");
    assert!(
        store.read().unwrap().watermark() < old + HOUR,
        "the stray record moved the watermark"
    );
    assert_eq!(total_flows(&engine, "flows_1m"), 1001);
    // The next day's records come after a gap: they confirm one another.
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(100, old + 86_400, HOUR),
        Some(("file:c", "1")),
    );
    assert!(store.read().unwrap().watermark() >= old + 86_400 - 15 * 60);
    store.write().unwrap().seal().expect("seal");
    assert_eq!(total_flows(&engine, "flows_1d"), 1101);
}

/// Issue 13 #8 (review: failed_seal_then_delete_doomed_removes_files_the_manifest_lists):
/// retention doomed expired segments while drafting a manifest; when that
/// manifest was not published (disk full), the files were deleted all the
/// same, queries failed and the data directory no longer opened.
#[test]
fn failed_seal_then_delete_doomed_removes_files_the_manifest_lists() {
    const DAY: u32 = 86_400;
    let dir = tempfile::tempdir().expect("temp dir");
    let estate = Estate::new(12);
    let mut config = StoreConfig::new(dir.path());
    config.delete_delay = std::time::Duration::ZERO;
    let store = Arc::new(RwLock::new(Store::open(config.clone()).expect("open")));
    let engine = SqlEngine::new(store.clone(), None).expect("engine");
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(100, T0, HOUR),
        Some(("file:a", "1")),
    );
    store.write().unwrap().seal().expect("seal");
    // Eight days later: the first segments of flows_1m and flows are past retention.
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(10, T0 + 8 * DAY, HOUR),
        Some(("file:a", "2")),
    );
    {
        let mut s = store.write().unwrap();
        s.interrupt_next_commit_after(0);
        assert!(s.seal().is_err(), "the seal fails (I/O error)");
        s.interrupt_next_commit_after(0);
        let _ = s.maintain();
        s.delete_doomed(false);
    }
    let missing: Vec<_> = store
        .read()
        .unwrap()
        .manifest()
        .segments
        .iter()
        .filter(|s| !dir.path().join(&s.file).exists())
        .map(|s| s.file.clone())
        .collect();
    assert!(missing.is_empty(), "listed files deleted: {missing:?}");
    assert_eq!(total_flows(&engine, "flows_1d"), 110);
    // Once a seal succeeds, the expired files go.
    store.write().unwrap().seal().expect("seal");
    store.write().unwrap().delete_doomed(false);
    let files = std::fs::read_dir(dir.path().join("flows_1m"))
        .expect("dir")
        .count();
    let listed = store
        .read()
        .unwrap()
        .manifest()
        .segments
        .iter()
        .filter(|s| s.table == "flows_1m")
        .count();
    assert_eq!(files, listed, "expired flows_1m files left behind");
    drop(engine);
    drop(store);
    assert!(Store::open(config).is_ok(), "the data directory opens");
}

/// Issue 13 #14: after a failed commit the next seal numbered its segments
/// from the same id and so rewrote, in place, files of the same name; had
/// the failed manifest reached the disk (a failed directory sync after its
/// rename), a crash in that rewrite left it naming truncated files.
#[test]
fn a_seal_after_a_failed_commit_never_reuses_a_segment_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let estate = Estate::new(12);
    let (store, engine) = open(dir.path());
    add(
        &mut store.write().unwrap(),
        &estate,
        &flows(300, T0, HOUR),
        Some(("file:a", "1")),
    );
    let names = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        ["flows", "flows_1m", "flows_1h", "flows_1d"]
            .iter()
            .flat_map(|t| {
                std::fs::read_dir(dir.join(t))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    {
        let mut s = store.write().unwrap();
        s.interrupt_next_commit_after(2);
        assert!(s.seal().is_err());
    }
    let failed = names(dir.path());
    assert!(!failed.is_empty(), "the failed attempt wrote files");
    store.write().unwrap().seal().expect("seal");
    let listed: std::collections::BTreeSet<String> = store
        .read()
        .unwrap()
        .manifest()
        .segments
        .iter()
        .filter_map(|s| {
            std::path::Path::new(&s.file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect();
    let reused: Vec<_> = listed.intersection(&failed).collect();
    assert!(
        reused.is_empty(),
        "names of the failed attempt reused: {reused:?}"
    );
    assert_eq!(total_flows(&engine, "flows_1m"), 300);
}

/// Issue 13 (robustness). With the string dictionary full, compaction
/// rewrote correct segments with "(dictionary full)" in place of their
/// names; now such a chunk is left as it is (and counted).
#[test]
fn compaction_with_the_dictionary_full_leaves_segments_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(dir.path());
    let first = flows(1000, T0, HOUR);
    let later = flows(500, T0 + 3 * HOUR, HOUR);
    let late = flows(300, T0, HOUR);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &first, None);
        s.seal().unwrap();
        add(&mut s, &estate, &later, None);
        add(&mut s, &estate, &late, None);
        s.seal().unwrap();
    }
    drop((store, engine));
    let mut config = StoreConfig::new(dir.path());
    config.dictionary_strings_max = 4;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    store.write().unwrap().maintain().unwrap();
    assert!(store.read().unwrap().stats().compactions_refused >= 1);
    let all: Vec<Flow> = [first, later, late].concat();
    check(&engine, &estate, &all);
}

/// Rows of `table` in the segments the manifest lists.
fn segment_rows(store: &Store, table: &str) -> u64 {
    store
        .manifest()
        .segments
        .iter()
        .filter(|s| s.table == table)
        .map(|s| s.rows)
        .sum()
}

#[test]
fn a_seal_regroups_derived_rows_whose_keys_recur_and_passes_through_those_that_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    // Hour 1: 9 × 11 pairs, each in every minute: regrouping to the hour
    // keeps a sixtieth of the rows. Hour 2: 1,000 keys (source and
    // protocol), 300 of them in a second minute too: regrouping would keep
    // 1,000 of 1,300 rows, so they are written as they are.
    let recurring: Vec<Flow> = (0..60 * 99)
        .map(|i| flow(T0 + (i as u32 / 99) * 60, i % 9, i % 11, 100))
        .collect();
    let unique: Vec<Flow> = (0..1000)
        .map(|i| Flow {
            protocol: (i % 250) as u8,
            ..flow(T0 + HOUR + (i as u32 % 59) * 60, i / 250, 5, 100)
        })
        .collect();
    let again: Vec<Flow> = unique[..300]
        .iter()
        .map(|f| Flow {
            start: f.start + 60,
            ..*f
        })
        .collect();
    let (store, engine) = open(dir.path());
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &recurring, None);
        add(&mut s, &estate, &unique, None);
        add(&mut s, &estate, &again, None);
        s.seal().unwrap();
        let minute_rows = segment_rows(&s, "flows_1m");
        let hour_rows = segment_rows(&s, "flows_1h");
        // flows_1h: 99 regrouped rows of hour 1 and the 1,300 of hour 2 as
        // they were. flows_1d: both hours fall in one day and are decided
        // together (7,240 rows, at most 1,099 keys, a few shared by both
        // hours): regrouped, a row a key, not the 1,399 passed through.
        assert_eq!(minute_rows, 60 * 99 + 1300, "flows_1m rows");
        assert_eq!(hour_rows, 99 + 1300, "flows_1h rows");
        let day_rows = segment_rows(&s, "flows_1d");
        assert!(
            (1000..=1099).contains(&day_rows),
            "{day_rows} flows_1d rows"
        );
    }
    let all = [recurring, unique, again].concat();
    check(&engine, &estate, &all);
    store.write().unwrap().maintain().unwrap();
    check(&engine, &estate, &all);
}

/// A stream whose slowest partition is behind holds the watermark there
/// (issue 15 #2): its minutes are not sealed as due nor its records late.
#[test]
fn a_watermark_cap_holds_the_watermark_at_the_slowest_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let estate = Estate::new(12);
    let (store, _engine) = open(dir.path());
    let mut store = store.write().unwrap();
    add(&mut store, &estate, &flows(100, T0, HOUR), None);
    let free = store.watermark();
    assert!(free > T0, "the watermark follows the newest flow");
    store.set_watermark_cap("kafka:g:flows", Some(T0));
    assert_eq!(
        store.watermark(),
        T0 - 15 * 60,
        "held at the slowest partition"
    );
    store.set_watermark_cap("kafka:g:other", Some(T0 - 60));
    assert_eq!(
        store.watermark(),
        T0 - 60 - 15 * 60,
        "the smallest cap wins"
    );
    store.set_watermark_cap("kafka:g:other", None);
    store.set_watermark_cap("kafka:g:flows", None);
    assert_eq!(store.watermark(), free, "let go");
}

/// A sink publishes each seal's detail segments by `sealed_in`: those it
/// has not published stay out of compaction (merged into one segment with
/// published rows, they would be published twice or never), and go in
/// once it lets them.
#[test]
fn detail_segments_a_sink_holds_are_not_compacted_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, _engine) = open(dir.path());
    let detail = |store: &Store| -> Vec<Option<u64>> {
        let mut sealed: Vec<Option<u64>> = store
            .manifest()
            .segments
            .iter()
            .filter(|s| s.table == trawl_store::DETAIL_TABLE && s.chunk_start <= T0)
            .map(|s| s.sealed_in)
            .collect();
        sealed.sort();
        sealed
    };
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &flows(200, T0, HOUR), None);
        s.seal().unwrap();
        let first = s.manifest().generation;
        add(&mut s, &estate, &flows(300, T0 + 3 * HOUR, HOUR), None);
        add(&mut s, &estate, &flows(100, T0, HOUR), None);
        s.seal().unwrap();
        let second = s.manifest().generation;
        assert_eq!(detail(&s), vec![Some(first), Some(second)]);
        s.hold_detail_after("kafka:a", Some(first));
        s.hold_detail_after("kafka:b", Some(second));
        s.maintain().unwrap();
        assert_eq!(
            detail(&s),
            vec![Some(first), Some(second)],
            "a seal one sink has not published was compacted"
        );
        // The holds are committed with the next manifest and hold after a
        // reopen (a restart, or a run without the sinks).
        add(&mut s, &estate, &flows(10, T0 + 5 * HOUR, 60), None);
        s.seal().unwrap();
    }
    drop(store);
    let (store, _engine) = open(dir.path());
    let mut s = store.write().unwrap();
    let first = s.detail_hold("kafka:a").unwrap();
    s.maintain().unwrap();
    assert_eq!(detail(&s).len(), 2, "compacted after a reopen");
    s.hold_detail_after("kafka:a", Some(first + 1));
    s.maintain().unwrap();
    assert_eq!(detail(&s), vec![None], "published by both: merged into one");
}

/// `add_noted_batch` (the pipeline's add, which holds no index lock) takes
/// workloads' codes from what `note_workloads` noted: a batch holding a
/// workload not noted is refused whole (no row, no position), and the same
/// batch once noted is added once, with the right owners.
#[test]
fn a_batch_of_workloads_not_noted_is_refused_whole_then_added_once_noted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = open(dir.path());
    let estate = Estate::new(12);
    let batch = flows(300, T0, HOUR);
    let records: Vec<_> = batch.iter().map(common::record).collect();
    let enriched: Vec<_> = batch
        .iter()
        .zip(&records)
        .map(|(f, r)| trawl_store::EnrichedFlow {
            record: r,
            src: estate.id(f.src),
            dst: estate.id(f.dst),
        })
        .collect();
    let position = [("file-a", "42")];
    {
        let s = store.read().unwrap();
        // Only the sources noted: the destinations are not.
        s.note_workloads(enriched.iter().map(|f| f.src), &estate.table);
        let refused = s.add_noted_batch(&enriched, &position);
        assert!(
            matches!(refused, Err(StoreError::WorkloadNotNoted { .. })),
            "{refused:?}"
        );
        assert_eq!(s.stats().records, 0);
    }
    assert_eq!(query_sums(&engine, "flows_1m").len(), 0);
    {
        let s = store.read().unwrap();
        s.note_workloads(enriched.iter().flat_map(|f| [f.src, f.dst]), &estate.table);
        s.add_noted_batch(&enriched, &position).unwrap();
    }
    check(&engine, &estate, &batch);
    store.write().unwrap().seal().unwrap();
    check(&engine, &estate, &batch);
    assert_eq!(
        store
            .read()
            .unwrap()
            .manifest()
            .positions
            .get("file-a")
            .map(String::as_str),
        Some("42")
    );
}
