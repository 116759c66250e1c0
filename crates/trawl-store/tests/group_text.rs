//! Grouping dictionary-encoded text as plain text (`group_text.rs`): the
//! cast changes no answer. Queries of every shape that puts a grouped text
//! column under another node (HAVING, ORDER BY, a join, a union, a
//! subquery, DISTINCT, grouping sets) give the same rows from an engine
//! with the rule and one without, over sealed segments and open rows.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::group_text_fixture::{Fixture, fixture};
use proptest::prelude::*;

#[test]
fn the_top_pairs_query_groups_by_cast_text_and_answers_the_same() {
    let f = fixture();
    let sql = "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m \
               GROUP BY src_app, dst_app ORDER BY bytes DESC, src_app, dst_app LIMIT 20";
    let plan = f.logical_plan(&f.cast, sql);
    assert!(
        plan.contains("CAST(flows_1m.src_app AS Utf8) AS src_app"),
        "{plan}"
    );
    assert!(!f.logical_plan(&f.plain, sql).contains("CAST("));
    f.assert_same(sql);
    // Cast back at the root: the answer's declared and actual types are
    // the column's.
    let cast = f.runtime.block_on(f.cast.query(sql)).unwrap();
    let plain = f.runtime.block_on(f.plain.query(sql)).unwrap();
    assert_eq!(cast.schema, plain.schema);
    assert!(cast.batches.iter().all(|b| b.schema() == cast.schema));
}

/// Only a top-N report's aggregate, grouped by text alone, under nodes
/// that pass a key along as a bare column, is cast.
#[test]
fn only_a_report_shaped_query_has_its_keys_cast() {
    let f = fixture();
    let cast = |sql: &str| f.casts(sql);
    assert!(cast(
        "SELECT a, n FROM (SELECT src_app AS a, count(*) AS n FROM flows_1m GROUP BY src_app \
         HAVING count(*) > 1) s ORDER BY n DESC, a LIMIT 3"
    ));
    assert!(cast(
        "SELECT src_app, dst_app, sum(bytes) AS b FROM flows_1m GROUP BY src_app, dst_app \
         ORDER BY b DESC LIMIT 8192"
    ));
    // Each is such a report but for one thing.
    for sql in [
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app HAVING src_app = 'api' ORDER BY 1 LIMIT 5",
        "SELECT date_trunc('hour', time) AS h, src_app, count(*) FROM flows_1m GROUP BY h, src_app \
         ORDER BY 1, 2 LIMIT 5",
        "SELECT src_app, protocol, count(*) FROM flows_1m GROUP BY src_app, protocol ORDER BY 1, 2 LIMIT 5",
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app",
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app ORDER BY 1",
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app ORDER BY 1 LIMIT 8193",
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app LIMIT 5",
        "SELECT upper(src_app), count(*) AS n FROM flows_1m GROUP BY src_app ORDER BY n LIMIT 5",
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app ORDER BY lower(src_app) LIMIT 5",
        "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app, src_app ORDER BY 1 LIMIT 5",
        "SELECT a.src_app FROM (SELECT src_app FROM flows_1m GROUP BY src_app) a \
         JOIN flows_1m t ON a.src_app = t.src_app ORDER BY 1 LIMIT 5",
        "SELECT src_app, count(*) FROM flows_1m t1 GROUP BY src_app \
         HAVING count(*) > (SELECT count(*) FROM flows_1m t2 WHERE t2.dst_app = t1.src_app) \
         ORDER BY 1 LIMIT 5",
    ] {
        assert!(!cast(sql), "{sql}");
    }
}

