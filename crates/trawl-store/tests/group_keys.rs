//! Text group keys as string views (`group_keys.rs`): the rule shows in
//! the plan, and a property test that it never changes an answer — random
//! group-bys (text and other keys, filters, HAVING, renames, expressions
//! over keys, ORDER BY … LIMIT, joins, unions, subqueries, `flows` and the
//! rollups, open rows and segments) give the same columns, types and rows
//! from an engine with the rule and one without.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, RwLock};

use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use common::{Estate, Flow, add};
use proptest::prelude::*;
use trawl_store::{QueryResult, SqlEngine, Store, StoreConfig};

const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

struct Fixture {
    _dir: tempfile::TempDir,
    views: SqlEngine,
    dictionaries: SqlEngine,
    runtime: tokio::runtime::Runtime,
}

/// Flows of 12 workloads and of unowned addresses (NULL keys).
fn flows(count: usize, start: u32, span_secs: u32) -> Vec<Flow> {
    (0..count)
        .map(|i| Flow {
            start: start + (i as u32 * 7919) % span_secs,
            src: if i % 17 == 0 { usize::MAX } else { i % 9 },
            dst: if i % 23 == 0 {
                usize::MAX
            } else {
                (i * 3 + 1) % 12
            },
            src_port: 40_000 + (i % 1000) as u16,
            dst_port: [443, 5432, 6379][i % 3],
            protocol: if i % 5 == 0 { 17 } else { 6 },
            bytes: 100 + (i as u64 * 37) % 5000,
            packets: 1 + i as u64 % 7,
            reject: i % 13 == 0,
            egress: i % 2 == 0,
        })
        .collect()
}

/// Sealed segments and open rows, with the `flows` detail table.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(12);
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(dir.path())).unwrap(),
    ));
    {
        let mut s = store.write().unwrap();
        add(&mut s, &estate, &flows(2000, T0, 7200), None);
        s.seal().unwrap();
        add(&mut s, &estate, &flows(700, T0 + 7200, 3600), None);
    }
    Fixture {
        views: SqlEngine::new(store.clone(), None).unwrap(),
        dictionaries: SqlEngine::new(store, None)
            .unwrap()
            .without_text_group_keys(),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Fixture {
    fn run(&self, engine: &SqlEngine, sql: &str) -> QueryResult {
        self.runtime
            .block_on(engine.query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The answer's columns (name, type) and its rows, in the answer's order.
    fn answer(&self, engine: &SqlEngine, sql: &str) -> (Vec<(String, DataType)>, Vec<Vec<String>>) {
        let result = self.run(engine, sql);
        let columns = result
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let mut rows = Vec::new();
        for batch in &result.batches {
            assert_eq!(batch.schema().fields(), result.schema.fields(), "{sql}");
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| array_value_to_string(c, row).unwrap())
                        .collect(),
                );
            }
        }
        (columns, rows)
    }

    fn logical_plan(&self, sql: &str) -> String {
        let (_, rows) = self.answer(&self.views, &format!("EXPLAIN {sql}"));
        rows.into_iter()
            .find(|row| row[0] == "logical_plan")
            .map(|row| row[1].clone())
            .unwrap()
    }

    /// Same columns and rows (in the same order when `ordered`: the query
    /// orders its answer completely).
    fn assert_same_as_ordered(&self, sql: &str, ordered: bool) {
        let mut views = self.answer(&self.views, sql);
        let mut dictionaries = self.answer(&self.dictionaries, sql);
        assert_eq!(views.0, dictionaries.0, "columns of {sql}");
        if !ordered {
            views.1.sort();
            dictionaries.1.sort();
        }
        assert_eq!(views.1, dictionaries.1, "rows of {sql}");
    }

    fn assert_same(&self, sql: &str) {
        self.assert_same_as_ordered(sql, false);
    }
}

