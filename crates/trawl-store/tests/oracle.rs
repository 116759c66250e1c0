//! Property test against a naive oracle, and crash tests.
//!
//! The oracle is a plain `Vec` of every flow added, summed by key. The store
//! gets the same flows in random batches, out of order and late, with seals,
//! compactions and reopenings at random points; a reopening without a seal
//! is a crash, after which the test replays the batches the manifest's
//! position does not cover, as a source would. Batches go to the store's
//! three shards in turn, or are split between three writer threads adding
//! at once (`store/shard.rs`).

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock};

use crate::common::{Estate, Flow, add, add_to, oracle, query_sums};
use proptest::prelude::*;
use trawl_store::{SqlEngine, Store, StoreConfig, StoreError};

const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;
const SOURCE: &str = "test-source";
const SHARDS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// One batch, into the shard of its number.
    Add(Vec<Flow>),
    /// One batch split between three threads adding at once.
    AddConcurrently(Vec<Flow>),
    Seal,
    Maintain,
    /// Drop the store without sealing (a crash) and reopen it.
    Reopen,
}

fn arb_flow(base: u32) -> impl Strategy<Value = Flow> {
    (
        0u32..5 * 3600,
        0usize..8,
        0usize..8,
        prop::sample::select(vec![443u16, 5432, 6379, 50_000]),
        1u64..100_000,
        any::<bool>(),
        any::<bool>(),
        0u32..8,
    )
        .prop_map(
            move |(offset, src, dst, port, bytes, reject, egress, lateness)| Flow {
                // One flow in eight is "late": up to 5 h behind the batch's time.
                start: if lateness == 0 {
                    base + offset
                } else {
                    base + offset / 8
                },
                src: if src == 7 { usize::MAX } else { src },
                dst,
                src_port: 33_000 + (bytes % 7) as u16,
                dst_port: port,
                protocol: if port == 6379 { 17 } else { 6 },
                bytes,
                packets: bytes / 500 + 1,
                reject,
                egress,
            },
        )
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => prop::collection::vec(arb_flow(T0), 1..60).prop_map(Step::Add),
        2 => prop::collection::vec(arb_flow(T0), 1..60).prop_map(Step::AddConcurrently),
        1 => Just(Step::Seal),
        1 => Just(Step::Maintain),
        1 => Just(Step::Reopen),
    ];
    prop::collection::vec(step, 1..14)
}

fn open(dir: &std::path::Path) -> (Arc<RwLock<Store>>, SqlEngine) {
    let mut config = StoreConfig::new(dir);
    config.lateness_secs = 600;
    config.segments_per_chunk_max = 3;
    config.delete_delay = std::time::Duration::ZERO;
    config.open_shards = SHARDS;
    let store = Arc::new(RwLock::new(Store::open(config).expect("open")));
    let engine = SqlEngine::new(store.clone(), None).expect("engine");
    (store, engine)
}

