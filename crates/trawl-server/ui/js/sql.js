// SQL building (pure: tested by ui-tests/sql.test.mjs).
//
// Every view asks the server's read-only SQL endpoint; this module turns a
// view's settings into that SQL. Identifiers are checked against a strict
// pattern and literals are quoted here, never pasted: a value typed in the
// filter bar or clicked in a chart cannot change the statement's shape.
// Missing values (a flow to an address no one owned) are `null` here and
// show as `(unknown)`; a value that is spelled like a label (`(unknown)`,
// `Other`, the empty string) shows quoted. Queries return each dimension
// as its own column (`d0`, `d1`, …; NULL kept) and the top-N remainder as
// a `rest` flag, so no label is ever parsed back into values.

/** The label of a missing value. */
export const UNKNOWN = '(unknown)';
/** The label of the series past the top N. */
export const OTHER = 'Other';
/** Between the values of a series grouped by several dimensions. */
export const SEPARATOR = ' · ';

/**
 * A value as shown: `null` as `(unknown)`; a value spelled like a label
 * (`(unknown)`, `Other`, empty) or starting with a quote, quoted — so two
 * values never show alike.
 */
export function displayValue(value) {
  if (value === null || value === undefined) return UNKNOWN;
  const text = String(value);
  return text === '' || text === UNKNOWN || text === OTHER || text.startsWith("'") ? quote(text) : text;
}

/** Group-by dimensions of every table (the rollups' dimensions). */
export const DIMENSIONS = [
  'src_app', 'dst_app', 'src_cluster', 'dst_cluster', 'src_account', 'dst_account',
  'src_region', 'dst_region', 'src_az', 'dst_az', 'src_kind', 'dst_kind',
  'service_port', 'protocol', 'action', 'flow_direction', 'cross_az', 'cross_region',
];

/** Filter operators, as typed in the filter bar. */
export const OPERATORS = ['=', '!=', 'IN', 'NOT IN', 'LIKE', 'NOT LIKE'];

/** `name` if it is a plain column name; throws otherwise. */
export function ident(name) {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`"${name}" is not a column name`);
  return name;
}

/** A SQL string literal. */
export function quote(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}

/** `value` as a literal of a column of `type` (`number`, `bool` or `text`). */
export function literal(value, type) {
  const text = String(value).trim();
  if (type === 'number') {
    if (!/^-?\d+(\.\d+)?$/.test(text)) throw new Error(`"${text}" is not a number`);
    return text;
  }
  if (type === 'bool') {
    if (!/^(true|false)$/i.test(text)) throw new Error(`"${text}" is not true or false`);
    return text.toLowerCase();
  }
  return quote(value);
}

/** The kind of an Arrow type name as the filter needs it. */
export function typeKind(arrowType) {
  if (/^(U?Int|Float|Decimal)/.test(arrowType)) return 'number';
  if (arrowType === 'Boolean') return 'bool';
  return 'text';
}

/**
 * Parses one filter as typed: `src_app = checkout`, `dstport IN 22, 3389`,
 * `dst_app NOT LIKE pay%`, `src_az != (unknown)`. Values may be quoted
 * ('a, b'). Throws an Error saying what is wrong.
 */
export function parseFilter(text) {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|<>|=|not\s+in|in|not\s+like|like)\s*(.*)$/is.exec(text);
  if (!m) throw new Error(`"${text.trim()}": write column, then = != IN NOT IN LIKE NOT LIKE, then values`);
  const column = m[1].toLowerCase();
  const op = m[2].toUpperCase().replace(/\s+/g, ' ').replace('<>', '!=');
  const list = op.endsWith('IN') ? m[3].trim().replace(/^\((.*)\)$/s, '$1') : m[3];
  const values = splitValues(list);
  if (values.length === 0) throw new Error(`"${column} ${op}": a value is missing`);
  if ((op === '=' || op === '!=' || op.endsWith('LIKE')) && values.length > 1) {
    throw new Error(`"${column} ${op}" takes one value; use IN for several`);
  }
  return { column, op, values };
}

