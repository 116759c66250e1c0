// Pieces every view uses: the chart, the time bar, the filter bar with
// completion, links to the app page, and result tables. Text from the
// server is always rendered as text (Preact escapes it), never as markup.

import { h } from 'preact';
import { useEffect, useRef, useState, useMemo } from 'preact/hooks';
import htm from 'htm';
import * as echarts from 'echarts';
import { state, update, refresh, theme, tick as refreshTick } from './state.js';
import { PRESETS, resolveRange, shiftRange, endsAtNow, presetRange, pickTable, alignRange } from './timerange.js';
import { parseFilter, filterText, valuesSql, valueText, displayValue, typeKind, DIMENSIONS } from './sql.js';
import { query, schema, tables as listTables } from './api.js';
import { formatTime } from './units.js';

export const html = htm.bind(h);

/** An ECharts chart of `option`; `events` maps ECharts event names to handlers. */
export function Chart({ option, events = {}, id, tall, onReady }) {
  const ref = useRef(null);
  const chart = useRef(null);
  const dark = theme.value === 'dark';
  useEffect(() => {
    const instance = echarts.init(ref.current, dark ? 'dark' : null, { renderer: 'canvas' });
    chart.current = instance;
    const resize = new ResizeObserver(() => instance.resize());
    resize.observe(ref.current);
    return () => {
      resize.disconnect();
      instance.dispose();
    };
  }, [dark]);
  useEffect(() => {
    const instance = chart.current;
    instance.setOption({ backgroundColor: 'transparent', useUTC: state.value.tz === 'utc', ...option }, { notMerge: true });
    for (const [name, handler] of Object.entries(events)) {
      instance.off(name);
      instance.on(name, handler);
    }
    onReady?.(instance);
  }, [option, dark]);
  return html`<div class=${tall ? 'chart tall' : 'chart'} data-chart=${id} ref=${ref}></div>`;
}

/** The resolved `[from, to]` of the state's range, or an error message. */
export function useRange() {
  const s = state.value;
  return useMemo(() => {
    try {
      return { range: resolveRange(s, Math.floor(Date.now() / 1000)) };
    } catch (error) {
      return { error: error.message };
    }
  }, [s.from, s.to, refreshTick.value]);
}

/** Range presets, typed from/to, shift and refresh; auto-refresh when it ends at now. */
export function TimeBar() {
  const s = state.value;
  const [from, setFrom] = useState(s.from);
  const [to, setTo] = useState(s.to);
  const [error, setError] = useState('');
  useEffect(() => { setFrom(s.from); setTo(s.to); }, [s.from, s.to]);
  useEffect(() => {
    if (!endsAtNow(s)) return undefined;
    const timer = setInterval(refresh, 30_000);
    return () => clearInterval(timer);
  }, [s.from, s.to]);
  const apply = () => {
    try {
      resolveRange({ from, to }, Math.floor(Date.now() / 1000));
      setError('');
      update({ from: from.trim(), to: to.trim() });
    } catch (e) {
      setError(e.message);
    }
  };
  const shift = (direction) => update(shiftRange(s, direction, Math.floor(Date.now() / 1000)));
  return html`<div class="bar" data-testid="timebar">
    ${PRESETS.map((p) => html`<button class=${s.from === `now-${p}` && s.to === 'now' ? 'on' : ''}
      onClick=${() => update(presetRange(p))} data-preset=${p}>${p}</button>`)}
    <label>from <input size="20" value=${from} onInput=${(e) => setFrom(e.target.value)}
      onKeyDown=${(e) => e.key === 'Enter' && apply()} name="from" /></label>
    <label>to <input size="20" value=${to} onInput=${(e) => setTo(e.target.value)}
      onKeyDown=${(e) => e.key === 'Enter' && apply()} name="to" /></label>
    <button onClick=${apply}>Apply</button>
    <button title="Earlier (Shift+←)" onClick=${() => shift(-1)} data-shift="-1">←</button>
    <button title="Later (Shift+→)" onClick=${() => shift(1)} data-shift="1">→</button>
    <button title="Run again (Ctrl+Enter)" onClick=${refresh}>⟳</button>
    ${endsAtNow(s) ? html`<span class="muted">auto-refresh 30 s</span>` : null}
    ${error ? html`<span class="error">${error}</span>` : null}
  </div>`;
}

/** The server's tables (`/api/v1/tables`; null until known). */
export function useTables() {
  const [tables, setTables] = useState(null);
  useEffect(() => {
    listTables().then(setTables).catch(() => setTables((known) => known ?? []));
  }, [refreshTick.value]);
  return tables;
}

/**
 * The window a view queries: the range resolved, the table that holds it,
 * the bucket size, and the range widened to whole buckets. `range` is null
 * until the tables are known or when the range does not resolve (`error`).
 */
