// Explore (the home view): a measure over time, grouped by up to three
// dimensions, top N plus Other, with a table of each series under the
// chart. Brush the chart to zoom; click a series (chart or table) to add
// it as a filter; hover a row to highlight its series.

import { useMemo, useRef, useState } from 'preact/hooks';
import { html, useWindow, WindowNote, Chart, TimeBar, FilterBar, useTypes, useQuery, SqlShown, AppLink } from './components.js';
import { state, update } from './state.js';
import { zoomRange } from './timerange.js';
import { exploreSql, drillFilters, DIMENSIONS } from './sql.js';
import { toSeries, percentages, toCsv } from './series.js';
import { formatValue, unitLabel, si, unitAllowed, MEASURES, UNITS } from './units.js';

const PALETTE = ['#5470c6', '#91cc75', '#fac858', '#ee6666', '#73c0de', '#3ba272', '#fc8452', '#9a60b4', '#ea7ccc', '#2f4554'];

/** The colour of series `i` (the chart's and the table's swatch agree); the remainder grey. */
export function colour(i, rest) {
  return rest ? '#9aa0a6' : PALETTE[i % PALETTE.length];
}

function Controls() {
  const s = state.value;
  const setBy = (i, dim) => {
    const by = [...s.by];
    if (dim) by[i] = dim; else by.splice(i, 1);
    update({ by: [...new Set(by.filter(Boolean))] });
  };
  const slots = [...s.by, ''].slice(0, 3);
  return html`<div class="bar" data-testid="explore-controls">
    <label>group by ${slots.map((d, i) => html`<select name=${`by${i}`} value=${d} onChange=${(e) => setBy(i, e.target.value)}>
      <option value="">${i === 0 ? '(nothing)' : '+ dimension'}</option>
      ${DIMENSIONS.map((x) => html`<option value=${x}>${x}</option>`)}</select>`)}</label>
    <label>measure <select name="measure" value=${s.measure} onChange=${(e) => update({ measure: e.target.value, unit: unitAllowed(e.target.value, s.unit) ? s.unit : 'rate' })}>
      ${MEASURES.map((m) => html`<option>${m}</option>`)}</select></label>
    <label>as <select name="unit" value=${s.unit} onChange=${(e) => update({ unit: e.target.value })}>
      ${UNITS.filter((u) => unitAllowed(s.measure, u)).map((u) => html`<option value=${u}>${{ total: 'total per bucket', rate: 'per second', bits: 'bits/s' }[u]}</option>`)}</select></label>
    <label>top <input name="topN" type="number" min="1" max="50" value=${s.topN} style="width:4rem"
      onChange=${(e) => update({ topN: Math.max(1, Math.min(50, Number(e.target.value) || 10)) })} /></label>
    <label>by <select name="rank" value=${s.rank} onChange=${(e) => update({ rank: e.target.value })}>
      <option value="avg">avg</option><option value="max">max</option><option value="last">last</option></select></label>
    <label>chart <select name="chart" value=${s.chart} onChange=${(e) => update({ chart: e.target.value })}>
      <option value="stacked">stacked</option><option value="lines">lines</option><option value="percent">100 %</option></select></label>
  </div>`;
}