/**
 * Comma-separated values, each optionally in single quotes ('' inside for
 * '). A bare `(unknown)` is `null` (the missing value); quoted, it is text.
 */
export function splitValues(text) {
  const values = [];
  let rest = text.trim();
  while (rest.length > 0) {
    if (rest.startsWith("'")) {
      const m = /^'((?:[^']|'')*)'\s*(,|$)/.exec(rest);
      if (!m) throw new Error(`unclosed quote in ${rest}`);
      values.push(m[1].replaceAll("''", "'"));
      rest = rest.slice(m[0].length).trim();
    } else {
      const comma = rest.indexOf(',');
      const value = (comma < 0 ? rest : rest.slice(0, comma)).trim();
      rest = comma < 0 ? '' : rest.slice(comma + 1).trim();
      if (value !== '') values.push(value === UNKNOWN ? null : value);
    }
  }
  return values;
}

/** One filter value as typed: `null` bare `(unknown)`, plain words bare, the rest quoted. */
export function valueText(value) {
  if (value === null || value === undefined) return UNKNOWN;
  return /^[\w.:%/\-]+$/.test(value) ? value : quote(value);
}

/** A filter back as text (what parseFilter reads). */
export function filterText({ column, op, values }) {
  const shown = values.map(valueText);
  return op.endsWith('IN') ? `${column} ${op} (${shown.join(', ')})` : `${column} ${op} ${shown[0]}`;
}

/** One filter as a SQL condition; `types` maps columns to number/bool/text. */
export function filterSql({ column, op, values }, types = {}) {
  const col = ident(column);
  const type = types[col] ?? 'text';
  const known = values.filter((v) => v !== null && v !== undefined);
  const hasUnknown = known.length !== values.length;
  // A LIKE pattern is text whatever the column's type (`service_port LIKE 44%`).
  const lits = op.endsWith('LIKE') ? [] : known.map((v) => literal(v, type));
  const textCol = type === 'text' ? col : `CAST(${col} AS VARCHAR)`;
  switch (op) {
    case '=':
      return hasUnknown ? `${col} IS NULL` : `${col} = ${lits[0]}`;
    case '!=':
      return hasUnknown ? `${col} IS NOT NULL` : `(${col} != ${lits[0]} OR ${col} IS NULL)`;
    case 'IN': {
      const parts = [];
      if (lits.length) parts.push(`${col} IN (${lits.join(', ')})`);
      if (hasUnknown) parts.push(`${col} IS NULL`);
      return parts.length === 1 ? parts[0] : `(${parts.join(' OR ')})`;
    }
    case 'NOT IN': {
      const parts = [];
      if (lits.length) parts.push(`(${col} NOT IN (${lits.join(', ')}) OR ${col} IS NULL)`);
      if (hasUnknown) parts.push(`${col} IS NOT NULL`);
      return parts.join(' AND ');
    }
    case 'LIKE':
      return hasUnknown ? `${col} IS NULL` : `${textCol} LIKE ${quote(values[0])}`;
    case 'NOT LIKE':
      return hasUnknown ? `${col} IS NOT NULL` : `(${textCol} NOT LIKE ${quote(values[0])} OR ${col} IS NULL)`;
    default:
      throw new Error(`unknown operator ${op}`);
  }
}

/** Every filter ANDed (`TRUE` when none). */
export function whereSql(filters, types = {}) {
  return filters.length ? filters.map((f) => filterSql(f, types)).join(' AND ') : 'TRUE';
}

/** The time condition of `[from, to)` in epoch seconds. */
export function timeSql(from, to) {
  return `time >= to_timestamp_seconds(${Math.floor(from)}) AND time < to_timestamp_seconds(${Math.ceil(to)})`;
}

/** The start of the `stepSecs` bucket each row's `time` falls in. */
export function binSql(stepSecs) {
  return `date_bin(INTERVAL '${Math.floor(stepSecs)} seconds', time, TIMESTAMP '1970-01-01T00:00:00Z')`;
}