export function useWindow(points = 120) {
  const { range, error } = useRange();
  const tables = useTables();
  if (!range) return { error, table: 'flows_1m', stepSecs: 60, range: null };
  const { table, stepSecs, grainSecs } = pickTable(range[0], range[1], points, tables);
  return { table, stepSecs, asked: range, range: tables ? alignRange(range[0], range[1], grainSecs) : null, error };
}

/** The table a view reads, and the range it shows when wider than the one asked. */
export function WindowNote({ window: w }) {
  const { table, stepSecs, asked, range } = w;
  const utc = state.value.tz === 'utc';
  const widened = range && asked && (range[0] !== asked[0] || range[1] !== asked[1]);
  return html`<span data-testid="window">${table} · ${stepSecs} s buckets${widened
    ? html` · <span title="A table's rows cannot be split: the range is widened to whole rows">shows ${formatTime(range[0], utc)} – ${formatTime(range[1], utc)}</span>`
    : null}</span>`;
}

/** Column types of `table` for filters: `{column: number|bool|text}`. */
export function useTypes(table) {
  const [types, setTypes] = useState({});
  useEffect(() => {
    schema().then(({ tables }) => {
      const kinds = {};
      for (const c of tables[table] ?? []) {
        kinds[c.name] = typeKind(c.type);
      }
      setTypes(kinds);
    }).catch(() => setTypes({}));
  }, [table]);
  return types;
}

/** A list of completions under an input. */
function Completion({ items, selected, onPick }) {
  if (!items.length) return null;
  return html`<ul class="completion" data-testid="completion">
    ${items.map((item, i) => html`<li class=${i === selected ? 'sel' : ''}
      onMouseDown=${(e) => { e.preventDefault(); onPick(item); }}>
      <span>${item.label}</span><span class="muted">${item.hint ?? ''}</span></li>`)}
  </ul>`;
}

/**
 * The filter bar: a chip per filter (click to edit, × to remove) and an
 * input that completes columns, then operators, then values seen in
 * `table` over the range. Enter adds the filter; a bad one is shown inline.
 */
export function FilterBar({ table, range, error: queryError }) {
  const s = state.value;
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const [items, setItems] = useState([]);
  const [selected, setSelected] = useState(-1);
  const [focused, setFocused] = useState(false);
  const columns = useColumns(table);
  useEffect(() => {
    if (!focused) {
      setItems([]);
      return undefined;
    }
    const m = /^\s*([a-z_0-9]+)\s*(=|!=|not in|in|not like|like)\s*(?:\(?)\s*((?:[^,]*,\s*)*)'?([^,']*)$/i.exec(text);
    if (!m) {
      const word = text.trim().toLowerCase();
      const known = columns.find((c) => c === word);
      if (known && /\s$/.test(text)) {
        setItems(['=', '!=', 'IN', 'NOT IN', 'LIKE', 'NOT LIKE'].map((op) => ({ label: op, value: `${known} ${op} ` })));
      } else {
        setItems(columns.filter((c) => c.startsWith(word) && c !== word).slice(0, 30)
          .map((c) => ({ label: c, value: `${c} ` })));
      }
      setSelected(-1);
      return undefined;
    }
    if (!range || !columns.includes(m[1].toLowerCase())) return undefined;
    const controller = new AbortController();
    const timer = setTimeout(() => {
      const sql = valuesSql({ table, column: m[1].toLowerCase(), prefix: m[4], from: range[0], to: range[1] });
      query(sql, { signal: controller.signal }).then(({ rows }) => {
        const head = text.slice(0, text.length - m[4].length).replace(/'$/, '');
        setItems(rows.map((r) => ({
          label: displayValue(r.value), hint: `${r.n} rows`, value: `${head}${valueText(r.value)}`,
        })));
        setSelected(-1);
      }).catch(() => setItems([]));
    }, 150);
    return () => { clearTimeout(timer); controller.abort(); };
  }, [text, focused, table, columns, range?.[0], range?.[1]]);
  const add = () => {
    if (!text.trim()) return;
    try {
      const filter = parseFilter(text);
      if (columns.length && !columns.includes(filter.column)) {
        throw new Error(`no column ${filter.column} in ${table}; try ${columns.filter((c) => c.includes(filter.column.split('_').pop())).slice(0, 4).join(', ') || 'one the completion offers'}`);
      }
      update({ filters: [...s.filters, filter] });
      setText('');
      setError('');
      setItems([]);
    } catch (e) {
      setError(e.message);
    }
  };
  const onKeyDown = (e) => {
    if (e.key === 'ArrowDown' && items.length) { e.preventDefault(); setSelected((selected + 1) % items.length); }
    else if (e.key === 'ArrowUp' && items.length) { e.preventDefault(); setSelected((selected - 1 + items.length) % items.length); }
    else if ((e.key === 'Tab' || e.key === 'Enter') && selected >= 0 && items[selected]) {
      e.preventDefault(); setText(items[selected].value); setItems([]);
    } else if (e.key === 'Enter') add();
    else if (e.key === 'Escape') setItems([]);
  };
  const remove = (i) => update({ filters: s.filters.filter((_, j) => j !== i) });
  const edit = (i) => { setText(filterText(s.filters[i])); remove(i); };
  return html`<div class="bar" data-testid="filterbar">
    ${s.filters.map((f, i) => html`<span class="chip" data-filter=${filterText(f)}>
      <a onClick=${() => edit(i)} title="Edit">${filterText(f)}</a>
      <button onClick=${() => remove(i)} title="Remove">×</button></span>`)}
    <span class="relative">
      <input size="46" placeholder="filter: src_app = checkout, dst_port IN (22, 3389), action = REJECT"
        value=${text} onInput=${(e) => setText(e.target.value)} onKeyDown=${onKeyDown}
        onFocus=${() => setFocused(true)} onBlur=${() => setFocused(false)} name="filter" autocomplete="off" />
      <${Completion} items=${items} selected=${selected} onPick=${(item) => setText(item.value)} />
    </span>
    <button onClick=${add}>Add filter</button>
    ${error || queryError ? html`<div class="error" data-testid="filter-error">${error || queryError}</div>` : null}
  </div>`;
}

