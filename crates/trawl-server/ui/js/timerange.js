// Time ranges (pure: tested by ui-tests/timerange.test.mjs).
//
// A range is two expressions kept as typed: `now`, `now-6h` (relative:
// s, m, h, d, w) or an absolute time (RFC 3339, `2026-12-05 10:00`, read
// as UTC, or epoch seconds). Relative ranges are resolved against the
// current time at each query, so a range that ends at `now` follows it.
// The table and bucket size are picked from the resolved length.

/** The preset ranges, shortest first. */
export const PRESETS = ['15m', '1h', '3h', '6h', '12h', '24h', '2d', '7d', '30d'];

const UNIT_SECS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds in a duration like `15m`, `6h`, `2d`; null when not one. */
export function durationSecs(text) {
  const m = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  return m ? Number(m[1]) * UNIT_SECS[m[2]] : null;
}

/** The epoch seconds `text` means at `nowSecs`; throws an Error naming the text. */
export function resolveTime(text, nowSecs) {
  const t = String(text).trim();
  if (t === 'now') return nowSecs;
  const rel = /^now\s*([-+])\s*(\d+\s*[smhdw])$/.exec(t);
  if (rel) {
    const secs = durationSecs(rel[2]);
    return rel[1] === '-' ? nowSecs - secs : nowSecs + secs;
  }
  if (/^\d{9,11}$/.test(t)) return Number(t);
  let iso = t.replace(' ', 'T');
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/.test(iso)) iso += 'Z';
  if (/^\d{4}-\d\d-\d\d$/.test(iso)) iso += 'T00:00:00Z';
  const ms = /^\d{4}-\d\d-\d\dT/.test(iso) ? Date.parse(iso) : NaN;
  if (Number.isNaN(ms)) {
    throw new Error(`"${t}" is not a time: use now, now-6h, 2026-12-05T10:00:00Z or epoch seconds`);
  }
  return Math.floor(ms / 1000);
}

/** `[from, to]` in epoch seconds; throws when `from` is not before `to`. */
export function resolveRange(range, nowSecs) {
  const from = resolveTime(range.from, nowSecs);
  const to = resolveTime(range.to, nowSecs);
  if (from >= to) throw new Error(`the range starts (${range.from}) at or after it ends (${range.to})`);
  return [from, to];
}

/** The range of preset `preset` ending now. */
export function presetRange(preset) {
  return { from: `now-${preset}`, to: 'now' };
}

/** Whether `range` ends at the current time (then it refreshes itself). */
export function endsAtNow(range) {
  return String(range.to).trim() === 'now';
}

/** ISO text of epoch seconds, without milliseconds. */
export function isoSecs(secs) {
  return new Date(secs * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * `range` moved by `direction` (-1 earlier, +1 later) times half its
 * length, as absolute times; moving past now gives a range ending `now`.
 */
export function shiftRange(range, direction, nowSecs) {
  const [from, to] = resolveRange(range, nowSecs);
  const by = Math.max(1, Math.round((to - from) / 2)) * direction;
  if (to + by >= nowSecs) return { from: `now-${to - from}s`, to: 'now' };
  return { from: isoSecs(from + by), to: isoSecs(to + by) };
}

/** An absolute range from a brush selection (epoch seconds). */
export function zoomRange(fromSecs, toSecs) {
  const from = Math.floor(Math.min(fromSecs, toSecs));
  const to = Math.ceil(Math.max(fromSecs, toSecs));
  return { from: isoSecs(from), to: isoSecs(Math.max(to, from + 1)) };
}

const NICE_STEPS = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** The default tables, as `/api/v1/tables` lists them (kept_from unknown). */
const DEFAULT_TABLES = [
  { name: 'flows', grain_secs: null, kept_from: 0 },
  { name: 'flows_1m', grain_secs: 60, kept_from: 0 },
  { name: 'flows_1h', grain_secs: 3600, kept_from: 0 },
  { name: 'flows_1d', grain_secs: 86400, kept_from: 0 },
];

/** The longest range a table of `grainSecs` answers (null: the detail table). */
function longestSecs(grainSecs) {
  if (grainSecs === null) return 900;
  if (grainSecs <= 60) return 2 * 86400;
  if (grainSecs <= 3600) return 60 * 86400;
  return Infinity;
}

/**
 * The table and bucket size for `[from, to)` and about `points` buckets.
 * `tables` is `/api/v1/tables`'s list (name, grain_secs, kept_from; null
 * or empty when unknown: the default tables). The finest table whose
 * grain suits the range — the detail table for 15 minutes or less, a
 * 1-minute rollup up to 2 days, a 1-hour one up to 60 days, else the
 * coarsest — that still holds `from` widened to its grain; when none
 * holds it, the one that reaches furthest back. The bucket is never finer
 * than the table's grain (`grainSecs`; 1 for the detail table).
 */
export function pickTable(from, to, points = 120, tables = null) {
  const lengthSecs = to - from;
  const listed = tables?.length ? tables : DEFAULT_TABLES;
  const usable = [...listed].sort((a, b) => (a.grain_secs ?? 0) - (b.grain_secs ?? 0));
  const grainOf = (t) => t.grain_secs ?? 1;
  const holds = (t) => Math.floor(from / grainOf(t)) * grainOf(t) >= (t.kept_from ?? 0);
  const chosen = usable.find((t) => lengthSecs <= longestSecs(t.grain_secs) && holds(t))
    ?? usable.find(holds)
    ?? [...usable].sort((a, b) => (a.kept_from ?? 0) - (b.kept_from ?? 0))[0];
  const grain = grainOf(chosen);
  const wanted = lengthSecs / points;
  const step = NICE_STEPS.find((s) => s >= wanted && s >= grain) ?? Math.max(grain, Math.ceil(wanted / 86400) * 86400);
  return { table: chosen.name, stepSecs: step, grainSecs: grain };
}

/**
 * `[from, to)` widened to whole rows of a table of `grainSecs`: a rollup
 * row at `floor(from)` holds traffic after `from` (leaving it out showed a
 * first bucket of zero on every range off a minute boundary), and a row
 * cannot be split. The view says when the range it shows is wider than
 * the one asked.
 */
export function alignRange(from, to, grainSecs) {
  return [Math.floor(from / grainSecs) * grainSecs, Math.ceil(to / grainSecs) * grainSecs];
}
