// Pure functions of ui/js/timerange.js.
import test from 'node:test';
import assert from 'node:assert/strict';
import { resolveTime, resolveRange, shiftRange, zoomRange, pickTable, alignRange, presetRange, endsAtNow } from '../ui/js/timerange.js';

const NOW = 1796506200; // 2026-12-05T21:30:00Z

test('relative, absolute and epoch times', () => {
  assert.equal(resolveTime('now', NOW), NOW);
  assert.equal(resolveTime('now-15m', NOW), NOW - 900);
  assert.equal(resolveTime('now - 2d', NOW), NOW - 172800);
  assert.equal(resolveTime('2026-12-05T21:00:00Z', NOW), NOW - 1800);
  assert.equal(resolveTime('2026-12-05 21:00', NOW), NOW - 1800);
  assert.equal(resolveTime('2026-12-05', NOW), NOW - 77400);
  assert.equal(resolveTime('1796506200', NOW), NOW);
  assert.throws(() => resolveTime('yesterday', NOW), /"yesterday" is not a time/);
  assert.throws(() => resolveRange({ from: 'now', to: 'now-1h' }, NOW), /starts/);
});

test('shifting moves by half the range, and back to now at the end', () => {
  const r = shiftRange(presetRange('1h'), -1, NOW);
  assert.deepEqual(r, { from: '2026-12-05T20:00:00Z', to: '2026-12-05T21:00:00Z' });
  assert.ok(!endsAtNow(r));
  assert.deepEqual(shiftRange(r, 1, NOW), { from: 'now-3600s', to: 'now' });
  assert.deepEqual(zoomRange(NOW, NOW - 60.5), { from: '2026-12-05T21:28:59Z', to: '2026-12-05T21:30:00Z' });
});

test('the table follows the range and the bucket is never finer than its grain', () => {
  const pick = (length) => {
    const { table, stepSecs } = pickTable(NOW - length, NOW);
    return { table, stepSecs };
  };
  assert.deepEqual(pick(900), { table: 'flows', stepSecs: 10 });
  assert.deepEqual(pick(3600), { table: 'flows_1m', stepSecs: 60 });
  assert.deepEqual(pick(86400), { table: 'flows_1m', stepSecs: 900 });
  assert.deepEqual(pick(7 * 86400), { table: 'flows_1h', stepSecs: 7200 });
  assert.deepEqual(pick(30 * 86400), { table: 'flows_1h', stepSecs: 21600 });
  assert.deepEqual(pick(365 * 86400), { table: 'flows_1d', stepSecs: 604800 });
});

// The store's default tables as /api/v1/tables lists them at NOW.
const TABLES = [
  { name: 'flows', grain_secs: null, kept_from: NOW - 6 * 3600 },
  { name: 'flows_1m', grain_secs: 60, kept_from: NOW - 7 * 86400 },
  { name: 'flows_1h', grain_secs: 3600, kept_from: NOW - 400 * 86400 },
  { name: 'flows_1d', grain_secs: 86400, kept_from: NOW - 1000 * 86400 },
];

test('a range is asked of a table that still holds its start', () => {
  // Regression (cold review of e03ca99): a 10-minute window a day ago went
  // to the detail table, which keeps 6 hours: an empty chart.
  assert.equal(pickTable(NOW - 86400, NOW - 86400 + 600, 120, TABLES).table, 'flows_1m');
  assert.equal(pickTable(NOW - 10 * 86400, NOW - 9 * 86400, 120, TABLES).table, 'flows_1h');
  assert.equal(pickTable(NOW - 600, NOW, 120, TABLES).table, 'flows');
  // Without the detail table a short range reads the 1-minute rollup.
  assert.deepEqual(pickTable(NOW - 900, NOW, 120, TABLES.slice(1)), { table: 'flows_1m', stepSecs: 60, grainSecs: 60 });
  // Older than every table: the one reaching furthest back.
  assert.equal(pickTable(NOW - 2000 * 86400, NOW - 1999 * 86400, 120, TABLES).table, 'flows_1d');
});

test('a range is widened to whole rows of its table', () => {
  // Regression (cold review of e03ca99): `now-1h` off a minute boundary
  // left out the first minute's row, so every series showed min 0.
  assert.deepEqual(alignRange(NOW - 3630, NOW - 30, 60), [NOW - 3660, NOW]);
  assert.deepEqual(alignRange(600, 1200, 60), [600, 1200]);
});

test('presets are widened by less than one grain of their table', () => {
  for (const secs of [86400, 2 * 86400, 7 * 86400, 30 * 86400]) {
    const [from, to] = [NOW + 437 - secs, NOW + 437]; // off every boundary
    const { grainSecs } = pickTable(from, to, 120, TABLES);
    const [a] = alignRange(from, to, grainSecs);
    // Regression (second cold review): widened to whole buckets, 24h
    // started up to 14 min early and 30d up to 5 h early.
    assert.ok(from - a < grainSecs, `${secs} s: ${from - a} s of traffic before the range (grain ${grainSecs})`);
  }
});

test('the table picked holds the aligned start, not only the typed one', () => {
  const from = TABLES[1].kept_from + 30; // 2 days ending 5 days ago, mid-minute
  const { table, grainSecs } = pickTable(from, from + 2 * 86400, 120, TABLES);
  const [a] = alignRange(from, from + 2 * 86400, grainSecs);
  const kept = TABLES.find((t) => t.name === table).kept_from;
  assert.ok(a >= kept, `${table}: asks from ${a}, kept from ${kept}`);
});
