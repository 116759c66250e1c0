// The app page: what app X talks to and what talks to it over the range,
// bytes in and out over time, its rejected flows and its service ports.

import { useMemo, useState } from 'preact/hooks';
import { html, useWindow, WindowNote, Chart, TimeBar, useQuery, SqlShown, RowsTable } from './components.js';
import { state, update } from './state.js';
import { appPeersSql, appSeriesSql, appSeriesRows, appRejectedSql, appPortsSql } from './sql.js';
import { toSeries } from './series.js';
import { si } from './units.js';

/** The app page. */
export function AppPage() {
  const s = state.value;
  const [name, setName] = useState(s.app);
  const win = useWindow();
  const { range, table, stepSecs } = win;
  const base = { table, from: range?.[0], to: range?.[1], app: s.app };
  const deps = [range?.[0], range?.[1], table, s.app];
  const ready = range && s.app;
  const out = useQuery(() => ready && appPeersSql({ ...base, direction: 'out' }), deps);
  const inbound = useQuery(() => ready && appPeersSql({ ...base, direction: 'in' }), deps);
  const series = useQuery(() => ready && appSeriesSql({ ...base, stepSecs }), [...deps, stepSecs]);
  const rejected = useQuery(() => ready && appRejectedSql(base), deps);
  const ports = useQuery(() => ready && appPortsSql(base), deps);
  const option = useMemo(() => {
    if (!series.rows || !range) return null;
    const rows = appSeriesRows(series.rows);
    const data = toSeries(rows, { from: range[0], to: range[1], stepSecs, unit: 'bits' });
    return {
      animation: false, legend: { top: 0 }, grid: { left: 70, right: 20, top: 30, bottom: 40 },
      tooltip: { trigger: 'axis', valueFormatter: (v) => `${si(v)}bit/s` },
      xAxis: { type: 'time' }, yAxis: { type: 'value', axisLabel: { formatter: si } },
      series: data.series.map((x) => ({ name: x.name, type: 'line', symbol: 'none', data: data.times.map((t, i) => [t * 1000, x.values[i]]) })),
    };
  }, [series.rows]);
  return html`<section data-view="app">
    <div class="bar"><label>app <input name="app" value=${name} size="30" onInput=${(e) => setName(e.target.value)}
      onKeyDown=${(e) => e.key === 'Enter' && update({ app: name.trim() })} /></label>
      <button class="primary" onClick=${() => update({ app: name.trim() })}>Show</button>
      <button onClick=${() => update({ view: 'explore', by: ['dst_app'], filters: [{ column: 'src_app', op: '=', values: [s.app] }] })}
        disabled=${!s.app}>Explore its traffic</button></div>
    <${TimeBar} />
    ${!s.app ? html`<p class="muted">Type an app name, or click any app name in the other views.</p>` : html`
    <h2>${s.app}</h2><p class="muted"><${WindowNote} window=${win} /></p>
    <div class="panel"><strong>Bits per second out and in</strong>
      ${option ? html`<${Chart} id="app-series" option=${option} />` : html`<div class="chart"></div>`}
      <${SqlShown} result=${series} /></div>
    <div class="grid2">
      <div class="panel"><strong>Talks to (out)</strong>${out.error ? html`<div class="error">${out.error}</div>` : null}
        <${RowsTable} rows=${out.rows} testid="app-out" /><${SqlShown} result=${out} /></div>
      <div class="panel"><strong>Talked to by (in)</strong>${inbound.error ? html`<div class="error">${inbound.error}</div>` : null}
        <${RowsTable} rows=${inbound.rows} testid="app-in" /><${SqlShown} result=${inbound} /></div>
      <div class="panel"><strong>Rejected flows, both ways</strong>${rejected.error ? html`<div class="error">${rejected.error}</div>` : null}
        <${RowsTable} rows=${rejected.rows} testid="app-rejected" /><${SqlShown} result=${rejected} /></div>
      <div class="panel"><strong>Its service ports (in)</strong>${ports.error ? html`<div class="error">${ports.error}</div>` : null}
        <${RowsTable} rows=${ports.rows} testid="app-ports" /><${SqlShown} result=${ports} /></div>
    </div>`}
  </section>`;
}
