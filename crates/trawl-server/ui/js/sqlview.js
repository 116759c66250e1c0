// The SQL view: any read-only statement, with completion of table and
// column names (Tab or click), results as a table or a chart, the query
// time, and a history kept in this browser.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html, Chart, RowsTable } from './components.js';
import { state, update, tick, linkedSql } from './state.js';
import { query, schema } from './api.js';
import { si } from './units.js';

const HISTORY_KEY = 'trawl-sql-history';
const HISTORY_MAX = 50;
const EXAMPLE = `SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m
WHERE time >= now() - INTERVAL '1 hour' GROUP BY 1, 2 ORDER BY bytes DESC LIMIT 20`;

/** The word being typed just before `cursor` in `text`. */
export function wordAt(text, cursor) {
  const m = /[A-Za-z_][A-Za-z0-9_]*$/.exec(text.slice(0, cursor));
  return m ? m[0] : '';
}

/** A chart of a result when its shape allows one: time × numbers → lines, text × number → bars. */
export function resultChart(rows) {
  if (!rows?.length) return null;
  const cols = Object.keys(rows[0]);
  const numeric = cols.filter((c) => typeof rows[0][c] === 'number');
  const timeCol = cols.find((c) => typeof rows[0][c] === 'string' && /^\d{4}-\d\d-\d\dT/.test(rows[0][c]));
  if (!numeric.length) return null;
  if (timeCol) {
    const label = cols.find((c) => c !== timeCol && !numeric.includes(c));
    const groups = new Map();
    for (const r of rows) {
      const name = label ? String(r[label]) : numeric[0];
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push([Date.parse(r[timeCol]), r[numeric[0]]]);
    }
    return {
      animation: false, tooltip: { trigger: 'axis', valueFormatter: si }, legend: { type: 'scroll', top: 0 },
      grid: { left: 70, right: 20, top: 30, bottom: 40 }, xAxis: { type: 'time' }, yAxis: { type: 'value', axisLabel: { formatter: si } },
      series: [...groups.entries()].slice(0, 50).map(([name, data]) => ({ name, type: 'line', symbol: 'none', data })),
    };
  }
  const label = cols.find((c) => !numeric.includes(c)) ?? cols[0];
  const top = rows.slice(0, 50);
  return {
    animation: false, tooltip: { trigger: 'axis', valueFormatter: si }, grid: { left: 160, right: 20, top: 10, bottom: 30 },
    yAxis: { type: 'category', inverse: true, data: top.map((r) => String(r[label])) },
    xAxis: { type: 'value', axisLabel: { formatter: si } },
    series: [{ type: 'bar', name: numeric[0], data: top.map((r) => r[numeric[0]]) }],
  };
}

/** The SQL view. */
export function SqlView() {
  const s = state.value;
  const [text, setText] = useState(s.sql || EXAMPLE);
  const [result, setResult] = useState(null);
  const [asChart, setAsChart] = useState(false);
  const [names, setNames] = useState([]);
  const [items, setItems] = useState([]);
  const [history, setHistory] = useState(() => JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]'));
  const box = useRef(null);
  useEffect(() => {
    schema().then(({ tables }) => setNames([...new Set([...Object.keys(tables), ...Object.values(tables).flat().map((c) => c.name)])].sort()))
      .catch(() => {});
  }, []);
  useEffect(() => { if (s.sql) setText(s.sql); }, [s.sql]);
  const fromLink = s.sql && linkedSql.pending && s.sql === linkedSql.text;
  const run = (sql = text) => {
    if (sql === linkedSql.text) linkedSql.pending = false;
    setResult({ loading: true });
    update({ sql });
    query(sql).then(({ rows, ms }) => {
      setResult({ rows, ms });
      const next = [sql, ...history.filter((h) => h !== sql)].slice(0, HISTORY_MAX);
      setHistory(next);
      localStorage.setItem(HISTORY_KEY, JSON.stringify(next));
    }).catch((e) => setResult({ error: e.message }));
  };
  useEffect(() => { if (s.sql && !fromLink) run(s.sql); }, [tick.value]);
  const complete = (name) => {
    const el = box.current;
    const cursor = el.selectionStart;
    const word = wordAt(text, cursor);
    const next = text.slice(0, cursor - word.length) + name + text.slice(cursor);
    setText(next);
    setItems([]);
    requestAnimationFrame(() => { el.focus(); el.selectionStart = el.selectionEnd = cursor - word.length + name.length; });
  };
  const onInput = (e) => {
    setText(e.target.value);
    const word = wordAt(e.target.value, e.target.selectionStart);
    setItems(word.length >= 2 ? names.filter((n) => n.startsWith(word) && n !== word).slice(0, 12) : []);
  };
  const onKeyDown = (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); run(); }
    else if (e.key === 'Tab' && items.length) { e.preventDefault(); complete(items[0]); }
    else if (e.key === 'Escape') setItems([]);
  };
  const option = useMemo(() => asChart && resultChart(result?.rows), [asChart, result?.rows]);
  return html`<section data-view="sql">
    <div class="panel relative">
      <textarea ref=${box} rows="7" name="sql" spellcheck="false" value=${text} onInput=${onInput} onKeyDown=${onKeyDown}></textarea>
      ${items.length ? html`<ul class="completion" data-testid="sql-completion">${items.map((n) => html`<li onMouseDown=${(e) => { e.preventDefault(); complete(n); }}>${n}</li>`)}</ul>` : null}
      <div class="bar">
        <button class="primary" onClick=${() => run()} data-testid="sql-run">Run (Ctrl+Enter)</button>
        <button class=${asChart ? '' : 'on'} onClick=${() => setAsChart(false)}>Table</button>
        <button class=${asChart ? 'on' : ''} onClick=${() => setAsChart(true)}>Chart</button>
        ${result?.ms !== undefined ? html`<span class="muted" data-testid="sql-time">${result.rows.length} rows in ${Math.round(result.ms)} ms</span>` : null}
        ${result?.loading ? html`<span class="muted">running…</span>` : null}
        <span class="muted">Tab completes table and column names</span>
      </div>
      ${fromLink && !result ? html`<p class="muted" data-testid="sql-from-link">This statement came with the link: read it, then Run.</p>` : null}
      ${result?.error ? html`<div class="error" data-testid="sql-error">${result.error}</div>` : null}
    </div>
    ${result?.rows ? html`<div class="panel">${asChart
      ? (option ? html`<${Chart} id="sql-chart" option=${option} />` : html`<p class="muted">This result has no number to chart.</p>`)
      : html`<${RowsTable} rows=${result.rows.slice(0, 5000)} testid="sql-rows" />`}</div>` : null}
    <div class="panel"><strong>History</strong>
      <ul class="muted">${history.map((h) => html`<li><a onClick=${() => { setText(h); run(h); }}><code>${h.length > 160 ? `${h.slice(0, 160)}…` : h}</code></a></li>`)}</ul></div>
  </section>`;
}