/// Each shape that puts a grouped text key under another node, where the
/// node was typed for a dictionary before the rule ran.
#[test]
fn nodes_above_a_cast_key_answer_the_same() {
    let f = fixture();
    for sql in [
        "SELECT src_app, sum(bytes) FROM flows_1m GROUP BY src_app HAVING src_app = 'api' OR src_app IS NULL",
        "SELECT src_app, sum(bytes) FROM flows_1m GROUP BY src_app HAVING src_app IN ('db', 'web')",
        "SELECT src_app, sum(bytes) FROM flows_1m GROUP BY src_app HAVING src_app LIKE 'a%'",
        "SELECT upper(src_app), concat(src_app, '/', dst_az), count(*) FROM flows_1m GROUP BY src_app, dst_az",
        "SELECT a.src_app, a.b, count(*) FROM (SELECT src_app, sum(bytes) AS b FROM flows_1m GROUP BY src_app) a \
         JOIN flows_1m t ON a.src_app = t.src_app GROUP BY a.src_app, a.b",
        "SELECT a.src_app, b.dst_app FROM (SELECT src_app FROM flows_1m GROUP BY src_app) a \
         JOIN (SELECT dst_app FROM flows_1m GROUP BY dst_app) b ON a.src_app = b.dst_app",
        "SELECT src_app FROM flows_1m GROUP BY src_app UNION ALL SELECT dst_app FROM flows_1m WHERE bytes > 4900",
        "SELECT src_app FROM flows_1m GROUP BY src_app UNION SELECT dst_app FROM flows_1m GROUP BY dst_app",
        "SELECT DISTINCT src_region, dst_az FROM flows_1m",
        "SELECT src_app, count(DISTINCT dst_app), max(dst_az) FROM flows_1m GROUP BY src_app",
        "SELECT src_app, dst_app, sum(bytes) FROM flows_1m GROUP BY ROLLUP (src_app, dst_app)",
        "SELECT src_app, dst_app, sum(bytes) FROM flows_1m GROUP BY GROUPING SETS ((src_app), (dst_app))",
        "SELECT s, sum(b) FROM (SELECT src_app AS s, dst_app, sum(bytes) AS b FROM flows_1m GROUP BY src_app, dst_app) GROUP BY s",
        "SELECT date_trunc('hour', time) AS h, src_region, sum(bytes) FROM flows_1m GROUP BY h, src_region ORDER BY h, src_region",
        "SELECT src_app, sum(bytes) FROM flows_1m WHERE src_app IN (SELECT dst_app FROM flows_1m GROUP BY dst_app) GROUP BY src_app",
        "SELECT src_app, sum(bytes) OVER (PARTITION BY src_app) FROM flows_1m GROUP BY src_app, bytes",
        "SELECT src_app, arrow_typeof(src_app), count(*) FROM flows_1m GROUP BY src_app",
    ] {
        f.assert_same(sql);
    }
}

/// Random group-bys over text, numeric and time keys, with or without a
/// HAVING, ordered by every key, with or without a LIMIT (the reports
/// the cast applies to).
fn arb_query() -> impl Strategy<Value = String> {
    let keys = prop::sample::subsequence(
        vec![
            "src_app",
            "dst_app",
            "src_az",
            "dst_region",
            "protocol",
            "service_port",
            "date_trunc('hour', time)",
        ],
        1..5,
    );
    let aggregates = prop::sample::subsequence(
        vec![
            "sum(bytes)",
            "count(*)",
            "min(dst_app)",
            "count(DISTINCT src_az)",
        ],
        1..3,
    );
    let having = prop::option::of(prop::sample::select(vec![
        "min(dst_app) > 'c'",
        "count(*) > 3",
        "max(src_app) IS NOT NULL",
    ]));
    let limit = prop::option::of(prop::sample::select(vec![1, 5, 40]));
    (keys, aggregates, having, limit).prop_map(|(keys, aggregates, having, limit)| {
        let mut select: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        select.extend(aggregates.iter().map(|a| a.to_string()));
        let mut sql = format!(
            "SELECT {} FROM flows_1m GROUP BY {}",
            select.join(", "),
            keys.join(", ")
        );
        if let Some(having) = having {
            sql += &format!(" HAVING {having}");
        }
        // Every key in the order: one order, which both engines must give.
        sql += &format!(" ORDER BY {} DESC", keys.join(" DESC, "));
        if let Some(limit) = limit {
            sql += &format!(" LIMIT {limit}");
        }
        sql
    })
}
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn casting_text_keys_never_changes_an_answer(query in arb_query()) {
        let f = FIXTURE.with(|f| f.clone());
        prop_assert_eq!(
            f.rows_of(&f.cast, &query),
            f.rows_of(&f.plain, &query),
            "{}",
            query
        );
    }
}

thread_local! {
    static FIXTURE: Arc<Fixture> = Arc::new(fixture());
}
