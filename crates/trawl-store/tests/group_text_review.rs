//! Review of 178c651 (`group_text.rs`): queries where casting grouped
//! dictionary-encoded text keys to text changed what the engine does.
//! Each failed on that first version, which cast the keys of every
//! aggregate; the rule now casts only a report's final aggregate and
//! casts the keys back (see its header), and each passes.

#![allow(clippy::unwrap_used)]

use crate::group_text_fixture::{fixture, sorted_rows as rows};
use trawl_store::{QueryResult, SqlEngine};

/// The bytes `collect_within` (sql.rs) counts against
/// `ResultLimits::bytes_max`.
fn bytes_of(result: &QueryResult) -> usize {
    result
        .batches
        .iter()
        .flat_map(|b| b.columns())
        .map(|c| c.to_data().get_slice_memory_size().unwrap())
        .sum()
}

/// A correlated subquery that compares its own column with a grouped text
/// key of the outer query fails at run time with "Arrow error: Invalid
/// argument error: Can't compare arrays of different types". (Probably:
/// the outer reference keeps the type it was planned with, a dictionary,
/// while the column it names is now Utf8, and the decorrelated join
/// compares the two without a cast.)
#[test]
fn review_a_correlated_subquery_on_a_grouped_text_key_runs() {
    let f = fixture();
    for sql in [
        "SELECT src_app, sum(bytes) FROM flows_1m t1 GROUP BY src_app \
         HAVING sum(bytes) > (SELECT avg(bytes) FROM flows_1m t2 WHERE t2.src_app = t1.src_app)",
        "SELECT src_app, (SELECT count(*) FROM flows_1m t2 WHERE t2.dst_app = t1.src_app) \
         FROM flows_1m t1 GROUP BY src_app",
        "SELECT src_app FROM flows_1m t1 GROUP BY src_app \
         HAVING EXISTS (SELECT 1 FROM flows_1m t2 WHERE t2.dst_app = t1.src_app AND t2.bytes > 4000)",
        "SELECT * FROM (SELECT src_app FROM flows_1m GROUP BY src_app) x \
         WHERE EXISTS (SELECT 1 FROM flows_1m t WHERE t.dst_app = x.src_app AND t.bytes > 4000)",
        "SELECT src_app FROM flows t1 GROUP BY src_app \
         HAVING count(*) > (SELECT count(*) FROM flows f2 WHERE f2.dst_app = t1.src_app)",
        "SELECT x.src_app, l.c FROM (SELECT src_app FROM flows_1m GROUP BY src_app) x, \
         LATERAL (SELECT count(*) AS c FROM flows_1m t WHERE t.dst_app = x.src_app) l",
    ] {
        f.assert_same(sql);
    }
}

/// A correlated subquery that groups by the column it is correlated on
/// fails to plan (probably: decorrelation adds the correlated column to
/// the subquery's output next to the cast key, which the rule aliased with
/// that same qualified name): "Optimizer rule 'scalar_subquery_to_join'
/// (or 'decorrelate_predicate_subquery') failed ... Schema contains
/// duplicate qualified field name t2.src_app".
#[test]
fn review_a_correlated_subquery_grouped_by_its_correlated_column_runs() {
    let f = fixture();
    for sql in [
        "SELECT src_app, (SELECT max(t2.dst_app) FROM flows_1m t2 WHERE t2.src_app = t1.src_app \
         GROUP BY t2.src_app) FROM flows_1m t1 GROUP BY src_app",
        "SELECT dst_app, count(*) FROM flows_1m t1 WHERE EXISTS (SELECT 1 FROM flows_1m t2 \
         WHERE t2.src_app = t1.dst_app GROUP BY t2.src_app) GROUP BY dst_app",
        "SELECT t1.dst_app FROM flows_1m t1 WHERE (SELECT count(*) FROM flows_1m t2 \
         WHERE t2.src_app = t1.dst_app GROUP BY t2.src_app) > 10 GROUP BY t1.dst_app",
    ] {
        f.assert_same(sql);
    }
}

/// A recursive CTE whose static term groups by text: the work table keeps
/// the type the static term was planned with, and the recursive term no
/// longer matches it ("Cannot project plan column 0 ('app') to expected
/// output field 'app': field data type differs").
#[test]
fn review_a_recursive_cte_seeded_by_a_group_by_runs() {
    let f = fixture();
    f.assert_same(
        "WITH RECURSIVE r(app, n) AS (SELECT src_app, 1 FROM flows_1m GROUP BY src_app \
         UNION ALL SELECT app, n + 1 FROM r WHERE n < 3) SELECT app, n FROM r",
    );
    f.assert_same(
        "WITH RECURSIVE r(app, n) AS (SELECT src_app, 1 FROM flows_1m WHERE bytes > 4990 \
         UNION ALL SELECT app, n + 1 FROM (SELECT app, max(n) AS n FROM r GROUP BY app) \
         WHERE n < 3) SELECT app, n FROM r",
    );
}

