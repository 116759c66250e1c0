// Live tail: enriched flows matching a SQL condition, pushed by the server
// as they are ingested (server-sent events). The server samples past the
// rate limit and says how many it skipped. One stream per tab: starting a
// new one, or leaving the view, ends the previous.

import { useEffect, useRef, useState } from 'preact/hooks';
import { html, AppLink } from './components.js';
import { state, update } from './state.js';
import { tail } from './api.js';
import { formatTime } from './units.js';

const ROWS_KEPT = 500;
let current = null;

/** Ends this tab's stream, if any. */
export function stopTail() {
  current?.abort();
  current = null;
}

const COLUMNS = ['time', 'src_app', 'src_addr', 'src_port', 'dst_app', 'dst_addr', 'dst_port', 'protocol', 'action', 'bytes', 'packets', 'src_az', 'dst_az'];

/** The live tail view. */
export function Tail() {
  const s = state.value;
  const [where, setWhere] = useState(s.where);
  const [rate, setRate] = useState(50);
  const [rows, setRows] = useState([]);
  const [status, setStatus] = useState({ state: 'stopped', matched: 0, skipped: 0, lagged: 0 });
  const [error, setError] = useState('');
  const paused = useRef(false);
  const [pausedView, setPaused] = useState(false);
  const start = () => {
    stopTail();
    const controller = new AbortController();
    current = controller;
    setError('');
    setRows([]);
    setStatus({ state: 'connecting', matched: 0, skipped: 0, lagged: 0, held: 0 });
    update({ where });
    tail(where, rate, (name, data) => {
      if (name === 'hello') setStatus((st) => ({ ...st, state: 'live', rate: data.rate }));
      if (name !== 'rows') return;
      setStatus((st) => ({
        ...st, matched: st.matched + data.matched, skipped: st.skipped + data.skipped,
        lagged: st.lagged + (data.lagged_batches ?? 0), held: st.held + (paused.current ? data.rows.length : 0),
      }));
      if (!paused.current) setRows((old) => [...data.rows.reverse(), ...old].slice(0, ROWS_KEPT));
    }, controller.signal).then(() => setStatus((st) => ({ ...st, state: 'ended' })))
      .catch((e) => {
        if (e.name === 'AbortError') return;
        setError(e.message);
        setStatus((st) => ({ ...st, state: 'stopped' }));
      });
  };
  useEffect(() => stopTail, []);
  const togglePause = () => { paused.current = !paused.current; setPaused(paused.current); };
  const utc = s.tz === 'utc';
  return html`<section data-view="tail">
    <div class="bar">
      <label>where <input name="where" size="60" value=${where} placeholder="dst_app = 'checkout' AND action = 'REJECT'"
        onInput=${(e) => setWhere(e.target.value)} onKeyDown=${(e) => e.key === 'Enter' && start()} /></label>
      <label>at most <input name="rate" type="number" min="1" max="1000" value=${rate} style="width:5rem"
        onChange=${(e) => setRate(Math.max(1, Number(e.target.value) || 50))} /> rows/s</label>
      <button class="primary" onClick=${start} data-testid="tail-start">${status.state === 'live' ? 'Restart' : 'Start'}</button>
      <button onClick=${togglePause} class=${pausedView ? 'on' : ''} data-testid="tail-pause" disabled=${status.state !== 'live'}>${pausedView ? 'Resume' : 'Pause'}</button>
      <button onClick=${() => { stopTail(); setStatus((st) => ({ ...st, state: 'stopped' })); }}>Stop</button>
      <button onClick=${() => setRows([])}>Clear</button>
    </div>
    <div class="bar muted" data-testid="tail-status" data-state=${status.state}>
      <span>${status.state}${status.rate ? ` · limit ${status.rate} rows/s` : ''}</span>
      <span>matched ${status.matched}</span><span>skipped by the rate limit ${status.skipped}</span>
      ${status.lagged ? html`<span>batches missed (slow stream) ${status.lagged}</span>` : null}
      ${pausedView ? html`<span>paused: ${status.held} rows not shown</span>` : null}
    </div>
    ${error ? html`<div class="error" data-testid="tail-error">${error}</div>` : null}
    <div class="panel"><div class="scroll" style=${{ maxHeight: '70vh' }}><table data-testid="tail-rows">
      <thead><tr>${COLUMNS.map((c) => html`<th>${c}</th>`)}</tr></thead>
      <tbody>${rows.map((r) => html`<tr>${COLUMNS.map((c) => html`<td class=${typeof r[c] === 'number' ? 'num' : ''}>${
        c === 'src_app' || c === 'dst_app' ? html`<${AppLink} name=${r[c]} />`
          : c === 'time' ? formatTime(Date.parse(r[c]) / 1000, utc) : r[c] ?? ''}</td>`)}</tr>`)}</tbody>
    </table></div></div>
  </section>`;
}