/** The aggregate of `measure` over `table` (the detail table counts rows as flows). */
export function measureSql(measure, table) {
  if (!['bytes', 'packets', 'flows'].includes(measure)) throw new Error(`unknown measure ${measure}`);
  return measure === 'flows' && table === 'flows' ? 'count(*)' : `sum(${measure})`;
}

/** A dimension as text, NULL kept (the UI labels it). */
export function dimSql(dim) {
  return `CAST(${ident(dim)} AS VARCHAR)`;
}

/**
 * The filters a click on a series adds: `parts` are its values, one per
 * dimension of `dims` (`null` for a missing one); none for the remainder.
 */
export function drillFilters(dims, parts, rest = false) {
  if (dims.length === 0 || rest) return [];
  return dims.map((column, i) => ({ column, op: '=', values: [parts[i] ?? null] }));
}

/**
 * The explore view's query: `measure` per `stepSecs` bucket and series
 * over `[from, to)`, the top `topN` series ranked by `rank` (`avg`: the
 * total, which orders as the mean; `max`: the highest bucket; `last`: the
 * newest bucket) and the rest summed in one series. Rows: `t`, `rest`
 * (true for the remainder), `d0`… (the dimensions' values as text, NULL
 * for missing ones and in the remainder), `value`.
 *
 * DataFusion computes a CTE again at each reference
 * (apache/datafusion#8777), so no CTE here is referenced twice. By one
 * dimension, window functions give each bucket row its series' score and
 * rank (one read of the table; sorting the few bucket rows is cheap). By
 * several, whose bucket rows are many, the top N (`r`) come from one read
 * — for `avg` grouped by the dimensions only, for `max` and `last` from
 * the buckets — and the rows are read again and joined to `r` on the
 * stored columns (dictionary keys, not text), so the second read groups by
 * bucket and the top N only, never by every series. Measured on an hour of
 * the demo, 50 app pairs by avg: 141 ms against 247 for the buckets of
 * every pair joined to `r`.
 */
export function exploreSql(q) {
  const { table, stepSecs, from, to, dims, filters, measure, topN, rank, types } = q;
  if (!['avg', 'max', 'last'].includes(rank)) throw new Error(`unknown ranking ${rank}`);
  const n = Math.max(1, Math.min(50, Math.floor(topN)));
  const d = dims.map((_, i) => `d${i}`);
  const value = measureSql(measure, table);
  const where = `WHERE ${timeSql(from, to)} AND ${whereSql(filters, types)}`;
  const rows = `FROM ${ident(table)}
  ${where}`;
  const groupBy = (count) => `GROUP BY ${Array.from({ length: count }, (_, i) => i + 1).join(', ')}`;
  // `value` per bucket and `columns` (`expr AS d0`, …).
  const buckets = (columns) => `SELECT ${binSql(stepSecs)} AS t${columns.map((c) => `, ${c}`).join('')}, ${value} AS v
  ${rows}
  ${groupBy(columns.length + 1)}`;
  if (dims.length === 0) return `SELECT t, false AS rest, v AS value FROM (\n  ${buckets([])}) ORDER BY 1`;
  const positions = d.map((_, i) => String(i + 3));
  const order = `ORDER BY 1, 2, ${positions.join(', ')}`;
  const score = {
    avg: 'sum(v)',
    max: 'max(v)',
    last: 'sum(CASE WHEN t = newest THEN v ELSE 0 END)',
  }[rank];
  // The newest bucket with rows, on every row (only `last` needs it).
  const withNewest = (source) => (rank === 'last' ? `(SELECT *, max(t) OVER () AS newest FROM ${source})` : source);
  // A filter on the grouped dimension (a drill-down) may make it constant,
  // and DataFusion 55 then fails to plan the window's sort on one
  // partition or an empty range (SanityCheckPlan): such queries take the
  // two-read plan.
  if (dims.length === 1 && !filters.some((f) => f.column === dims[0])) {
    // Grouped as text: DataFusion groups plain strings faster than the
    // stored dictionary columns (measured by benches/ui_views.rs: 15 min
    // of the detail table 331 against 396 ms).
    const b = buckets([`${dimSql(dims[0])} AS d0`]);
    return `SELECT t, k > ${n} AS rest, CASE WHEN k <= ${n} THEN d0 END AS d0, sum(v) AS value FROM (
  SELECT t, d0, v, dense_rank() OVER (ORDER BY score DESC, d0) AS k FROM (
    SELECT t, d0, v, ${score} OVER (PARTITION BY d0) AS score FROM ${withNewest(`(\n  ${b})`)}))
${groupBy(2 + dims.length)} ${order}`;
  }
  const stored = dims.map((dim, i) => `${ident(dim)} AS d${i}`);
  // Ties go by the values as text, as in the one-dimension plan.
  const ties = d.map((c) => `CAST(${c} AS VARCHAR)`).join(', ');
  const ranked = rank === 'avg'
    ? `SELECT ${stored.join(', ')}, true AS hit ${rows}
  ${groupBy(dims.length)} ORDER BY ${value} DESC, ${ties} LIMIT ${n}`
    : `SELECT ${d.join(', ')}, true AS hit FROM ${withNewest(`(\n  ${buckets(stored)})`)}
  GROUP BY ${d.join(', ')} ORDER BY ${score} DESC, ${ties} LIMIT ${n}`;
  // Parenthesised: the parser binds AND tighter than IS NOT DISTINCT FROM.
  const on = dims.map((dim, i) => `(${ident(table)}.${ident(dim)} IS NOT DISTINCT FROM r.d${i})`).join(' AND ');
  return `WITH r AS (${ranked})
SELECT t, rest, ${d.map((c) => `CAST(${c} AS VARCHAR) AS ${c}`).join(', ')}, value FROM (
  SELECT ${binSql(stepSecs)} AS t, r.hit IS NULL AS rest, ${d.map((c) => `r.${c} AS ${c}`).join(', ')}, ${value} AS value
  FROM ${ident(table)} LEFT JOIN r ON ${on}
  ${where}
  ${groupBy(2 + dims.length)})
${order}`;
}

