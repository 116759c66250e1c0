// ui/js/flowmap.js and labels: two different values never share a label
// where the label is the identity (Sankey nodes are keyed by name).
// Regression (second cold review of the UI): '' and the text '' merged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { displayValue } from '../ui/js/sql.js';

// Stub the browser-only imports of flowmap.js (preact, htm, echarts, signals, DOM globals).
const stub = `
const noop = () => {};
export const h = noop, render = noop, useMemo = (f) => f(), useEffect = noop, useRef = () => ({}),
  useState = (v) => [v, noop], signal = (v) => ({ value: v }), init = noop;
export default () => noop;`;
register(`data:text/javascript,${encodeURIComponent(`
export async function resolve(spec, ctx, next) {
  if (/^(preact|htm|echarts|@preact)/.test(spec)) return { url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(stub)}), shortCircuit: true };
  return next(spec, ctx);
}`)}`);
globalThis.location = { search: '' };
globalThis.localStorage = { getItem: () => null, setItem: () => {} };
globalThis.matchMedia = () => ({ matches: false });
globalThis.addEventListener ??= () => {};

test('the empty string and the text \'\' are shown differently', () => {
  assert.notEqual(displayValue(''), displayValue("''"));
});

test('two distinct source values stay two Sankey nodes', async () => {
  const { sankeyData } = await import('../ui/js/flowmap.js');
  const { nodes, values } = sankeyData([
    { src: '', dst: 'db', value: 100 },
    { src: "''", dst: 'db', value: 7 },
  ]);
  // 2 sources + 1 destination, each node back to its own value.
  assert.equal(nodes.length, 3, JSON.stringify([...values]));
  assert.deepEqual(nodes.map((n) => values.get(n.name).value).sort(), ['', "''", 'db']);
});