#[test]
fn a_top_n_groups_by_views_and_casts_back_only_its_answer() {
    let f = fixture();
    let top = "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m \
               GROUP BY src_app, dst_app ORDER BY bytes DESC, src_app, dst_app LIMIT 5";
    let plan = f.logical_plan(top);
    let aggregate = plan.lines().find(|l| l.contains("Aggregate:")).unwrap();
    assert!(
        aggregate.contains("CAST(flows_1m.src_app AS Utf8View)"),
        "{plan}"
    );
    // The cast back is below the sort (and above the aggregate): a
    // projection above the sort would lose its order.
    let line_of = |text: &str| plan.lines().position(|l| l.contains(text)).unwrap();
    let cast_back = line_of("AS Dictionary(UInt32, Utf8)");
    assert!(line_of("Sort:") < cast_back, "{plan}");
    assert!(cast_back < line_of("Aggregate:"), "{plan}");
    f.assert_same(top);
    let (columns, rows) = f.answer(&f.views, top);
    assert_eq!(
        columns[0].1,
        DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
    );
    assert_eq!(rows.len(), 5);
}

#[test]
fn keys_under_a_join_or_a_union_are_cast_back_where_they_are_made() {
    let f = fixture();
    for sql in [
        "SELECT a.src_app, a.b, c.n FROM \
         (SELECT src_app, sum(bytes) AS b FROM flows_1m GROUP BY src_app) a \
         JOIN (SELECT src_app, count(*) AS n FROM flows GROUP BY src_app) c \
         ON a.src_app = c.src_app",
        "SELECT src_app AS app FROM flows_1m GROUP BY src_app \
         UNION ALL SELECT dst_app FROM flows_1h",
        "SELECT src_app FROM flows_1m GROUP BY src_app UNION SELECT dst_app FROM flows GROUP BY dst_app",
        "SELECT upper(src_app) AS u, sum(bytes) FROM flows_1m GROUP BY src_app HAVING src_app <> 'db'",
        "SELECT src_app, dst_az, rank() OVER (PARTITION BY src_app ORDER BY sum(bytes) DESC) \
         FROM flows_1m GROUP BY src_app, dst_az",
    ] {
        f.assert_same(sql);
    }
}

fn query() -> impl Strategy<Value = String> {
    let keys = prop::sample::subsequence(
        vec![
            "src_app",
            "dst_app",
            "src_az",
            "dst_region",
            "action",
            "flow_direction",
            "service_port",
            "protocol",
        ],
        1..4,
    );
    let table = prop::sample::select(vec!["flows_1m", "flows_1h", "flows"]);
    let measure = prop::sample::select(vec![
        "sum(bytes)",
        "count(*)",
        "max(dst_az)",
        "count(DISTINCT src_app)",
        "min(src_app)",
    ]);
    let filter = prop::sample::select(vec![
        "",
        "WHERE src_app = 'db'",
        "WHERE dst_app IS NULL",
        "WHERE src_app IN ('api', 'web') OR dst_az LIKE '%az1'",
        "WHERE protocol = 17",
    ]);
    let having = prop::sample::select(vec![
        "",
        "HAVING sum(packets) > 10",
        "HAVING max(src_app) <> 'api'",
    ]);
    let shape = 0..7usize;
    (keys, table, measure, filter, having, shape, 1..30usize).prop_map(
        |(keys, table, measure, filter, having, shape, limit)| {
            let key_list = keys.join(", ");
            let inner = format!(
                "SELECT {key_list}, {measure} AS m FROM {table} {filter} GROUP BY {key_list} {having}"
            );
            let first = keys[0];
            match shape {
                0 => inner,
                1 => format!("{inner} ORDER BY m DESC, {key_list} LIMIT {limit}"),
                2 => format!(
                    "SELECT {first} AS renamed, * FROM ({inner}) ORDER BY {key_list}, m LIMIT {limit}"
                ),
                3 => format!("SELECT concat({first}, '!') AS e, m FROM ({inner})"),
                4 => format!(
                    "SELECT x.{first}, x.m, y.m AS other FROM ({inner}) x \
                     LEFT JOIN (SELECT {first}, count(*) AS m FROM flows_1m GROUP BY {first}) y \
                     ON x.{first} = y.{first}"
                ),
                5 => format!("SELECT DISTINCT {key_list} FROM {table} {filter}"),
                _ => format!("SELECT * FROM ({inner}) WHERE m IS NOT NULL ORDER BY {key_list}"),
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn grouping_by_views_never_changes_an_answer(sqls in prop::collection::vec(query(), 8)) {
        thread_local! {
            static FIXTURE: Fixture = fixture();
        }
        FIXTURE.with(|f| {
            for sql in &sqls {
                // Every ORDER BY of the generator orders by all keys.
                f.assert_same_as_ordered(sql, sql.contains("ORDER BY"));
            }
        });
    }
}