/** Sankey edges: `measure` from one side's `side` dimension to the other's, the top `limit`. */
export function flowMapSql({ table, from, to, side, filters, measure, types, limit = 40 }) {
  const [src, dst] = [`src_${side}`, `dst_${side}`];
  return `SELECT CAST(src AS VARCHAR) AS src, CAST(dst AS VARCHAR) AS dst, value FROM (
  SELECT ${ident(src)} AS src, ${ident(dst)} AS dst, ${measureSql(measure, table)} AS value
  FROM ${ident(table)} WHERE ${timeSql(from, to)} AND ${whereSql(filters, types)}
  GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT ${Math.max(1, Math.min(200, limit))})
ORDER BY 3 DESC, 1, 2`;
}

/** A matrix of bytes between the sides' `side` (region or az), crossing cells marked. */
export function matrixSql({ table, from, to, side, filters, types }) {
  const [src, dst] = [`src_${side}`, `dst_${side}`];
  return `SELECT CAST(src AS VARCHAR) AS src, CAST(dst AS VARCHAR) AS dst, bytes FROM (
  SELECT ${ident(src)} AS src, ${ident(dst)} AS dst, sum(bytes) AS bytes
  FROM ${ident(table)} WHERE ${timeSql(from, to)} AND ${whereSql(filters, types)}
  GROUP BY 1, 2)
ORDER BY 1, 2`;
}

/**
 * The app page's query: what `app` talks to (`direction` out: it is the
 * source) or what talks to it (in), by peer, service port, protocol and
 * action, `limit` rows by bytes.
 */
export function appPeersSql({ table, from, to, app, direction, limit = 100 }) {
  const [self, peer] = direction === 'out' ? ['src_app', 'dst_app'] : ['dst_app', 'src_app'];
  const flows = measureSql('flows', table);
  return `SELECT ${dimSql(peer)} AS peer, service_port, protocol, action,
  sum(bytes) AS bytes, sum(packets) AS packets, ${flows} AS flows
FROM ${ident(table)} WHERE ${timeSql(from, to)} AND ${self} = ${quote(app)}
GROUP BY 1, 2, 3, 4 ORDER BY bytes DESC, 1 LIMIT ${Math.max(1, Math.min(1000, limit))}`;
}