/// `QueryResult::schema` is the DataFrame's schema, that of the plan before
/// the analyzer (sql.rs `query_with`): it still says
/// Dictionary(UInt32, Utf8) for a grouped text key while the batches hold
/// Utf8.
#[test]
fn review_the_declared_schema_of_a_group_by_is_that_of_its_batches() {
    let f = fixture();
    let result = f
        .run(
            &f.cast,
            "SELECT src_app, count(*) FROM flows_1m GROUP BY src_app",
        )
        .unwrap();
    for batch in &result.batches {
        assert_eq!(
            batch.schema().fields(),
            result.schema.fields(),
            "QueryResult::schema against a batch's"
        );
    }
}

/// The server's Arrow answer (trawl-server encode.rs: a `StreamWriter`
/// made with `QueryResult::schema`, then the batches), which
/// `trawl query --server` reads back (trawl commands/query.rs
/// `from_server`): the stream announces a dictionary column and sends text
/// buffers.
#[test]
fn review_a_group_by_sent_as_arrow_ipc_reads_back() {
    let f = fixture();
    let sql = "SELECT src_app, count(*) AS n FROM flows_1m GROUP BY src_app";
    let result = f.run(&f.cast, sql).unwrap();
    let out = crate::common::arrow_ipc(&result);
    let read: Result<Vec<_>, _> = arrow::ipc::reader::StreamReader::try_new(out.as_slice(), None)
        .and_then(|reader| reader.collect());
    let read = read.map_err(|e| e.to_string());
    let want = rows(&f.run(&f.plain, sql).unwrap());
    let got = read.map(|batches| {
        rows(&QueryResult {
            schema: result.schema.clone(),
            batches,
        })
    });
    assert_eq!(got, Ok(want), "the Arrow stream read back");
}

/// An owner's `INSERT INTO t SELECT … GROUP BY` into a table whose column
/// is a dictionary (made from a store column): the rows inserted are Utf8
/// under a Dictionary schema, and every later read of the table fails
/// ("column types must match schema types, expected Dictionary(UInt32,
/// Utf8) but found Utf8").
#[test]
fn review_rows_inserted_from_a_group_by_read_back() {
    let f = fixture();
    for engine in [&f.plain, &f.cast] {
        f.run(
            engine,
            "CREATE TABLE apps AS SELECT src_app FROM flows_1m LIMIT 0",
        )
        .unwrap();
        f.run(
            engine,
            "INSERT INTO apps SELECT src_app FROM flows_1m GROUP BY src_app",
        )
        .unwrap();
    }
    f.assert_same("SELECT src_app, length(src_app) FROM apps");
}

/// `arrow_typeof` of a grouped key answers Utf8 instead of the column's
/// type (the rule's own test hides this with an OR).
#[test]
fn review_the_type_of_a_grouped_key_is_the_columns() {
    let f = fixture();
    f.assert_same("SELECT src_app, arrow_typeof(src_app) FROM flows_1m GROUP BY src_app");
}

/// A multi-key group-by's answer as text takes about twice the Arrow bytes
/// it took as dictionaries (3,000 rows: 97 kB -> 192 kB here), which is
/// what `ResultLimits::bytes_max` (the server's result_bytes_max) counts:
/// an answer that fit now fails with TooLarge.
#[test]
fn review_a_group_by_that_fit_the_byte_limit_still_fits() {
    let f = fixture();
    let sql = "SELECT date_trunc('minute', time), src_app, dst_app, src_az, dst_az, count(*) \
               FROM flows_1m GROUP BY 1, 2, 3, 4, 5";
    let plain = f.run(&f.plain, sql).unwrap();
    let limits = trawl_store::ResultLimits {
        rows_max: usize::MAX,
        bytes_max: bytes_of(&plain),
    };
    let within = |engine: &SqlEngine| {
        f.runtime
            .block_on(engine.query_with(sql, trawl_store::Access::ReadOnly, limits))
            .map(|r| r.batches.iter().map(|b| b.num_rows()).sum::<usize>())
            .map_err(|e| e.to_string())
    };
    assert!(within(&f.plain).is_ok(), "setup");
    assert_eq!(within(&f.cast), within(&f.plain));
}
