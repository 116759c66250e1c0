// Pure functions of ui/js/sql.js: filters as typed, quoting, and the shape of each view's SQL.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as sql from '../ui/js/sql.js';

test('filters parse as typed and print back', () => {
  assert.deepEqual(sql.parseFilter('src_app = checkout'), { column: 'src_app', op: '=', values: ['checkout'] });
  assert.deepEqual(sql.parseFilter("dstport in 22, 3389"), { column: 'dstport', op: 'IN', values: ['22', '3389'] });
  assert.deepEqual(sql.parseFilter("dst_app not like 'pay%'"), { column: 'dst_app', op: 'NOT LIKE', values: ['pay%'] });
  assert.deepEqual(sql.parseFilter("src_app NOT IN ('a, b', 'it''s')"), { column: 'src_app', op: 'NOT IN', values: ['a, b', "it's"] });
  assert.deepEqual(sql.parseFilter('x <> 1'), { column: 'x', op: '!=', values: ['1'] });
  for (const f of [
    { column: 'src_app', op: 'IN', values: ['a, b', "it's", 'plain'] }, { column: 'dst_az', op: '!=', values: [null] },
    // Regression (cold review of e03ca99): a value spelled "(unknown)" and
    // the empty string survive the URL as themselves.
    { column: 'src_app', op: 'IN', values: ['(unknown)', '', null] },
  ]) {
    assert.deepEqual(sql.parseFilter(sql.filterText(f)), f);
  }
  assert.throws(() => sql.parseFilter('src_app checkout'), /write column/);
  assert.throws(() => sql.parseFilter('src_app ='), /value is missing/);
  assert.throws(() => sql.parseFilter('src_app = a, b'), /use IN/);
});

test('values are quoted, never pasted', () => {
  const f = { column: 'src_app', op: '=', values: ["x' OR 1=1 --"] };
  assert.equal(sql.filterSql(f), "src_app = 'x'' OR 1=1 --'");
  assert.throws(() => sql.filterSql({ column: 'a;drop', op: '=', values: ['1'] }), /not a column name/);
  assert.throws(() => sql.filterSql({ column: 'dstport', op: '=', values: ['1 OR 1=1'] }, { dstport: 'number' }), /not a number/);
  assert.equal(sql.filterSql({ column: 'dstport', op: 'IN', values: ['22', '443'] }, { dstport: 'number' }), 'dstport IN (22, 443)');
  assert.equal(sql.filterSql({ column: 'cross_az', op: '=', values: ['TRUE'] }, { cross_az: 'bool' }), 'cross_az = true');
});

test('(unknown) typed bare means NULL and != keeps rows where the column is NULL', () => {
  assert.deepEqual(sql.parseFilter('dst_app = (unknown)').values, [null]);
  assert.deepEqual(sql.parseFilter("dst_app = '(unknown)'").values, ['(unknown)']);
  assert.equal(sql.filterSql({ column: 'dst_app', op: '=', values: [null] }), 'dst_app IS NULL');
  assert.equal(sql.filterSql({ column: 'dst_app', op: '=', values: ['(unknown)'] }), "dst_app = '(unknown)'");
  assert.equal(sql.filterSql({ column: 'dst_app', op: '!=', values: ['a'] }), "(dst_app != 'a' OR dst_app IS NULL)");
  assert.equal(sql.filterSql({ column: 'dst_app', op: 'IN', values: ['a', null] }), "(dst_app IN ('a') OR dst_app IS NULL)");
  assert.equal(sql.displayValue(null), '(unknown)');
  assert.equal(sql.displayValue('(unknown)'), "'(unknown)'");
  assert.equal(sql.displayValue('Other'), "'Other'");
  assert.equal(sql.whereSql([]), 'TRUE');
});

test('drill-down turns a clicked series back into filters', () => {
  // From the series' values, never from its label: "web · v2" holds the separator.
  assert.deepEqual(sql.drillFilters(['src_app', 'dst_az'], ['web · v2', null]), [
    { column: 'src_app', op: '=', values: ['web · v2'] },
    { column: 'dst_az', op: '=', values: [null] },
  ]);
  assert.deepEqual(sql.drillFilters(['src_app'], [], true), []);
});