/** The rows of flows `app` sent (`out`) or received (`in`) that match `where`. */
function appSide(app, direction, where, table, from, to) {
  const self = direction === 'out' ? 'src_app' : 'dst_app';
  return `FROM ${ident(table)} WHERE ${timeSql(from, to)} AND ${self} = ${quote(app)}${where ? ` AND ${where}` : ''}`;
}

/**
 * The app's rejected flows both ways, by direction, peer, service port
 * and protocol, the `limit` largest by flows (asked on their own: a
 * one-packet probe is never among the top peers by bytes).
 */
export function appRejectedSql({ table, from, to, app, limit = 200 }) {
  const one = (direction) => {
    const peer = direction === 'out' ? 'dst_app' : 'src_app';
    return `SELECT ${quote(direction)} AS direction, ${dimSql(peer)} AS peer, service_port, protocol,
  ${measureSql('flows', table)} AS flows, sum(packets) AS packets, sum(bytes) AS bytes
${appSide(app, direction, "action = 'REJECT'", table, from, to)} GROUP BY 1, 2, 3, 4`;
  };
  return `${one('out')}
UNION ALL
${one('in')}
ORDER BY flows DESC, 1, 2, 3 LIMIT ${Math.max(1, Math.min(1000, limit))}`;
}

/** The service ports the app answers on (it is the destination): traffic and rejected flows, the `limit` largest by bytes. */
export function appPortsSql({ table, from, to, app, limit = 200 }) {
  const one = table === 'flows' ? '1' : 'flows';
  return `SELECT service_port, protocol, sum(bytes) AS bytes, ${measureSql('flows', table)} AS flows,
  sum(CASE WHEN action = 'REJECT' THEN ${one} ELSE 0 END) AS rejected_flows
${appSide(app, 'in', '', table, from, to)}
GROUP BY 1, 2 ORDER BY bytes DESC, 1, 2 LIMIT ${Math.max(1, Math.min(1000, limit))}`;
}

/**
 * The app's bytes out and in per bucket, read once (rows: t, bytes_out,
 * bytes_in; NULL for a side with no flows in the bucket, 0 for a side
 * whose flows lack bytes). A flow from the app to itself counts both ways.
 */
export function appSeriesSql({ table, stepSecs, from, to, app }) {
  const name = quote(app);
  return `SELECT ${binSql(stepSecs)} AS t,
  sum(CASE WHEN src_app = ${name} THEN coalesce(bytes, 0) END) AS bytes_out,
  sum(CASE WHEN dst_app = ${name} THEN coalesce(bytes, 0) END) AS bytes_in
FROM ${ident(table)} WHERE ${timeSql(from, to)} AND (src_app = ${name} OR dst_app = ${name})
GROUP BY 1 ORDER BY 1`;
}

/** {@link appSeriesSql}'s rows as series rows (t, d0: out or in, value), a side's missing buckets left out. */
export function appSeriesRows(rows) {
  return rows.flatMap((r) => [['out', r.bytes_out], ['in', r.bytes_in]]
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([d0, value]) => ({ t: r.t, d0, value })));
}

/** Values of `column` seen in `table` starting with `prefix` (completion; NULL for `(unknown)`). */
export function valuesSql({ table, column, prefix, from, to, limit = 20 }) {
  const col = ident(column);
  const like = `${prefix.replaceAll('\\', '\\\\').replaceAll('%', '\\%').replaceAll('_', '\\_')}%`;
  const missing = UNKNOWN.startsWith(prefix) ? ` OR ${col} IS NULL` : '';
  return `SELECT ${dimSql(col)} AS value, count(*) AS n FROM ${ident(table)}
WHERE ${timeSql(from, to)} AND (${dimSql(col)} LIKE ${quote(like)}${missing})
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${limit}`;
}

/** An IP's whole ownership history. */
export function ipHistorySql(ip) {
  return `SELECT valid_from, valid_to, rule, app, "cluster", account, region, az, kind
FROM ip_history WHERE ip = ${quote(ip)} ORDER BY valid_from`;
}
