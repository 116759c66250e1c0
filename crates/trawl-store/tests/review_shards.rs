//! Cold review of 871c20e ("Store: open rows in shards, so workers add at
//! once"). Each test asserts the behaviour that should hold; each failed on
//! the reviewed commit (a query took the dictionary before the shards, and
//! a writer holding a shard interned past it).

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Flow, record};
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
#[test]
fn a_query_during_an_add_of_new_workloads_reads_every_open_row() {
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
    let baseline = store.open_bytes();
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            store.add_batch_to_shard(0, &enriched, &table, &[]).unwrap();
            done.store(true, Ordering::SeqCst);
        });
        // Wait until the writer is inside its batch: the dictionary (in
        // open_bytes) grows as it interns, the shard's bytes are published
        // only at the end.
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.open_bytes() == baseline && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let mid_batch = !done.load(Ordering::SeqCst);
        (mid_batch, store.open_batches("flows_1m", 0, u32::MAX))
    });
    let (mid_batch, during) = outcome;
    assert!(mid_batch, "setup: the query did not start during the add");
    let rows: usize = during
        .expect("a query overlapping an add must not fail")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    // The query waited for shard 0, so it sees the whole batch.
    assert_eq!(rows, N, "one flows_1m row per workload");
}

/// The same through the detail table `flows` (every query's scan of it).
#[test]
fn a_detail_query_during_an_add_of_new_workloads_reads_every_open_row() {
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
    let baseline = store.open_bytes();
    let done = AtomicBool::new(false);
    let (mid_batch, during) = std::thread::scope(|scope| {
        scope.spawn(|| {
            store.add_batch_to_shard(0, &enriched, &table, &[]).unwrap();
            done.store(true, Ordering::SeqCst);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.open_bytes() == baseline && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let mid_batch = !done.load(Ordering::SeqCst);
        (mid_batch, store.open_batches("flows", 0, u32::MAX))
    });
    assert!(mid_batch, "setup: the query did not start during the add");
    let rows: usize = during
        .expect("a query overlapping an add must not fail")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, N);
}
