//! The store and engines the `group_text*` tests share: flows half
//! sealed into segments, half open, and two engines over them, one with
//! the text-key cast (`group_text.rs`) and one without, run as the server
//! runs queries (a multi-threaded runtime, four partitions).

#![allow(
    clippy::unwrap_used,
    clippy::manual_is_multiple_of,
    clippy::type_complexity
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use crate::common::{Estate, Flow, add, text_rows};
use trawl_attrib::{Workload, WorkloadTable};
use trawl_store::{QueryResult, SqlEngine, Store, StoreConfig};

const DAY: u32 = 86_400;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % DAY;

/// A store and two engines over it: `cast` with the text-key cast,
/// `plain` without (`SqlEngine::without_text_keys_cast`).
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) cast: SqlEngine,
    pub(crate) plain: SqlEngine,
    pub(crate) runtime: tokio::runtime::Runtime,
}

pub(crate) fn flow(i: usize, src: usize, dst: usize, bytes: u64) -> Flow {
    Flow {
        start: T0 + (i as u32 * 7919) % (2 * 3600),
        src,
        dst,
        src_port: 40_000 + (i % 1000) as u16,
        dst_port: if i % 3 == 0 { 443 } else { 5432 },
        protocol: if i % 5 == 0 { 17 } else { 6 },
        bytes,
        packets: 1 + i as u64 % 7,
        reject: i % 13 == 0,
        egress: i % 2 == 0,
    }
}

/// Engines with and without the rule over `flows` (the first half
/// sealed, the rest open), with `target_partitions` fixed so that the
/// plans do not depend on the machine's cores.
pub(crate) fn fixture_of(estate: &Estate, flows: &[Flow]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(dir.path())).unwrap(),
    ));
    {
        let mut s = store.write().unwrap();
        let half = flows.len() / 2;
        add(&mut s, estate, &flows[..half], None);
        s.seal().unwrap();
        add(&mut s, estate, &flows[half..], None);
    }
    let f = Fixture {
        cast: SqlEngine::new(store.clone(), None).unwrap(),
        plain: SqlEngine::new(store, None)
            .unwrap()
            .without_text_keys_cast(),
        // As the server runs queries: on a multi-threaded runtime.
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap(),
        _dir: dir,
    };
    f.set("datafusion.execution.target_partitions = 4");
    f
}

/// 3,000 flows between 12 workloads (some unowned).
pub(crate) fn fixture() -> Fixture {
    let flows: Vec<Flow> = (0..3000)
        .map(|i| {
            let src = if i % 17 == 0 { usize::MAX } else { i % 9 };
            flow(i, src, (i * 3 + 1) % 11, 100 + (i as u64 * 37) % 5000)
        })
        .collect();
    fixture_of(&Estate::new(12), &flows)
}

/// `apps` workloads with distinct app names, and one flow for each
/// (src, dst) pair, each with its own byte count: `apps²` app pairs, the
/// shape of the high-cardinality estate's top-pairs query.
pub(crate) fn many_pairs_fixture(apps: usize) -> Fixture {
    let mut table = WorkloadTable::default();
    let mut ids = Vec::new();
    let mut workloads = Vec::new();
    for i in 0..apps {
        let w = Workload {
            app: Some(format!("app{i:04}")),
            ..Default::default()
        };
        ids.push(table.intern(&w).unwrap());
        workloads.push(w);
    }
    let estate = Estate {
        table,
        ids,
        workloads,
    };
    let flows: Vec<Flow> = (0..apps * apps)
        .map(|i| flow(i, i % apps, i / apps, 100 + i as u64))
        .collect();
    fixture_of(&estate, &flows)
}

/// Rows in the order of the answer.
pub(crate) fn rows(result: &QueryResult) -> Vec<Vec<String>> {
    text_rows(&result.batches)
}

impl Fixture {
    /// `sql` on `engine`; a panic is an error too.
    pub(crate) fn run(&self, engine: &SqlEngine, sql: &str) -> Result<QueryResult, String> {
        catch_unwind(AssertUnwindSafe(|| {
            self.runtime
                .block_on(engine.query(sql))
                .map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {message}"))
        })
    }

    /// `SET {setting}` on both engines.
    pub(crate) fn set(&self, setting: &str) {
        for engine in [&self.cast, &self.plain] {
            self.run(engine, &format!("SET {setting}")).unwrap();
        }
    }

    /// The rows of `sql`, in answer order, from both engines.
    pub(crate) fn both(&self, sql: &str) -> (Vec<Vec<String>>, Result<Vec<Vec<String>>, String>) {
        let plain = self
            .run(&self.plain, sql)
            .unwrap_or_else(|e| panic!("setup: without the rule {sql}: {e}"));
        (rows(&plain), self.run(&self.cast, sql).map(|r| rows(&r)))
    }
}

/// Rows of `result`, sorted (for answers in no stated order).
pub(crate) fn sorted_rows(result: &QueryResult) -> Vec<Vec<String>> {
    let mut rows = rows(result);
    rows.sort();
    rows
}

impl Fixture {
    /// Rows of `sql` on `engine`, in answer order; a failure panics.
    pub(crate) fn rows_of(&self, engine: &SqlEngine, sql: &str) -> Vec<Vec<String>> {
        rows(
            &self
                .run(engine, sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        )
    }

    /// The rows of `sql` from the engine with the rule equal those from
    /// the engine without it (which must answer, with rows), in any order.
    pub(crate) fn assert_same(&self, sql: &str) {
        let plain = self
            .run(&self.plain, sql)
            .unwrap_or_else(|e| panic!("setup: without the rule {sql}: {e}"));
        assert!(!rows(&plain).is_empty(), "setup: {sql}: no rows");
        match self.run(&self.cast, sql) {
            Ok(cast) => assert_eq!(sorted_rows(&cast), sorted_rows(&plain), "{sql}"),
            Err(e) => panic!("{sql}\n  fails with the rule: {e}\n  answers without it"),
        }
    }

    /// Whether the engine with the rule casts `sql`'s keys (its logical
    /// plan casts to text).
    pub(crate) fn casts(&self, sql: &str) -> bool {
        self.logical_plan(&self.cast, sql).contains("AS Utf8)")
    }

    /// The logical plan `engine` makes of `sql` (EXPLAIN).
    pub(crate) fn logical_plan(&self, engine: &SqlEngine, sql: &str) -> String {
        self.rows_of(engine, &format!("EXPLAIN {sql}"))
            .into_iter()
            .find(|row| row[0] == "logical_plan")
            .map(|row| row[1].clone())
            .unwrap()
    }
}
