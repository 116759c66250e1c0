// Whois: who held an IP at a time (the rule that answered, the interval)
// and the IP's whole ownership history.

import { useEffect, useState } from 'preact/hooks';
import { html, useQuery, SqlShown, RowsTable, AppLink } from './components.js';
import { state, update } from './state.js';
import { ipHistorySql } from './sql.js';
import { whois } from './api.js';

/** The whois view. */
export function Whois() {
  const s = state.value;
  const [ip, setIp] = useState(s.ip);
  const [at, setAt] = useState(s.at);
  const [answer, setAnswer] = useState(null);
  useEffect(() => {
    if (!s.ip) return;
    setAnswer({ loading: true });
    whois(s.ip, s.at === 'now' ? String(Math.floor(Date.now() / 1000)) : s.at)
      .then((a) => setAnswer({ a }))
      .catch((error) => setAnswer({ error: error.message }));
  }, [s.ip, s.at]);
  const history = useQuery(() => s.ip && ipHistorySql(s.ip), [s.ip]);
  const go = () => update({ ip: ip.trim(), at: at.trim() || 'now' });
  const a = answer?.a;
  return html`<section data-view="whois">
    <div class="bar">
      <label>IP <input name="ip" value=${ip} size="24" onInput=${(e) => setIp(e.target.value)} onKeyDown=${(e) => e.key === 'Enter' && go()} /></label>
      <label>at <input name="at" value=${at} size="24" onInput=${(e) => setAt(e.target.value)} onKeyDown=${(e) => e.key === 'Enter' && go()} /></label>
      <button class="primary" onClick=${go}>Who?</button>
      <span class="muted">time: now, RFC 3339 or epoch seconds</span>
    </div>
    ${answer?.error ? html`<div class="error">${answer.error}</div>` : null}
    ${a ? html`<div class="panel" data-testid="whois-answer">
      <dl class="kv">
        <dt>app</dt><dd><${AppLink} name=${a.app} /></dd>
        <dt>rule</dt><dd>${a.rule}${a.settled === false ? html` <span class="badge">not settled yet</span>` : null}</dd>
        <dt>held</dt><dd>${a.interval ? `${a.interval.from} → ${a.interval.to ?? 'now'}` : '—'}</dd>
        ${a.prefix ? html`<dt>prefix</dt><dd>${a.prefix}</dd>` : null}
        ${['cluster', 'account', 'region', 'az', 'kind'].map((k) => html`<dt>${k}</dt><dd>${a[k] ?? '—'}</dd>`)}
        ${a.labels && Object.keys(a.labels).length ? html`<dt>labels</dt><dd>${JSON.stringify(a.labels)}</dd>` : null}
      </dl></div>` : null}
    ${s.ip ? html`<div class="panel"><strong>Ownership history of ${s.ip}</strong>
      ${history.error ? html`<div class="error">${history.error}</div>` : null}
      <${RowsTable} rows=${history.rows} testid="ip-history" /><${SqlShown} result=${history} /></div>` : null}
  </section>`;
}
