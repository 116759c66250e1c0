// The SQL page: runs the statement in the box against /api/v1/sql and
// shows the rows. The token (if the server needs one) stays in this tab's
// sessionStorage and is sent as a bearer token; text is set with
// textContent only, so no answer can inject markup.
const $ = (id) => document.getElementById(id);

const run = async () => {
  const started = performance.now();
  const headers = { 'content-type': 'application/json' };
  const token = $('token').value.trim();
  sessionStorage.setItem('trawl-token', token);
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch('/api/v1/sql', {
    method: 'POST', headers, body: JSON.stringify({ sql: $('sql').value }),
  });
  const body = await response.json();
  $('took').textContent = `${Math.round(performance.now() - started)} ms`;
  const table = $('result');
  table.replaceChildren();
  $('error').textContent = response.ok ? '' : body.error;
  if (!response.ok || body.length === 0) return;
  const head = table.insertRow();
  for (const name of Object.keys(body[0])) {
    const th = document.createElement('th');
    th.textContent = name;
    head.appendChild(th);
  }
  for (const row of body) {
    const tr = table.insertRow();
    for (const value of Object.values(row)) tr.insertCell().textContent = value ?? 'NULL';
  }
};

$('token').value = sessionStorage.getItem('trawl-token') ?? '';
$('run').onclick = run;
run();
