// From query rows to chart series (pure: tested by ui-tests/series.test.mjs).
//
// The explore query returns one row per (bucket, series) that had traffic;
// a chart needs every bucket of the range for every series, zeros where
// there was none, so stacks and averages are right.

import { OTHER, SEPARATOR, displayValue } from './sql.js';
import { convert, seriesStats } from './units.js';

/** Bucket starts (epoch seconds) covering `[from, to)` at `stepSecs`. */
export function buckets(from, to, stepSecs) {
  const out = [];
  for (let t = Math.floor(from / stepSecs) * stepSecs; t < to; t += stepSecs) out.push(t);
  return out;
}

/**
 * Rows of the explore query (`{t, rest, d0…, value}`, t as RFC 3339 text)
 * to `{times, series: [{key, name, parts, rest, values, raw, stats}]}`:
 * `parts` the series' values of the `dims` dimensions (`null` for a
 * missing one), `name` their label, `key` unique per series (the label is
 * not: two values may look alike), `raw` in the measure, `values` in
 * `unit`; series by total (largest first), the remainder (`rest`) last.
 */
export function toSeries(rows, { from, to, stepSecs, unit, dims = 1 }) {
  const times = buckets(from, to, stepSecs);
  const slot = new Map(times.map((t, i) => [t, i]));
  const byKey = new Map();
  for (const row of rows) {
    const t = Math.floor(Date.parse(row.t) / 1000);
    const i = slot.get(t);
    if (i === undefined) continue;
    const rest = row.rest === true;
    const parts = rest ? [] : Array.from({ length: dims }, (_, j) => row[`d${j}`] ?? null);
    const key = rest ? '\u0000rest' : JSON.stringify(parts);
    let one = byKey.get(key);
    if (!one) {
      const name = rest ? OTHER : dims ? parts.map(displayValue).join(SEPARATOR) : 'all';
      one = { key, name, parts, rest, raw: new Array(times.length).fill(0) };
      byKey.set(key, one);
    }
    one.raw[i] += Number(row.value);
  }
  const series = [...byKey.values()].map((one) => {
    const values = one.raw.map((v) => convert(v, unit, stepSecs));
    return { ...one, values, stats: { ...seriesStats(values), total: one.raw.reduce((a, b) => a + b, 0) } };
  });
  series.sort((a, b) => a.rest - b.rest || b.stats.total - a.stats.total || (a.key < b.key ? -1 : 1));
  return { times, series };
}

/** Each bucket's values as shares of the bucket's sum, in percent. */
export function percentages(series) {
  const n = series[0]?.values.length ?? 0;
  const sums = Array.from({ length: n }, (_, i) => series.reduce((a, s) => a + s.values[i], 0));
  return series.map((s) => ({ ...s, values: s.values.map((v, i) => (sums[i] ? (100 * v) / sums[i] : 0)) }));
}

/**
 * One CSV cell: quoted when it holds a comma, quote or line break, and
 * prefixed with `'` when a spreadsheet would read it as a formula (names
 * come from metadata and tags: `=HYPERLINK(…)` must stay text).
 */
export function csvCell(text) {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** The series as CSV: time, then one column per series (values in the shown unit). */
export function toCsv({ times, series }) {
  const esc = csvCell;
  const head = ['time', ...series.map((s) => esc(s.name))].join(',');
  const lines = times.map((t, i) => [new Date(t * 1000).toISOString(), ...series.map((s) => s.values[i])].join(','));
  return `${[head, ...lines].join('\n')}\n`;
}
