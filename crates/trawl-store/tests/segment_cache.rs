//! Decoded rollup segments kept in memory for queries (`segment_cache.rs`):
//! answers from the cache equal the oracle's, cold (Parquet) and warm
//! (memory), after a seal adds segments and after a compaction replaces
//! them; and a store no server queries keeps nothing.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::common::{Estate, Flow, add, oracle, query_sums, spread_flows as flows};
use trawl_store::{EngineLimits, SqlEngine, Store, StoreConfig};

const T0: u32 = 1_790_035_200; // a midnight UTC

/// Every rollup's answer equals the oracle's over `all`.
fn assert_answers(engine: &SqlEngine, estate: &Estate, all: &[Flow], when: &str) {
    for (table, grain) in [("flows_1m", 60), ("flows_1h", 3600), ("flows_1d", 86_400)] {
        let (got, want) = (query_sums(engine, table), oracle(estate, all, grain));
        if got != want {
            let flows = |m: &std::collections::BTreeMap<_, (u64, u64, u64)>| {
                m.values().map(|v| v.2).sum::<u64>()
            };
            panic!(
                "{table} {when}: {} keys and {} flows, the oracle {} and {}",
                got.len(),
                flows(&got),
                want.len(),
                flows(&want),
            );
        }
    }
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn answers_from_memory_equal_the_oracle_through_seals_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(dir.path())).unwrap(),
    ));
    let mut all = flows(3000, T0, 6 * 3600, 0);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &all[..1500], None);
        s.seal().unwrap();
        add(&mut s, &estate, &all[1500..], None);
        s.seal().unwrap();
    }
    let limits = EngineLimits {
        cache_segments: true,
        ..EngineLimits::default()
    };
    let engine = SqlEngine::with_limits(store.clone(), None, limits).unwrap();
    let cache = store
        .read()
        .unwrap()
        .segment_cache()
        .expect("a server's store keeps segments");
    let rollup_segments = || {
        let s = store.read().unwrap();
        s.manifest()
            .segments
            .iter()
            .filter(|m| m.table != "flows")
            .count()
    };
    assert_eq!(cache.stats().segments, 0, "nothing read yet");
    assert_answers(&engine, &estate, &all, "cold, from Parquet");
    wait_for("the loads", || cache.stats().segments == rollup_segments());
    let hits = cache.stats().hits;
    assert_answers(&engine, &estate, &all, "warm, from memory");
    assert!(cache.stats().hits > hits, "{:?}", cache.stats());

    // A seal puts what it wrote in the cache, with no query.
    let more = flows(800, T0 + 2 * 3600, 3600, 1);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &more, None);
        s.seal().unwrap();
    }
    all.extend(more);
    assert_eq!(
        cache.stats().segments,
        rollup_segments(),
        "sealed segments kept"
    );
    assert_answers(&engine, &estate, &all, "after a seal");

    // A compaction replaces segments: the replaced leave the cache.
    let compacted = store.write().unwrap().maintain().unwrap();
    assert!(compacted > 0, "setup: chunks compacted");
    assert!(
        cache.stats().segments < rollup_segments(),
        "the replaced ones left"
    );
    assert_answers(&engine, &estate, &all, "after a compaction");
    // The merged segments are loaded by the query that missed them.
    wait_for("the merged loads", || {
        cache.stats().segments == rollup_segments()
    });
    assert_answers(&engine, &estate, &all, "after a compaction, warm");
}

#[test]
fn a_store_no_server_queries_keeps_no_segments() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(dir.path())).unwrap(),
    ));
    let all = flows(500, T0, 3600, 0);
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &all, None);
        s.seal().unwrap();
    }
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    assert_answers(&engine, &estate, &all, "without a cache");
    assert!(store.read().unwrap().segment_cache().is_none());
}
