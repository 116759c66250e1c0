// Pure functions of ui/js/units.js (run by tests/ui_js.rs through `node --test`).
import test from 'node:test';
import assert from 'node:assert/strict';
import { si, convert, formatValue, seriesStats, formatTime, formatDuration, unitAllowed } from '../ui/js/units.js';

test('si prefixes keep three significant digits', () => {
  assert.equal(si(0), '0');
  assert.equal(si(999), '999');
  assert.equal(si(1234567), '1.23 M');
  assert.equal(si(999_999), '1.00 M');
  assert.equal(si(12_500), '12.5 k');
  assert.equal(si(-2_000_000_000), '-2.00 G');
  assert.equal(si(null), '–');
});

test('rates divide by the bucket and bits multiply by eight', () => {
  assert.equal(convert(6000, 'rate', 60), 100);
  assert.equal(convert(6000, 'bits', 60), 800);
  assert.equal(convert(6000, 'total', 60), 6000);
  assert.equal(formatValue(1_250_000_000, 'bytes', 'bits'), '1.25 Gbit/s');
  assert.equal(formatValue(12, 'packets', 'rate'), '12 pkt/s');
  assert.equal(formatValue(14_000_000, 'bytes', 'rate'), '14.0 MB/s');
  assert.equal(formatValue(3, 'flows', 'total'), '3 flows');
  assert.ok(!unitAllowed('packets', 'bits'));
  assert.ok(unitAllowed('bytes', 'bits'));
});

test('series statistics: min max last avg p95 total', () => {
  const values = Array.from({ length: 20 }, (_, i) => i + 1);
  assert.deepEqual(seriesStats(values), { min: 1, max: 20, last: 20, avg: 10.5, p95: 19, total: 210 });
  assert.deepEqual(seriesStats([5]), { min: 5, max: 5, last: 5, avg: 5, p95: 5, total: 5 });
  assert.equal(seriesStats([]).total, 0);
});

test('times in UTC and durations', () => {
  assert.equal(formatTime(1796506200, true), '2026-12-05 21:30:00Z');
  assert.equal(formatDuration(5400), '1h30m');
  assert.equal(formatDuration(86400 * 2), '2d');
});
