// View settings <-> URL (pure: tested by ui-tests/urlstate.test.mjs).
//
// Every setting of every view lives in the URL's query string, so a link
// opens the same view. The encoding is versioned (`v=`): a link made by an
// older trawl is first brought to the current version by `MIGRATIONS`, in
// order, so links keep working after an upgrade. Settings equal to their
// default are left out, and unknown or bad values fall back to defaults
// (a hand-edited link never breaks the page).
//
// Version 1 (current):
//   view=explore|flowmap|app|whois|tail|sql   from, to (time expressions)
//   by=dim,dim   f=<filter text> (repeated)   m=bytes|packets|flows
//   u=total|rate|bits   n=1..50   rank=avg|max|last   chart=stacked|lines|percent
//   side=app|az|region|account (flow map)   app=NAME   ip=ADDR   at=TIME
//   sql=TEXT   where=TEXT (live tail)   tz=utc|local

import { parseFilter, filterText, DIMENSIONS } from './sql.js';

/** The most filters a link carries (a bound on what a link makes the page do). */
export const FILTERS_MAX = 64;

/** The version this trawl writes. */
export const URL_VERSION = 1;

/** The views, in the order of the navigation bar. */
export const VIEWS = ['explore', 'flowmap', 'app', 'whois', 'tail', 'sql'];

/** Every setting's default. */
export const DEFAULTS = Object.freeze({
  view: 'explore',
  from: 'now-1h',
  to: 'now',
  by: ['src_app'],
  filters: [],
  measure: 'bytes',
  unit: 'rate',
  topN: 10,
  rank: 'avg',
  chart: 'stacked',
  side: 'app',
  app: '',
  ip: '',
  at: 'now',
  sql: '',
  where: '',
  tz: 'utc',
});

const ONE_OF = {
  view: VIEWS,
  measure: ['bytes', 'packets', 'flows'],
  unit: ['total', 'rate', 'bits'],
  rank: ['avg', 'max', 'last'],
  chart: ['stacked', 'lines', 'percent'],
  side: ['app', 'az', 'region', 'account'],
  tz: ['utc', 'local'],
};

/**
 * Steps from each older version to the next: `MIGRATIONS[k]` takes the
 * parameters of version k to version k + 1. Version 0 is the unversioned
 * form the first UI used (`range=1h`, `group=`, `where=` in the hash).
 */
export const MIGRATIONS = [
  (p) => {
    const out = new URLSearchParams();
    if (p.get('range')) out.set('from', `now-${p.get('range')}`);
    if (p.get('group')) out.set('by', p.get('group'));
    for (const w of p.getAll('where')) out.append('f', w);
    for (const key of ['view', 'm', 'app', 'ip', 'sql']) if (p.get(key)) out.set(key, p.get(key));
    return out;
  },
];

/** The settings a query string holds (defaults for what it lacks). */
export function decode(search) {
  let params = new URLSearchParams(search);
  let version = Number(params.get('v') ?? 0);
  if (!Number.isInteger(version) || version < 0) version = URL_VERSION;
  for (let k = version; k < URL_VERSION && k < MIGRATIONS.length; k += 1) params = MIGRATIONS[k](params);
  const state = { ...DEFAULTS, by: [...DEFAULTS.by], filters: [] };
  const pick = (key, param) => {
    const value = params.get(param);
    if (value !== null && ONE_OF[key].includes(value)) state[key] = value;
  };
  pick('view', 'view');
  pick('measure', 'm');
  pick('unit', 'u');
  pick('rank', 'rank');
  pick('chart', 'chart');
  pick('side', 'side');
  pick('tz', 'tz');
  for (const key of ['from', 'to', 'app', 'ip', 'at', 'sql', 'where']) {
    const value = params.get(key);
    if (value !== null) state[key] = value.slice(0, 20000);
  }
  if (params.has('by')) {
    state.by = [...new Set(params.get('by').split(','))].filter((d) => DIMENSIONS.includes(d)).slice(0, 3);
  }
  const n = Number(params.get('n'));
  if (Number.isInteger(n) && n >= 1 && n <= 50) state.topN = n;
  for (const text of params.getAll('f').slice(0, FILTERS_MAX)) {
    try {
      state.filters.push(parseFilter(text));
    } catch {
      // A filter that no longer parses is dropped, not fatal.
    }
  }
  if (state.unit === 'bits' && state.measure !== 'bytes') state.unit = 'rate';
  return state;
}

/** The query string of `state` (current version; defaults left out). */
export function encode(state) {
  const p = new URLSearchParams();
  p.set('v', String(URL_VERSION));
  const put = (param, value, fallback) => {
    if (value !== undefined && value !== fallback) p.set(param, String(value));
  };
  put('view', state.view, DEFAULTS.view);
  put('from', state.from, DEFAULTS.from);
  put('to', state.to, DEFAULTS.to);
  const by = (state.by ?? []).join(',');
  put('by', by, DEFAULTS.by.join(','));
  for (const f of state.filters ?? []) p.append('f', filterText(f));
  put('m', state.measure, DEFAULTS.measure);
  put('u', state.unit, DEFAULTS.unit);
  put('n', state.topN, DEFAULTS.topN);
  put('rank', state.rank, DEFAULTS.rank);
  put('chart', state.chart, DEFAULTS.chart);
  put('side', state.side, DEFAULTS.side);
  put('app', state.app, DEFAULTS.app);
  put('ip', state.ip, DEFAULTS.ip);
  put('at', state.at, DEFAULTS.at);
  put('sql', state.sql, DEFAULTS.sql);
  put('where', state.where, DEFAULTS.where);
  put('tz', state.tz, DEFAULTS.tz);
  return `?${p.toString()}`;
}
