// The page's state: one signal holding every view setting, kept in the
// URL (urlstate.js) so that reload, back/forward and shared links restore
// it. `update` changes settings; a change of view or range is a history
// entry, other changes replace the current one.

import { signal } from '@preact/signals';
import { decode, encode } from './urlstate.js';

/** Every setting of every view (see urlstate.js). */
export const state = signal(decode(location.search));

/**
 * The SQL the page was opened with. A link may come from any site, so the
 * SQL view shows that statement but runs it only when the user does
 * (`pending` until then); SQL set from inside the page runs at once.
 */
export const linkedSql = { text: state.value.sql, pending: Boolean(state.value.sql) };

/** Bumped to re-run the current view's queries (refresh, Ctrl+Enter). */
export const tick = signal(0);

/** The colour theme, kept per browser. */
export const theme = signal(localStorage.getItem('trawl-theme')
  ?? (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));

/** Merges `patch` into the settings and writes the URL. */
export function update(patch) {
  const before = state.value;
  const next = { ...before, ...patch };
  state.value = next;
  const url = encode(next);
  if (url === location.search) return;
  const entry = before.view !== next.view || before.from !== next.from || before.to !== next.to;
  if (entry) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** Re-runs the current view's queries. */
export function refresh() {
  tick.value += 1;
}

/** Flips the theme. */
export function toggleTheme() {
  theme.value = theme.value === 'dark' ? 'light' : 'dark';
  localStorage.setItem('trawl-theme', theme.value);
}

addEventListener('popstate', () => {
  state.value = decode(location.search);
});