test('explore SQL: buckets, top N with Other, ranking', () => {
  const q = { table: 'flows_1m', stepSecs: 60, from: 1000, to: 4600, dims: ['src_app'], filters: [], measure: 'flows', topN: 99, rank: 'max', types: {} };
  const text = sql.exploreSql(q);
  assert.match(text, /date_bin\(INTERVAL '60 seconds'/);
  assert.match(text, /FROM flows_1m/);
  assert.match(text, /sum\(flows\) AS v/);
  assert.match(text, /time >= to_timestamp_seconds\(1000\) AND time < to_timestamp_seconds\(4600\)/);
  assert.match(sql.exploreSql({ ...q, table: 'flows' }), /count\(\*\) AS v/);
  assert.throws(() => sql.exploreSql({ ...q, rank: 'nope' }), /ranking/);
  assert.doesNotMatch(sql.exploreSql({ ...q, dims: [] }), /JOIN|OVER/);
});

// DataFusion computes a CTE at each of its references (apache/datafusion#8777):
// the explore query read the table three times, the 15-minute view 230 ms.
test('explore SQL reads the table once by one dimension, at most twice by several', () => {
  const q = { table: 'flows', stepSecs: 10, from: 1000, to: 1900, dims: ['src_app'], filters: [], measure: 'bytes', topN: 99, rank: 'max', types: {} };
  const reads = (text) => text.match(/FROM flows\b/g).length;
  const one = sql.exploreSql(q);
  assert.equal(reads(one), 1);
  assert.doesNotMatch(one, /WITH/);
  assert.match(one, /max\(v\) OVER \(PARTITION BY d0\) AS score/);
  assert.match(one, /dense_rank\(\) OVER \(ORDER BY score DESC, d0\) AS k/);
  assert.match(one, /k > 50 AS rest, CASE WHEN k <= 50 THEN d0 END AS d0/);
  assert.match(sql.exploreSql({ ...q, rank: 'last' }), /max\(t\) OVER \(\) AS newest/);
  assert.doesNotMatch(one, /newest/);
  // By several: the top N (r) from one read — for avg straight from the
  // table, for max and last from its buckets — and the rows read again,
  // joined to r on the stored columns and grouped by bucket and r only.
  for (const rank of ['avg', 'max', 'last']) {
    const two = sql.exploreSql({ ...q, dims: ['src_app', 'dst_app'], rank, topN: 20 });
    assert.equal(reads(two), 2, two);
    assert.doesNotMatch(two, /\bFROM b\b/);
    assert.match(two, /FROM flows LEFT JOIN r ON \(flows\.src_app IS NOT DISTINCT FROM r\.d0\) AND \(flows\.dst_app IS NOT DISTINCT FROM r\.d1\)/);
    assert.match(two, /r\.hit IS NULL AS rest, r\.d0 AS d0, r\.d1 AS d1, sum\(bytes\) AS value/);
    assert.match(two, /GROUP BY 1, 2, 3, 4\)\nORDER BY 1, 2, 3, 4$/);
    assert.match(two, /CAST\(d0 AS VARCHAR\) AS d0, CAST\(d1 AS VARCHAR\) AS d1, value/);
    assert.match(two, /DESC, CAST\(d0 AS VARCHAR\), CAST\(d1 AS VARCHAR\) LIMIT 20\)/);
    assert.equal(/newest/.test(two), rank === 'last');
  }
  const avg = sql.exploreSql({ ...q, dims: ['src_app', 'dst_app'], rank: 'avg', topN: 20 });
  assert.match(avg, /WITH r AS \(SELECT src_app AS d0, dst_app AS d1, true AS hit FROM flows/);
  assert.match(avg, /ORDER BY sum\(bytes\) DESC/);
  assert.match(sql.exploreSql({ ...q, dims: ['src_app', 'dst_app'], rank: 'max' }), /ORDER BY max\(v\) DESC/);
  assert.match(sql.exploreSql({ ...q, dims: ['src_app', 'dst_app'], rank: 'last' }), /SELECT \*, max\(t\) OVER \(\) AS newest FROM/);
  // A drill-down on the grouped dimension takes the two-read plan (the
  // window plan failed to plan in DataFusion 55).
  const drill = sql.exploreSql({ ...q, filters: [{ column: 'src_app', op: '=', values: ['web'] }] });
  assert.equal(reads(drill), 2);
  assert.match(drill, /LEFT JOIN r/);
});