/** The explore view. */
export function Explore() {
  const s = state.value;
  const win = useWindow();
  const { range, error: rangeError, table, stepSecs } = win;
  const types = useTypes(table);
  const result = useQuery(() => range && exploreSql({
    table, stepSecs, from: range[0], to: range[1], dims: s.by, filters: s.filters,
    measure: s.measure, topN: s.topN, rank: s.rank, types,
  }), [range?.[0], range?.[1], table, stepSecs, s.by.join(), JSON.stringify(s.filters), s.measure, s.topN, s.rank, types],
  { by: s.by, from: range?.[0], to: range?.[1], stepSecs });
  // The rows' own settings: after a change the old chart stays until the new answer.
  const data = useMemo(() => {
    const q = result.meta;
    if (!result.rows || !q) return null;
    return { ...toSeries(result.rows, { from: q.from, to: q.to, stepSecs: q.stepSecs, unit: s.unit, dims: q.by.length }), by: q.by };
  }, [result.rows, s.unit]);
  const [highlight, setHighlight] = useState(null);
  const chartRef = useRef(null);
  const drill = (one) => {
    const added = one ? drillFilters(data.by, one.parts, one.rest) : [];
    if (added.length) update({ filters: [...s.filters, ...added] });
  };
  const option = useMemo(() => data && chartOption(data, s), [data, s.chart, s.tz]);
  const events = {
    click: (p) => drill(data?.series[p.seriesIndex]),
    brushEnd: (p) => {
      const area = p.areas?.[0];
      if (area?.coordRange) update(zoomRange(area.coordRange[0] / 1000, area.coordRange[1] / 1000));
    },
    mouseover: (p) => setHighlight(data?.series[p.seriesIndex]?.key ?? null),
    mouseout: () => setHighlight(null),
  };
  const onReady = (chart) => {
    chartRef.current = chart;
    chart.dispatchAction({ type: 'takeGlobalCursor', key: 'brush', brushOption: { brushType: 'lineX', brushMode: 'single' } });
  };
  const hover = (i) => {
    setHighlight(i === null ? null : data.series[i].key);
    chartRef.current?.dispatchAction({ type: i === null ? 'downplay' : 'highlight', seriesIndex: i ?? undefined });
  };
  const exportCsv = () => {
    const url = URL.createObjectURL(new Blob([toCsv(data)], { type: 'text/csv' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `trawl-${s.measure}-${s.by.join('-') || 'all'}.csv`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  return html`<section data-view="explore">
    <${TimeBar} />
    <${Controls} />
    <${FilterBar} table=${table} range=${range} error=${result.error} />
    ${rangeError ? html`<div class="error">${rangeError}</div>` : null}
    <div class="panel">
      <div class="bar muted"><span><${WindowNote} window=${win} /> · ${unitLabel(s.measure, s.unit)}</span>
        ${result.loading ? html`<span>loading…</span>` : null}
        <span class="spacer"></span><span>drag on the chart to zoom, click a series to filter</span></div>
      ${option ? html`<${Chart} id="explore" option=${option} events=${events} onReady=${onReady} />` : html`<div class="chart"></div>`}
      <${SqlShown} result=${result} />
    </div>
    ${data ? html`<div class="panel">
      <div class="bar"><strong>${data.series.length} series</strong><span class="spacer"></span>
        <button onClick=${exportCsv} data-testid="csv">Export CSV</button></div>
      <${SeriesTable} data=${data} highlight=${highlight} onHover=${hover} onDrill=${drill} />
    </div>` : null}
  </section>`;
}

function chartOption(data, s) {
  const shown = s.chart === 'percent' ? percentages(data.series) : data.series;
  const stacked = s.chart !== 'lines';
  return {
    animation: false,
    grid: { left: 70, right: 20, top: 20, bottom: 40 },
    tooltip: {
      trigger: 'axis', confine: true, order: 'valueDesc',
      valueFormatter: (v) => (s.chart === 'percent' ? `${v.toFixed(1)} %` : formatValue(v, s.measure, s.unit)),
    },
    brush: { xAxisIndex: 'all', brushType: 'lineX', brushMode: 'single', throttleType: 'debounce' },
    toolbox: { show: false },
    xAxis: { type: 'time' },
    yAxis: { type: 'value', max: s.chart === 'percent' ? 100 : null, axisLabel: { formatter: (v) => (s.chart === 'percent' ? `${v} %` : si(v)) } },
    series: shown.map((x, i) => ({
      id: x.key, name: x.name, type: 'line', stack: stacked ? 'all' : undefined, areaStyle: stacked ? { opacity: 0.55 } : undefined,
      symbol: 'none', lineStyle: { width: stacked ? 0.5 : 1.5 }, color: colour(i, x.rest),
      emphasis: { focus: 'series' }, sampling: 'lttb',
      data: data.times.map((t, j) => [t * 1000, x.values[j]]),
    })),
  };
}

function SeriesTable({ data, highlight, onHover, onDrill }) {
  const s = state.value;
  const fmt = (v) => formatValue(v, s.measure, s.unit);
  const { by } = data;
  const appDim = by.length === 1 && (by[0] === 'src_app' || by[0] === 'dst_app');
  return html`<div class="scroll"><table data-testid="series-table">
    <thead><tr><th>${by.join(' · ') || 'series'}</th><th class="num">min</th><th class="num">max</th>
      <th class="num">last</th><th class="num">avg</th><th class="num">p95</th><th class="num">total ${s.measure}</th></tr></thead>
    <tbody>${data.series.map((x, i) => html`<tr class=${highlight === x.key ? 'hl' : ''} data-series=${x.name}
        onMouseEnter=${() => onHover(i)} onMouseLeave=${() => onHover(null)}>
      <td><span class="swatch" style=${{ background: colour(i, x.rest) }}></span>
        ${appDim && !x.rest ? html`<${AppLink} name=${x.parts[0]} />` : x.name}
        ${!x.rest && by.length ? html` <a class="muted" title="Filter on this series" onClick=${() => onDrill(x)}>+ filter</a>` : null}</td>
      <td class="num">${fmt(x.stats.min)}</td><td class="num">${fmt(x.stats.max)}</td>
      <td class="num">${fmt(x.stats.last)}</td><td class="num">${fmt(x.stats.avg)}</td>
      <td class="num">${fmt(x.stats.p95)}</td><td class="num" data-total=${x.stats.total}>${formatValue(x.stats.total, s.measure, 'total')}</td>
    </tr>`)}</tbody></table></div>`;
}
