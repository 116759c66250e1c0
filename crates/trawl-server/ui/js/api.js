// The server's API as the views use it: SQL (timed), whois, the schema,
// and the live tail's event stream. A bearer token, when the server needs
// one, stays in this tab's sessionStorage. Every request goes to this
// origin only (the page's CSP allows nothing else).

const TOKEN_KEY = 'trawl-token';

/** The token this tab sends ('' for none). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

/** Keeps `value` as this tab's token. */
export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

function headers(extra = {}) {
  const h = { ...extra };
  if (token()) h.authorization = `Bearer ${token()}`;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error) message = body.error;
  } catch {
    // Not JSON: keep the status line.
  }
  return new Error(message);
}

/** Runs `sql`; resolves to `{rows, ms}` or rejects with the server's message. */
export async function query(sql, { signal } = {}) {
  const started = performance.now();
  const response = await fetch('/api/v1/sql', {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json' }),
    body: JSON.stringify({ sql }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const rows = await response.json();
  const ended = performance.now();
  // For the UI bench (benches/ui_views.rs): each query's time as the page saw it.
  if (performance.getEntriesByName('trawl-sql').length > 1000) performance.clearMeasures('trawl-sql');
  performance.measure('trawl-sql', { start: started, end: ended, detail: sql.slice(0, 300) });
  return { rows, ms: ended - started };
}

/** Who held `ip` at `at` (the `trawl whois` answer). */
export async function whois(ip, at) {
  const params = new URLSearchParams({ ip, at });
  return getJson(`/api/v1/whois?${params}`);
}

/** GET `path` as JSON; the server's error as an Error. */
async function getJson(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/**
 * `load` memoised for `ttlMs` (forever by default): callers share one
 * request; a failure is not kept, so the next call tries again.
 */
function cached(load, ttlMs = Infinity) {
  let promise = null;
  let at = 0;
  return () => {
    if (promise && Date.now() - at <= ttlMs) return promise;
    at = Date.now();
    promise = load().catch((error) => {
      promise = null;
      throw error;
    });
    return promise;
  };
}

/**
 * The store's tables: `[{name, grain_secs, retention_secs, kept_from}]`,
 * fetched again after a minute (`kept_from` follows the watermark).
 */
export const tables = cached(() => getJson('/api/v1/tables'), 60_000);

/** Tables and columns: `{tables: {name: [{name, type}]}}`, fetched once. */
export const schema = cached(() => query(`SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`).then(({ rows }) => {
  const tables = {};
  for (const r of rows) (tables[r.table_name] ??= []).push({ name: r.column_name, type: r.data_type });
  return { tables };
}));

/**
 * Parses server-sent events from text chunks: feed it text, it calls
 * `onEvent(name, data)` for each whole event. (Pure: tested in ui-tests.)
 */
export function sseParser(onEvent) {
  let buffer = '';
  return (text) => {
    buffer += text.replaceAll('\r\n', '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = value;
        if (field === 'data') data.push(value);
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  };
}

/**
 * Opens the live tail for `where` at most `rate` rows/s; calls
 * `onEvent(name, json)` per event until `signal` aborts. Uses fetch (not
 * EventSource) so the token goes in a header, not the URL.
 */
export async function tail(where, rate, onEvent, signal) {
  const params = new URLSearchParams({ where, rate: String(rate) });
  const response = await fetch(`/api/v1/tail?${params}`, {
    headers: headers({ accept: 'text/event-stream' }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const feed = sseParser((name, data) => onEvent(name, JSON.parse(data)));
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    feed(value);
  }
}
