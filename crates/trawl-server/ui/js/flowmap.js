// Flow map: a Sankey of who sends to whom (by app, AZ, region or account;
// click a node or an edge to filter on it), and region x region and
// AZ x AZ matrices of bytes where the cells that cross a zone or region,
// which AWS bills, are marked.

import { useMemo } from 'preact/hooks';
import { html, useWindow, WindowNote, Chart, TimeBar, FilterBar, useTypes, useQuery, SqlShown, AppLink } from './components.js';
import { state, update } from './state.js';
import { flowMapSql, matrixSql, displayValue } from './sql.js';
import { si, MEASURES } from './units.js';

const SIDES = ['app', 'az', 'region', 'account'];

/**
 * Sankey nodes and links from edge rows (`src`, `dst`: values, null for a
 * missing one); sides kept apart so A→B and B→A make no cycle. `values`
 * maps a node's name back to its side and value (names are labels).
 */
export function sankeyData(rows) {
  const values = new Map();
  const node = (side, value) => {
    const name = side === 'src' ? `${displayValue(value)} ▸` : `▸ ${displayValue(value)}`;
    values.set(name, { side, value });
    return name;
  };
  const links = rows.filter((r) => Number(r.value) > 0)
    .map((r) => ({ source: node('src', r.src), target: node('dst', r.dst), value: Number(r.value) }));
  return { nodes: [...values.keys()].map((name) => ({ name })), links, values };
}

/** The flow map view. */
export function FlowMap() {
  const s = state.value;
  const win = useWindow();
  const { range, table } = win;
  const types = useTypes(table);
  const base = { table, from: range?.[0], to: range?.[1], filters: s.filters, types };
  const deps = [range?.[0], range?.[1], table, JSON.stringify(s.filters), types];
  const edges = useQuery(() => range && flowMapSql({ ...base, side: s.side, measure: s.measure }), [...deps, s.side, s.measure], { side: s.side });
  const regions = useQuery(() => range && matrixSql({ ...base, side: 'region' }), deps);
  const zones = useQuery(() => range && matrixSql({ ...base, side: 'az' }), deps);
  const sankey = useMemo(() => edges.rows && sankeyData(edges.rows), [edges.rows]);
  const option = useMemo(() => sankey && {
    animation: false,
    tooltip: { trigger: 'item', valueFormatter: si },
    series: [{
      type: 'sankey', nodes: sankey.nodes, links: sankey.links, emphasis: { focus: 'adjacency' }, nodeGap: 6,
      left: 10, right: 160, lineStyle: { color: 'gradient', opacity: 0.4 }, label: { fontSize: 11 },
    }],
  }, [sankey]);
  const filterOn = (name) => {
    const { side, value } = sankey.values.get(name);
    // The side the edges were asked by (the page may have moved on).
    return { column: `${side}_${edges.meta.side}`, op: '=', values: [value ?? null] };
  };
  const click = (p) => {
    const added = p.dataType === 'edge' ? [filterOn(p.data.source), filterOn(p.data.target)] : [filterOn(p.name)];
    update({ filters: [...s.filters, ...added] });
  };
  return html`<section data-view="flowmap">
    <${TimeBar} />
    <div class="bar">
      <label>between <select name="side" value=${s.side} onChange=${(e) => update({ side: e.target.value })}>
        ${SIDES.map((x) => html`<option>${x}</option>`)}</select></label>
      <label>measure <select name="measure" value=${s.measure} onChange=${(e) => update({ measure: e.target.value })}>
        ${MEASURES.map((m) => html`<option>${m}</option>`)}</select></label>
      <span class="muted"><${WindowNote} window=${win} /> · top 40 pairs · click a node or a band to filter</span>
    </div>
    <${FilterBar} table=${table} range=${range} error=${edges.error} />
    <div class="panel">
      ${option ? html`<${Chart} id="sankey" tall option=${option} events=${{ click }} />` : html`<div class="chart tall"></div>`}
      ${s.side === 'app' && edges.rows ? html`<p class="muted">Apps: ${[...new Set(edges.rows.flatMap((r) => [r.src, r.dst]).filter((a) => a !== null))].slice(0, 30)
        .map((a) => html`<${AppLink} name=${a} /> `)}</p>` : null}
      <${SqlShown} result=${edges} />
    </div>
    <div class="grid2">
      <${Matrix} title="Region × region bytes" result=${regions} testid="matrix-region" cross="cross-region" />
      <${Matrix} title="AZ × AZ bytes" result=${zones} testid="matrix-az" cross="cross-AZ" />
    </div>
  </section>`;
}

/** A matrix of bytes, sources down, destinations across; crossing cells outlined. */
function Matrix({ title, result, testid, cross }) {
  if (result.error) return html`<div class="panel"><div class="error">${result.error}</div></div>`;
  const rows = result.rows ?? [];
  const srcs = [...new Set(rows.map((r) => r.src))].sort();
  const dsts = [...new Set(rows.map((r) => r.dst))].sort();
  const key = (src, dst) => JSON.stringify([src, dst]);
  const cell = new Map(rows.map((r) => [key(r.src, r.dst), Number(r.bytes)]));
  const crosses = (src, dst) => src !== dst && src !== null && dst !== null;
  const max = Math.max(1, ...cell.values());
  let crossing = 0;
  let total = 0;
  for (const r of rows) {
    total += Number(r.bytes);
    if (crosses(r.src, r.dst)) crossing += Number(r.bytes);
  }
  return html`<div class="panel"><strong>${title}</strong>
    <span class="muted"> · ${cross}: ${si(crossing)}B of ${si(total)}B (${total ? ((100 * crossing) / total).toFixed(1) : 0} %), outlined cells are billed</span>
    <div class="scroll"><table class="matrix" data-testid=${testid}>
      <thead><tr><th>src ↓ dst →</th>${dsts.map((d) => html`<th class="num">${displayValue(d)}</th>`)}</tr></thead>
      <tbody>${srcs.map((src) => html`<tr><th>${displayValue(src)}</th>${dsts.map((dst) => {
        const v = cell.get(key(src, dst)) ?? 0;
        return html`<td class=${crosses(src, dst) ? 'cross' : ''} data-bytes=${v}
          style=${{ background: `rgba(84, 112, 198, ${(0.08 + 0.6 * Math.sqrt(v / max)).toFixed(3)})` }}>${v ? si(v) : ''}</td>`;
      })}</tr>`)}</tbody></table></div>
    <${SqlShown} result=${result} /></div>`;
}
