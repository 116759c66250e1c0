// trawl's web UI: the shell (navigation, token, theme, time zone,
// keyboard shortcuts) around six views. Every setting lives in the URL
// (state.js, urlstate.js). Modules load through the page's import map;
// nothing is bundled and nothing leaves this origin.
//
// Shortcuts: Ctrl+Enter runs again, Shift+← / Shift+→ shift the time
// range (outside text fields), Alt+1…6 switch views.

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html } from './components.js';
import { state, update, refresh, theme, toggleTheme } from './state.js';
import { VIEWS } from './urlstate.js';
import { shiftRange } from './timerange.js';
import { token, setToken } from './api.js';
import { Explore } from './explore.js';
import { FlowMap } from './flowmap.js';
import { AppPage } from './apppage.js';
import { Whois } from './whois.js';
import { Tail, stopTail } from './tail.js';
import { SqlView } from './sqlview.js';

const TITLES = { explore: 'Explore', flowmap: 'Flow map', app: 'App', whois: 'Whois', tail: 'Live tail', sql: 'SQL' };
const VIEW_OF = { explore: Explore, flowmap: FlowMap, app: AppPage, whois: Whois, tail: Tail, sql: SqlView };

function TokenBox() {
  const [value, setValue] = useState(token());
  return html`<label title="Only when the server asks for one; kept in this tab">token
    <input type="password" name="token" size="12" autocomplete="off" value=${value}
      onChange=${(e) => { setValue(e.target.value); setToken(e.target.value); refresh(); }} /></label>`;
}

function App() {
  const s = state.value;
  useEffect(() => {
    document.documentElement.dataset.theme = theme.value;
  }, [theme.value]);
  useEffect(() => {
    if (s.view !== 'tail') stopTail();
    document.title = `trawl · ${TITLES[s.view]}`;
  }, [s.view]);
  const View = VIEW_OF[s.view];
  return html`<header>
      <h1>trawl</h1>
      <nav>${VIEWS.map((v) => html`<a class=${s.view === v ? 'active' : ''} data-nav=${v} onClick=${() => update({ view: v })}>${TITLES[v]}</a>`)}</nav>
      <span class="spacer"></span>
      <${TokenBox} />
      <button onClick=${() => update({ tz: s.tz === 'utc' ? 'local' : 'utc' })} title="Times in UTC or this browser's zone" data-testid="tz">${s.tz === 'utc' ? 'UTC' : 'local time'}</button>
      <button onClick=${toggleTheme} title="Light or dark" data-testid="theme">${theme.value === 'dark' ? '☀ light' : '☾ dark'}</button>
    </header>
    <main><${View} /></main>`;
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

addEventListener('keydown', (e) => {
  const s = state.value;
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter' && s.view !== 'sql') {
    e.preventDefault();
    refresh();
  } else if (e.shiftKey && (e.key === 'ArrowLeft' || e.key === 'ArrowRight') && !typing(e.target)) {
    e.preventDefault();
    try {
      update(shiftRange(s, e.key === 'ArrowLeft' ? -1 : 1, Math.floor(Date.now() / 1000)));
    } catch {
      // A range that does not resolve is shown by the time bar.
    }
  } else if (e.altKey && /^[1-6]$/.test(e.key)) {
    e.preventDefault();
    update({ view: VIEWS[Number(e.key) - 1] });
  }
});

render(html`<${App} />`, document.getElementById('app'));