/// Number of batches the store's manifest says are durable.
fn committed(store: &Store) -> usize {
    store
        .positions()
        .get(SOURCE)
        .map_or(0, |p| p.parse().expect("our own position"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rollups_equal_the_oracle(steps in arb_steps()) {
        let dir = tempfile::tempdir().unwrap();
        let estate = Estate::new(7);
        let (mut store, mut engine) = open(dir.path());
        let mut batches: Vec<Vec<Flow>> = Vec::new();
        for step in steps {
            match step {
                Step::Add(flows) => {
                    batches.push(flows);
                    let position = batches.len().to_string();
                    let shard = Some(batches.len() % SHARDS);
                    add_to(&store.read().unwrap(), shard, &estate, batches.last().unwrap(), Some((SOURCE, &position)));
                }
                Step::AddConcurrently(flows) => {
                    batches.push(flows);
                    let position = batches.len().to_string();
                    let store = store.read().unwrap();
                    let third = batches.last().unwrap().len().div_ceil(SHARDS);
                    std::thread::scope(|scope| {
                        for part in batches.last().unwrap().chunks(third) {
                            let (store, estate) = (&store, &estate);
                            scope.spawn(move || add_to(store, None, estate, part, None));
                        }
                    });
                    add_to(&store, None, &estate, &[], Some((SOURCE, &position)));
                }
                Step::Seal => {
                    store.write().unwrap().seal().unwrap();
                }
                Step::Maintain => {
                    store.write().unwrap().maintain().unwrap();
                }
                Step::Reopen => {
                    drop((store, engine));
                    (store, engine) = open(dir.path());
                    let mut s = store.write().unwrap();
                    for (i, batch) in batches.iter().enumerate().skip(committed(&s)) {
                        add(&mut s, &estate, batch, Some((SOURCE, &(i + 1).to_string())));
                    }
                }
            }
        }
        let all: Vec<Flow> = batches.concat();
        prop_assert_eq!(query_sums(&engine, "flows_1m"), oracle(&estate, &all, 60));
        prop_assert_eq!(query_sums(&engine, "flows_1h"), oracle(&estate, &all, 3600));
        prop_assert_eq!(query_sums(&engine, "flows_1d"), oracle(&estate, &all, 86_400));
        let expected_rows = all.len();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = runtime.block_on(engine.query("SELECT count(*) FROM flows")).unwrap();
        use arrow::array::AsArray;
        let rows = result.batches[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0);
        prop_assert_eq!(rows as usize, expected_rows);
    }
}

fn flows(count: usize, start: u32) -> Vec<Flow> {
    (0..count)
        .map(|i| Flow {
            start: start + (i as u32 * 131) % 7200,
            src: i % 7,
            dst: (i * 5) % 7,
            src_port: 40_000,
            dst_port: 443,
            protocol: 6,
            bytes: 1000 + i as u64,
            packets: 3,
            reject: false,
            egress: true,
        })
        .collect()
}

/// Runs `first` (sealed), then `second` with a commit interrupted after
/// `steps`; reopens, replays from the manifest's position, and compares.
fn crash_after(steps: usize, maintain: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(7);
    let batches = [
        flows(500, T0),
        flows(400, T0 + 1800),
        flows(300, T0 + 5 * 3600),
    ];
    let interrupted = {
        let (store, _engine) = open(dir.path());
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &batches[0], Some((SOURCE, "1")));
        s.seal().unwrap();
        add(&mut s, &estate, &batches[1], Some((SOURCE, "2")));
        if maintain {
            s.seal().unwrap();
            add(&mut s, &estate, &batches[2], Some((SOURCE, "3")));
            s.seal().unwrap();
        }
        s.interrupt_next_commit_after(steps);
        let result = if maintain {
            s.maintain().map(|_| ())
        } else {
            s.seal().map(|_| ())
        };
        match result {
            Ok(()) => false,
            Err(StoreError::Interrupted) => true,
            Err(e) => panic!("commit failed: {e}"),
        }
    };
    let (store, engine) = open(dir.path());
    {
        let mut s = store.write().unwrap();
        for (i, batch) in batches.iter().enumerate().skip(committed(&s)) {
            if maintain || i < 2 {
                add(&mut s, &estate, batch, Some((SOURCE, &(i + 1).to_string())));
            }
        }
        s.seal().unwrap();
        s.maintain().unwrap();
    }
    let all: Vec<Flow> = if maintain {
        batches.concat()
    } else {
        batches[..2].concat()
    };
    for (table, grain_secs) in [("flows_1m", 60), ("flows_1h", 3600), ("flows_1d", 86_400)] {
        assert_eq!(
            query_sums(&engine, table),
            oracle(&estate, &all, grain_secs),
            "{table}: crash after {steps} steps"
        );
    }
    interrupted
}

/// Crashes a commit after 0, 1, 2, … steps until one completes; returns
/// how many crash points there were.
fn crash_points(maintain: bool) -> usize {
    let mut steps = 0;
    while crash_after(steps, maintain) {
        steps += 1;
    }
    steps
}

#[test]
fn a_crash_between_any_two_steps_of_a_seal_loses_and_doubles_nothing() {
    let steps = crash_points(false);
    // Segments of flows_1m, flows_1h, flows_1d and flows, the directory sync, the
    // manifest write and its publication: every one of them was a crash point.
    assert!(steps >= 7, "only {steps} steps");
}

#[test]
fn a_crash_between_any_two_steps_of_a_compaction_loses_and_doubles_nothing() {
    let steps = crash_points(true);
    assert!(steps >= 3, "only {steps} steps");
}

#[test]
fn a_damaged_segment_is_refused_at_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(7);
    {
        let (store, _engine) = open(dir.path());
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &flows(100, T0), None);
        s.seal().unwrap();
    }
    let manifest = trawl_store::Manifest::load(dir.path()).unwrap();
    let path = dir.path().join(&manifest.segments[0].file);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Store::open(StoreConfig::new(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&manifest.segments[0].file), "{err}");
}
