//! Cold review of 871c20e ("Store: open rows in shards, so workers add at
//! once"). Each test asserts the behaviour that should hold; each failed on
//! the reviewed commit (a query took the dictionary before the shards, and
//! a writer holding a shard interned past it).

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Flow, record};
use trawl_attrib::{NO_OWNER, Workload, WorkloadTable};
use trawl_store::{EnrichedFlow, Store, StoreConfig};

const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

/// `count` workloads, each with an app name of its own (so the first
/// sighting of each interns a new string in the store's dictionary).
fn distinct_workloads(count: usize) -> (WorkloadTable, Vec<u32>) {
    let mut table = WorkloadTable::default();
    let ids = (0..count)
        .map(|i| {
            table
                .intern(&Workload {
                    app: Some(format!("app-{i}")),
                    cluster: Some(format!("cluster-{i}")),
                    account: Some("123456789012".into()),
                    region: Some("us-east-1".into()),
                    az: Some("us-east-1a".into()),
                    kind: Some("pod".into()),
                    labels: Default::default(),
                })
                .unwrap()
        })
        .collect();
    (table, ids)
}

fn flow(start: u32) -> Flow {
    Flow {
        start,
        src: 0,
        dst: usize::MAX,
        src_port: 40_000,
        dst_port: 443,
        protocol: 6,
        bytes: 100,
        packets: 1,
        reject: false,
        egress: true,
    }
}

fn config(dir: &std::path::Path, shards: usize) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.open_shards = shards;
    config.wall_clock_secs = Some(T0 + 86_400);
    config
}

/// store.rs `open_batches` (the scan of every SQL query, under the store's
/// READ lock, which workers now also hold while they add): it takes the
/// dictionary's snapshot (`lock(&self.dict).values()`) once, BEFORE it
/// locks the shards one after the other. A writer holding a shard interns
/// new strings (a workload's first sighting, `Shard::side_codes`) after
/// the snapshot; when the query then gets that shard, its rows carry codes
/// past the snapshot's end and `DictionaryArray::try_new` refuses them
/// (schema.rs `dim_array`: "codes are below the dictionary's length by
/// construction" no longer holds). The query fails with an Arrow error
/// (or, for a code that happens to be in range, would name the wrong
/// string). Before the change adds took the write lock, so a query never
/// overlapped one.
/// Queries `table`'s open rows over and over while one batch of `N` flows
/// of `N` new workloads is added: every answer must succeed and hold the
/// batch whole or not at all (since the worker notes workloads before it
/// takes a shard, a query may come before the add), and the last all of it.
fn queries_during_an_add_of_new_workloads_see_none_or_all(table_name: &str) {
    const N: usize = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 2)).unwrap();
    let (table, ids) = distinct_workloads(N);
    let records: Vec<_> = (0..N).map(|_| record(&flow(T0 + 30))).collect();
    let enriched: Vec<EnrichedFlow<'_, '_>> = records
        .iter()
        .zip(&ids)
        .map(|(r, id)| EnrichedFlow {
            record: r,
            src: *id,
            dst: NO_OWNER,
        })
        .collect();
    let done = AtomicBool::new(false);
    let answers = std::thread::scope(|scope| {
        scope.spawn(|| {
            store.add_batch_to_shard(0, &enriched, &table, &[]).unwrap();
            done.store(true, Ordering::SeqCst);
        });
        let mut answers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
            answers.push(store.open_batches(table_name, 0, u32::MAX));
        }
        answers
    });
    assert!(!answers.is_empty(), "setup: no query ran during the add");
    for answer in answers {
        let rows: usize = answer
            .expect("a query overlapping an add must not fail")
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows == 0 || rows == N, "{table_name}: {rows} of {N} rows");
    }
    let after: usize = store
        .open_batches(table_name, 0, u32::MAX)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(after, N, "{table_name}: one row per workload");
}

#[test]
fn a_query_during_an_add_of_new_workloads_reads_every_open_row() {
    queries_during_an_add_of_new_workloads_see_none_or_all("flows_1m");
}

/// The same through the detail table `flows` (every query's scan of it).
#[test]
fn a_detail_query_during_an_add_of_new_workloads_reads_every_open_row() {
    queries_during_an_add_of_new_workloads_see_none_or_all("flows");
}
