// Units and number formatting (pure: no DOM, tested by ui-tests/units.test.mjs).
//
// A measure is what a chart counts (bytes, packets, flows); a unit is how
// it is shown: the total per bucket, a rate per second, or bits per second
// (bytes only). Values are formatted with SI prefixes (1 kB = 1000 B),
// as network engineers read link speeds.

/** The measures a view can chart, by the column that holds them. */
export const MEASURES = ['bytes', 'packets', 'flows'];

/** How a measure is shown: `total` per bucket, `rate` per second, `bits` per second. */
export const UNITS = ['total', 'rate', 'bits'];

const PREFIXES = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** `value` with an SI prefix and three significant digits: 1234567 → "1.23 M". */
export function si(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const sign = value < 0 ? '-' : '';
  let v = Math.abs(value);
  let i = 0;
  while (v >= 999.5 && i < PREFIXES.length - 1) {
    v /= 1000;
    i += 1;
  }
  const digits = v >= 100 || i === 0 && Number.isInteger(v) ? 0 : v >= 10 ? 1 : 2;
  return `${sign}${v.toFixed(digits)}${PREFIXES[i] ? ` ${PREFIXES[i]}` : ''}`;
}

const SHORT = { bytes: 'B', packets: 'pkt', flows: 'flows' };

/** The label of `measure` shown as `unit`: "B/s", "bit/s", "pkt". */
export function unitLabel(measure, unit) {
  if (unit === 'bits') return 'bit/s';
  const short = SHORT[measure] ?? measure;
  return unit === 'rate' ? `${short}/s` : short;
}

/** A value of `measure` summed over `stepSecs`, converted to `unit`. */
export function convert(value, unit, stepSecs) {
  if (unit === 'rate') return value / stepSecs;
  if (unit === 'bits') return (value * 8) / stepSecs;
  return value;
}

/** `value` (already converted) with its unit: "1.23 Gbit/s", "12 pkt/s". */
export function formatValue(value, measure, unit) {
  const label = unitLabel(measure, unit);
  const text = si(value);
  if (text === '–') return text;
  return /[kMGTPE]$/.test(text) ? `${text}${label}` : `${text} ${label}`;
}

/** Whether `unit` can show `measure` (bits only for bytes). */
export function unitAllowed(measure, unit) {
  return UNITS.includes(unit) && (unit !== 'bits' || measure === 'bytes');
}

/**
 * Summary of one series' values (one per bucket, zeros where the series
 * had no rows): min, max, last, avg, p95 (nearest rank) and total.
 */
export function seriesStats(values) {
  if (values.length === 0) return { min: 0, max: 0, last: 0, avg: 0, p95: 0, total: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const total = values.reduce((a, b) => a + b, 0);
  const rank = Math.max(1, Math.ceil(0.95 * sorted.length));
  return {
    min: sorted[0],
    max: sorted[sorted.length - 1],
    last: values[values.length - 1],
    avg: total / values.length,
    p95: sorted[rank - 1],
    total,
  };
}

/** A time (epoch seconds) as text, in UTC or the browser's zone. */
export function formatTime(secs, utc) {
  const d = new Date(secs * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  const [y, mo, day, h, mi, s] = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  return `${y}-${pad(mo)}-${pad(day)} ${pad(h)}:${pad(mi)}:${pad(s)}${utc ? 'Z' : ''}`;
}

/** A duration in seconds as the shortest text: 90 → "1m30s", 3600 → "1h". */
export function formatDuration(secs) {
  const parts = [];
  let rest = Math.round(secs);
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('') || '0s';
}