test('completion escapes LIKE wildcards of the typed prefix', () => {
  const text = sql.valuesSql({ table: 'flows_1m', column: 'src_app', prefix: "a_b%'", from: 0, to: 10 });
  assert.match(text, /LIKE 'a\\_b\\%''%'/);
});

test('LIKE and NOT LIKE (unknown) mean IS NULL and IS NOT NULL', () => {
  // Regression (second cold review): NOT LIKE (unknown) kept the missing values.
  assert.equal(sql.filterSql({ column: 'src_app', op: 'LIKE', values: [null] }), 'src_app IS NULL');
  assert.equal(sql.filterSql({ column: 'src_app', op: 'NOT LIKE', values: [null] }), 'src_app IS NOT NULL');
});

test('LIKE on a number or bool column takes a pattern', () => {
  // Regression (third cold review): every value was checked as a literal of
  // the column's type first, so `service_port LIKE 44%` could not be built.
  const types = { service_port: 'number', cross_az: 'bool' };
  assert.equal(sql.filterSql({ column: 'service_port', op: 'LIKE', values: ['44%'] }, types), "CAST(service_port AS VARCHAR) LIKE '44%'");
  assert.equal(sql.filterSql({ column: 'cross_az', op: 'NOT LIKE', values: ['t%'] }, types), "(CAST(cross_az AS VARCHAR) NOT LIKE 't%' OR cross_az IS NULL)");
  assert.throws(() => sql.filterSql({ column: 'service_port', op: '=', values: ['44%'] }, types), /not a number/);
});

test('the app series is one read: out and in side by side, a self flow both ways', () => {
  const text = sql.appSeriesSql({ table: 'flows_1m', stepSecs: 60, from: 0, to: 600, app: "o'k" });
  assert.equal(text.match(/FROM flows_1m/g).length, 1);
  // coalesce: a side whose flows all lack bytes is a zero, not a bucket left out (cold review).
  assert.match(text, /sum\(CASE WHEN src_app = 'o''k' THEN coalesce\(bytes, 0\) END\) AS bytes_out/);
  assert.match(text, /\(src_app = 'o''k' OR dst_app = 'o''k'\)/);
  assert.deepEqual(sql.appSeriesRows([{ t: 'a', bytes_out: 5, bytes_in: null }, { t: 'b', bytes_out: 2, bytes_in: 3 }]), [
    { t: 'a', d0: 'out', value: 5 },
    { t: 'b', d0: 'out', value: 2 },
    { t: 'b', d0: 'in', value: 3 },
  ]);
});

// Cold review: grouped by src_app and filtered src_app = x (a drill-down
// click), the window query failed to plan on a 1-CPU host or over an empty
// range (DataFusion SanityCheckPlan); the old query answered.
test('a drill-down on the grouped dimension takes the two-read plan', () => {
  const q = { table: 'flows_1m', stepSecs: 60, from: 0, to: 600, dims: ['src_app'], measure: 'bytes', topN: 10, rank: 'max', types: {} };
  for (const f of [{ column: 'src_app', op: '=', values: ['x'] }, { column: 'src_app', op: 'IN', values: ['x'] }, { column: 'src_app', op: 'LIKE', values: ['x'] }]) {
    const text = sql.exploreSql({ ...q, filters: [f] });
    assert.doesNotMatch(text, /OVER/);
    assert.match(text, /LEFT JOIN r/);
  }
  assert.match(sql.exploreSql({ ...q, filters: [{ column: 'dst_app', op: '=', values: ['x'] }] }), /dense_rank/);
});