/** The column names of `table` (from the schema), or the dimensions until it loads. */
export function useColumns(table) {
  const [columns, setColumns] = useState(DIMENSIONS);
  useEffect(() => {
    schema().then(({ tables }) => setColumns((tables[table] ?? []).map((c) => c.name).filter((c) => c !== 'time')))
      .catch(() => setColumns(DIMENSIONS));
  }, [table]);
  return columns;
}

/** A link to the app page of `name` (plain text for a missing app, `null`). */
export function AppLink({ name }) {
  if (name === null || name === undefined) return html`<span>${displayValue(null)}</span>`;
  return html`<a class="app-link" data-app=${name} onClick=${() => update({ view: 'app', app: name })}>${displayValue(name)}</a>`;
}

const APP_COLUMNS = new Set(['src_app', 'dst_app', 'app', 'peer']);

/** Rows of objects as a table; app columns link to the app page, times follow the tz switch. */
export function RowsTable({ rows, columns, testid, numeric = [] }) {
  if (!rows?.length) return html`<p class="muted">No rows.</p>`;
  const cols = columns ?? Object.keys(rows[0]);
  const utc = state.value.tz === 'utc';
  const cell = (c, v) => {
    if (APP_COLUMNS.has(c)) return html`<${AppLink} name=${v} />`;
    if (v === null || v === undefined) return html`<span class="muted">NULL</span>`;
    if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?$/.test(v)) {
      return formatTime(Date.parse(v.endsWith('Z') ? v : `${v}Z`) / 1000, utc);
    }
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  };
  return html`<div class="scroll"><table data-testid=${testid}>
    <thead><tr>${cols.map((c) => html`<th class=${numeric.includes(c) || typeof rows[0][c] === 'number' ? 'num' : ''}>${c}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr>${cols.map((c) => html`<td class=${typeof r[c] === 'number' ? 'num' : ''}>${cell(c, r[c])}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

/**
 * Runs `makeSql()` whenever `deps` change or a refresh is asked; `{rows,
 * ms, error, sql, meta}`: `meta` is what the caller passed with the query
 * that answered (the settings the rows belong to: the page may have moved on).
 */
export function useQuery(makeSql, deps, meta = null) {
  const [result, setResult] = useState({ loading: true });
  useEffect(() => {
    let sql;
    try {
      sql = makeSql();
    } catch (error) {
      setResult({ error: error.message });
      return undefined;
    }
    if (!sql) {
      setResult({});
      return undefined;
    }
    const controller = new AbortController();
    setResult((r) => ({ ...r, loading: true, sql }));
    query(sql, { signal: controller.signal })
      .then(({ rows, ms }) => setResult({ rows, ms, sql, meta }))
      .catch((error) => { if (error.name !== 'AbortError') setResult({ error: error.message, sql }); });
    return () => controller.abort();
  }, [...deps, refreshTick.value]);
  return result;
}

/** The SQL a panel ran, with its time and a button to open it in the SQL view. */
export function SqlShown({ result }) {
  if (!result?.sql) return null;
  return html`<details><summary class="muted">SQL${result.ms !== undefined ? ` · ${Math.round(result.ms)} ms` : ''}</summary>
    <pre class="sql">${result.sql}</pre>
    <button onClick=${() => update({ view: 'sql', sql: result.sql })}>Open in SQL view</button></details>`;
}
